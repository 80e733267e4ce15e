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
    #[error("invalid {what} {value:?}: {reason}")]
    InvalidInput {
        /// What was given, e.g. `registration`, `subscription`, `registry url`.
        what: &'static str,
        /// The offending value as text.
        value: String,
        /// Why it was refused.
        reason: String,
    },
    /// No backend serves this scheme in this build.
    #[error("unsupported registry scheme {scheme:?}{}", feature_hint(.feature))]
    Unsupported {
        /// The scheme of the registry URL.
        scheme: String,
        /// The cargo feature of `srpc` that would enable it, if there is one.
        feature: Option<&'static str>,
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

    /// An [`Error::NotConnected`] caused by `source`, whose text ends `detail`.
    pub fn not_connected_by(
        backend: &'static str,
        doing: impl fmt::Display,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Error {
        Error::NotConnected {
            backend,
            detail: format!("{doing}: {source}"),
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

fn feature_hint(feature: &Option<&'static str>) -> String {
    match feature {
        Some(feature) => format!(": enable cargo feature {feature:?} of srpc"),
        None => String::new(),
    }
}
