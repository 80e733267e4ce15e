//! [`ZookeeperConfig`]: everything a `zookeeper://` registry URL can say.

use std::time::Duration;

use srpc_registry_kit::{
    Error, FailbackConfig, RegistryParams, Result, TlsConfig, Url, require_positive,
};

/// The client port ZooKeeper listens on by default.
pub const DEFAULT_PORT: u16 = 2181;

/// Which node layout the registry reads and writes (the kit's [`PathLayout`](srpc_registry_kit::layout::PathLayout), which etcd
/// shares).
pub use srpc_registry_kit::layout::PathLayout as Layout;

/// Settings of a ZooKeeper registry.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ZookeeperConfig {
    /// The servers, `host:port` each.
    pub servers: Vec<String>,
    /// Session timeout asked of the server (`session`, default 60 s; the server may bound it).
    pub session: Duration,
    /// How long connecting may take (`timeout`, default 5 s).
    pub timeout: Duration,
    /// `user:password` for digest authentication; created nodes then get creator-only ACLs.
    pub digest: Option<String>,
    /// The node layout.
    pub layout: Layout,
    /// Retry and `check` settings.
    pub failback: FailbackConfig,
    /// How Dubbo directories are watched (`watch`): `persistent` (default) follows each
    /// child that comes or goes through a persistent recursive watch, and falls back by itself
    /// to `children` on ensembles older than 3.6; `children` relists a directory after each
    /// one-shot children watch, as Java Dubbo does.
    pub persistent_watches: bool,
    /// TLS to the servers' secure client port (`tls`, `cacert`, `cert`, `key`; also
    /// `secure=true`, Dubbo's word): every server is dialled as `tcp+tls://`. The CA is
    /// required; `tls-server-name` and `insecure-skip-tls-verify` are refused (the ZooKeeper
    /// client checks the host dialled, always).
    pub tls: TlsConfig,
}

/// The URL parameters a `zookeeper://` registry URL reads, besides the kit's
/// [`COMMON_PARAMS`](srpc_registry_kit::COMMON_PARAMS).
pub const PARAMS: &[&str] = &[
    "backup",
    "group",
    "session",
    "timeout",
    "layout",
    "base",
    "watch",
    "secure",
    "tls",
    "cacert",
    "cert",
    "key",
    "tls-server-name",
    "insecure-skip-tls-verify",
];

impl Default for ZookeeperConfig {
    /// One server on this machine (`127.0.0.1:2181`), Java Dubbo's defaults.
    fn default() -> ZookeeperConfig {
        ZookeeperConfig {
            servers: vec![format!("127.0.0.1:{DEFAULT_PORT}")],
            session: Duration::from_secs(60),
            timeout: Duration::from_secs(5),
            digest: None,
            layout: Layout::default(),
            failback: FailbackConfig::default(),
            persistent_watches: true,
            tls: TlsConfig::default(),
        }
    }
}

/// Builds a [`ZookeeperConfig`] without a URL:
/// `ZookeeperConfig::builder().servers(["zk1:2181"]).build()?`.
#[derive(Debug, Clone, Default)]
pub struct ZookeeperConfigBuilder {
    config: ZookeeperConfig,
}

impl ZookeeperConfigBuilder {
    /// The servers, `host:port` each.
    pub fn servers(mut self, servers: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.config.servers = servers.into_iter().map(Into::into).collect();
        self
    }

    /// The session timeout asked of the server.
    pub fn session(mut self, session: Duration) -> Self {
        self.config.session = session;
        self
    }

    /// How long connecting may take.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.config.timeout = timeout;
        self
    }

    /// User and password for digest authentication.
    pub fn digest(mut self, user: &str, password: &str) -> Self {
        self.config.digest = Some(format!("{user}:{password}"));
        self
    }

    /// The node layout (Dubbo's under `/dubbo` by default).
    pub fn layout(mut self, layout: Layout) -> Self {
        self.config.layout = layout;
        self
    }

    /// `false`: one-shot children watches, as Java Dubbo (see
    /// [`ZookeeperConfig::persistent_watches`]).
    pub fn persistent_watches(mut self, persistent: bool) -> Self {
        self.config.persistent_watches = persistent;
        self
    }

    /// TLS to the servers' secure client port: a CA is required.
    pub fn tls(mut self, tls: TlsConfig) -> Self {
        self.config.tls = tls;
        self
    }

    /// Retry, `check` and cache file settings.
    pub fn failback(mut self, failback: FailbackConfig) -> Self {
        self.config.failback = failback;
        self
    }

    /// The config, once it can work: at least one server, durations above zero, TLS with a
    /// CA and nothing the ZooKeeper client cannot do.
    pub fn build(self) -> Result<ZookeeperConfig> {
        let config = self.config;
        let tls = &config.tls;
        if tls.enabled {
            let refuse = |reason: &str| Err(Error::invalid("zookeeper config", "TLS", reason));
            if tls.client_config.is_some() {
                return refuse(
                    "a ready rustls ClientConfig cannot be given to the ZooKeeper client: give \
                     the CA (and client certificate) as PEM",
                );
            }
            if tls.ca.is_none() {
                return refuse(
                    "TLS to ZooKeeper needs the CA that signed its certificate: cacert=<file>",
                );
            }
            if tls.server_name.is_some() || tls.insecure_skip_verify {
                return refuse(
                    "the ZooKeeper client always checks the host it dials: tls-server-name and \
                     insecure-skip-tls-verify are not available here",
                );
            }
        }
        if config.servers.is_empty() {
            return Err(Error::invalid(
                "zookeeper config",
                "servers []",
                "name at least one server",
            ));
        }
        require_positive(
            "zookeeper config",
            &[("session", config.session), ("timeout", config.timeout)],
        )?;
        config.failback.validate()?;
        Ok(config)
    }
}

