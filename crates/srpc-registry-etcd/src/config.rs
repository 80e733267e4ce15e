//! [`EtcdConfig`]: everything an `etcd://` registry URL can say.

use std::time::Duration;

use srpc_registry_kit::layout::PathLayout;
use srpc_registry_kit::{FailbackConfig, RegistryParams, Result, Url};

/// The client port etcd listens on by default.
pub const DEFAULT_PORT: u16 = 2379;

/// Settings of an etcd registry.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct EtcdConfig {
    /// The endpoints, `http://host:port` each, tried in turn.
    pub endpoints: Vec<String>,
    /// The lease TTL (`session`, milliseconds as Java writes it, default 30 000; etcd raises
    /// anything under its minimum, 2 s by default). Keepalives go every third of it.
    pub session: Duration,
    /// How long one request may take (`timeout`, default 5 s).
    pub timeout: Duration,
    /// `user:password` for etcd's authentication.
    pub credentials: Option<(String, String)>,
    /// The key layout.
    pub layout: PathLayout,
    /// Retry and `check` settings.
    pub failback: FailbackConfig,
}

impl EtcdConfig {
    /// Reads `etcd://[user:password@]host:port[,host2:port2…][?backup=…&group=…&session=…&timeout=…&layout=dubbo|rpcx&base=…]`.
    pub fn from_url(url: &Url) -> Result<EtcdConfig> {
        let params = RegistryParams::new(url);
        let endpoints = params
            .servers(DEFAULT_PORT, "etcd://host:port")?
            .into_iter()
            .map(|server| format!("http://{server}"))
            .collect();
        let credentials = params
            .credentials()
            .map(|(user, password)| (user.to_owned(), password.to_owned()));
        Ok(EtcdConfig {
            endpoints,
            session: params.positive_duration("session", Duration::from_secs(30))?,
            timeout: params.positive_duration("timeout", Duration::from_secs(5))?,
            credentials,
            layout: PathLayout::from_params(&params)?,
            failback: params.failback()?,
        })
    }

    /// The lease TTL in whole seconds, rounded up (etcd counts seconds).
    pub fn ttl_seconds(&self) -> i64 {
        let millis = self.session.as_millis();
        i64::try_from(millis.div_ceil(1000))
            .unwrap_or(i64::MAX)
            .max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(s: &str) -> Result<EtcdConfig> {
        EtcdConfig::from_url(&Url::parse(s).unwrap())
    }

    #[test]
    fn endpoints_session_and_layout() {
        let c = config("etcd://u:p@a:1,b:2?backup=c&session=10000&timeout=2s&group=srpc").unwrap();
        assert_eq!(c.endpoints, ["http://a:1", "http://b:2", "http://c:2379"]);
        assert_eq!(c.session, Duration::from_secs(10));
        assert_eq!(c.ttl_seconds(), 10);
        assert_eq!(c.timeout, Duration::from_secs(2));
        assert_eq!(c.credentials, Some(("u".into(), "p".into())));
        assert_eq!(c.layout.root(), "/srpc");
        let c = config("etcd://a").unwrap();
        assert_eq!(c.ttl_seconds(), 30, "Java's default");
        assert_eq!(c.layout.root(), "/dubbo");
        assert_eq!(config("etcd://a?session=1500").unwrap().ttl_seconds(), 2);
    }

    #[test]
    fn refuses_what_cannot_work() {
        for (bad, needle) in [
            ("etcd:///x", "name at least one server"),
            ("etcd://a?session=0", "session must be greater than zero"),
            ("etcd://a?layout=rpcx", "needs base"),
        ] {
            let err = config(bad).unwrap_err().to_string();
            assert!(err.contains(needle), "{bad}: {err}");
        }
    }
}
