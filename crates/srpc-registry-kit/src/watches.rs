//! [`Watches`]: one long-running watch task per scope, with the queries that need it, written
//! once for every backend.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use dubbo_url::Url;
use tokio::sync::Notify;
use tokio::task::AbortHandle;
use tracing::{debug, info, warn};

use crate::backend::Context;
use crate::catalog::Catalog;
use crate::retry::RetryPolicy;
use crate::tasks::Tasks;
use crate::{Error, Result};

/// The watch tasks of one backend handle, keyed by catalog scope (a ZooKeeper directory, an
/// etcd prefix, a service key of the HTTP registry).
///
/// - [`Watches::watch`] starts the task of a scope on the first query that needs it and only
///   records the query after that;
/// - [`Watches::release`] (from `Backend::unsubscribe`) forgets a query, and stops the task of
///   every scope no query needs any more, clearing that scope from the catalog;
/// - a watch body that fails is started again after the next delay of the registry's
///   [`RetryPolicy`]; meanwhile its scope is marked stale, so exactly the subscriptions it
///   feeds say `connected = false` and keep their URLs;
/// - [`Watches::close`], and dropping the `Watches`, abort every task.
///
/// A watch body is an async closure called with a [`WatchScope`]. It lists, feeds the catalog
/// through the scope, and waits for the next change. It returns `Err` when it fails, and may
/// return `Ok(())` after a one-shot watch fired, to be called again at once. A body that
/// returns `Ok(())` without having fed anything is treated as a failure, so a broken body
/// cannot spin.
pub struct Watches {
    inner: Arc<Inner>,
}

/// What a watch body gets: the name of its scope, and the catalog operations on it.
///
/// Writes through a scope whose task was stopped are ignored, so a task aborted half-way can
/// never put back what [`Watches::release`] cleared.
#[derive(Clone)]
pub struct WatchScope {
    name: Arc<str>,
    generation: u64,
    inner: Weak<Inner>,
    catalog: Arc<Catalog>,
    progress: Arc<AtomicBool>,
    failing: Arc<AtomicBool>,
}

struct Inner {
    backend: &'static str,
    catalog: Arc<Catalog>,
    retry: RetryPolicy,
    /// The registry handle's task set, where every watch task runs.
    spawner: Tasks,
    tasks: Mutex<HashMap<String, Entry>>,
    generations: AtomicU64,
    closed: AtomicBool,
}

struct Entry {
    task: AbortHandle,
    generation: u64,
    queries: HashSet<Url>,
    /// Cuts a failed watch's backoff short.
    wake: Arc<Notify>,
}

impl Watches {
    /// Watch tasks of `backend`, feeding `ctx`'s catalog and backing off with its retry policy.
    pub fn new(backend: &'static str, ctx: &Context) -> Watches {
        Watches::with_retry(backend, ctx, ctx.retry())
    }

    /// The same, with another retry policy for restarting failed watches (usually
    /// `ctx.retry().capped(…)`, since how soon a watch comes back is what users feel).
    pub fn with_retry(backend: &'static str, ctx: &Context, retry: RetryPolicy) -> Watches {
        Watches {
            inner: Arc::new(Inner {
                backend,
                catalog: ctx.catalog().clone(),
                retry,
                spawner: ctx.tasks().clone(),
                tasks: Mutex::default(),
                generations: AtomicU64::new(0),
                closed: AtomicBool::new(false),
            }),
        }
    }

