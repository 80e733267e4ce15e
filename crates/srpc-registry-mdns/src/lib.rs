//! srpc registry on mDNS / DNS-SD: discovery on a LAN with no server at all, in the standard
//! every operating system speaks (avahi, Bonjour, python-zeroconf browse what srpc publishes,
//! and srpc reads what they publish).
//!
//! `mdns://local?interface=127.0.0.1&type=_srpc._tcp&session=60000` ([`MdnsConfig`]). The
//! default interface is loopback: nothing reaches a network until you name an interface, and
//! then nothing (not even a group join) happens on any other. Each registered URL is one
//! DNS-SD instance ([`record`]); unregister and close send goodbyes; a provider that stops
//! accepting TCP connections leaves every subscription within `session`. See `docs/mdns.md`.
//!
//! ```no_run
//! use srpc_registry_kit::Registry;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> srpc_registry_kit::Result<()> {
//! let registry = srpc_registry_mdns::connect(&"mdns://local".parse()?).await?;
//! registry.register(&"dubbo://127.0.0.1:20880/com.acme.Echo".parse()?).await?;
//! registry.close().await?; // says goodbye
//! # Ok(()) }
//! ```

mod backend;
mod cache;
mod config;
pub mod record;
pub mod wire;

use srpc_registry_kit::{FailbackRegistry, Result, Url};

pub use crate::backend::MdnsBackend;
pub use crate::config::{DEFAULT_TYPE, MdnsConfig, MdnsConfigBuilder, PARAMS};
pub use srpc_registry_kit::Interface;

/// The URL scheme of this backend.
pub const SCHEME: &str = "mdns";

/// An mDNS registry handle.
pub type MdnsRegistry = FailbackRegistry<MdnsBackend>;

/// Opens an mDNS registry from its URL. Must run inside a tokio runtime.
pub async fn connect(registry: &Url) -> Result<MdnsRegistry> {
    open(MdnsConfig::from_url(registry)?).await
}

/// Opens an mDNS registry from a config.
pub async fn open(config: MdnsConfig) -> Result<MdnsRegistry> {
    let failback = config.failback.clone();
    FailbackRegistry::connect(
        failback,
        |ctx| async move { MdnsBackend::open(config, ctx) },
    )
    .await
}
