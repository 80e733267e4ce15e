//! [`FailbackRegistry`]: the book of registrations and subscriptions, background retry with
//! capped exponential backoff, and recovery after a new session, written once for every
//! backend.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use async_trait::async_trait;
use dubbo_url::{Url, is_match};
use futures_util::StreamExt;
use tokio::task::AbortHandle;
use tracing::{debug, info, warn};

use crate::Registry;
use crate::Subscription;
use crate::backend::{Backend, Context, SessionCounts};
use crate::cache::CacheFile;
use crate::catalog::{Catalog, SubscriptionId};
use crate::params::FailbackConfig;
use crate::rules::{is_dynamic, validate_publication, validate_query};
use crate::tasks::Tasks;
use crate::{Error, Result};

/// How many unregisters `close` has in flight at once.
const CLOSE_CONCURRENCY: usize = 16;

/// A [`Registry`] built from a [`Backend`]: Dubbo's `FailbackRegistry`, done once.
///
/// - `register`/`subscribe` failures are returned when `check` holds (registry and URL),
///   else logged and retried in the background with capped exponential backoff, forever;
/// - a [`crate::SessionEvent::Renewed`] reported by the backend (a new session) restores every
///   registration and re-lists every subscription at once, retrying what fails;
///   [`crate::SessionEvent::Resumed`] re-lists only;
/// - while the backend says it is disconnected, snapshots keep their URLs and are marked
///   `connected = false` (empty protection);
/// - `close` unregisters dynamic registrations, ends subscriptions and aborts every task of
///   [`Context::tasks`]; so does dropping the handle once every subscription made through it
///   is dropped too (without unregistering: the registry forgets them as it forgets a
///   crashed process's).
pub struct FailbackRegistry<B: Backend> {
    shared: Arc<Shared<B>>,
}

struct Shared<B> {
    backend: B,
    catalog: Arc<Catalog>,
    config: FailbackConfig,
    book: Mutex<Book>,
    closed: AtomicBool,
    cache: Option<Arc<CacheFile>>,
    tasks: Tasks,
}

#[derive(Default)]
struct Book {
    registered: HashMap<Url, Option<AbortHandle>>,
    /// The registrations whose latest write went through, with when (the count of
    /// `writes` then): absent while a write is in flight or retried. Only these can have
    /// been deleted by someone else (`restore_deleted`).
    written: HashMap<Url, u64>,
    /// Writes that went through so far, a clock for `written`.
    writes: u64,
    subscriptions: HashMap<SubscriptionId, (Url, Option<AbortHandle>)>,
    unregistering: HashMap<Url, AbortHandle>,
}

#[derive(Clone)]
enum Op {
    Register(Url),
    Unregister(Url),
    Subscribe(SubscriptionId, Url),
}

struct SubscriptionGuard<B: Backend> {
    shared: Arc<Shared<B>>,
    id: SubscriptionId,
}

impl<B: Backend> FailbackRegistry<B> {
    /// Builds the backend with its [`Context`] and wraps it.
    pub fn new(
        config: FailbackConfig,
        make_backend: impl FnOnce(Context) -> B,
    ) -> FailbackRegistry<B> {
        let (ctx, session) = Context::new(B::NAME, config.retry());
        let backend = make_backend(ctx.clone());
        FailbackRegistry::attach(config, ctx, session, backend)
    }

    /// Like [`FailbackRegistry::new`] for a backend whose construction can fail.
    pub fn try_new(
        config: FailbackConfig,
        make_backend: impl FnOnce(Context) -> Result<B>,
    ) -> Result<FailbackRegistry<B>> {
        let (ctx, session) = Context::new(B::NAME, config.retry());
        let backend = make_backend(ctx.clone()).inspect_err(|_| ctx.tasks().close())?;
        Ok(FailbackRegistry::attach(config, ctx, session, backend))
    }

    /// Like [`FailbackRegistry::try_new`] for a backend that connects asynchronously.
    pub async fn connect<F>(
        config: FailbackConfig,
        make_backend: impl FnOnce(Context) -> F,
    ) -> Result<FailbackRegistry<B>>
    where
        F: Future<Output = Result<B>>,
    {
        let (ctx, session) = Context::new(B::NAME, config.retry());
        // A backend that fails half-way may have started tasks: they go with it.
        let backend = make_backend(ctx.clone())
            .await
            .inspect_err(|_| ctx.tasks().close())?;
        Ok(FailbackRegistry::attach(config, ctx, session, backend))
    }

    fn attach(
        config: FailbackConfig,
        ctx: Context,
        session: tokio::sync::watch::Receiver<SessionCounts>,
        backend: B,
    ) -> FailbackRegistry<B> {
        let tasks = ctx.tasks().clone();
        let cache = config
            .file
            .clone()
            .map(|file| CacheFile::open(file, tasks.clone()));
        let shared = Arc::new(Shared {
            backend,
            catalog: ctx.catalog().clone(),
            config,
            book: Mutex::new(Book::default()),
            closed: AtomicBool::new(false),
            cache,
            tasks,
        });
        follow_session(&shared, session);
        restore_deleted(&shared);
        FailbackRegistry { shared }
    }

    /// The task set every background task of this handle runs in, the backend's and the
    /// kit's: empty once the handle is closed, or dropped with its subscriptions.
    pub fn tasks(&self) -> &Tasks {
        &self.shared.tasks
    }

    /// The wrapped backend.
    pub fn backend(&self) -> &B {
        &self.shared.backend
    }

    /// The catalog the backend feeds.
    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.shared.catalog
    }

    /// The URLs registered through this handle.
    pub fn registered(&self) -> Vec<Url> {
        self.shared.book().registered.keys().cloned().collect()
    }
}