    /// Records that `query` needs `scope`, starting the scope's task with `body` if it has
    /// none. Returns whether a task was started. A task that is waiting to be restarted after
    /// a failure is restarted at once: a subscribe (or a re-list after a reconnect) that just
    /// read the registry should not leave its scope stale for a whole backoff delay. Fails
    /// with [`Error::Closed`] after [`Watches::close`] or once the handle's tasks are closed, and
    /// outside a tokio runtime.
    pub fn watch<F, Fut>(&self, scope: &str, query: &Url, body: F) -> Result<bool>
    where
        F: FnMut(WatchScope) -> Fut + Send + 'static,
        Fut: Future<Output = Result<()>> + Send + 'static,
    {
        let inner = &self.inner;
        let mut tasks = inner.tasks();
        if inner.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        if let Some(entry) = tasks.get_mut(scope) {
            inner.catalog.link(scope, query);
            entry.queries.insert(query.clone());
            entry.wake.notify_one();
            return Ok(false);
        }
        inner.catalog.link(scope, query);
        let generation = inner.generations.fetch_add(1, Ordering::Relaxed);
        let handle = WatchScope {
            name: Arc::from(scope),
            generation,
            inner: Arc::downgrade(inner),
            catalog: inner.catalog.clone(),
            progress: Arc::default(),
            failing: Arc::default(),
        };
        let wake = Arc::new(Notify::new());
        let task = inner
            .spawner
            .spawn(
                "watch",
                run(inner.backend, inner.retry, handle, wake.clone(), body),
            )
            .inspect_err(|_| inner.catalog.unlink(scope, query))?;
        tasks.insert(
            scope.to_owned(),
            Entry {
                task,
                generation,
                queries: HashSet::from([query.clone()]),
                wake,
            },
        );
        debug!(backend = inner.backend, %scope, "watch started");
        Ok(true)
    }

    /// Forgets `query` in every scope; the scopes no query needs any more have their task
    /// stopped and are cleared from the catalog. Returns those scopes.
    pub fn release(&self, query: &Url) -> Vec<String> {
        let inner = &self.inner;
        let mut tasks = inner.tasks();
        let mut released = Vec::new();
        tasks.retain(|scope, entry| {
            if entry.queries.remove(query) {
                inner.catalog.unlink(scope, query);
            }
            if entry.queries.is_empty() {
                entry.task.abort();
                released.push(scope.clone());
                false
            } else {
                true
            }
        });
        // Cleared while holding the task map, so no stopped task can write in between.
        for scope in &released {
            inner.catalog.clear_scope(scope);
            debug!(backend = inner.backend, %scope, "watch stopped");
        }
        released
    }

    /// The queries that need `scope` now.
    pub fn queries(&self, scope: &str) -> Vec<Url> {
        self.inner.queries(scope)
    }

    /// The scopes watched now, sorted.
    pub fn scopes(&self) -> Vec<String> {
        let mut scopes: Vec<String> = self.inner.tasks().keys().cloned().collect();
        scopes.sort();
        scopes
    }

    /// Aborts every task and refuses new ones.
    pub fn close(&self) {
        self.inner.closed.store(true, Ordering::Release);
        for (_, entry) in self.inner.tasks().drain() {
            entry.task.abort();
        }
    }
}

impl Drop for Watches {
    fn drop(&mut self) {
        self.close();
    }
}

impl fmt::Debug for Watches {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Watches")
            .field("backend", &self.inner.backend)
            .field("scopes", &self.scopes())
            .finish()
    }
}

impl Inner {
    fn tasks(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        self.tasks.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn queries(&self, scope: &str) -> Vec<Url> {
        self.tasks()
            .get(scope)
            .map(|entry| entry.queries.iter().cloned().collect())
            .unwrap_or_default()
    }
}

impl WatchScope {
    /// The scope's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Replaces the scope with a fresh listing, and marks it working.
    pub fn replace(&self, urls: impl IntoIterator<Item = Url>) {
        self.write(|catalog, name| catalog.replace(name, urls));
    }

    /// Adds one URL (an event), and marks the scope working.
    pub fn insert(&self, url: Url) {
        self.write(|catalog, name| catalog.insert(name, url));
    }

    /// Removes one URL (an event), and marks the scope working.
    pub fn remove(&self, url: &Url) {
        self.write(|catalog, name| catalog.remove(name, url));
    }

