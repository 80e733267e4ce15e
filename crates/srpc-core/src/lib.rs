//! The srpc RPC protocol: framed, multiplexed request/response over TCP. One connection
//! carries many concurrent calls matched by sequence number; a preface names the codec (JSON,
//! or a compact binary one); every call has a deadline; errors are typed.
//!
//! The wire format is specified in `docs/protocol.md`.
//!
//! ```
//! use std::time::Duration;
//! use srpc_core::{Client, ClientOptions, HandlerError, Server};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let server = Server::new()
//!     .handle("Foo.Sum", |(a, b): (i64, i64)| async move { Ok::<_, HandlerError>(a + b) })
//!     .bind("127.0.0.1:0")
//!     .await?;
//! let client = Client::connect(&server.local_addr().to_string(), ClientOptions::default()).await?;
//! let sum: i64 = client.call("Foo.Sum", &(1, 2), Duration::from_secs(1)).await?;
//! assert_eq!(sum, 3);
//! server.shutdown().await?;
//! # Ok(()) }
//! ```

mod client;
mod codec;
mod error;
pub mod frame;
mod metadata;
mod server;

#[cfg(feature = "tls")]
pub use crate::client::ClientTls;
pub use crate::client::{Client, ClientOptions};
pub use crate::codec::Codec;
pub use crate::error::{Error, RemoteCode, Result, shorten};
pub use crate::frame::DEFAULT_MAX_FRAME;
pub use crate::metadata::{CallContext, Metadata};
pub use crate::server::{
    DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_CALLS_PER_CONNECTION, DEFAULT_MAX_CONNECTIONS,
    DEFAULT_PREFACE_TIMEOUT, DEFAULT_SHUTDOWN_DEADLINE, HandlerError, RunningServer, Server,
};
/// Certificate files for [`Server::with_tls_files`] (feature `tls`).
/// The rustls this crate was built with, for naming its `ClientConfig` and `ServerConfig`.
#[cfg(feature = "tls")]
pub use rustls;
#[cfg(feature = "tls")]
pub use srpc_tls::{ServerTls, server_config_from_pem};
