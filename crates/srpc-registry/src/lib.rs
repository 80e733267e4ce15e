//! The srpc `Registry` trait, latest-state subscriptions, and the machinery every backend
//! shares: the catalog that matches and diffs, and failback with retry and recovery.
//!
//! Applications use [`Registry`] and [`Subscription`]; backend authors implement [`Backend`]
//! and wrap it in [`FailbackRegistry`], which adds everything the contract promises beyond the
//! raw operations.
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

mod catalog;
mod error;
mod failback;
mod registry;
mod snapshot;
mod subscription;

pub use dubbo_url::Url;

pub use crate::catalog::{Catalog, SubscriptionId};
pub use crate::error::{Error, Result};
pub use crate::failback::{
    Backend, Context, FailbackConfig, FailbackRegistry, retry_delays, validate_query,
    validate_registration,
};
pub use crate::registry::Registry;
pub use crate::snapshot::{Change, Snapshot};
pub use crate::subscription::Subscription;
