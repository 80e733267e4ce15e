//! The error type shared by every srpc registry backend.

use std::fmt;
use std::time::Duration;

/// What a registry operation can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A URL could not be parsed.
    #[error(transparent)]
    Url(#[from] dubbo_url::Error),
    /// The input parsed but cannot be used for this operation.
    #[error("invalid {what} {}: {reason}", dubbo_url::quote(.value))]
    InvalidInput {
        /// What was given, e.g. `registration`, `subscription`, `registry url`.
        what: &'static str,
        /// The offending value as text.
        value: String,
        /// Why it was refused.
        reason: String,
    },
    /// No backend serves this scheme in this build.
    #[error("unsupported registry scheme {scheme:?}{}", feature_hint(.feature, .known))]
    Unsupported {
        /// The scheme of the registry URL.
        scheme: String,
        /// The cargo feature of `srpc` that would enable it, if there is one.
        feature: Option<&'static str>,
        /// The schemes this build does support (named in the message when `feature` is
        /// `None`: the scheme is unknown, not just switched off).
        known: Vec<&'static str>,
    },
    /// The backend has no working connection to its registry.
    #[error("{backend} registry is not connected: {detail}")]
    NotConnected {
        /// Backend name, e.g. `zookeeper`.
        backend: &'static str,
        /// What was being tried, and what went wrong.
        detail: String,
        /// The client library's error, when there is one, kept typed for callers that
        /// inspect it (`std::error::Error::source`).
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// An operation took longer than allowed.
    #[error("{backend} registry timed out after {after:?} while {doing}")]
    Timeout {
        /// Backend name.
        backend: &'static str,
        /// What was being done.
        doing: String,
        /// How long it waited.
        after: Duration,
    },
    /// The registry handle was closed.
    #[error("registry is closed")]
    Closed,
    /// An error reported by the backend's client library or server.
    #[error("{backend} registry: {source}")]
    Backend {
        /// Backend name.
        backend: &'static str,
        /// The underlying error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Wraps any error of a backend's client library.
    pub fn backend(
        backend: &'static str,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Error {
        Error::Backend {
            backend,
            source: source.into(),
        }
    }

    /// Whether trying the same thing again later may succeed: true for connection, timeout
    /// and backend failures, false for input the backend refused, unsupported schemes, and a
    /// closed registry. Background retries (`check=false`) are only made for these.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Error::NotConnected { .. } | Error::Timeout { .. } | Error::Backend { .. }
        )
    }

    /// An [`Error::NotConnected`] with no underlying error.
    pub fn not_connected(backend: &'static str, detail: impl Into<String>) -> Error {
        Error::NotConnected {
            backend,
            detail: detail.into(),
            source: None,
        }
    }

    /// An [`Error::NotConnected`] caused by `source`, whose text ends `detail`, followed by
    /// the deepest cause in `source`'s chain when its own text does not say it already
    /// (a client's "error sending request" then reads "… (Connection refused (os error 111))").
    pub fn not_connected_by(
        backend: &'static str,
        doing: impl fmt::Display,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Error {
        Error::NotConnected {
            backend,
            detail: format!("{doing}: {}", with_root_cause(&source)),
            source: Some(Box::new(source)),
        }
    }

    /// An [`Error::InvalidInput`].
    pub fn invalid(what: &'static str, value: impl ToString, reason: impl Into<String>) -> Error {
        Error::InvalidInput {
            what,
            value: value.to_string(),
            reason: reason.into(),
        }
    }
}

/// `error`'s text, with the deepest error of its `source` chain added in parentheses when
/// the text does not contain it.
pub fn with_root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let text = error.to_string();
    let (mut root, mut depth) = (error, 0);
    while let Some(next) = root.source() {
        root = next;
        depth += 1;
    }
    let cause = root.to_string();
    if depth == 0 || cause.is_empty() || text.contains(&cause) {
        text
    } else {
        format!("{text} ({cause})")
    }
}

fn feature_hint(feature: &Option<&'static str>, known: &[&'static str]) -> String {
    match feature {
        Some(feature) => format!(": enable cargo feature {feature:?} of srpc"),
        None if known.is_empty() => String::new(),
        None => format!("; this build knows {}", known.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("error sending request for url (http://127.0.0.1:9/v1/x)")]
    struct Outer(#[source] Middle);
    #[derive(Debug, thiserror::Error)]
    #[error("client error (Connect)")]
    struct Middle(#[source] std::io::Error);

    #[test]
    fn not_connected_names_the_root_cause() {
        let refused =
            std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "Connection refused");
        let e = Error::not_connected_by("http", "register", Outer(Middle(refused)));
        assert_eq!(
            e.to_string(),
            "http registry is not connected: register: error sending request for url \
             (http://127.0.0.1:9/v1/x) (Connection refused)"
        );
        let plain = std::io::Error::other("timed out");
        let e = Error::not_connected_by("zookeeper", "connect", plain);
        assert_eq!(
            e.to_string(),
            "zookeeper registry is not connected: connect: timed out"
        );
    }

    #[test]
    fn long_values_are_cut() {
        let e = Error::invalid("registration", "x".repeat(3000), "too long");
        assert!(e.to_string().contains("… (3000 bytes)"), "{e}");
        assert!(e.to_string().len() < 200);
    }
}