impl<B: Backend> Shared<B> {
    /// [`Registry::lookup`]: what the backend lists now that `query` selects.
    async fn lookup(&self, query: &Url) -> Result<Vec<Url>> {
        self.ensure_open()?;
        validate_query(query)?;
        let mut urls: Vec<Url> = self
            .backend
            .lookup(query)
            .await?
            .into_iter()
            .filter(|url| !url.is_empty_protocol() && is_match(query, url))
            .collect();
        urls.sort_unstable_by(|a, b| a.as_full_str().cmp(b.as_full_str()));
        urls.dedup();
        Ok(urls)
    }

    fn book(&self) -> MutexGuard<'_, Book> {
        self.book
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn ensure_open(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            Err(Error::Closed)
        } else {
            Ok(())
        }
    }

    fn check(&self, url: &Url) -> Result<bool> {
        Ok(self.config.check && url.param_bool("check", true)?)
    }

    async fn attempt(&self, op: &Op) -> Result<()> {
        match op {
            Op::Register(url) => self.backend.register(url).await,
            Op::Unregister(url) => self.backend.unregister(url).await,
            Op::Subscribe(id, query) => {
                self.backend.subscribe(query).await?;
                self.listed(*id, query);
                Ok(())
            }
        }
    }

    /// Retries `op` in the background until it succeeds, the registry closes, or the task is
    /// aborted. `immediate` makes the first attempt now instead of after the first delay.
    fn spawn_retry(self: &Arc<Self>, op: Op, immediate: bool) -> Option<AbortHandle> {
        let weak = Arc::downgrade(self);
        let mut backoff = self.config.retry().backoff();
        // A clone is reference counts: the text is made only if the spawn fails.
        let what = op.clone();
        let task = self.tasks.spawn("retry", async move {
            let mut first = true;
            for attempt in 1u64.. {
                if !(first && immediate) {
                    backoff.wait().await;
                }
                first = false;
                let Some(shared) = weak.upgrade() else { return };
                if shared.closed.load(Ordering::Acquire) {
                    return;
                }
                let backend = shared.backend.name();
                match shared.attempt(&op).await {
                    Ok(()) => {
                        info!(backend, op = %op, attempt, "retry succeeded");
                        if let Op::Register(url) = &op {
                            // Booked as in the registry (`is_registered`), unless an
                            // unregister or a new register changed the booking meanwhile.
                            let mut book = shared.book();
                            if let Some(slot @ Some(_)) = book.registered.get_mut(url) {
                                *slot = None;
                                book.mark_written(url);
                            }
                        }
                        return;
                    }
                    Err(error) => {
                        warn!(backend, op = %op, attempt, %error, "retry failed, will try again")
                    }
                }
            }
        });
        match task {
            Ok(task) => Some(task),
            Err(error) => {
                debug!(backend = self.backend.name(), op = %what, %error, "not retried");
                None
            }
        }
    }

    /// A subscription's listing is in: cached providers it started from give way to it.
    fn listed(&self, id: SubscriptionId, query: &Url) {
        if self.cache.is_some() {
            // Before the listing counts, so that no connected snapshot holds cached URLs.
            self.catalog.clear_scope(&cached_scope(query));
        }
        self.catalog.mark_listed(id, true);
    }

    /// With `check=false`, a subscription that could not list starts from the cache file.
    fn start_from_cache(&self, query: &Url) {
        let Some(cache) = &self.cache else { return };
        match cache.cached(query) {
            Some(urls) => {
                warn!(
                    backend = self.backend.name(),
                    %query,
                    providers = urls.len(),
                    file = %cache.path().display(),
                    "starting from the cached providers until the registry answers"
                );
                self.catalog.replace(&cached_scope(query), urls);
            }
            None => info!(
                backend = self.backend.name(),
                %query,
                file = %cache.path().display(),
                "the cache file has nothing for this subscription"
            ),
        }
    }

    fn unsubscribe(self: &Arc<Self>, id: SubscriptionId) {
        self.catalog.unsubscribe(id);
        let mut book = self.book();
        let Some((query, retry)) = book.subscriptions.remove(&id) else {
            return;
        };
        if let Some(retry) = retry {
            retry.abort();
        }
        let still_wanted = book.subscriptions.values().any(|(q, _)| *q == query);
        drop(book);
        if still_wanted || self.closed.load(Ordering::Acquire) {
            return;
        }
        // Holds the registry only while it runs: the last guard may be the one dropping.
        let weak = Arc::downgrade(self);
        let _ = self.tasks.spawn("unsubscribe", async move {
            let Some(shared) = weak.upgrade() else { return };
            if let Err(error) = shared.backend.unsubscribe(&query).await {
                warn!(backend = shared.backend.name(), %query, %error, "unsubscribe failed");
            }
        });
    }
}

impl<B: Backend> Shared<B> {
    /// Re-lists every subscription (with retries), keeping their URLs meanwhile. They were
    /// marked unlisted already, by `Context::report`, when the session event came.
    fn relist_subscriptions(self: &Arc<Self>, book: &mut Book) {
        let subscriptions: Vec<(SubscriptionId, Url)> = book
            .subscriptions
            .iter()
            .map(|(id, (q, _))| (*id, q.clone()))
            .collect();
        for (id, query) in subscriptions {
            let handle = self.spawn_retry(Op::Subscribe(id, query.clone()), true);
            if let Some((_, Some(old))) = book.subscriptions.insert(id, (query, handle)) {
                old.abort();
            }
        }
    }
}

