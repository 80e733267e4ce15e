//! The srpc registry contract: the [`Registry`] trait, latest-state [`Subscription`]s of
//! immutable [`Snapshot`]s, the [`Change`]s derived from them, and the [`Error`] every backend
//! reports.
//!
//! This is what an application (and the XClient) needs; it knows no backend machinery.
//! Backend authors build on `srpc-registry-kit`, which implements this contract once for every
//! backend (bookkeeping, retries, recovery, watches, keepalives). `srpc::registry::connect`
//! opens a backend by URL.
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

mod error;
mod hint;
mod registry;
mod snapshot;
mod subscription;

pub use dubbo_url::Url;

pub use crate::error::{Error, Result, with_root_cause};
pub use crate::hint::Elsewhere;
pub use crate::registry::Registry;
pub use crate::snapshot::{Change, Members, Snapshot};
pub use crate::subscription::{History, Lookup, Subscription};
