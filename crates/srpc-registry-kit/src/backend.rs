//! The backend author's API: the [`Backend`] trait a backend implements, and the [`Context`]
//! it is given to report what it reads and to ask for recovery.

use std::fmt;
use std::sync::{Arc, OnceLock, Weak};

use async_trait::async_trait;
use dubbo_url::Url;

use crate::Result;
use crate::catalog::Catalog;
use crate::retry::RetryPolicy;

/// What a backend implements: the raw operations against its registry.
/// [`crate::FailbackRegistry`] wraps it into a full [`crate::Registry`] with bookkeeping,
/// `check` semantics, retries and recovery.
///
/// A backend reports what it reads by feeding the [`Catalog`] it gets from its [`Context`],
/// usually through [`crate::Watches`]; it keeps registrations alive with
/// [`crate::Keepalive`] where its registry needs renewals. `docs/registry.md` ("Writing a
/// backend") walks through a new backend from crate to facade feature.
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// Short name for logs and errors, e.g. `zookeeper`.
    fn name(&self) -> &'static str;

    /// Writes one registration to the registry. The URL has passed
    /// [`crate::validate_registration`]; refuse what the registry cannot carry with
    /// [`crate::Error::InvalidInput`] (never retried), and report failures that may pass
    /// later as transient errors ([`crate::Error::is_transient`]).
    async fn register(&self, url: &Url) -> Result<()>;

    /// Deletes one registration from the registry.
    async fn unregister(&self, url: &Url) -> Result<()>;

    /// Starts (or renews, after a new session) watching what `query` needs, and puts the
    /// current listing into the catalog **before returning**. Called again for the same query
    /// by [`Context::relist`] and [`Context::recover`]: it must be idempotent.
    async fn subscribe(&self, query: &Url) -> Result<()>;

    /// Stops watching what only `query` needed. Called when the last subscription with an
    /// equal query is dropped.
    async fn unsubscribe(&self, query: &Url) -> Result<()>;

    /// Reads once everything `query` may select. The caller filters with `is_match`.
    async fn lookup(&self, query: &Url) -> Result<Vec<Url>>;

    /// Releases connections and tasks. Registrations were already removed by the caller.
    async fn close(&self) -> Result<()>;
}

/// What a backend gets at construction: the catalog to feed, the retry policy of the
/// registry URL, and a way to ask for recovery.
#[derive(Clone)]
pub struct Context {
    catalog: Arc<Catalog>,
    retry: RetryPolicy,
    owner: Arc<OnceLock<Weak<dyn Recover>>>,
}

/// Implemented by the registry that owns a backend: the recovery verbs of [`Context`].
pub(crate) trait Recover: Send + Sync {
    /// Writes every registration again, then re-lists every subscription.
    fn recover(self: Arc<Self>);
    /// Re-lists every subscription.
    fn relist(self: Arc<Self>);
}

impl Context {
    /// The catalog this backend feeds.
    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.catalog
    }

    /// The retry policy of the registry URL (`retry.period`, `retry.max.period`): every
    /// retry loop of a backend uses it, through [`crate::Watches`], [`crate::Keepalive`] or
    /// [`RetryPolicy::backoff`].
    pub fn retry(&self) -> RetryPolicy {
        self.retry
    }

    /// Reports whether the backend is connected to its registry. While it is not, every
    /// snapshot keeps its URLs and says `connected = false`.
    pub fn set_connected(&self, connected: bool) {
        self.catalog.set_connected(connected);
    }

    /// Asks for every registration to be written again and every subscription to be
    /// re-listed, now, with retries for what fails. Call it after the registry lost this
    /// handle's state: a new ZooKeeper session, an etcd lease that expired.
    pub fn recover(&self) {
        if let Some(owner) = self.owner.get().and_then(Weak::upgrade) {
            owner.recover();
        }
    }

    /// Asks for every subscription to be re-listed, now, with retries for what fails; the
    /// registrations are left alone. Call it when the connection came back but the registry
    /// kept this handle's state (a ZooKeeper reconnect within the same session), since
    /// changes made meanwhile may have been missed.
    pub fn relist(&self) {
        if let Some(owner) = self.owner.get().and_then(Weak::upgrade) {
            owner.relist();
        }
    }

    /// A context whose owner is set later with the returned cell.
    pub(crate) fn detached(retry: RetryPolicy) -> (Context, Arc<OnceLock<Weak<dyn Recover>>>) {
        let owner = Arc::new(OnceLock::new());
        let ctx = Context {
            catalog: Arc::new(Catalog::new()),
            retry,
            owner: owner.clone(),
        };
        (ctx, owner)
    }
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}
