//! The error type of the multicast backend.

use std::io;
use std::net::SocketAddr;

use srpc_registry_kit::GroupSocketError;

/// What the multicast backend itself can fail with. It reaches users inside
/// `srpc_registry_kit::Error::Backend { backend: "multicast", .. }`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Opening the group socket failed: the interface is not this machine's, or a socket
    /// call (bind, join, options) failed.
    #[error(transparent)]
    Socket(#[from] GroupSocketError),
    /// Sending a datagram failed.
    #[error("cannot send {verb} to {to}: {source}")]
    Send {
        /// The message verb.
        verb: &'static str,
        /// The destination.
        to: SocketAddr,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
}

impl From<Error> for srpc_registry_kit::Error {
    fn from(error: Error) -> srpc_registry_kit::Error {
        srpc_registry_kit::Error::backend(crate::SCHEME, error)
    }
}
