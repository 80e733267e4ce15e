//! The srpc `Registry` trait, latest-state subscriptions, and the machinery every backend
//! shares: the catalog that matches and diffs, and failback with retry and recovery.
//!
//! Applications use [`Registry`] and [`Subscription`]. Backend authors get a kit: they
//! implement [`Backend`] (only their own protocol) and wrap it in [`FailbackRegistry`], which
//! adds everything the contract promises beyond the raw operations (bookkeeping, `check`,
//! retries, recovery). [`Watches`] runs one watch task per scope, [`Keepalive`] keeps a
//! registration alive, [`Catalog`] turns listings into snapshots, [`RegistryParams`] reads
//! the common parts of a registry URL, [`RetryPolicy`] is how every loop backs off, and
//! [`layout`] is Dubbo's (and rpcx's) path layout for backends that store paths.
//! `docs/registry.md` has the guide to writing a backend.
//!
//! ```
//! use std::time::Duration;
//! use srpc_registry::{Registry, Url};
//!
//! # async fn demo(registry: &dyn Registry) -> srpc_registry::Result<()> {
//! let provider: Url = "dubbo://127.0.0.1:20880/com.acme.Echo?side=provider".parse()?;
//! registry.register(&provider).await?;
//!
//! let query: Url = "consumer://127.0.0.1/com.acme.Echo".parse()?;
//! let mut sub = registry.subscribe(&query).await?;
//! let snapshot = sub.wait_for(|s| !s.providers().is_empty(), Duration::from_secs(5)).await?;
//! assert_eq!(snapshot.providers(), [provider]);
//! # Ok(()) }
//! ```

mod answers;
mod backend;
mod cache;
mod catalog;
mod error;
mod failback;
mod keepalive;
pub mod layout;
mod params;
mod prober;
mod properties;
mod registry;
mod retry;
mod rules;
mod snapshot;
mod subscription;
mod watches;

pub use dubbo_url::Url;

pub use crate::answers::wait_for_answers;
pub use crate::backend::{Backend, Context};
pub use crate::catalog::{Catalog, SubscriptionId};
pub use crate::error::{Error, Result, with_root_cause};
pub use crate::failback::{FailbackConfig, FailbackRegistry};
pub use crate::keepalive::{Keepalive, KeepaliveState, Renew, Renewal};
pub use crate::params::RegistryParams;
pub use crate::prober::{
    MAX_PROBE_TIMEOUT, Probed, Prober, ProberSettings, is_probe_candidate, probe,
};
pub use crate::registry::Registry;
pub use crate::retry::{Backoff, RetryPolicy, retry_delays};
pub use crate::rules::{is_dynamic, validate_query, validate_registration};
pub use crate::snapshot::{Change, Snapshot};
pub use crate::subscription::Subscription;
pub use crate::watches::{WatchScope, Watches};

/// Entry points for the fuzz targets (`cargo xtask fuzz`), built only with `--cfg fuzzing`.
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod fuzzing {
    /// Reads a cache file's bytes as `file=` does at start; checks that what the properties
    /// reader accepts, written back, reads the same.
    pub fn read_cache_file(bytes: &[u8]) {
        let _ = crate::cache::read_lists(std::path::Path::new("fuzz.cache"), bytes);
        let entries: Vec<(String, String)> = crate::properties::entries(bytes).collect();
        let text = crate::properties::write(
            "c",
            "d",
            entries.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        );
        let again: Vec<(String, String)> = crate::properties::entries(text.as_bytes()).collect();
        assert_eq!(again, entries, "written as {text:?}");
    }
}