impl<B: Backend> Shared<B> {
    fn recover(self: &Arc<Self>) {
        if self.closed.load(Ordering::Acquire) {
            return;
        }
        info!(
            backend = self.backend.name(),
            "recovering: restoring registrations and re-listing subscriptions"
        );
        let mut book = self.book();
        let registered: Vec<Url> = book.registered.keys().cloned().collect();
        for url in registered {
            let handle = self.spawn_retry(Op::Register(url.clone()), true);
            book.written.remove(&url);
            if let Some(Some(old)) = book.registered.insert(url, handle) {
                old.abort();
            }
        }
        self.relist_subscriptions(&mut book);
    }

    fn relist(self: &Arc<Self>) {
        if self.closed.load(Ordering::Acquire) {
            return;
        }
        info!(backend = self.backend.name(), "re-listing subscriptions");
        let mut book = self.book();
        self.relist_subscriptions(&mut book);
    }
}

#[async_trait]
impl<B: Backend> Registry for FailbackRegistry<B> {
    fn is_registered(&self, url: &Url) -> bool {
        // `None`: no retry pending (`Some(retry)`: a `check=false` registration still being
        // retried); `written`: its last write went through (not while the first one, or one
        // after a new session, is on its way).
        let book = self.shared.book();
        matches!(book.registered.get(url), Some(None)) && book.written.contains_key(url)
    }

    async fn register(&self, url: &Url) -> Result<()> {
        let shared = &self.shared;
        shared.ensure_open()?;
        validate_publication(url)?;
        let check = shared.check(url)?;
        let backend = shared.backend.name();
        {
            let mut book = shared.book();
            if let Some(pending) = book.unregistering.remove(url) {
                pending.abort();
            }
            if let Some(Some(pending)) = book.registered.insert(url.clone(), None) {
                pending.abort();
            }
            // In flight: the registry may not show it yet.
            book.written.remove(url);
        }
        match shared.backend.register(url).await {
            Ok(()) => {
                debug!(backend, %url, "registered");
                let mut book = shared.book();
                // Unless unregistered (or handed to a retry) meanwhile.
                if matches!(book.registered.get(url), Some(None)) {
                    book.mark_written(url);
                }
                Ok(())
            }
            Err(error) if check || !error.is_transient() => {
                shared.book().registered.remove(url);
                Err(error)
            }
            Err(error) => {
                warn!(backend, %url, %error, "register failed; retrying in the background (check=false)");
                // Spawned and booked under one lock: the task books its success under the
                // same lock, so it cannot be overwritten by this booking.
                let mut book = shared.book();
                let handle = shared.spawn_retry(Op::Register(url.clone()), false);
                if let Some(slot) = book.registered.get_mut(url) {
                    *slot = handle;
                }
                Ok(())
            }
        }
    }

    async fn unregister(&self, url: &Url) -> Result<()> {
        let shared = &self.shared;
        shared.ensure_open()?;
        url.validate()?;
        {
            let mut book = shared.book();
            book.written.remove(url);
            if let Some(Some(pending)) = book.registered.remove(url) {
                pending.abort();
            }
        }
        let backend = shared.backend.name();
        match shared.backend.unregister(url).await {
            Ok(()) => {
                debug!(backend, %url, "unregistered");
                Ok(())
            }
            Err(error) if shared.check(url)? || !error.is_transient() => Err(error),
            Err(error) => {
                warn!(backend, %url, %error, "unregister failed; retrying in the background (check=false)");
                if let Some(handle) = shared.spawn_retry(Op::Unregister(url.clone()), false) {
                    shared.book().unregistering.insert(url.clone(), handle);
                }
                Ok(())
            }
        }
    }

    async fn subscribe(&self, query: &Url) -> Result<Subscription> {
        let shared = &self.shared;
        shared.ensure_open()?;
        validate_query(query)?;
        let check = shared.check(query)?;
        let backend = shared.backend.name();
        let (id, rx) = shared.catalog.subscribe(query.clone());
        shared
            .book()
            .subscriptions
            .insert(id, (query.clone(), None));
        let guard = Arc::new(SubscriptionGuard {
            shared: shared.clone(),
            id,
        });
        if let Some(cache) = &shared.cache {
            save_snapshots(&shared.tasks, cache, query, rx.clone());
        }
        match shared.backend.subscribe(query).await {
            Ok(()) => {
                shared.listed(id, query);
                debug!(backend, %query, "subscribed");
            }
            Err(error) if check || !error.is_transient() => return Err(error),
            Err(error) => {
                warn!(backend, %query, %error, "subscribe failed; retrying in the background (check=false)");
                shared.start_from_cache(query);
                let handle = shared.spawn_retry(Op::Subscribe(id, query.clone()), false);
                if let Some(slot) = shared.book().subscriptions.get_mut(&id) {
                    slot.1 = handle;
                }
            }
        }
        let reader = shared.clone();
        let subscription =
            Subscription::new(query.clone(), rx, guard).with_lookup(Arc::new(move |query: Url| {
                let shared = reader.clone();
                Box::pin(async move { shared.lookup(&query).await })
            }));
        Ok(match shared.catalog.history(id) {
            Some(history) => subscription.with_history(history),
            None => subscription,
        })
    }

    async fn lookup(&self, query: &Url) -> Result<Vec<Url>> {
        self.shared.lookup(query).await
    }

