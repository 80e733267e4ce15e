//! [`ZookeeperConfig`]: everything a `zookeeper://` registry URL can say.

use std::time::Duration;

use srpc_registry_kit::{FailbackConfig, RegistryParams, Result, Url};

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
}

impl ZookeeperConfig {
    /// Reads `zookeeper://[user:password@]host:port[,host2:port2…][?backup=…&group=…&session=…&timeout=…&layout=dubbo|rpcx&base=…&watch=persistent|children]`.
    pub fn from_url(url: &Url) -> Result<ZookeeperConfig> {
        let params = RegistryParams::new(url);
        let servers = params.servers(DEFAULT_PORT, "zookeeper://host:port")?;
        let layout = Layout::from_params(&params)?;
        let digest = params
            .credentials()
            .map(|(user, password)| format!("{user}:{password}"));
        let session = params.positive_duration("session", Duration::from_secs(60))?;
        let timeout = params.positive_duration("timeout", Duration::from_secs(5))?;
        let persistent_watches = match url.param("watch") {
            None | Some("" | "persistent") => true,
            Some("children") => false,
            Some(other) => {
                return Err(params.invalid(format!(
                    "watch={other:?}: use persistent (the default) or children"
                )));
            }
        };
        Ok(ZookeeperConfig {
            servers,
            session,
            timeout,
            digest,
            layout,
            failback: params.failback()?,
            persistent_watches,
        })
    }

    /// The connect string: `host:port,host:port`.
    pub fn connect_string(&self) -> String {
        self.servers.join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
