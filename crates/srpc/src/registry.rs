//! Registries: the [`Registry`] trait and [`connect`], which picks a backend by URL scheme.

use std::sync::Arc;

use futures_util::future::BoxFuture;

pub use srpc_registry::*;

/// Opens a registry of one backend from its URL.
type Open = fn(&Url) -> BoxFuture<'_, Result<Arc<dyn Registry>>>;

/// A backend scheme, the cargo feature that enables it, and its constructor when this build
/// has it. The one place a scheme is checked: backends read the rest of the URL.
struct Scheme {
    name: &'static str,
    feature: &'static str,
    /// The URL parameters its backend reads (besides [`COMMON_PARAMS`]).
    params: &'static [&'static str],
    open: Option<Open>,
}

/// Parameters every backend reads (failback).
const COMMON_PARAMS: &[&str] = &["check", "retry.period", "retry.max.period", "file"];

/// Every scheme this version of srpc has a backend for, in the order of the docs.
const SCHEMES: &[Scheme] = &[
    Scheme {
        name: "inprocess",
        feature: "inprocess",
        params: &[],
        #[cfg(feature = "inprocess")]
        open: Some(|url| Box::pin(async move { Ok(arc(srpc_registry_inprocess::connect(url)?)) })),
        #[cfg(not(feature = "inprocess"))]
        open: None,
    },
    Scheme {
        name: "multicast",
        feature: "multicast",
        params: &[
            "interface",
            "ttl",
            "loopback",
            "unicast",
            "clean",
            "session",
            "timeout",
        ],
        #[cfg(feature = "multicast")]
        open: Some(|url| {
            Box::pin(async move { Ok(arc(srpc_registry_multicast::connect(url).await?)) })
        }),
        #[cfg(not(feature = "multicast"))]
        open: None,
    },
    Scheme {
        name: "zookeeper",
        feature: "zookeeper",
        params: &[
            "backup", "group", "session", "timeout", "layout", "base", "watch",
        ],
        #[cfg(feature = "zookeeper")]
        open: Some(|url| {
            Box::pin(async move { Ok(arc(srpc_registry_zookeeper::connect(url).await?)) })
        }),
        #[cfg(not(feature = "zookeeper"))]
        open: None,
    },
    Scheme {
        name: "etcd",
        feature: "etcd",
        params: &["backup", "group", "session", "timeout", "layout", "base"],
        #[cfg(feature = "etcd")]
        open: Some(|url| Box::pin(async move { Ok(arc(srpc_registry_etcd::connect(url).await?)) })),
        #[cfg(not(feature = "etcd"))]
        open: None,
    },
    Scheme {
        name: "consul",
        feature: "consul",
        params: &[
            "token",
            "timeout",
            "consul-check-pass-interval",
            "consul-deregister-critical-service-after",
            "consul-watch-timeout",
        ],
        #[cfg(feature = "consul")]
        open: Some(|url| {
            Box::pin(async move { Ok(arc(srpc_registry_consul::connect(url).await?)) })
        }),
        #[cfg(not(feature = "consul"))]
        open: None,
    },
    Scheme {
        name: "mdns",
        feature: "mdns",
        params: &["interface", "type", "session", "timeout"],
        #[cfg(feature = "mdns")]
        open: Some(|url| Box::pin(async move { Ok(arc(srpc_registry_mdns::connect(url).await?)) })),
        #[cfg(not(feature = "mdns"))]
        open: None,
    },
    Scheme {
        name: "http",
        feature: "http",
        params: &["ttl", "wait", "token"],
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

/// The registry schemes this build can [`connect`] to.
pub fn enabled_schemes() -> impl Iterator<Item = &'static str> {
    SCHEMES.iter().filter(|s| s.open.is_some()).map(|s| s.name)
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
        return Err(Error::invalid(
            "registry url",
            registry_url,
            format!(
                "it has no scheme: did you mean http://{trimmed}? (schemes this build knows: {})",
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
    match SCHEMES.iter().find(|s| s.name == scheme) {
        Some(
            s @ Scheme {
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
fn warn_unknown_params(scheme: &Scheme, url: &Url) {
    for (key, _) in url.params() {
        if scheme.params.contains(&key) || COMMON_PARAMS.contains(&key) {
            continue;
        }
        match nearest(key, scheme.params.iter().chain(COMMON_PARAMS)) {
            Some(near) => tracing::warn!(
                backend = scheme.name,
                parameter = %key,
                "unknown registry URL parameter {key:?}, ignored: did you mean {near:?}?"
            ),
            None => tracing::info!(
                backend = scheme.name,
                parameter = %key,
                "registry URL parameter {key:?} is not read by the {} backend; ignored",
                scheme.name
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
