//! The backend author's API: the [`Backend`] trait a backend implements, and the [`Context`]
//! it is given to feed what it reads, run its tasks, and report what happened to its session.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use dubbo_url::Url;
use tokio::sync::watch;

use crate::Result;
use crate::catalog::Catalog;
use crate::retry::RetryPolicy;
use crate::tasks::Tasks;

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
    const NAME: &'static str;

    /// [`Backend::NAME`], for code that holds a value.
    fn name(&self) -> &'static str {
        Self::NAME
    }

    /// Writes one registration to the registry. The URL has passed
    /// [`crate::validate_registration`]; refuse what the registry cannot carry with
    /// [`crate::Error::InvalidInput`] (never retried), and report failures that may pass
    /// later as transient errors ([`crate::Error::is_transient`]).
    async fn register(&self, url: &Url) -> Result<()>;

    /// Deletes one registration from the registry.
    async fn unregister(&self, url: &Url) -> Result<()>;

    /// Starts (or renews, after a new session) watching what `query` needs, and puts the
    /// current listing into the catalog **before returning**. Called again for the same query
    /// after [`SessionEvent::Resumed`] and [`SessionEvent::Renewed`]: it must be idempotent.
    async fn subscribe(&self, query: &Url) -> Result<()>;

    /// Stops watching what only `query` needed. Called when the last subscription with an
    /// equal query is dropped.
    async fn unsubscribe(&self, query: &Url) -> Result<()>;

    /// Reads once everything `query` may select. The caller filters with `is_match`.
    async fn lookup(&self, query: &Url) -> Result<Vec<Url>>;

    /// Releases connections. Registrations were already removed and every task of
    /// [`Context::tasks`] aborted by the caller.
    async fn close(&self) -> Result<()>;

    /// Which of `registered` — this handle's registrations, all written — the registry no
    /// longer holds: deleted behind this handle's back (an operator's `unregister`, `etcdctl
    /// del`, an agent that forgot the service). While the connection is up, the kit asks
    /// every `restore.period` (1 s) and writes what is missing again, with a warning. Check
    /// in as few requests as the registry allows (one listing per directory, not one per
    /// URL). The default checks nothing.
    async fn missing(&self, registered: &[Url]) -> Result<Vec<Url>> {
        let _ = registered;
        Ok(Vec::new())
    }
}

/// What a backend gets at construction: the catalog to feed, the retry policy of the
/// registry URL, the task set its background work runs in, and the session it reports to.
#[derive(Clone)]
pub struct Context {
    catalog: Arc<Catalog>,
    retry: RetryPolicy,
    tasks: Tasks,
    session: Session,
}

/// What happened to a backend's connection to its registry, as the backend reports it with
/// [`Context::report`]. The kit follows these: it marks snapshots, and writes and lists again
/// where the event calls for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionEvent {
    /// The connection is lost; the registry may still hold what this handle wrote. Every
    /// snapshot keeps its URLs and says `connected = false` until the connection is back.
    Lost,
    /// The connection is back and the registry kept this handle's state (a ZooKeeper
    /// reconnect within the same session): every subscription is listed again, since changes
    /// made meanwhile may have been missed; registrations are left alone.
    Resumed,
    /// The registry lost this handle's state and the backend has a new one (a new ZooKeeper
    /// session, an etcd lease granted again): every registration is written again and every
    /// subscription listed again, with retries for what fails.
    Renewed,
}

/// The kit's end of [`Context::report`]: how many times each event that needs work was
/// reported. The kit follows the counts (a `watch`), so a burst of reports is one round of
/// work and nothing queues up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct SessionCounts {
    pub(crate) resumed: u64,
    pub(crate) renewed: u64,
}

#[derive(Clone)]
struct Session {
    counts: Arc<watch::Sender<SessionCounts>>,
}

impl Context {
    /// A context for a backend of `backend` (for logs) with `retry`; the kit follows what is
    /// reported through it with the returned receiver.
    pub(crate) fn new(
        backend: &'static str,
        retry: RetryPolicy,
    ) -> (Context, watch::Receiver<SessionCounts>) {
        let (counts, rx) = watch::channel(SessionCounts::default());
        let ctx = Context {
            catalog: Arc::new(Catalog::new()),
            retry,
            tasks: Tasks::new(backend),
            session: Session {
                counts: Arc::new(counts),
            },
        };
        (ctx, rx)
    }

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

    /// The task set of this registry handle: a backend spawns every background task here
    /// (receive loops, supervisors), and the kit aborts them all on close and drop.
    pub fn tasks(&self) -> &Tasks {
        &self.tasks
    }

    /// Reports what happened to the connection to the registry; see [`SessionEvent`] for
    /// what the kit does about each. Returns at once: the writing and listing it calls for
    /// run in the background.
    pub fn report(&self, event: SessionEvent) {
        match event {
            SessionEvent::Lost => self.catalog.set_connected(false),
            SessionEvent::Resumed | SessionEvent::Renewed => {
                // Unlisted before the connection counts again, so that no snapshot says
                // `connected` before its listing is fresh.
                self.catalog.mark_all_unlisted();
                self.catalog.set_connected(true);
                self.session.counts.send_modify(|counts| match event {
                    SessionEvent::Renewed => counts.renewed += 1,
                    _ => counts.resumed += 1,
                });
            }
        }
    }
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("retry", &self.retry)
            .field("tasks", &self.tasks)
            .finish_non_exhaustive()
    }
}