    async fn close(&self) -> Result<()> {
        let shared = &self.shared;
        if shared.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let backend = shared.backend.name();
        let (made, doubtful) = {
            let mut book = shared.book();
            // Booked URLs passed validation, so `dynamic` reads; persistent ones stay.
            let dynamic = |url: &&Url| !matches!(is_dynamic(url), Ok(false));
            let made: Vec<Url> = book
                .registered
                .iter()
                .filter(|(_, retry)| retry.is_none())
                .map(|(url, _)| url)
                .filter(dynamic)
                .cloned()
                .collect();
            // Writes still being retried: a register whose retry may have gone through just
            // before it is stopped here, and an unregister the caller asked for. Each gets
            // one last unregister, whose failure is logged, not returned.
            let doubtful: Vec<(Url, bool)> = book
                .registered
                .iter()
                .filter(|(_, retry)| retry.is_some())
                .map(|(url, _)| url)
                .filter(dynamic)
                .map(|url| (url.clone(), false))
                .chain(book.unregistering.keys().map(|url| (url.clone(), true)))
                .collect();
            book.abort_all();
            book.subscriptions.clear();
            book.registered.clear();
            book.written.clear();
            (made, doubtful)
        };
        // Everything is attempted, [`CLOSE_CONCURRENCY`] at a time, so that a registry that
        // has gone away costs a few timeouts, not one per registration. The first failure
        // among what was made is what `close` returns; the others are logged.
        let mut first_error = None;
        let mut unregisters = futures_util::stream::iter(
            made.into_iter()
                .map(|url| (url, None))
                .chain(doubtful.into_iter().map(|(url, asked)| (url, Some(asked)))),
        )
        .map(|(url, doubt)| async move {
            let result = shared.backend.unregister(&url).await;
            (url, doubt, result)
        })
        .buffer_unordered(CLOSE_CONCURRENCY);
        while let Some((url, doubt, result)) = unregisters.next().await {
            let Err(error) = result else { continue };
            match doubt {
                // The first error is returned (and so said once, by the caller).
                None if first_error.is_none() => first_error = Some(error),
                None => warn!(backend, %url, %error, "unregister on close failed"),
                Some(true) => {
                    warn!(backend, %url, %error, "unregister on close failed; the registry keeps this URL until its TTL, if it has one")
                }
                Some(false) => {
                    debug!(backend, %url, %error, "unregister on close of a registration still being retried failed")
                }
            }
        }
        drop(unregisters);
        shared.catalog.close();
        // Before the backend closes its connections, so that no task of it renews, writes or
        // reconnects behind its back.
        shared.tasks.close();
        if let Some(cache) = shared.cache.clone() {
            let written = tokio::task::spawn_blocking(move || cache.flush()).await;
            if let Ok(Err(error)) = written {
                warn!(backend, %error, "writing the registry cache file on close failed");
            }
        }
        if let Err(error) = shared.backend.close().await {
            if first_error.is_none() {
                first_error = Some(error);
            } else {
                warn!(backend, %error, "closing the backend failed");
            }
        }
        info!(backend, "registry closed");
        first_error.map_or(Ok(()), Err)
    }
}

impl<B: Backend> fmt::Debug for FailbackRegistry<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FailbackRegistry")
            .field("backend", &self.shared.backend.name())
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

impl<B> Drop for Shared<B> {
    /// The handle and every subscription of it are gone: the tasks that would keep the
    /// backend's state alive go too.
    fn drop(&mut self) {
        self.tasks.close();
    }
}

impl<B: Backend> Drop for SubscriptionGuard<B> {
    fn drop(&mut self) {
        self.shared.unsubscribe(self.id);
    }
}

impl Book {
    /// Books that `url`'s latest write went through now.
    fn mark_written(&mut self, url: &Url) {
        self.writes += 1;
        self.written.insert(url.clone(), self.writes);
    }

    fn abort_all(&mut self) {
        let handles = self
            .registered
            .values_mut()
            .chain(self.subscriptions.values_mut().map(|(_, h)| h))
            .filter_map(Option::take)
            .chain(self.unregistering.drain().map(|(_, h)| h));
        for handle in handles.collect::<Vec<_>>() {
            handle.abort();
        }
    }
}

impl Drop for Book {
    fn drop(&mut self) {
        self.abort_all();
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Register(url) => write!(f, "register {url}"),
            Op::Unregister(url) => write!(f, "unregister {url}"),
            Op::Subscribe(_, query) => write!(f, "subscribe {query}"),
        }
    }
}

/// Follows what the backend reports through [`Context::report`]: a renewed session writes
/// every registration again and re-lists, a resumed one re-lists. Runs in the handle's task
/// set and holds the registry only while it acts, so it never keeps it alive.
fn follow_session<B: Backend>(
    shared: &Arc<Shared<B>>,
    mut session: tokio::sync::watch::Receiver<SessionCounts>,
) {
    let weak: Weak<Shared<B>> = Arc::downgrade(shared);
    let follower = shared.tasks.spawn("session", async move {
        // From zero, not from the value at the first poll: a report made before this task
        // first ran still counts.
        let mut seen = SessionCounts::default();
        loop {
            let now = *session.borrow_and_update();
            if now != seen {
                let Some(shared) = weak.upgrade() else { return };
                if now.renewed != seen.renewed {
                    shared.recover();
                } else {
                    shared.relist();
                }
                seen = now;
            }
            if session.changed().await.is_err() {
                return;
            }
        }
    });
    if let Err(error) = follower {
        // Outside a runtime (an in-memory backend built in a plain function): such backends
        // have no session to report on.
        debug!(backend = shared.backend.name(), %error, "session events are not followed");
    }
}