    /// Applies events in their order as one change, and marks the scope working: `(url,
    /// true)` adds, `(url, false)` removes. Subscriptions see only the net effect, in one
    /// snapshot, however many events a watch answer carried (a URL added then removed within
    /// the batch is not seen at all).
    pub fn update(&self, events: impl IntoIterator<Item = (Url, bool)>) {
        let mut net: HashMap<Url, bool> = HashMap::new();
        for (url, present) in events {
            // The newest copy of the URL (equal ones may differ in `timestamp`) is kept.
            net.remove(&url);
            net.insert(url, present);
        }
        let (mut added, mut removed) = (Vec::new(), Vec::new());
        for (url, present) in net {
            if present {
                added.push(url);
            } else {
                removed.push(url);
            }
        }
        self.write(|catalog, name| catalog.update(name, added, removed));
    }

    /// Adds URLs from a listing the registry says is incomplete (an HTTP registry warming up
    /// after a restart), keeping every URL the scope has, and marks the scope not working:
    /// its subscriptions say `connected = false` and lose nothing until a complete listing
    /// [`WatchScope::replace`]s it.
    pub fn add_unconfirmed(&self, urls: impl IntoIterator<Item = Url>) {
        self.write_as(false, |catalog, name| {
            catalog.update(name, urls.into_iter().collect(), Vec::new());
        });
    }

    /// Marks the scope working without changing its URLs: for a body whose watch is
    /// established again but has nothing new, or that feeds other scopes (a root watch).
    pub fn mark_working(&self) {
        self.write(|_, _| {});
    }

    /// Marks the scope as not working (its subscriptions say `connected = false`), for a body
    /// that knows before failing. [`Watches`] does this itself when a body returns `Err`.
    pub fn set_stale(&self) {
        self.catalog.set_scope_connected(&self.name, false);
    }

    /// The queries that need this scope now (for a body that watches a root and starts
    /// watches for what appears under it).
    pub fn queries(&self) -> Vec<Url> {
        self.inner
            .upgrade()
            .map(|inner| inner.queries(&self.name))
            .unwrap_or_default()
    }

    fn write(&self, change: impl FnOnce(&Catalog, &str)) {
        self.write_as(true, change);
    }

