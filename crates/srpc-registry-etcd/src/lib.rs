//! srpc registry on etcd v3, in Apache Dubbo's key layout (or rpcx's), through etcd's JSON
//! gateway: no protoc, no gRPC stack, nothing to install beyond Rust.
//!
//! `etcd://host:port[,host2:port2…]`; `layout=rpcx&base=/rpcx_test` switches to rpcx's layout.
//! Every dynamic key of a handle hangs on one lease (TTL `session`, default 30 s) that is
//! renewed every third of its TTL and, whenever it is lost, granted again with every key
//! written again. Watches resume from the last revision they saw, and list again when that
//! revision was compacted, so no change and no deletion is missed. See `docs/etcd.md`.
//!
//! ```no_run
//! use srpc_registry_kit::Registry;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> srpc_registry_kit::Result<()> {
//! let registry = srpc_registry_etcd::connect(&"etcd://127.0.0.1:2379".parse()?).await?;
//! // Puts /dubbo/com.acme.Echo/providers/dubbo%3A%2F%2F127.0.0.1%3A20880%2Fcom.acme.Echo
//! registry.register(&"dubbo://127.0.0.1:20880/com.acme.Echo".parse()?).await?;
//! # Ok(()) }
//! ```

mod backend;
mod config;
mod error;
mod gateway;

use srpc_registry_kit::{FailbackRegistry, Result, Url};

pub use crate::backend::EtcdBackend;
pub use crate::config::{DEFAULT_PORT, EtcdConfig, EtcdConfigBuilder, PARAMS};
pub use crate::error::EtcdError;
/// Which key layout the registry reads and writes (the kit's, which ZooKeeper shares).
pub use srpc_registry_kit::layout::PathLayout as Layout;

/// The URL scheme of this backend.
pub const SCHEME: &str = "etcd";

/// An etcd registry handle.
pub type EtcdRegistry = FailbackRegistry<EtcdBackend>;

/// Opens a handle from a registry URL. No request is made until it is used.
pub async fn connect(registry: &Url) -> Result<EtcdRegistry> {
    open(EtcdConfig::from_url(registry)?)
}

/// Opens a handle with a config.
pub fn open(config: EtcdConfig) -> Result<EtcdRegistry> {
    let failback = config.failback.clone();
    FailbackRegistry::try_new(failback, |ctx| EtcdBackend::new(config, ctx))
}

/// Entry points for the fuzz targets (`cargo xtask fuzz`), built only with `--cfg fuzzing`.
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod fuzzing {
    use srpc_registry_kit::layout::PathLayout;

    /// Reads `bytes` as every gateway answer, and each key met as the backend reads keys of
    /// a Dubbo directory and of an rpcx one.
    pub fn gateway_answer(bytes: &[u8]) {
        let dubbo = PathLayout::Dubbo {
            root: "/dubbo".into(),
        };
        let rpcx = PathLayout::Rpcx {
            base: "/rpcx".into(),
        };
        for kv in crate::gateway::fuzz_decode(bytes) {
            let _ = crate::backend::parse_kv(&dubbo, "/dubbo/a.B/providers/", &kv);
            let _ = crate::backend::parse_kv(&rpcx, "/rpcx/Arith/", &kv);
        }
    }
}
