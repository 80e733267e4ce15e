//! [`EtcdConfig`]: everything an `etcd://` registry URL can say.

use std::time::Duration;

use srpc_registry_kit::layout::PathLayout;
use srpc_registry_kit::{
    Error, FailbackConfig, RegistryParams, Result, TlsConfig, Url, http_base, require_positive,
};

/// The client port etcd listens on by default.
pub const DEFAULT_PORT: u16 = 2379;

/// Settings of an etcd registry.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct EtcdConfig {
    /// The endpoints, `http://host:port` or `https://host:port` each, tried in turn.
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
    /// TLS to the gateway (`tls`, `cacert`, `cert`, `key`, `tls-server-name`,
    /// `insecure-skip-tls-verify`); on when an endpoint is `https://`.
    pub tls: TlsConfig,
    /// Retry and `check` settings.
    pub failback: FailbackConfig,
}

/// The URL parameters an `etcd://` registry URL reads, besides the kit's
/// [`COMMON_PARAMS`](srpc_registry_kit::COMMON_PARAMS).
pub const PARAMS: &[&str] = &[
    "backup",
    "group",
    "session",
    "timeout",
    "layout",
    "base",
    "tls",
    "cacert",
    "cert",
    "key",
    "tls-server-name",
    "insecure-skip-tls-verify",
];

/// Builds an [`EtcdConfig`] without a URL: `EtcdConfig::builder().endpoints([…]).build()?`.
#[derive(Debug, Clone, Default)]
pub struct EtcdConfigBuilder {
    config: EtcdConfig,
}

impl Default for EtcdConfig {
    /// One endpoint on this machine (`http://127.0.0.1:2379`), Java Dubbo's defaults.
    fn default() -> EtcdConfig {
        EtcdConfig {
            endpoints: vec![format!("http://127.0.0.1:{DEFAULT_PORT}")],
            session: Duration::from_secs(30),
            timeout: Duration::from_secs(5),
            credentials: None,
            layout: PathLayout::default(),
            tls: TlsConfig::default(),
            failback: FailbackConfig::default(),
        }
    }
}

impl EtcdConfigBuilder {
    /// The endpoints, tried in turn: `host:port`, `http://host:port` or `https://host:port`
    /// each (`https://` turns TLS on).
    pub fn endpoints(mut self, endpoints: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.config.endpoints = endpoints
            .into_iter()
            .map(|endpoint| http_base(&endpoint.into()))
            .collect();
        self
    }

    /// The lease TTL; keepalives go every third of it.
    pub fn session(mut self, ttl: Duration) -> Self {
        self.config.session = ttl;
        self
    }

    /// How long one request may take.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.config.timeout = timeout;
        self
    }

    /// User and password for etcd's authentication.
    pub fn credentials(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.config.credentials = Some((user.into(), password.into()));
        self
    }

    /// The key layout (Dubbo's under `/dubbo` by default).
    pub fn layout(mut self, layout: PathLayout) -> Self {
        self.config.layout = layout;
        self
    }

    /// TLS settings (CA, client certificate, server name); with TLS on, every endpoint is
    /// reached over `https://`.
    pub fn tls(mut self, tls: TlsConfig) -> Self {
        self.config.tls = tls;
        self
    }

    /// Retry, `check` and cache file settings.
    pub fn failback(mut self, failback: FailbackConfig) -> Self {
        self.config.failback = failback;
        self
    }

    /// The config, once it can work: at least one endpoint, durations above zero. An
    /// `https://` endpoint turns TLS on, and with TLS on every endpoint is `https://`.
    pub fn build(self) -> Result<EtcdConfig> {
        let mut config = self.config;
        if config.endpoints.iter().any(|e| e.starts_with("https://")) {
            config.tls.enabled = true;
        }
        if config.tls.enabled {
            for endpoint in &mut config.endpoints {
                if let Some(rest) = endpoint.strip_prefix("http://") {
                    *endpoint = format!("https://{rest}");
                }
            }
        }
        if config.endpoints.is_empty() {
            return Err(Error::invalid(
                "etcd config",
                "endpoints []",
                "name at least one endpoint",
            ));
        }
        require_positive(
            "etcd config",
            &[("session", config.session), ("timeout", config.timeout)],
        )?;
        config.failback.validate()?;
        Ok(config)
    }
}

impl EtcdConfig {
    /// A builder starting from the defaults ([`EtcdConfig::default`]).
    pub fn builder() -> EtcdConfigBuilder {
        EtcdConfigBuilder::default()
    }

    /// Opens a registry handle with this config (no request is made until it is used).
    pub async fn connect(self) -> Result<crate::EtcdRegistry> {
        crate::open(self)
    }

    /// Reads `etcd://[user:password@]host:port[,host2:port2…][?backup=…&group=…&session=…&timeout=…&layout=dubbo|rpcx&base=…&tls=true&cacert=…&cert=…&key=…]`.
    pub fn from_url(url: &Url) -> Result<EtcdConfig> {
        let params = RegistryParams::new(url);
        let mut builder = EtcdConfig::builder()
            .endpoints(params.servers(DEFAULT_PORT, "etcd://host:port")?)
            .session(params.positive_duration("session", Duration::from_secs(30))?)
            .timeout(params.positive_duration("timeout", Duration::from_secs(5))?)
            .layout(PathLayout::from_params(&params)?)
            .tls(TlsConfig::from_params(&params)?)
            .failback(params.failback()?);
        if let Some((user, password)) = params.credentials() {
            builder = builder.credentials(user, password);
        }
        builder.build()
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
    fn tls_switches_every_endpoint_to_https() {
        let c = config("etcd://a:1,b:2?cacert=/ca.pem").unwrap();
        assert!(c.tls.enabled);
        assert_eq!(c.endpoints, ["https://a:1", "https://b:2"]);
        let c = EtcdConfig::builder()
            .endpoints(["https://a:1", "b:2"])
            .build()
            .unwrap();
        assert!(c.tls.enabled);
        assert_eq!(c.endpoints, ["https://a:1", "https://b:2"]);
        assert!(!config("etcd://a:1").unwrap().tls.enabled);
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