    /// Applies `change` if this watch is still the scope's current one, and records whether
    /// the scope now works. A listing that is not authoritative (`working == false`) marks
    /// the scope stale first, so that no snapshot says connected while it may lack URLs.
    fn write_as(&self, working: bool, change: impl FnOnce(&Catalog, &str)) {
        let Some(inner) = self.inner.upgrade() else {
            return;
        };
        let tasks = inner.tasks();
        if tasks
            .get(&*self.name)
            .is_none_or(|entry| entry.generation != self.generation)
        {
            return; // Stopped: what it read belongs to nobody now.
        }
        if !working {
            self.catalog.set_scope_connected(&self.name, false);
        }
        change(&self.catalog, &self.name);
        if working {
            self.catalog.set_scope_connected(&self.name, true);
        }
        drop(tasks);
        self.progress.store(true, Ordering::Release);
        if working && self.failing.swap(false, Ordering::AcqRel) {
            info!(backend = inner.backend, scope = %self.name, "watch works again");
        }
    }
}

impl fmt::Debug for WatchScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WatchScope")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Runs a watch body forever: again at once after `Ok` with progress, after the next delay
/// (or a wake-up) otherwise, with the scope marked stale while it fails.
async fn run<F, Fut>(
    backend: &'static str,
    retry: RetryPolicy,
    scope: WatchScope,
    wake: Arc<Notify>,
    mut body: F,
) where
    F: FnMut(WatchScope) -> Fut,
    Fut: Future<Output = Result<()>>,
{
    let mut backoff = retry.backoff();
    loop {
        let outcome = body(scope.clone()).await;
        if scope.progress.swap(false, Ordering::AcqRel) {
            backoff.reset();
            if outcome.is_ok() {
                continue;
            }
        }
        let error = match outcome {
            Ok(()) => Error::backend(backend, "the watch ended without reading anything"),
            Err(error) => error,
        };
        scope.set_stale();
        if scope.failing.swap(true, Ordering::AcqRel) {
            debug!(backend, scope = %scope.name, %error, "watch failed again");
        } else {
            warn!(backend, scope = %scope.name, %error, "watch failed; keeping the last known entries and retrying");
        }
        tokio::select! {
            () = backoff.wait() => {}
            () = wake.notified() => debug!(backend, scope = %scope.name, "watch woken early"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    use tokio::sync::watch;

    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    fn context() -> Context {
        Context::new(
            "test",
            RetryPolicy::new(Duration::from_millis(100), Duration::from_secs(1)),
        )
        .0
    }

    const LONG: Duration = Duration::from_secs(3600);

    /// A registry store the bodies read, and how often they were started.
    struct Store {
        urls: watch::Sender<Vec<Url>>,
        fail: AtomicBool,
        starts: AtomicUsize,
    }

    fn store() -> Arc<Store> {
        Arc::new(Store {
            urls: watch::Sender::new(Vec::new()),
            fail: AtomicBool::new(false),
            starts: AtomicUsize::new(0),
        })
    }

    /// A body that lists, waits for a change, and fails while `fail` is set.
    fn body(
        store: Arc<Store>,
    ) -> impl FnMut(WatchScope) -> futures_util::future::BoxFuture<'static, Result<()>> {
        move |scope| {
            let store = store.clone();
            Box::pin(async move {
                store.starts.fetch_add(1, Ordering::SeqCst);
                let mut rx = store.urls.subscribe();
                loop {
                    if store.fail.load(Ordering::SeqCst) {
                        return Err(Error::not_connected("test", "injected"));
                    }
                    scope.replace(rx.borrow_and_update().clone());
                    if rx.changed().await.is_err() {
                        return Ok(());
                    }
                }
            })
        }
    }

    #[tokio::test(start_paused = true)]
    async fn one_task_per_scope_stopped_and_cleared_with_its_last_query() {
        let ctx = context();
        let watches = Watches::new("test", &ctx);
        let store = store();
        store.urls.send_replace(vec![url("dubbo://h:1/a.B")]);
        let (q1, q2) = (url("consumer://c/a.B"), url("consumer://c/a.B?group=*"));
        assert!(watches.watch("s", &q1, body(store.clone())).unwrap());
        assert!(!watches.watch("s", &q2, body(store.clone())).unwrap());
        let (id, mut rx) = ctx.catalog().subscribe(q1.clone());
        ctx.catalog().mark_listed(id, true);
        rx.wait_for(|s| s.len() == 1).await.unwrap();
        assert_eq!(
            store.starts.load(Ordering::SeqCst),
            1,
            "one task for both queries"
        );
        assert!(watches.release(&q1).is_empty(), "q2 still needs the scope");
        assert_eq!(watches.release(&q2), ["s"]);
        assert!(rx.borrow_and_update().is_empty(), "the scope was cleared");
        // The stopped task writes nothing any more.
        store.urls.send_replace(vec![url("dubbo://h:2/a.B")]);
        tokio::time::sleep(LONG).await;
        assert!(rx.borrow().is_empty());
        assert!(watches.scopes().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_watch_marks_only_its_subscriptions_and_restarts() {
        let ctx = context();
        let watches = Watches::new("test", &ctx);
        let (failing, healthy) = (store(), store());
        failing.urls.send_replace(vec![url("dubbo://h:1/a.A")]);
        let (qa, qb) = (url("consumer://c/a.A"), url("consumer://c/a.B"));
        let (ida, mut rxa) = ctx.catalog().subscribe(qa.clone());
        let (idb, rxb) = ctx.catalog().subscribe(qb.clone());
        ctx.catalog().mark_listed(ida, true);
        ctx.catalog().mark_listed(idb, true);
        watches.watch("a", &qa, body(failing.clone())).unwrap();
        watches.watch("b", &qb, body(healthy.clone())).unwrap();
        rxa.wait_for(|s| s.is_connected() && s.len() == 1)
            .await
            .unwrap();

        failing.fail.store(true, Ordering::SeqCst);
        failing.urls.send_replace(vec![url("dubbo://h:1/a.A")]);
        let s = rxa.wait_for(|s| !s.is_connected()).await.unwrap().clone();
        assert_eq!(s.len(), 1, "the last known entries stay");
        assert!(rxb.borrow().is_connected(), "the other scope is unaffected");

        failing.fail.store(false, Ordering::SeqCst);
        tokio::time::timeout(LONG, rxa.wait_for(|s| s.is_connected()))
            .await
            .unwrap()
            .unwrap();
        assert!(failing.starts.load(Ordering::SeqCst) >= 2, "restarted");
    }

    #[tokio::test(start_paused = true)]
    async fn watching_a_failing_scope_again_restarts_it_at_once() {
        let ctx = Context::new("test", RetryPolicy::new(LONG, LONG)).0;
        let watches = Watches::new("test", &ctx);
        let store = store();
        store.fail.store(true, Ordering::SeqCst);
        let (q1, q2) = (url("consumer://c/a.B"), url("consumer://c/a.B?group=*"));
        watches.watch("s", &q1, body(store.clone())).unwrap();
        while store.starts.load(Ordering::SeqCst) < 1 {
            tokio::task::yield_now().await;
        }
        // Failed once; the next try is an hour away, unless a subscribe comes.
        store.fail.store(false, Ordering::SeqCst);
        let started = tokio::time::Instant::now();
        watches.watch("s", &q2, body(store.clone())).unwrap();
        // Yielding never lets paused time run forward: only a wake-up can restart it.
        for _ in 0..1_000 {
            if store.starts.load(Ordering::SeqCst) >= 2 {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(
            store.starts.load(Ordering::SeqCst),
            2,
            "restarted without waiting out the backoff"
        );
        assert!(started.elapsed() < LONG);
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_of_events_is_one_snapshot_of_its_net_effect() {
        let ctx = context();
        let watches = Watches::new("test", &ctx);
        let query = url("consumer://c/a.B");
        let (id, rx) = ctx.catalog().subscribe(query.clone());
        ctx.catalog().mark_listed(id, true);
        // Every snapshot published, none coalesced.
        let sub = crate::Subscription::new(query.clone(), rx, Arc::new(()))
            .with_history(ctx.catalog().history(id).unwrap());
        let mut published = sub.history();
        let (a, b, c) = (
            url("dubbo://h:1/a.B?timestamp=1"),
            url("dubbo://h:2/a.B"),
            url("dubbo://h:3/a.B"),
        );
        let (first, second) = (a.clone(), b.clone());
        watches
            .watch("s", &query, move |scope| {
                let (a, b, c) = (first.clone(), second.clone(), c.clone());
                async move {
                    scope.replace([a.clone(), b.clone()]);
                    // b goes, c comes and goes, a is re-put with a new timestamp.
                    scope.update([
                        (b, false),
                        (c.clone(), true),
                        (a.with_param("timestamp", "2"), true),
                        (c, false),
                    ]);
                    std::future::pending::<Result<()>>().await
                }
            })
            .unwrap();
        let listed = published.recv().await.unwrap();
        assert_eq!(listed.len(), 2);
        let after = published.recv().await.unwrap();
        assert_eq!(after.providers(), [a], "only the net effect: b gone");
        assert_eq!(
            after.providers()[0].param("timestamp"),
            Some("1"),
            "a re-put with a new timestamp is no change"
        );
        assert!(
            published.try_recv().is_err(),
            "one snapshot for the whole batch"
        );
    }

    #[tokio::test]
    async fn close_refuses_new_watches() {
        let ctx = context();
        let watches = Watches::new("test", &ctx);
        watches.close();
        let err = watches
            .watch("s", &url("consumer://c/a.B"), body(store()))
            .unwrap_err();
        assert!(matches!(err, Error::Closed));
    }
}
