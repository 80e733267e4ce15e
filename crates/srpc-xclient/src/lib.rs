//! Client-side load balancing for srpc: endpoints from any registry subscription (or a static
//! list), filters, selectors, fail modes, and `call` / `broadcast` / `fork`.
//!
//! ```
//! use std::time::Duration;
//! use srpc_core::{HandlerError, Server};
//! use srpc_xclient::{Discovery, FailMode, Options, Selector, XClient};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let server = Server::new()
//!     .handle("Foo.Sum", |(a, b): (i64, i64)| async move { Ok::<_, HandlerError>(a + b) })
//!     .bind("127.0.0.1:0")
//!     .await?;
//! let addr = server.local_addr().to_string();
//! let (discovery, _list) = Discovery::servers([addr.as_str()])?;
//! let options = Options::default()
//!     .with_selector(Selector::RoundRobin)
//!     .with_fail_mode(FailMode::Failover, 2);
//! let xclient = XClient::new(discovery, options);
//! let sum: i64 = xclient.call("Foo.Sum", &(1, 1)).await?;
//! assert_eq!(sum, 2);
//! # Ok(()) }
//! ```
//!
//! ## Feature flags
//!
//! - `jsonrpc`: [`jsonrpc::JsonRpcTransport`] calls `jsonrpc://` providers (Dubbo's
//!   `jsonrpc` protocol: JSON-RPC 2.0 over HTTP).
//! - `tower`: [`tower::discover`] turns a registry subscription into a
//!   `tower::discover::Discover` whose services report their load, for
//!   `tower::balance::p2c::Balance` (see `examples/tower_p2c.rs`).

pub mod configurators;
mod discovery;
mod endpoints;
mod error;
#[cfg(feature = "jsonrpc")]
pub mod jsonrpc;
mod selector;
#[cfg(feature = "tower")]
pub mod tower;
pub mod transport;
mod xclient;

pub use crate::discovery::{Discovery, StaticList};
pub use crate::endpoints::{DEFAULT_WEIGHT, Endpoint, Endpoints, InFlight};
pub use crate::error::{Error, Result};
pub use crate::selector::Selector;
pub use crate::transport::{Call, Connection, Transport};
pub use crate::xclient::{CallOptions, FailMode, Options, XClient};