/// Every `restore.period`, while the connection is up, asks the backend which of this
/// handle's written registrations the registry lost ([`Backend::missing`]) and writes those
/// again through the retry path (so an `unregister` meanwhile still wins).
fn restore_deleted<B: Backend>(shared: &Arc<Shared<B>>) {
    let period = shared.config.restore_period;
    if period.is_zero() {
        return;
    }
    let weak: Weak<Shared<B>> = Arc::downgrade(shared);
    let checker = shared.tasks.spawn("restore deleted registrations", async move {
        let mut ticker = tokio::time::interval(period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let Some(shared) = weak.upgrade() else { return };
            if shared.closed.load(Ordering::Acquire) {
                return;
            }
            if !shared.catalog.is_connected() {
                continue; // Reconnecting restores everything anyway.
            }
            // Only writes that went through before the question: one in flight, or made
            // while the backend answers, may be missing from its answer without having
            // been deleted.
            let (written, asked_at): (Vec<Url>, u64) = {
                let book = shared.book();
                (book.written.keys().cloned().collect(), book.writes)
            };
            if written.is_empty() {
                continue;
            }
            let missing = match shared.backend.missing(&written).await {
                Ok(missing) => missing,
                Err(error) => {
                    debug!(backend = shared.backend.name(), %error, "cannot check this handle's registrations now");
                    continue;
                }
            };
            for url in missing {
                let mut book = shared.book();
                // Still booked as written before the question: not unregistered, retried
                // or written again meanwhile.
                let unchanged = book.written.get(&url).is_some_and(|&at| at <= asked_at);
                if !unchanged || !matches!(book.registered.get(&url), Some(None)) {
                    continue;
                }
                book.written.remove(&url);
                warn!(
                    backend = shared.backend.name(),
                    %url,
                    "this handle's registration was deleted from the registry by someone else; registering it again"
                );
                let handle = shared.spawn_retry(Op::Register(url.clone()), true);
                book.registered.insert(url, handle);
            }
        }
    });
    if let Err(error) = checker {
        debug!(backend = shared.backend.name(), %error, "registrations are not checked");
    }
}

/// The catalog scope holding a subscription's cached providers until it lists.
fn cached_scope(query: &Url) -> String {
    format!("cache file:{}", query.service_key())
}

