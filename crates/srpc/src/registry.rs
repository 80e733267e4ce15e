//! Registries: the contract ([`Registry`], [`Subscription`], [`Snapshot`], [`Change`],
//! [`Error`]), [`connect`], which picks a backend by URL scheme, and [`open`], which opens one
//! from a typed config built without a URL.

use std::sync::Arc;

use futures_util::future::BoxFuture;

pub use srpc_registry::*;
pub use srpc_registry_kit::{FailbackConfig, validate_publication};
/// TLS settings of the backends that speak TLS (docs/registry.md, "TLS").
#[cfg(any(feature = "etcd", feature = "consul", feature = "http"))]
pub use srpc_registry_kit::{Pem, TlsConfig};

#[cfg(feature = "consul")]
pub use srpc_registry_consul::ConsulConfig;
#[cfg(feature = "etcd")]
pub use srpc_registry_etcd::EtcdConfig;
#[cfg(feature = "http")]
pub use srpc_registry_http::HttpConfig;
#[cfg(feature = "inprocess")]
pub use srpc_registry_inprocess::InprocessConfig;
#[cfg(feature = "mdns")]
pub use srpc_registry_mdns::MdnsConfig;
#[cfg(feature = "multicast")]
pub use srpc_registry_multicast::MulticastConfig;
#[cfg(feature = "zookeeper")]
pub use srpc_registry_zookeeper::ZookeeperConfig;

/// The one interface a multicast or mDNS registry joins: an address or a name
/// (`Interface::Name("eth0".into())`); their builders also take a plain address.
#[cfg(all(feature = "mdns", not(feature = "multicast")))]
pub use srpc_registry_mdns::Interface;
/// The one interface a multicast or mDNS registry joins: an address or a name
/// (`Interface::Name("eth0".into())`); their builders also take a plain address.
#[cfg(feature = "multicast")]
pub use srpc_registry_multicast::Interface;

/// Opens a registry of one backend from its URL.
type Open = fn(&Url) -> BoxFuture<'_, Result<Arc<dyn Registry>>>;

/// What kind of thing a registry scheme reaches, for tools that treat them differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RegistryKind {
    /// Memory shared inside one process (`inprocess`): nothing outside it can see it.
    InProcess,
    /// No server: peers on one link tell each other (`multicast`, `mdns`); consumers drop a
    /// provider that stops accepting TCP connections.
    Peers,
    /// A registry server of another project (`zookeeper`, `etcd`, `consul`).
    Server,
    /// srpc's own registry server (`http`: `srpc registry serve`).
    SrpcServer,
}

/// What this build knows about one registry scheme.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct SchemeInfo {
    /// The URL scheme: the backend crate's `SCHEME` when its feature is on; else the name of
    /// the feature, which is the scheme by convention (a test holds them equal).
    pub scheme: &'static str,
    /// The cargo feature of `srpc` that enables it.
    pub feature: &'static str,
    /// What it reaches.
    pub kind: RegistryKind,
    /// The URL parameters its backend reads (besides [`COMMON_PARAMS`]); empty when the
    /// feature is off.
    pub params: &'static [&'static str],
    open: Option<Open>,
}

impl SchemeInfo {
    /// Whether this build can [`connect`] to it.
    pub fn is_enabled(&self) -> bool {
        self.open.is_some()
    }
}

/// Parameters every backend reads (failback).
pub use srpc_registry_kit::COMMON_PARAMS;

/// One table entry: the backend's own constants when its feature is on.
macro_rules! scheme {
    ($feature:literal, $kind:expr, $krate:ident, |$url:ident| $open:expr) => {
        SchemeInfo {
            #[cfg(feature = $feature)]
            scheme: $krate::SCHEME,
            #[cfg(not(feature = $feature))]
            scheme: $feature,
            feature: $feature,
            kind: $kind,
            #[cfg(feature = $feature)]
            params: $krate::PARAMS,
            #[cfg(not(feature = $feature))]
            params: &[],
            #[cfg(feature = $feature)]
            open: Some(|$url| Box::pin(async move { Ok(arc($open)) })),
            #[cfg(not(feature = $feature))]
            open: None,
        }
    };
}

