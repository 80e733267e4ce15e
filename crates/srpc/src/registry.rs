//! Registries: the [`Registry`] trait and [`connect`], which picks a backend by URL scheme.

use std::sync::Arc;

pub use srpc_registry::*;

/// A backend scheme, the cargo feature that enables it, and whether this build has it.
struct Scheme {
    name: &'static str,
    feature: &'static str,
    enabled: bool,
}

/// Every scheme this version of srpc has a backend for.
const SCHEMES: &[Scheme] = &[
    Scheme {
        name: "inprocess",
        feature: "inprocess",
        enabled: cfg!(feature = "inprocess"),
    },
    Scheme {
        name: "multicast",
        feature: "multicast",
        enabled: cfg!(feature = "multicast"),
    },
    Scheme {
        name: "zookeeper",
        feature: "zookeeper",
        enabled: cfg!(feature = "zookeeper"),
    },
    Scheme {
        name: "http",
        feature: "http",
        enabled: cfg!(feature = "http"),
    },
];

/// The registry schemes this build can [`connect`] to.
pub fn enabled_schemes() -> impl Iterator<Item = &'static str> {
    SCHEMES.iter().filter(|s| s.enabled).map(|s| s.name)
}

/// Opens a registry from its URL, e.g. `inprocess://my-hub`.
///
/// The scheme picks the backend; the parameters configure it (see each backend's page in
/// `docs/`). Common parameters: `check` (default `true`: fail instead of retrying in the
/// background), `retry.period` and `retry.max.period` (backoff of background retries).
///
/// An unknown scheme, or one whose cargo feature is off, gives [`Error::Unsupported`].
pub async fn connect(registry_url: &str) -> Result<Arc<dyn Registry>> {
    let url = Url::parse(registry_url)?;
    connect_url(&url).await
}

/// [`connect`] for an already parsed URL.
pub async fn connect_url(url: &Url) -> Result<Arc<dyn Registry>> {
    let scheme = url.protocol();
    match SCHEMES.iter().find(|s| s.name == scheme) {
        Some(s) if s.enabled => open(url).await,
        Some(s) => Err(Error::Unsupported {
            scheme: scheme.to_owned(),
            feature: Some(s.feature),
        }),
        None => Err(Error::Unsupported {
            scheme: scheme.to_owned(),
            feature: None,
        }),
    }
}

async fn open(url: &Url) -> Result<Arc<dyn Registry>> {
    match url.protocol() {
        #[cfg(feature = "inprocess")]
        "inprocess" => Ok(Arc::new(srpc_registry_inprocess::connect(url)?)),
        #[cfg(feature = "multicast")]
        "multicast" => Ok(Arc::new(srpc_registry_multicast::connect(url).await?)),
        #[cfg(feature = "zookeeper")]
        "zookeeper" => Ok(Arc::new(srpc_registry_zookeeper::connect(url).await?)),
        #[cfg(feature = "http")]
        "http" => Ok(Arc::new(srpc_registry_http::connect(url).await?)),
        scheme => Err(Error::Unsupported {
            scheme: scheme.to_owned(),
            feature: None,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn unknown_scheme_is_unsupported_not_a_panic() {
        let err = connect("gopher://h:1").await.err().expect("unsupported");
        assert!(
            matches!(&err, Error::Unsupported { scheme, feature: None } if scheme == "gopher"),
            "{err}"
        );
        assert_eq!(err.to_string(), "unsupported registry scheme \"gopher\"");
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