impl ZookeeperConfig {
    /// A builder starting from the defaults ([`ZookeeperConfig::default`]).
    pub fn builder() -> ZookeeperConfigBuilder {
        ZookeeperConfigBuilder::default()
    }

    /// Connects a registry handle with this config.
    pub async fn connect(self) -> Result<crate::ZookeeperRegistry> {
        crate::open(self).await
    }

    /// Reads `zookeeper://[user:password@]host:port[,host2:port2…][?backup=…&group=…&session=…&timeout=…&layout=dubbo|rpcx&base=…&watch=persistent|children]`.
    pub fn from_url(url: &Url) -> Result<ZookeeperConfig> {
        let params = RegistryParams::new(url);
        let persistent_watches = match url.param("watch") {
            None | Some("" | "persistent") => true,
            Some("children") => false,
            Some(other) => {
                return Err(params.invalid(format!(
                    "watch={other:?}: use persistent (the default) or children"
                )));
            }
        };
        let mut builder = ZookeeperConfig::builder()
            .servers(params.servers(DEFAULT_PORT, "zookeeper://host:port")?)
            .layout(Layout::from_params(&params)?)
            .session(params.positive_duration("session", Duration::from_secs(60))?)
            .timeout(params.positive_duration("timeout", Duration::from_secs(5))?)
            .persistent_watches(persistent_watches)
            .tls(tls_of(&params)?)
            .failback(params.failback()?);
        if let Some((user, password)) = params.credentials() {
            builder = builder.digest(user, password);
        }
        builder.build()
    }

    /// The connect string: `host:port,host:port`.
    pub fn connect_string(&self) -> String {
        self.servers.join(",")
    }
}

/// The shared TLS parameters, with Dubbo's `secure=true` as another way to say `tls=true`.
fn tls_of(params: &RegistryParams<'_>) -> Result<TlsConfig> {
    let mut tls = TlsConfig::from_params(params)?;
    if params.url().param_bool("secure", false)? {
        tls.enabled = true;
    }
    Ok(tls)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_needs_a_ca_and_refuses_what_the_client_cannot_do() {
        let c = config("zookeeper://a:2182?cacert=/ca.pem&cert=/c.pem&key=/k.pem").unwrap();
        assert!(c.tls.enabled);
        assert!(
            config("zookeeper://a:2182?secure=true&cacert=/ca.pem")
                .unwrap()
                .tls
                .enabled
        );
        for (bad, why) in [
            ("zookeeper://a:2182?secure=true", "cacert"),
            (
                "zookeeper://a:2182?cacert=/ca.pem&tls-server-name=zk",
                "always checks",
            ),
            (
                "zookeeper://a:2182?cacert=/ca.pem&insecure-skip-tls-verify=true",
                "always checks",
            ),
        ] {
            let err = config(bad).unwrap_err().to_string();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    fn config(s: &str) -> Result<ZookeeperConfig> {
        ZookeeperConfig::from_url(&Url::parse(s).unwrap())
    }

    #[test]
    fn servers_from_host_list_and_backup() {
        assert_eq!(config("zookeeper://a:2181").unwrap().servers, ["a:2181"]);
        assert_eq!(config("zookeeper://a").unwrap().servers, ["a:2181"]);
        assert_eq!(
            config("zookeeper://a:1,b:2").unwrap().connect_string(),
            "a:1,b:2"
        );
        assert_eq!(
            config("zookeeper://a:1?backup=b:2,c")
                .unwrap()
                .connect_string(),
            "a:1,b:2,c:2181"
        );
    }

    #[test]
    fn layout_root_and_parameters() {
        let c = config("zookeeper://u:p@a:1?group=srpc/&session=10s&timeout=2000").unwrap();
        assert_eq!(
            c.layout,
            Layout::Dubbo {
                root: "/srpc".into()
            }
        );
        assert_eq!(c.session, Duration::from_secs(10));
        assert_eq!(c.timeout, Duration::from_secs(2));
        assert_eq!(c.digest.as_deref(), Some("u:p"));
        assert_eq!(
            config("zookeeper://a:1").unwrap().layout,
            Layout::Dubbo {
                root: "/dubbo".into()
            }
        );
        assert_eq!(
            config("zookeeper://a:1?group=/").unwrap().layout,
            Layout::Dubbo { root: "/".into() }
        );
        assert_eq!(
            config("zookeeper://a:1?layout=rpcx&base=/rpcx_test")
                .unwrap()
                .layout,
            Layout::Rpcx {
                base: "/rpcx_test".into()
            }
        );
    }

    #[test]
    fn refuses_what_cannot_work() {
        for (bad, needle) in [
            ("zookeeper:///x", "name at least one server"),
            ("zookeeper://a:1?layout=rpcx", "needs base"),
            ("zookeeper://a:1?layout=etcd", "unknown layout"),
            (
                "zookeeper://a:1?session=0",
                "session must be greater than zero",
            ),
            (
                "zookeeper://a:1?timeout=0ms",
                "timeout must be greater than zero",
            ),
        ] {
            let err = config(bad).unwrap_err().to_string();
            assert!(err.contains(needle), "{bad}: {err}");
        }
    }
}
