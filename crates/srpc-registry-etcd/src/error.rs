//! [`EtcdError`]: what talking to etcd's JSON gateway can fail with, and how each case becomes
//! a registry error.

use srpc_registry_kit::Error;

use crate::SCHEME;

/// What to do about a refusal whose cause etcd words obscurely.
fn refusal_hint(message: &str) -> &'static str {
    if message.contains("CommonName of client sending a request against gateway") {
        "; hint: with authentication on, etcd's gateway refuses client certificates that carry \
         a Common Name: use a client certificate without one, and user:password@ in the URL"
    } else {
        ""
    }
}

/// A failure of one call to etcd's JSON gateway.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EtcdError {
    /// No endpoint answered: connection refused or reset, timeout.
    #[error("cannot reach etcd at {endpoint}: {source}{}", srpc_registry_kit::tls_hint(.source))]
    Unreachable {
        /// The endpoint tried last, `http://host:port`.
        endpoint: String,
        /// The HTTP client's error.
        #[source]
        source: reqwest::Error,
    },
    /// etcd answered with an error (the gateway's `{"error", "code", "message"}`).
    #[error("etcd at {endpoint} refused {path}: {message} (grpc code {code}){}", refusal_hint(.message))]
    Refused {
        /// The endpoint that answered.
        endpoint: String,
        /// The gateway path, e.g. `/v3/kv/put`.
        path: &'static str,
        /// The gRPC status code (5 = not found, 14 = unavailable, 16 = unauthenticated, …).
        code: i32,
        /// etcd's message, e.g. `etcdserver: requested lease not found`.
        message: String,
    },
    /// The answer is not what the gateway documents.
    #[error("invalid answer from etcd at {endpoint} to {path}: {source}")]
    InvalidAnswer {
        /// The endpoint that answered.
        endpoint: String,
        /// The gateway path.
        path: &'static str,
        /// The JSON or base64 error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The client has no endpoint to ask (the registry URL names none).
    #[error("no etcd endpoint is configured")]
    NoEndpoint,
    /// A watch ended: canceled by the server (other than for compaction) or its stream closed.
    #[error("watch of {key:?} ended: {reason}")]
    WatchEnded {
        /// The watched prefix.
        key: String,
        /// What the server said, or that the stream closed.
        reason: String,
    },
}

/// gRPC status codes the gateway reports.
mod code {
    pub(super) const INVALID_ARGUMENT: i32 = 3;
    pub(super) const DEADLINE_EXCEEDED: i32 = 4;
    pub(super) const NOT_FOUND: i32 = 5;
    pub(super) const RESOURCE_EXHAUSTED: i32 = 8;
    pub(super) const UNAVAILABLE: i32 = 14;
    pub(super) const UNAUTHENTICATED: i32 = 16;
}

impl EtcdError {
    /// Whether etcd says the lease does not exist (any more): it expired or was revoked.
    pub fn is_lease_not_found(&self) -> bool {
        matches!(self, EtcdError::Refused { code, message, .. }
            if *code == code::NOT_FOUND && message.contains("lease not found"))
    }

    /// Whether the auth token was refused (expired, or the server restarted): authenticate
    /// again and retry.
    pub(crate) fn is_auth_expired(&self) -> bool {
        matches!(self, EtcdError::Refused { code, message, .. }
            if *code == code::UNAUTHENTICATED || message.contains("invalid auth token"))
    }

    /// Whether another endpoint may answer where this one did not.
    pub(crate) fn try_next_endpoint(&self) -> bool {
        match self {
            EtcdError::Unreachable { .. } => true,
            EtcdError::Refused { code, .. } => {
                matches!(*code, code::UNAVAILABLE | code::DEADLINE_EXCEEDED)
            }
            _ => false,
        }
    }
}

impl From<EtcdError> for Error {
    fn from(error: EtcdError) -> Error {
        match &error {
            EtcdError::Unreachable { .. } => Error::not_connected_by(SCHEME, "request", error),
            EtcdError::Refused { code, .. }
                if matches!(
                    *code,
                    code::UNAVAILABLE | code::DEADLINE_EXCEEDED | code::RESOURCE_EXHAUSTED
                ) =>
            {
                Error::not_connected_by(SCHEME, "request", error)
            }
            // What etcd cannot carry (a request over its size limit, say) is not retried.
            EtcdError::Refused { code, path, .. } if *code == code::INVALID_ARGUMENT => {
                Error::invalid("etcd request", *path, error.to_string())
            }
            _ => Error::backend(SCHEME, error),
        }
    }
}
