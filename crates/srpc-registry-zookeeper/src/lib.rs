//! srpc registry on ZooKeeper, in Apache Dubbo's node layout, so that Java and Go Dubbo
//! consumers see Rust providers as their own, and Rust consumers see theirs.
//!
//! `zookeeper://host:port[,host2:port2…]`; `layout=rpcx&base=/rpcx_test` switches to rpcx's
//! layout. Sessions are followed: on disconnect snapshots keep their providers (marked not
//! connected), after an expiry a new session restores every registration and re-lists every
//! subscription. See `docs/zookeeper.md`.
//!
//! ```no_run
//! use srpc_registry_kit::Registry;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> srpc_registry_kit::Result<()> {
//! let registry = srpc_registry_zookeeper::connect(&"zookeeper://127.0.0.1:2181".parse()?).await?;
//! // Creates /dubbo/com.acme.Echo/providers/dubbo%3A%2F%2F127.0.0.1%3A20880%2Fcom.acme.Echo
//! registry.register(&"dubbo://127.0.0.1:20880/com.acme.Echo".parse()?).await?;
//! # Ok(()) }
//! ```

mod backend;
mod config;

use srpc_registry_kit::{FailbackRegistry, Result, Url};

pub use crate::backend::ZookeeperBackend;
pub use crate::config::{DEFAULT_PORT, Layout, PARAMS, ZookeeperConfig, ZookeeperConfigBuilder};

/// The URL scheme of this backend.
pub const SCHEME: &str = "zookeeper";

/// A ZooKeeper registry handle.
pub type ZookeeperRegistry = FailbackRegistry<ZookeeperBackend>;

/// Connects to ZooKeeper from a registry URL. Fails if no session opens within `timeout`.
pub async fn connect(registry: &Url) -> Result<ZookeeperRegistry> {
    open(ZookeeperConfig::from_url(registry)?).await
}

/// Connects with a config.
pub async fn open(config: ZookeeperConfig) -> Result<ZookeeperRegistry> {
    let failback = config.failback.clone();
    FailbackRegistry::connect(failback, |ctx| ZookeeperBackend::connect(config, ctx)).await
}