/// Saves every connected snapshot of a subscription to the cache file, until the
/// subscription ends.
fn save_snapshots(
    tasks: &Tasks,
    cache: &Arc<CacheFile>,
    query: &Url,
    mut snapshots: tokio::sync::watch::Receiver<Arc<crate::Snapshot>>,
) {
    let (cache, query) = (cache.clone(), query.clone());
    let _ = tasks.spawn("cache file saver", async move {
        loop {
            let snapshot = snapshots.borrow_and_update().clone();
            // Only live lists: a disconnected snapshot holds protected or cached URLs.
            if snapshot.is_connected() {
                cache.save(&query, snapshot.urls());
            }
            if snapshots.changed().await.is_err() {
                return;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use std::collections::HashSet;
    use std::sync::atomic::AtomicUsize;

    use tokio::sync::watch;

    use super::*;
    use crate::Snapshot;

    /// A backend whose store lives in memory and whose next `failures` calls fail.
    struct Flaky {
        ctx: Context,
        store: watch::Sender<HashSet<Url>>,
        failures: AtomicUsize,
        /// Refuse every call as invalid input, as a backend refuses what it cannot carry.
        refuse: AtomicBool,
        /// Make `close` fail.
        close_fails: AtomicBool,
        /// How many times `register` and `subscribe` reached the store.
        registers: AtomicUsize,
        subscribes: AtomicUsize,
        /// While false, `register` waits before it writes: a write in flight.
        writes_open: watch::Sender<bool>,
        /// While false, `missing` waits after reading the store: an answer on its way.
        answers_open: watch::Sender<bool>,
        /// How many times `missing` was asked.
        checks: AtomicUsize,
    }

    impl Flaky {
        fn new(ctx: Context, store: watch::Sender<HashSet<Url>>) -> Flaky {
            Flaky {
                ctx,
                store,
                failures: AtomicUsize::new(0),
                refuse: AtomicBool::new(false),
                close_fails: AtomicBool::new(false),
                registers: AtomicUsize::new(0),
                subscribes: AtomicUsize::new(0),
                writes_open: watch::Sender::new(true),
                answers_open: watch::Sender::new(true),
                checks: AtomicUsize::new(0),
            }
        }

        fn fail(&self) -> Result<()> {
            if self.refuse.load(Ordering::SeqCst) {
                return Err(Error::invalid(
                    "registration",
                    "x",
                    "refused by the backend",
                ));
            }
            let left = self.failures.load(Ordering::SeqCst);
            if left > 0 {
                self.failures.store(left - 1, Ordering::SeqCst);
                return Err(Error::not_connected("flaky", "injected failure"));
            }
            Ok(())
        }
    }

    #[async_trait]
    impl Backend for Flaky {
        const NAME: &'static str = "flaky";
        async fn register(&self, url: &Url) -> Result<()> {
            self.fail()?;
            self.registers.fetch_add(1, Ordering::SeqCst);
            let _ = self
                .writes_open
                .subscribe()
                .wait_for(|open| *open)
                .await
                .is_ok();
            self.store.send_modify(|s| {
                s.replace(url.clone());
            });
            self.ctx.catalog().insert("all", url.clone());
            Ok(())
        }
        async fn unregister(&self, url: &Url) -> Result<()> {
            self.fail()?;
            self.store.send_modify(|s| {
                s.remove(url);
            });
            self.ctx.catalog().remove("all", url);
            Ok(())
        }
        async fn subscribe(&self, _query: &Url) -> Result<()> {
            self.fail()?;
            self.subscribes.fetch_add(1, Ordering::SeqCst);
            self.ctx
                .catalog()
                .replace("all", self.store.borrow().iter().cloned());
            Ok(())
        }
        async fn unsubscribe(&self, _query: &Url) -> Result<()> {
            Ok(())
        }
        async fn lookup(&self, _query: &Url) -> Result<Vec<Url>> {
            self.fail()?;
            Ok(self.store.borrow().iter().cloned().collect())
        }
        async fn close(&self) -> Result<()> {
            if self.close_fails.load(Ordering::SeqCst) {
                return Err(Error::backend("flaky", "close failed"));
            }
            Ok(())
        }
        async fn missing(&self, registered: &[Url]) -> Result<Vec<Url>> {
            self.checks.fetch_add(1, Ordering::SeqCst);
            let answer: Vec<Url> = {
                let store = self.store.borrow();
                registered
                    .iter()
                    .filter(|url| !store.contains(*url))
                    .cloned()
                    .collect()
            };
            let _ = self
                .answers_open
                .subscribe()
                .wait_for(|open| *open)
                .await
                .is_ok();
            Ok(answer)
        }
    }

    fn registry(check: bool) -> (FailbackRegistry<Flaky>, watch::Receiver<HashSet<Url>>) {
        let (tx, rx) = watch::channel(HashSet::new());
        let config = FailbackConfig {
            check,
            ..FailbackConfig::default()
        };
        let registry = FailbackRegistry::new(config, |ctx| Flaky::new(ctx, tx));
        (registry, rx)
    }

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    const LONG: Duration = Duration::from_secs(3600);

    #[tokio::test(start_paused = true)]
    async fn check_true_returns_the_failure_and_books_nothing() {
        let (registry, store) = registry(true);
        registry.backend().failures.store(1, Ordering::SeqCst);
        let provider = url("dubbo://h:1/a.B");
        let err = registry.register(&provider).await.unwrap_err();
        assert!(matches!(err, Error::NotConnected { .. }), "{err}");
        assert!(registry.registered().is_empty());
        assert!(store.borrow().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn check_false_retries_in_the_background_until_it_succeeds() {
        let (registry, mut store) = registry(true);
        registry.backend().failures.store(5, Ordering::SeqCst);
        let provider = url("dubbo://h:1/a.B?check=false");
        registry.register(&provider).await.unwrap();
        assert!(store.borrow().is_empty());
        assert!(!registry.is_registered(&provider), "still being retried");
        let stored = tokio::time::timeout(LONG, store.wait_for(|s| s.contains(&provider)))
            .await
            .expect("the retry task registers the URL");
        assert!(stored.is_ok());
        assert_eq!(registry.backend().failures.load(Ordering::SeqCst), 0);
        // The booking follows right after the store: wait for it on paused time.
        let deadline = tokio::time::Instant::now() + LONG;
        while !registry.is_registered(&provider) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "never booked as registered"
            );
            tokio::task::yield_now().await;
        }
        assert!(
            !registry.is_registered(&url("dubbo://h:2/a.B")),
            "not this handle's"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn close_takes_back_only_what_was_registered() {
        let (registry, _store) = registry(true);
        let made = url("dubbo://h:1/a.B");
        registry.register(&made).await.unwrap();
        registry.backend().failures.store(1000, Ordering::SeqCst);
        let pending = url("dubbo://h:2/a.B?check=false");
        registry.register(&pending).await.unwrap();
        assert!(registry.is_registered(&made) && !registry.is_registered(&pending));
        let left = registry.backend().failures.load(Ordering::SeqCst);
        // Both get an unregister: the made one, and the pending one, whose retry may have
        // gone through just before `close` stopped it. Only the made one's failure is
        // returned.
        let err = registry.close().await.unwrap_err();
        assert!(matches!(err, Error::NotConnected { .. }), "{err}");
        assert!(err.to_string().contains("injected failure"), "{err}");
        assert_eq!(left - registry.backend().failures.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn close_takes_back_a_retried_register_that_went_through_and_a_pending_unregister() {
        let (registry, store) = registry(false);
        // A register whose write lands but whose answer is lost: retried in the background.
        let landed = url("dubbo://h:1/a.B");
        registry.backend().store.send_modify(|s| {
            s.insert(landed.clone());
        });
        registry.backend().failures.store(1, Ordering::SeqCst);
        registry.register(&landed).await.unwrap();
        assert!(!registry.is_registered(&landed));
        // An unregister that fails once: retried in the background.
        let leaving = url("dubbo://h:2/a.B");
        registry.register(&leaving).await.unwrap();
        registry.backend().failures.store(1, Ordering::SeqCst);
        registry.unregister(&leaving).await.unwrap();
        assert!(store.borrow().contains(&leaving));
        // Closed before either retry runs: both are taken out of the registry all the same,
        // and `close` succeeds.
        registry.close().await.unwrap();
        assert!(store.borrow().is_empty(), "{:?}", store.borrow());
    }

    #[tokio::test(start_paused = true)]
    async fn is_registered_only_once_the_write_went_through() {
        let (registry, _store) = registry(true);
        let provider = url("dubbo://h:1/a.B");
        registry.backend().writes_open.send_replace(false);
        let (registered, ()) = tokio::join!(registry.register(&provider), async {
            // The write is on its way (the backend was reached), not through.
            while registry.backend().registers.load(Ordering::SeqCst) == 0 {
                tokio::task::yield_now().await;
            }
            assert!(!registry.is_registered(&provider));
            registry.backend().writes_open.send_replace(true);
        });
        registered.unwrap();
        assert!(registry.is_registered(&provider));
    }

    #[tokio::test(start_paused = true)]
    async fn registry_wide_check_false_applies_to_every_url() {
        let (registry, mut store) = registry(false);
        registry.backend().failures.store(2, Ordering::SeqCst);
        let provider = url("dubbo://h:1/a.B");
        registry.register(&provider).await.unwrap();
        let _ = tokio::time::timeout(LONG, store.wait_for(|s| s.contains(&provider)))
            .await
            .expect("retried");
    }

    #[tokio::test(start_paused = true)]
    async fn unregister_cancels_a_pending_retry() {
        let (registry, store) = registry(false);
        registry.backend().failures.store(1, Ordering::SeqCst);
        let provider = url("dubbo://h:1/a.B");
        registry.register(&provider).await.unwrap();
        registry.unregister(&provider).await.unwrap();
        // Let every retry delay pass: the cancelled retry must not bring the URL back.
        tokio::time::sleep(Duration::from_secs(120)).await;
        assert!(store.borrow().is_empty());
        assert!(registry.registered().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn recover_restores_registrations_and_relists_with_empty_protection() {
        let (registry, mut store) = registry(true);
        let provider = url("dubbo://h:1/a.B");
        registry.register(&provider).await.unwrap();
        let mut sub = registry.subscribe(&url("consumer://c/a.B")).await.unwrap();
        assert!(sub.snapshot().is_connected());
        assert_eq!(sub.snapshot().providers(), std::slice::from_ref(&provider));

        // The session dies: the server forgets the registration, the backend says so.
        registry.backend().store.send_modify(HashSet::clear);
        registry.catalog().set_connected(false);
        let snapshot = sub.snapshot();
        assert!(!snapshot.is_connected());
        assert_eq!(
            snapshot.providers(),
            std::slice::from_ref(&provider),
            "never emptied while disconnected"
        );

        // A new session: one failure on the way, then everything is back.
        registry.backend().failures.store(1, Ordering::SeqCst);
        registry.backend().ctx.report(crate::SessionEvent::Renewed);
        let _ = tokio::time::timeout(LONG, store.wait_for(|s| s.contains(&provider)))
            .await
            .expect("re-registered");
        let snapshot = sub
            .wait_for(|s| s.is_connected() && s.providers().len() == 1, LONG)
            .await
            .unwrap();
        assert_eq!(snapshot.providers(), [provider]);
    }

    #[tokio::test(start_paused = true)]
    async fn subscribe_with_check_false_returns_and_lists_later() {
        let (registry, _store) = registry(true);
        let provider = url("dubbo://h:1/a.B");
        registry.register(&provider).await.unwrap();
        registry.backend().failures.store(3, Ordering::SeqCst);
        let mut sub = registry
            .subscribe(&url("consumer://c/a.B?check=false"))
            .await
            .unwrap();
        assert!(!sub.snapshot().is_connected());
        let snapshot = sub.wait_for(Snapshot::is_connected, LONG).await.unwrap();
        assert_eq!(snapshot.providers(), [provider]);

        registry.backend().failures.store(1, Ordering::SeqCst);
        let err = registry
            .subscribe(&url("consumer://c/a.B"))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::NotConnected { .. }));
    }

    #[tokio::test(start_paused = true)]
    async fn close_unregisters_dynamic_only_and_refuses_more_work() {
        let (registry, store) = registry(true);
        let dynamic = url("dubbo://h:1/a.B");
        let persistent = url("dubbo://h:2/a.B?dynamic=false");
        registry.register(&dynamic).await.unwrap();
        registry.register(&persistent).await.unwrap();
        let mut sub = registry.subscribe(&url("consumer://c/a.B")).await.unwrap();
        registry.close().await.unwrap();
        assert_eq!(*store.borrow(), HashSet::from([persistent]));
        // The subscriber may first see the dynamic URL go; then the subscription ends.
        let ended = loop {
            match sub.changed().await {
                Ok(snapshot) => assert!(!snapshot.contains(&dynamic)),
                Err(error) => break error,
            }
        };
        assert!(matches!(ended, Error::Closed));
        assert!(matches!(
            registry.register(&dynamic).await,
            Err(Error::Closed)
        ));
        registry.close().await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn close_returns_its_first_error_and_still_closes_the_backend() {
        let (registry, _store) = registry(true);
        registry.register(&url("dubbo://h:1/a.B")).await.unwrap();
        registry.backend().failures.store(1, Ordering::SeqCst);
        registry.backend().close_fails.store(true, Ordering::SeqCst);
        let err = registry.close().await.unwrap_err();
        assert!(
            matches!(err, Error::NotConnected { .. }),
            "the unregister failed first: {err}"
        );
        assert!(matches!(
            registry.register(&url("dubbo://h:1/a.B")).await,
            Err(Error::Closed)
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn relist_lists_again_without_writing_registrations() {
        let (registry, _store) = registry(true);
        registry.register(&url("dubbo://h:1/a.B")).await.unwrap();
        let mut sub = registry.subscribe(&url("consumer://c/a.B")).await.unwrap();
        let backend = registry.backend();
        assert_eq!(backend.registers.load(Ordering::SeqCst), 1);
        assert_eq!(backend.subscribes.load(Ordering::SeqCst), 1);

        backend.ctx.report(crate::SessionEvent::Resumed);
        sub.wait_for(Snapshot::is_connected, LONG).await.unwrap();
        let deadline = tokio::time::Instant::now() + LONG;
        while backend.subscribes.load(Ordering::SeqCst) < 2 {
            assert!(tokio::time::Instant::now() < deadline, "never re-listed");
            tokio::task::yield_now().await;
        }
        assert_eq!(
            backend.registers.load(Ordering::SeqCst),
            1,
            "relist writes nothing"
        );

        backend.ctx.report(crate::SessionEvent::Renewed);
        while backend.registers.load(Ordering::SeqCst) < 2
            || backend.subscribes.load(Ordering::SeqCst) < 3
        {
            assert!(tokio::time::Instant::now() < deadline, "never recovered");
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn history_sees_every_snapshot_uncoalesced() {
        let (registry, _store) = registry(true);
        let sub = registry.subscribe(&url("consumer://c/a.B")).await.unwrap();
        let mut history = sub.history();
        for port in 1..=3 {
            registry
                .register(&url(&format!("dubbo://h:{port}/a.B")))
                .await
                .unwrap();
        }
        let mut sizes = Vec::new();
        for _ in 0..3 {
            sizes.push(history.recv().await.unwrap().len());
        }
        assert_eq!(sizes, [1, 2, 3], "no snapshot was skipped");
        registry.close().await.unwrap();
        let drained = tokio::time::timeout(LONG, async { while history.recv().await.is_some() {} });
        assert!(
            drained.await.is_ok(),
            "the history ends with the subscription"
        );
    }

    #[tokio::test]
    async fn invalid_input_is_refused_before_the_backend_sees_it() {
        let (registry, store) = registry(true);
        for bad in [
            "empty://h/a.B",
            "dubbo://h:1",
            "dubbo:///a.B",
            "dubbo://h:1/*",
        ] {
            let err = registry.register(&url(bad)).await.unwrap_err();
            assert!(matches!(err, Error::InvalidInput { .. }), "{bad}: {err}");
            assert!(err.to_string().contains(bad), "{err} should quote {bad}");
        }
        let unrepresentable = url("dubbo://h:1/a.B").with_param("k", "a&b");
        assert!(matches!(
            registry.register(&unrepresentable).await,
            Err(Error::Url(_))
        ));
        assert!(registry.subscribe(&url("consumer://c")).await.is_err());
        assert!(store.borrow().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn refused_input_is_returned_even_with_check_false() {
        let (registry, _store) = registry(false);
        registry.backend().refuse.store(true, Ordering::SeqCst);
        let err = registry
            .register(&url("dubbo://h:1/a.B"))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
        assert!(
            registry.registered().is_empty(),
            "nothing is booked for a retry"
        );
        let err = registry
            .subscribe(&url("consumer://c/a.B"))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
    }

    #[test]
    fn config_from_url() {
        let config = FailbackConfig::from_url(&url(
            "x://h?check=false&retry.period=50&retry.max.period=2s",
        ))
        .unwrap();
        assert!(!config.check);
        assert_eq!(config.retry_min, Duration::from_millis(50));
        assert_eq!(config.retry_max, Duration::from_secs(2));
        assert!(FailbackConfig::from_url(&url("x://h?retry.period=0")).is_err());
        assert!(FailbackConfig::from_url(&url("x://h?check=maybe")).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn a_registration_deleted_behind_its_back_is_written_again_unless_unregistered() {
        let (registry, mut store) = registry(true);
        let provider = url("dubbo://127.0.0.1:1/a.B?side=provider");
        registry.register(&provider).await.unwrap();
        let delete = || {
            registry.backend().store.send_modify(|s| {
                s.remove(&provider);
            });
        };
        delete();
        // Within `restore.period` (1 s) and the retry's first attempt.
        tokio::time::timeout(
            Duration::from_secs(2),
            store.wait_for(|s| s.contains(&provider)),
        )
        .await
        .expect("written again within the period")
        .unwrap();
        assert!(registry.is_registered(&provider));
        // Unregistered by this handle: it stays gone.
        registry.unregister(&provider).await.unwrap();
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(!store.borrow().contains(&provider));
        // `restore.period=0`: never checked.
        let (tx, mut quiet) = watch::channel(HashSet::new());
        let off = FailbackRegistry::new(
            FailbackConfig::default().with_restore_period(Duration::ZERO),
            |ctx| Flaky::new(ctx, tx),
        );
        off.register(&provider).await.unwrap();
        off.backend().store.send_modify(|s| {
            s.remove(&provider);
        });
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(!quiet.borrow_and_update().contains(&provider));
    }

    /// Waits, in paused time, until the backend was asked `n` times in all whether
    /// registrations are missing.
    async fn checked(registry: &FailbackRegistry<Flaky>, n: usize) {
        tokio::time::timeout(Duration::from_secs(60), async {
            while registry.backend().checks.load(Ordering::SeqCst) < n {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("asked {n} times within a minute"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_in_flight_is_not_taken_for_deleted() {
        let (registry, store) = registry(true);
        let provider = url("dubbo://127.0.0.1:1/a.B?side=provider");
        // A registration that stays unwritten for several restore periods, e.g. behind a
        // slow registry: never reported deleted meanwhile, so never written twice.
        // Another one, written: so that the handle keeps asking.
        registry
            .register(&url("dubbo://127.0.0.1:2/a.B?side=provider"))
            .await
            .unwrap();
        registry.backend().writes_open.send_replace(false);
        let (registered, ()) = tokio::join!(registry.register(&provider), async {
            let asked = registry.backend().checks.load(Ordering::SeqCst);
            checked(&registry, asked + 3).await;
            registry.backend().writes_open.send_replace(true);
        });
        registered.unwrap();
        assert!(store.borrow().contains(&provider));
        let asked = registry.backend().checks.load(Ordering::SeqCst);
        checked(&registry, asked + 2).await;
        assert_eq!(
            registry.backend().registers.load(Ordering::SeqCst),
            2,
            "each registration written once"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_registration_written_again_during_a_check_is_not_taken_for_deleted() {
        let (registry, store) = registry(true);
        let provider = url("dubbo://127.0.0.1:1/a.B?side=provider");
        registry.register(&provider).await.unwrap();
        // Deleted by someone else, then written again by this handle while the backend's
        // answer (which still says deleted) is on its way.
        registry.backend().answers_open.send_replace(false);
        registry.backend().store.send_modify(|s| {
            s.remove(&provider);
        });
        let asked = registry.backend().checks.load(Ordering::SeqCst);
        checked(&registry, asked + 1).await;
        registry.register(&provider).await.unwrap();
        registry.backend().answers_open.send_replace(true);
        checked(&registry, asked + 3).await;
        assert!(store.borrow().contains(&provider));
        assert_eq!(
            registry.backend().registers.load(Ordering::SeqCst),
            2,
            "written at first and by the handle again, not a third time"
        );
    }
}