/// Every scheme this version of srpc has a backend for, in the order of the docs: the one
/// place a scheme is checked. Backends read the rest of the URL.
const SCHEMES: &[SchemeInfo] = &[
    scheme!(
        "inprocess",
        RegistryKind::InProcess,
        srpc_registry_inprocess,
        |url| srpc_registry_inprocess::connect(url)?
    ),
    scheme!(
        "multicast",
        RegistryKind::Peers,
        srpc_registry_multicast,
        |url| srpc_registry_multicast::connect(url).await?
    ),
    scheme!(
        "zookeeper",
        RegistryKind::Server,
        srpc_registry_zookeeper,
        |url| srpc_registry_zookeeper::connect(url).await?
    ),
    scheme!("etcd", RegistryKind::Server, srpc_registry_etcd, |url| {
        srpc_registry_etcd::connect(url).await?
    }),
    scheme!(
        "consul",
        RegistryKind::Server,
        srpc_registry_consul,
        |url| srpc_registry_consul::connect(url).await?
    ),
    scheme!("mdns", RegistryKind::Peers, srpc_registry_mdns, |url| {
        srpc_registry_mdns::connect(url).await?
    }),
    scheme!(
        "http",
        RegistryKind::SrpcServer,
        srpc_registry_http,
        |url| srpc_registry_http::connect(url).await?
    ),
    // The same backend over TLS.
    SchemeInfo {
        scheme: "https",
        feature: "http",
        kind: RegistryKind::SrpcServer,
        #[cfg(feature = "http")]
        params: srpc_registry_http::PARAMS,
        #[cfg(not(feature = "http"))]
        params: &[],
        #[cfg(feature = "http")]
        open: Some(|url| Box::pin(async move { Ok(arc(srpc_registry_http::connect(url).await?)) })),
        #[cfg(not(feature = "http"))]
        open: None,
    },
];

#[cfg(any(
    feature = "inprocess",
    feature = "multicast",
    feature = "zookeeper",
    feature = "etcd",
    feature = "consul",
    feature = "mdns",
    feature = "http"
))]
fn arc(registry: impl Registry) -> Arc<dyn Registry> {
    Arc::new(registry)
}

/// Every registry scheme srpc has a backend for, enabled in this build or not.
pub fn schemes() -> impl Iterator<Item = &'static SchemeInfo> {
    SCHEMES.iter()
}

/// What this build knows about `scheme`, if srpc has a backend for it.
pub fn scheme(scheme: &str) -> Option<&'static SchemeInfo> {
    SCHEMES.iter().find(|s| s.scheme == scheme)
}

/// The registry schemes this build can [`connect`] to.
pub fn enabled_schemes() -> impl Iterator<Item = &'static str> {
    SCHEMES.iter().filter(|s| s.is_enabled()).map(|s| s.scheme)
}

/// A backend config that [`open`] accepts: each backend's `*Config` whose feature is on.
pub trait RegistryConfig: Send + 'static {
    /// Opens a handle of this config's backend.
    fn open(self) -> BoxFuture<'static, Result<Arc<dyn Registry>>>;
}

macro_rules! registry_config {
    ($feature:literal, $config:ty, |$c:ident| $open:expr) => {
        #[cfg(feature = $feature)]
        impl RegistryConfig for $config {
            fn open(self) -> BoxFuture<'static, Result<Arc<dyn Registry>>> {
                let $c = self;
                Box::pin(async move { Ok(arc($open)) })
            }
        }
    };
}

registry_config!("inprocess", InprocessConfig, |c| c.connect()?);
registry_config!("multicast", MulticastConfig, |c| c.connect().await?);
registry_config!("zookeeper", ZookeeperConfig, |c| c.connect().await?);
registry_config!("etcd", EtcdConfig, |c| c.connect().await?);
registry_config!("consul", ConsulConfig, |c| c.connect().await?);
registry_config!("mdns", MdnsConfig, |c| c.connect().await?);
registry_config!("http", HttpConfig, |c| c.connect().await?);

