//! The srpc HTTP registry: a registry server with no dependencies beyond the binary
//! ([`HttpRegistryServer`], also `srpc registry serve`), and the backend that talks to it
//! (`http://host:port`).
//!
//! Instances are Dubbo URLs under their service key, kept alive by heartbeats and removed when
//! they stop; watchers long-poll (`?index=N&wait=30s`). The GeeRPC-style endpoint
//! `/srpc/registry` (`Srpc-servers` header) is served too. See `docs/http-registry.md`.
//!
//! ## Feature flags
//!
//! - `server`: the embeddable server ([`HttpRegistryServer`], axum). Off by default: a
//!   client-only user compiles no axum.
//!
//! ```
//! # #[cfg(feature = "server")]
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use srpc_registry_kit::Registry;
//! use srpc_registry_http::{HttpRegistryServer, ServerConfig};
//!
//! let server = HttpRegistryServer::bind("127.0.0.1:0", ServerConfig::new()).await?;
//! let registry_url = format!("http://{}?ttl=3s", server.local_addr());
//! let registry = srpc_registry_http::connect(&registry_url.parse()?).await?;
//!
//! let mut sub = registry.subscribe(&"consumer://127.0.0.1/com.acme.Echo".parse()?).await?;
//! registry.register(&"dubbo://127.0.0.1:20880/com.acme.Echo".parse()?).await?;
//! sub.wait_for(|s| s.providers().len() == 1, Duration::from_secs(5)).await?;
//!
//! registry.close().await?;
//! server.shutdown().await?;
//! # Ok(()) }
//! # #[cfg(not(feature = "server"))]
//! # fn main() {}
//! ```

pub mod api;
mod client;
#[cfg(feature = "server")]
mod server;

use srpc_registry_kit::{FailbackRegistry, Result, Url};

pub use crate::api::{MAX_BODY, MAX_TTL, MAX_WAIT, MIN_TTL};
pub use crate::client::{HttpBackend, HttpConfig, HttpConfigBuilder, PARAMS, TOKEN_ENV};
#[cfg(feature = "server")]
pub use crate::server::{
    HttpRegistryServer, Limits, RELOAD_CHECK, ServerConfig, ServerTls, app, raise_open_files_limit,
};

/// The URL scheme of the client backend.
pub const SCHEME: &str = "http";

/// A handle on an srpc HTTP registry.
pub type HttpRegistry = FailbackRegistry<HttpBackend>;

/// Opens a client from `http://host:port[?ttl=30s&wait=30s&token=…]`. No request is made
/// until the registry is used.
pub async fn connect(registry: &Url) -> Result<HttpRegistry> {
    open(HttpConfig::from_url(registry)?)
}

/// Opens a client with a config. No request is made until the registry is used.
pub fn open(config: HttpConfig) -> Result<HttpRegistry> {
    let failback = config.failback.clone();
    FailbackRegistry::try_new(failback, |ctx| HttpBackend::new(config, ctx))
}

/// Entry points for the fuzz targets (`cargo xtask fuzz`), built only with `--cfg fuzzing`.
#[cfg(all(fuzzing, feature = "server"))]
#[doc(hidden)]
pub mod fuzzing {
    /// Reads `text` as the server reads a watch query string (`?index=N&wait=…`) and as an
    /// instance in a request path.
    pub fn query_and_instance(text: &str) {
        crate::server::fuzz_query_and_instance(text);
    }
}
