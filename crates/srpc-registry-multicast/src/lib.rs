//! srpc registry over UDP multicast, wire-compatible with Apache Dubbo's `MulticastRegistry`:
//! no central server, a Rust process and a Java process on one LAN segment see each other.
//!
//! `multicast://224.5.6.7:1234?interface=<local address>`. The default interface is
//! loopback, so nothing leaves the machine until you name a LAN address. Beyond Java, srpc
//! refuses URLs too long for Java's 2048-byte datagrams, and subscribers drop providers that
//! stop accepting TCP connections twice in a row (a provider killed without saying
//! `unregister` would otherwise stay forever). See `docs/multicast.md`.
//!
//! ```no_run
//! use srpc_registry_kit::Registry;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> srpc_registry_kit::Result<()> {
//! let registry = srpc_registry_multicast::connect(
//!     &"multicast://224.5.6.7:1234?interface=127.0.0.1".parse()?,
//! ).await?;
//! registry.register(&"dubbo://127.0.0.1:20880/com.acme.Echo".parse()?).await?;
//! registry.close().await?; // says `unregister`
//! # Ok(()) }
//! ```

mod backend;
mod config;
mod error;
pub mod wire;

use srpc_registry_kit::{FailbackRegistry, Result, Url};

pub use crate::backend::MulticastBackend;
pub use crate::config::{DEFAULT_PORT, MulticastConfig, MulticastConfigBuilder, PARAMS};
pub use crate::error::Error;
pub use srpc_registry_kit::Interface;

/// The URL scheme of this backend.
pub const SCHEME: &str = "multicast";

/// A multicast registry handle.
pub type MulticastRegistry = FailbackRegistry<MulticastBackend>;

/// Opens a multicast registry from its URL. Must run inside a tokio runtime.
pub async fn connect(registry: &Url) -> Result<MulticastRegistry> {
    open(MulticastConfig::from_url(registry)?).await
}

/// Opens a multicast registry from a config.
pub async fn open(config: MulticastConfig) -> Result<MulticastRegistry> {
    let failback = config.failback.clone();
    FailbackRegistry::connect(failback, |ctx| async move {
        MulticastBackend::open(config, ctx)
    })
    .await
}