/// Opens a registry from a typed config, built without a URL string:
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> srpc::registry::Result<()> {
/// # #[cfg(feature = "inprocess")] {
/// use srpc::registry::{self, FailbackConfig, InprocessConfig};
///
/// let config = InprocessConfig::new("open-doc").failback(FailbackConfig::default().with_check(false));
/// let registry = registry::open(config).await?;
/// registry.close().await?;
/// # }
/// # Ok(()) }
/// ```
pub async fn open(config: impl RegistryConfig) -> Result<Arc<dyn Registry>> {
    config.open().await
}

/// Opens a registry from its URL, e.g. `inprocess://my-hub`.
///
/// The scheme picks the backend; the parameters configure it (see each backend's page in
/// `docs/`). Common parameters: `check` (default `true`: fail instead of retrying in the
/// background), `retry.period` and `retry.max.period` (backoff of background retries).
///
/// An unknown scheme, or one whose cargo feature is off, gives [`Error::Unsupported`].
pub async fn connect(registry_url: &str) -> Result<Arc<dyn Registry>> {
    let trimmed = registry_url.trim();
    if !trimmed.is_empty() && !trimmed.contains("://") {
        // `127.0.0.1:9999`, `localhost:2181`: the scheme is what picks the backend.
        let known: Vec<&str> = enabled_schemes().collect();
        let guess = SCHEMES
            .iter()
            .find(|s| s.kind == RegistryKind::SrpcServer)
            .map(|s| format!("did you mean {}://{trimmed}? ", s.scheme))
            .unwrap_or_default();
        return Err(Error::invalid(
            "registry url",
            registry_url,
            format!(
                "it has no scheme: {guess}(schemes this build knows: {})",
                known.join(", ")
            ),
        ));
    }
    let url = Url::parse(registry_url)?;
    connect_url(&url).await
}

/// [`connect`] for an already parsed URL.
pub async fn connect_url(url: &Url) -> Result<Arc<dyn Registry>> {
    let scheme = url.protocol();
    match SCHEMES.iter().find(|s| s.scheme == scheme) {
        Some(
            s @ SchemeInfo {
                open: Some(open), ..
            },
        ) => {
            warn_unknown_params(s, url);
            open(url).await
        }
        Some(s) => Err(Error::Unsupported {
            scheme: scheme.to_owned(),
            feature: Some(s.feature),
            known: enabled_schemes().collect(),
        }),
        None => Err(Error::Unsupported {
            scheme: scheme.to_owned(),
            feature: None,
            known: enabled_schemes().collect(),
        }),
    }
}

/// Parameters the backend does not read are ignored, and a typo (`sesion=`) would go
/// unnoticed: one that is close to a known name gets a warning naming it; others (Java
/// Dubbo's registry URLs carry `application`, `pid`, …) an info line.
fn warn_unknown_params(scheme: &SchemeInfo, url: &Url) {
    for (key, _) in url.params() {
        if scheme.params.contains(&key) || COMMON_PARAMS.contains(&key) {
            continue;
        }
        match nearest(key, scheme.params.iter().chain(COMMON_PARAMS)) {
            Some(near) => tracing::warn!(
                backend = scheme.scheme,
                parameter = %key,
                "unknown registry URL parameter {key:?}, ignored: did you mean {near:?}?"
            ),
            None => tracing::info!(
                backend = scheme.scheme,
                parameter = %key,
                "registry URL parameter {key:?} is not read by the {} backend; ignored",
                scheme.scheme
            ),
        }
    }
}

/// The known name closest to `key`, if it is close enough to be a typo of it.
fn nearest<'a>(key: &str, known: impl Iterator<Item = &'a &'a str>) -> Option<&'a str> {
    known
        .map(|k| (strsim::damerau_levenshtein(key, k), *k))
        .filter(|(distance, k)| *distance <= 2.min(k.len() / 3).max(1))
        .min()
        .map(|(_, k)| k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn unknown_scheme_is_unsupported_not_a_panic() {
        let err = connect("gopher://h:1").await.err().expect("unsupported");
        assert!(
            matches!(&err, Error::Unsupported { scheme, feature: None, .. } if scheme == "gopher"),
            "{err}"
        );
        let known: Vec<&str> = enabled_schemes().collect();
        if known.is_empty() {
            assert_eq!(err.to_string(), "unsupported registry scheme \"gopher\"");
        } else {
            assert_eq!(
                err.to_string(),
                format!(
                    "unsupported registry scheme \"gopher\"; this build knows {}",
                    known.join(", ")
                )
            );
        }
    }

    #[test]
    fn an_enabled_backends_scheme_is_its_feature_name() {
        // What the table says of a scheme whose feature is off rests on this convention.
        // `https` is the one alias: the `http` backend over TLS.
        for s in schemes().filter(|s| s.is_enabled() && s.scheme != "https") {
            assert_eq!(s.scheme, s.feature);
            assert_eq!(scheme(s.scheme).map(|i| i.feature), Some(s.feature));
        }
        assert_eq!(scheme("https").map(|i| i.feature), Some("http"));
        assert!(scheme("gopher").is_none());
    }

    #[test]
    fn typos_of_parameters_find_the_known_name() {
        let known = ["session", "timeout", "interface", "retry.period", "ttl"];
        assert_eq!(nearest("sesion", known.iter()), Some("session"));
        assert_eq!(nearest("timout", known.iter()), Some("timeout"));
        assert_eq!(nearest("retry.perod", known.iter()), Some("retry.period"));
        assert_eq!(nearest("application", known.iter()), None);
        assert_eq!(
            nearest("pid", known.iter()),
            None,
            "short names need a close match"
        );
        assert_eq!(nearest("tl", known.iter()), Some("ttl"));
    }

    #[tokio::test]
    async fn a_registry_without_a_scheme_gets_a_suggestion() {
        let err = connect("127.0.0.1:9999").await.err().expect("invalid");
        assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
        assert!(
            err.to_string()
                .contains("did you mean http://127.0.0.1:9999?"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn bad_url_is_an_error() {
        assert!(matches!(connect("").await, Err(Error::Url(_))));
        assert!(matches!(
            connect("inprocess://[::1").await,
            Err(Error::Url(_))
        ));
    }

    #[cfg(feature = "inprocess")]
    #[tokio::test]
    async fn inprocess_is_enabled_by_default() {
        assert!(enabled_schemes().any(|s| s == "inprocess"));
        assert!(connect("inprocess://facade-test").await.is_ok());
        assert!(matches!(
            connect("inprocess:///").await,
            Err(Error::InvalidInput { .. })
        ));
    }

    #[cfg(not(feature = "multicast"))]
    #[tokio::test]
    async fn disabled_multicast_names_its_feature() {
        let err = connect("multicast://224.5.6.7?interface=127.0.0.1")
            .await
            .err()
            .expect("unsupported");
        assert!(
            matches!(
                err,
                Error::Unsupported {
                    feature: Some("multicast"),
                    ..
                }
            ),
            "{err}"
        );
    }

    #[cfg(feature = "multicast")]
    #[tokio::test]
    async fn multicast_refuses_a_unicast_group() {
        let err = connect("multicast://10.1.2.3:1234")
            .await
            .err()
            .expect("invalid");
        assert!(err.to_string().contains("not a multicast group"), "{err}");
    }

    #[cfg(not(feature = "inprocess"))]
    #[tokio::test]
    async fn disabled_inprocess_names_its_feature() {
        let err = connect("inprocess://x").await.err().expect("unsupported");
        assert!(matches!(
            err,
            Error::Unsupported {
                feature: Some("inprocess"),
                ..
            }
        ));
        assert!(
            err.to_string()
                .contains("enable cargo feature \"inprocess\""),
            "{err}"
        );
    }
}
