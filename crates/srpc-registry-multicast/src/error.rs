//! The error type of the multicast backend.

use std::io;
use std::net::SocketAddr;

/// What the multicast backend itself can fail with. It reaches users inside
/// `srpc_registry_kit::Error::Backend { backend: "multicast", .. }`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Setting up the socket failed (bind, join, options).
    #[error("cannot {what}: {source}")]
    Socket {
        /// What was being done, e.g. `join group 224.5.6.7 on interface 127.0.0.1`.
        what: String,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
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
    /// The `interface` parameter names no address of this machine.
    #[error("no local network interface has address {address}")]
    NoSuchInterface {
        /// The address asked for.
        address: String,
    },
}

impl From<Error> for srpc_registry_kit::Error {
    fn from(error: Error) -> srpc_registry_kit::Error {
        srpc_registry_kit::Error::backend(crate::SCHEME, error)
    }
}
