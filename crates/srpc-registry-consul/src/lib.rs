//! srpc registry on Consul, as Java Dubbo uses it: each registration is an agent service
//! (`Name` the interface, `Meta.url` the URL, every parameter a tag plus `dubbo`) with a TTL
//! check that is kept passing; consumers follow blocking health queries. One registry URL
//! serves Java and Rust alike. See `docs/consul.md`.
//!
//! ```no_run
//! use srpc_registry_kit::Registry;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> srpc_registry_kit::Result<()> {
//! let registry = srpc_registry_consul::connect(&"consul://127.0.0.1:8500".parse()?).await?;
//! registry.register(&"dubbo://127.0.0.1:20880/com.acme.Echo".parse()?).await?;
//! # Ok(()) }
//! ```

mod backend;
mod client;
mod config;
mod mapping;

use srpc_registry_kit::{FailbackRegistry, Result, Url};

pub use crate::backend::ConsulBackend;
pub use crate::client::ConsulError;
pub use crate::config::{
    ConsulConfig, ConsulConfigBuilder, DEFAULT_PORT, MAX_WATCH_TIMEOUT, MIN_DEREGISTER_AFTER,
    PARAMS,
};
pub use crate::mapping::MAX_META_VALUE;

/// The URL scheme of this backend.
pub const SCHEME: &str = "consul";

/// A Consul registry handle.
pub type ConsulRegistry = FailbackRegistry<ConsulBackend>;

/// Opens a handle from a registry URL. No request is made until it is used.
pub async fn connect(registry: &Url) -> Result<ConsulRegistry> {
    open(ConsulConfig::from_url(registry)?)
}

/// Opens a handle with a config.
pub fn open(config: ConsulConfig) -> Result<ConsulRegistry> {
    let failback = config.failback.clone();
    FailbackRegistry::try_new(failback, |ctx| ConsulBackend::new(config, ctx))
}

/// Entry points for the fuzz targets (`cargo xtask fuzz`), built only with `--cfg fuzzing`.
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod fuzzing {
    /// Reads `bytes` as an agent's `GET /v1/health/service/<name>` answer, and each entry as
    /// the backend reads it.
    pub fn health_answer(bytes: &[u8]) {
        if let Ok(entries) = serde_json::from_slice::<Vec<crate::client::HealthEntry>>(bytes) {
            for entry in &entries {
                let _ = crate::mapping::read_entry(entry);
            }
        }
    }
}
