//! The error type of XClient calls.

/// Why an XClient call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Discovery offers no endpoint (after filters).
    #[error("no endpoint available")]
    NoEndpoints,
    /// The call failed; `attempts` counts every request sent, retries and hedges included.
    #[error("{method} failed on {endpoint} after {attempts} attempt(s): {source}")]
    Call {
        /// The method.
        method: String,
        /// The endpoint of the last failure (`host:port`).
        endpoint: String,
        /// Requests sent in all.
        attempts: u32,
        /// The last error.
        #[source]
        source: srpc_core::Error,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The requests sent before giving up (0 when there was no endpoint).
    pub fn attempts(&self) -> u32 {
        match self {
            Error::NoEndpoints => 0,
            Error::Call { attempts, .. } => *attempts,
        }
    }

    /// The transport or remote error, when a request was sent.
    pub fn source_error(&self) -> Option<&srpc_core::Error> {
        match self {
            Error::NoEndpoints => None,
            Error::Call { source, .. } => Some(source),
        }
    }
}
