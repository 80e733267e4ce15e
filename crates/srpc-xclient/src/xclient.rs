//! [`XClient`]: picks an endpoint per call (or all of them), with fail modes.

use std::cell::{Cell, RefCell};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use dubbo_url::Url;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use serde::Serialize;
use serde::de::DeserializeOwned;
use srpc_core::{ClientOptions, Metadata};
use srpc_registry::{Elsewhere, Snapshot, Subscription};
use thread_local::ThreadLocal;
use tokio::task::AbortHandle;
use tracing::{debug, info};

use crate::configurators;
use crate::discovery::{Discovery, Kind};
use crate::endpoints::{Endpoint, Endpoints};
use crate::error::{Error, Result};
use crate::selector::{self, Selector};
use crate::transport::{Transport, Transports};

/// What to do when a call fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum FailMode {
    /// Return the first error.
    #[default]
    Failfast,
    /// Retry on a different endpoint (never the one that just failed while another exists),
    /// up to `retries` times.
    Failover,
    /// Retry on the same endpoint, up to `retries` times.
    Failtry,
    /// Hedge: if no answer comes within `backup_delay`, send the same call to a second
    /// endpoint; the first success wins.
    Failbackup,
}

/// XClient settings.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Options {
    /// How endpoints are picked.
    pub selector: Selector,
    /// What failures do.
    pub fail_mode: FailMode,
    /// Extra attempts for `Failover` and `Failtry` (default 2).
    pub retries: u32,
    /// Deadline of each request (default 10 s).
    pub timeout: Duration,
    /// `Failbackup`: how long before the second request (default 10 ms).
    pub backup_delay: Duration,
    /// Only endpoints whose `group` parameter equals this.
    pub group: Option<String>,
    /// Connection settings (codec, connect timeout).
    pub client: ClientOptions,
    /// The transports: srpc's own and those added with [`Options::with_transport`].
    transports: Transports,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            selector: Selector::Random,
            fail_mode: FailMode::Failfast,
            retries: 2,
            timeout: Duration::from_secs(10),
            backup_delay: Duration::from_millis(10),
            group: None,
            client: ClientOptions::default(),
            transports: Transports::default(),
        }
    }
}

impl Options {
    /// With a selector.
    #[must_use]
    pub fn with_selector(mut self, selector: Selector) -> Options {
        self.selector = selector;
        self
    }

    /// With a fail mode and its retry count.
    #[must_use]
    pub fn with_fail_mode(mut self, fail_mode: FailMode, retries: u32) -> Options {
        self.fail_mode = fail_mode;
        self.retries = retries;
        self
    }

    /// With a per-request deadline.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Options {
        self.timeout = timeout;
        self
    }

    /// With a group filter.
    #[must_use]
    pub fn with_group(mut self, group: impl Into<String>) -> Options {
        self.group = Some(group.into());
        self
    }

    /// With connection settings.
    #[must_use]
    pub fn with_client(mut self, client: ClientOptions) -> Options {
        self.client = client;
        self
    }

    /// With a transport for more protocols (see [`crate::transport`]): endpoints whose URL
    /// protocol it names become callable. Added transports are asked in order, before srpc's
    /// own.
    #[must_use]
    pub fn with_transport(mut self, transport: Arc<dyn Transport>) -> Options {
        self.transports.added.push(transport);
        self
    }

    /// Without srpc's own protocol: only the added transports' endpoints are picked (a
    /// gRPC balancer, say, that must never pick an `srpc://` endpoint).
    #[must_use]
    pub fn without_srpc(mut self) -> Options {
        self.transports.srpc = false;
        self
    }

    /// The protocols this XClient calls, srpc's own first.
    pub fn protocols(&self) -> Vec<String> {
        self.transports.names()
    }

    /// With a hedging delay for `Failbackup`.
    #[must_use]
    pub fn with_backup_delay(mut self, delay: Duration) -> Options {
        self.backup_delay = delay;
        self
    }
}

/// Per-call settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CallOptions {
    /// The key for `ConsistentHash`.
    pub key: Option<Vec<u8>>,
    /// A deadline for this call instead of the XClient's.
    pub timeout: Option<Duration>,
    /// Metadata the call carries (srpc: read by the handler's `CallContext`; jsonrpc: sent
    /// as HTTP headers).
    pub metadata: Metadata,
}

impl CallOptions {
    /// With a consistent-hash key.
    #[must_use]
    pub fn with_key(mut self, key: impl Into<Vec<u8>>) -> CallOptions {
        self.key = Some(key.into());
        self
    }

    /// With a deadline.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> CallOptions {
        self.timeout = Some(timeout);
        self
    }

    /// With call metadata ([`srpc_core::Metadata`]).
    #[must_use]
    pub fn with_metadata(mut self, metadata: Metadata) -> CallOptions {
        self.metadata = metadata;
        self
    }
}

/// A load-balancing client over the endpoints a [`Discovery`] offers.
///
/// Endpoints are held in an immutable snapshot that selection reads without a lock; it is
/// replaced whenever discovery changes. Each endpoint has one connection, opened on first use,
/// shared by every call, and closed when the endpoint leaves.
///
/// Each thread that picks keeps a reference to the snapshot it last picked from, checked
/// against the snapshot's generation on every pick (a plain load: no read-modify-write, no
/// fence), so a pick costs a few nanoseconds and always sees the current endpoints. A thread
/// that stops picking keeps its snapshot until it picks again or the XClient is dropped;
/// the endpoints that left are closed when they leave all the same.
#[derive(Debug)]
pub struct XClient {
    shared: Arc<Shared>,
    follower: AbortHandle,
}

#[derive(Debug)]
struct Shared {
    options: Options,
    endpoints: ArcSwap<Endpoints>,
    /// Bumped after every new snapshot is stored: a thread's cached snapshot is current while
    /// its generation is this one.
    generation: AtomicU64,
    /// Each picking thread's snapshot and the generation it was current at.
    local: ThreadLocal<RefCell<Cached>>,
    /// Bumped on every new snapshot, for [`XClient::wait_for_endpoints`].
    updates: tokio::sync::watch::Sender<u64>,
    /// The subscription discovery follows, asked what else its interface has when there is
    /// no endpoint ([`Subscription::elsewhere`]).
    subscription: Option<Subscription>,
    /// Its last answer, looked up in the background each time the endpoints become empty,
    /// for the errors of calls that find none.
    elsewhere: std::sync::Mutex<Option<Elsewhere>>,
}

/// A thread's copy of the snapshot reference, and its round-robin turn.
#[derive(Debug)]
struct Cached {
    generation: u64,
    endpoints: Arc<Endpoints>,
    turn: Cell<usize>,
}

impl Cached {
    /// The turn of this pick; the next one gets the next.
    fn next_turn(&self) -> usize {
        let turn = self.turn.get();
        self.turn.set(turn.wrapping_add(1));
        turn
    }
}

impl XClient {
    /// Starts following `discovery`. Must run inside a tokio runtime.
    pub fn new(discovery: Discovery, options: Options) -> XClient {
        let shared = Arc::new(Shared {
            options,
            endpoints: ArcSwap::from_pointee(Endpoints::default()),
            generation: AtomicU64::new(0),
            local: ThreadLocal::new(),
            updates: tokio::sync::watch::Sender::new(0),
            subscription: match &discovery.kind {
                Kind::Subscription(sub) => Some(sub.clone()),
                Kind::Static(_) => None,
            },
            elsewhere: std::sync::Mutex::new(None),
        });
        let follower = match discovery.kind {
            Kind::Subscription(mut sub) => {
                shared.apply(configured(&sub.snapshot()));
                let shared = shared.clone();
                let asker = sub.clone();
                tokio::spawn(async move {
                    loop {
                        let changed = if shared.is_empty() {
                            // Meanwhile, find out what else the interface has, for the
                            // errors of calls: one read of the registry per emptying.
                            tokio::select! {
                                changed = sub.changed() => changed,
                                hint = asker.elsewhere() => {
                                    shared.set_elsewhere(hint);
                                    sub.changed().await
                                }
                            }
                        } else {
                            shared.set_elsewhere(None);
                            sub.changed().await
                        };
                        let Ok(snapshot) = changed else { break };
                        shared.apply(configured(&snapshot));
                    }
                })
            }
            Kind::Static(mut rx) => {
                shared.apply(rx.borrow_and_update().clone());
                let shared = shared.clone();
                tokio::spawn(async move {
                    while rx.changed().await.is_ok() {
                        let urls = rx.borrow_and_update().clone();
                        shared.apply(urls);
                    }
                })
            }
        }
        .abort_handle();
        XClient { shared, follower }
    }

    /// The current endpoints.
    pub fn endpoints(&self) -> Arc<Endpoints> {
        self.shared.endpoints.load_full()
    }

    /// Waits until the endpoints satisfy `predicate` (discovery changes are applied in the
    /// background, a moment after the registry or [`crate::StaticList::update`] reports
    /// them), for at most `deadline`, and returns them; as
    /// `Subscription::wait_for` does for snapshots. Fails with [`Error::Timeout`], which
    /// says what the endpoints were then.
    pub async fn wait_for_endpoints(
        &self,
        mut predicate: impl FnMut(&Endpoints) -> bool,
        deadline: Duration,
    ) -> Result<Arc<Endpoints>> {
        let mut updates = self.shared.updates.subscribe();
        let shared = &self.shared;
        let waiting = updates.wait_for(|_| predicate(&shared.endpoints.load()));
        match tokio::time::timeout(deadline, waiting).await {
            Ok(Ok(_)) => Ok(self.endpoints()),
            // The sender lives in `shared`, which `self` holds: it cannot be dropped here.
            Ok(Err(_)) | Err(_) => {
                let now = self.endpoints();
                let uncallable = now.uncallable().iter().map(|(_, n)| n).sum();
                let elsewhere = match &shared.subscription {
                    Some(sub) if now.list().is_empty() && uncallable == 0 => {
                        let hint = sub.elsewhere().await;
                        shared.set_elsewhere(hint.clone());
                        hint
                    }
                    _ => None,
                };
                Err(Error::Timeout {
                    after: deadline,
                    endpoints: now.list().len(),
                    uncallable,
                    elsewhere,
                })
            }
        }
    }

    /// The error a call would return now for want of an endpoint: [`Error::Uncallable`]
    /// when discovery offers only providers of protocols this XClient does not call,
    /// [`Error::NoEndpoints`] otherwise. For code that picks with [`XClient::select`] and
    /// carries the call itself.
    pub fn no_endpoint_error(&self) -> Error {
        self.shared.no_endpoints(&self.shared.endpoints.load())
    }

    /// The endpoint the selector picks now for a call with `call`'s key: which endpoint owns
    /// a key under `ConsistentHash`, for instance. It is a real pick: round-robin advances.
    /// [`XClient::select_with`] is the same pick without the counted handle.
    pub fn select(&self, call: &CallOptions) -> Option<Arc<Endpoint>> {
        self.select_with(call, Arc::clone)
    }

    /// Runs `f` on the endpoint the selector picks now (as [`XClient::select`] does) and
    /// returns what it returns; `None` when there are no endpoints. The endpoint is lent, not
    /// counted: no write to the endpoint's reference count (a cache line of its own, cold
    /// among 10 000), which makes it the cheapest way to look at a pick.
    pub fn select_with<R>(
        &self,
        call: &CallOptions,
        f: impl FnOnce(&Arc<Endpoint>) -> R,
    ) -> Option<R> {
        let key = call.key.as_deref();
        self.shared
            .with_current(|endpoints, turn| self.shared.pick_in(endpoints, key, turn, f))
    }

    /// Calls `method` on one endpoint, by the selector and fail mode.
    pub async fn call<Req, Resp>(&self, method: &str, request: &Req) -> Result<Resp>
    where
        Req: Serialize + Sync + ?Sized,
        Resp: DeserializeOwned + Send,
    {
        self.call_with(method, request, &CallOptions::default())
            .await
    }

    /// [`XClient::call`] with per-call options (hash key, deadline).
    pub async fn call_with<Req, Resp>(
        &self,
        method: &str,
        request: &Req,
        call: &CallOptions,
    ) -> Result<Resp>
    where
        Req: Serialize + Sync + ?Sized,
        Resp: DeserializeOwned + Send,
    {
        let shared = &self.shared;
        let options = &shared.options;
        let timeout = call.timeout.unwrap_or(options.timeout);
        let key = call.key.as_deref();
        let metadata = &call.metadata;
        let (snapshot, turn) = shared.with_current(|endpoints, turn| (endpoints.clone(), turn));
        let pick = |exclude: &[usize]| {
            selector::pick(
                options.selector,
                &snapshot,
                key,
                exclude,
                turn.wrapping_add(exclude.len()),
            )
        };
        let Some(first) = pick(&[]) else {
            return Err(shared.no_endpoints(&snapshot));
        };
        match options.fail_mode {
            FailMode::Failfast => {
                let endpoint = &snapshot.list[first];
                shared
                    .attempt(endpoint, method, request, timeout, metadata)
                    .await
                    .map_err(|e| failed(method, endpoint, 1, e))
            }
            FailMode::Failover | FailMode::Failtry => {
                let mut tried: Vec<usize> = Vec::new();
                let mut index = first;
                let mut attempts = 0;
                loop {
                    let endpoint = &snapshot.list[index];
                    attempts += 1;
                    match shared
                        .attempt(endpoint, method, request, timeout, metadata)
                        .await
                    {
                        Ok(reply) => return Ok(reply),
                        Err(error) if !error.is_retryable() || attempts > options.retries => {
                            return Err(failed(method, endpoint, attempts, error));
                        }
                        Err(error) => {
                            debug!(%method, addr = %endpoint.addr(), %error, attempts, "retrying");
                            if options.fail_mode == FailMode::Failover {
                                tried.push(index);
                                index = pick(&tried).unwrap_or(index);
                            }
                        }
                    }
                }
            }
            FailMode::Failbackup => {
                self.hedged(&snapshot, first, pick, method, request, call)
                    .await
            }
        }
    }

    async fn hedged<Req, Resp>(
        &self,
        snapshot: &Endpoints,
        first: usize,
        pick: impl Fn(&[usize]) -> Option<usize>,
        method: &str,
        request: &Req,
        call: &CallOptions,
    ) -> Result<Resp>
    where
        Req: Serialize + Sync + ?Sized,
        Resp: DeserializeOwned + Send,
    {
        let shared = &self.shared;
        let timeout = call.timeout.unwrap_or(shared.options.timeout);
        let metadata = &call.metadata;
        let primary = &snapshot.list[first];
        let mut calls = FuturesUnordered::new();
        calls.push(tagged(
            first,
            shared.attempt(primary, method, request, timeout, metadata),
        ));
        let mut attempts = 1;
        let mut backup_sent = false;
        let mut last_error = None;
        let backup = tokio::time::sleep(shared.options.backup_delay);
        tokio::pin!(backup);
        loop {
            tokio::select! {
                done = calls.next() => match done {
                    Some((_, Ok(reply))) => return Ok(reply),
                    Some((index, Err(error))) => {
                        let endpoint = &snapshot.list[index];
                        if !error.is_retryable() || backup_sent {
                            last_error = Some(failed(method, endpoint, attempts, error));
                            if calls.is_empty() {
                                break;
                            }
                            continue;
                        }
                        // The first request failed outright: send the backup now.
                        last_error = Some(failed(method, endpoint, attempts, error));
                        backup_sent = true;
                        if let Some(second) = pick(&[index]) {
                            attempts += 1;
                            calls.push(tagged(second, shared.attempt(&snapshot.list[second], method, request, timeout, metadata)));
                        } else if calls.is_empty() {
                            break;
                        }
                    }
                    None => break,
                },
                () = &mut backup, if !backup_sent => {
                    backup_sent = true;
                    if let Some(second) = pick(&[first]) {
                        if second != first {
                            attempts += 1;
                            calls.push(tagged(second, shared.attempt(&snapshot.list[second], method, request, timeout, metadata)));
                        }
                    }
                }
            }
        }
        Err(match last_error {
            Some(Error::Call {
                method,
                endpoint,
                source,
                ..
            }) => Error::Call {
                method,
                endpoint,
                attempts,
                source,
            },
            other => other.unwrap_or_else(|| shared.no_endpoints(snapshot)),
        })
    }

    /// Calls `method` on every endpoint at once. The first error cancels the calls still
    /// running and is returned; otherwise every reply, in the order they came.
    pub async fn broadcast<Req, Resp>(&self, method: &str, request: &Req) -> Result<Vec<Resp>>
    where
        Req: Serialize + Sync + ?Sized,
        Resp: DeserializeOwned + Send,
    {
        self.broadcast_with(method, request, &CallOptions::default())
            .await
    }

    /// [`XClient::broadcast`] with per-call options (deadline, metadata; the hash key is
    /// not used).
    pub async fn broadcast_with<Req, Resp>(
        &self,
        method: &str,
        request: &Req,
        call: &CallOptions,
    ) -> Result<Vec<Resp>>
    where
        Req: Serialize + Sync + ?Sized,
        Resp: DeserializeOwned + Send,
    {
        let snapshot = self.shared.endpoints.load_full();
        if snapshot.list.is_empty() {
            return Err(self.shared.no_endpoints(&snapshot));
        }
        let timeout = call.timeout.unwrap_or(self.shared.options.timeout);
        let metadata = &call.metadata;
        let mut calls: FuturesUnordered<_> = snapshot
            .list
            .iter()
            .enumerate()
            .map(|(i, e)| {
                tagged(
                    i,
                    self.shared.attempt(e, method, request, timeout, metadata),
                )
            })
            .collect();
        let attempts = snapshot.list.len() as u32;
        let mut replies = Vec::with_capacity(snapshot.list.len());
        while let Some((index, result)) = calls.next().await {
            match result {
                Ok(reply) => replies.push(reply),
                // Returning drops `calls`, which cancels the rest.
                Err(error) => return Err(failed(method, &snapshot.list[index], attempts, error)),
            }
        }
        Ok(replies)
    }

    /// Calls `method` on every endpoint at once; the first success wins and cancels the rest.
    /// Fails only if every endpoint failed (with the last error).
    pub async fn fork<Req, Resp>(&self, method: &str, request: &Req) -> Result<Resp>
    where
        Req: Serialize + Sync + ?Sized,
        Resp: DeserializeOwned + Send,
    {
        let snapshot = self.shared.endpoints.load_full();
        let timeout = self.shared.options.timeout;
        let none = Metadata::new();
        let mut calls: FuturesUnordered<_> = snapshot
            .list
            .iter()
            .enumerate()
            .map(|(i, e)| tagged(i, self.shared.attempt(e, method, request, timeout, &none)))
            .collect();
        let attempts = snapshot.list.len() as u32;
        let mut last = self.shared.no_endpoints(&snapshot);
        while let Some((index, result)) = calls.next().await {
            match result {
                Ok(reply) => return Ok(reply),
                Err(error) => last = failed(method, &snapshot.list[index], attempts, error),
            }
        }
        Err(last)
    }
}

impl Drop for XClient {
    fn drop(&mut self) {
        self.follower.abort();
    }
}

impl Shared {
    /// Installs a new endpoint snapshot from discovery, after the filters.
    fn apply(&self, urls: Vec<Url>) {
        let group = self.options.group.as_deref();
        let mut uncallable: Vec<(String, usize)> = Vec::new();
        let mut service = String::new();
        let usable: Vec<_> = urls
            .into_iter()
            .filter(|u| group.is_none_or(|g| u.param("group") == Some(g)))
            .filter(|u| u.param("state") != Some("inactive"))
            .filter(|u| !configurators::is_disabled(u))
            .filter(|u| u.port() > 0)
            .filter_map(|u| match self.options.transports.route(&u) {
                Some(route) => Some((u, route)),
                None => {
                    let protocol = u.protocol().to_ascii_lowercase();
                    match uncallable.iter_mut().find(|(p, _)| *p == protocol) {
                        Some((_, n)) => *n += 1,
                        None => uncallable.push((protocol, 1)),
                    }
                    if service.is_empty() {
                        service = u.service_interface().to_owned();
                    }
                    None
                }
            })
            .collect();
        uncallable.sort();
        if !uncallable.is_empty() {
            debug!(
                ?uncallable,
                "providers of protocols no transport calls were left out"
            );
        }
        let (mut next, left) = Endpoints::build_routed(
            usable,
            &self.endpoints.load(),
            self.options.selector.tables(),
        );
        next.uncallable = uncallable;
        next.service = service;
        info!(endpoints = next.list.len(), "endpoints updated");
        self.endpoints.store(Arc::new(next));
        self.generation.fetch_add(1, Ordering::Release);
        // Threads may still hold the old snapshot (until they pick again): the endpoints
        // that left close their connections now, not when the last reference goes.
        for endpoint in left {
            endpoint.retire();
        }
        self.updates.send_modify(|n| *n += 1);
    }

    /// Runs `f` on the current snapshot and this thread's next round-robin turn.
    ///
    /// The thread's cached snapshot serves while its generation is current: no atomic
    /// read-modify-write, neither on a snapshot's count nor on a shared counter, so picks on
    /// many threads never write to a shared cache line.
    fn with_current<R>(&self, f: impl FnOnce(&Arc<Endpoints>, usize) -> R) -> R {
        let generation = self.generation.load(Ordering::Acquire);
        let local = self.local.get_or(|| {
            RefCell::new(Cached {
                generation,
                endpoints: self.endpoints.load_full(),
                // Threads start their rotations at different places.
                turn: Cell::new(fastrand::usize(..)),
            })
        });
        if let Ok(cached) = local.try_borrow() {
            if cached.generation == generation {
                return f(&cached.endpoints, cached.next_turn());
            }
        }
        // A newer snapshot: take it (the generation was read first, so the cache is never
        // marked newer than what it holds), unless a pick on this thread is inside `f` now.
        let current = self.endpoints.load_full();
        let turn = match local.try_borrow_mut() {
            Ok(mut cached) => {
                let old = std::mem::replace(&mut cached.endpoints, current.clone());
                cached.generation = generation;
                let turn = cached.next_turn();
                drop(cached);
                drop(old);
                turn
            }
            Err(_) => fastrand::usize(..),
        };
        f(&current, turn)
    }

    /// The selector's pick in `endpoints`, lent to `f`.
    fn pick_in<R>(
        &self,
        endpoints: &Endpoints,
        key: Option<&[u8]>,
        turn: usize,
        f: impl FnOnce(&Arc<Endpoint>) -> R,
    ) -> Option<R> {
        let index = selector::pick(self.options.selector, endpoints, key, &[], turn)?;
        endpoints.list.get(index).map(f)
    }

    async fn attempt<Req, Resp>(
        &self,
        endpoint: &Arc<Endpoint>,
        method: &str,
        request: &Req,
        timeout: Duration,
        metadata: &Metadata,
    ) -> srpc_core::Result<Resp>
    where
        Req: Serialize + Sync + ?Sized,
        Resp: DeserializeOwned + Send,
    {
        let _load = endpoint.begin();
        endpoint
            .call(&self.options.client, method, request, timeout, metadata)
            .await
    }

    /// What the subscription's interface has that it does not select, as last looked up.
    fn elsewhere(&self) -> Option<Elsewhere> {
        self.lock_elsewhere().clone()
    }

    fn set_elsewhere(&self, hint: Option<Elsewhere>) {
        *self.lock_elsewhere() = hint;
    }

    fn lock_elsewhere(&self) -> std::sync::MutexGuard<'_, Option<Elsewhere>> {
        self.elsewhere.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether there is nothing to call and nothing found that could not be called.
    fn is_empty(&self) -> bool {
        let now = self.endpoints.load();
        now.list.is_empty() && now.uncallable.is_empty()
    }

    /// Why there is no endpoint to call: none at all, or only providers of protocols no
    /// transport of this XClient calls.
    fn no_endpoints(&self, snapshot: &Endpoints) -> Error {
        if snapshot.uncallable.is_empty() {
            Error::NoEndpoints {
                elsewhere: self.elsewhere(),
            }
        } else {
            Error::Uncallable {
                service: snapshot.service.clone(),
                found: snapshot.uncallable.clone(),
                callable: self.options.transports.names(),
            }
        }
    }
}

/// The providers of `snapshot` with the override rules of its `configurators` category
/// applied (when the query asked for that category).
fn configured(snapshot: &Snapshot) -> Vec<Url> {
    let rules = configurators::rules(snapshot.category("configurators"));
    snapshot
        .providers()
        .iter()
        .cloned()
        .map(|url| configurators::configure(url, &rules))
        .collect()
}

async fn tagged<T>(index: usize, call: impl Future<Output = T>) -> (usize, T) {
    (index, call.await)
}

fn failed(method: &str, endpoint: &Endpoint, attempts: u32, source: srpc_core::Error) -> Error {
    Error::Call {
        method: method.to_owned(),
        endpoint: endpoint.addr().to_owned(),
        attempts,
        source,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn urls(ports: &[u16]) -> Vec<Url> {
        ports
            .iter()
            .map(|p| Url::parse(&format!("srpc://127.0.0.1:{p}/Svc")).unwrap())
            .collect()
    }

    fn round_robin() -> XClient {
        let (discovery, _list) = Discovery::servers(std::iter::empty::<&str>()).unwrap();
        XClient::new(
            discovery,
            Options::default().with_selector(Selector::RoundRobin),
        )
    }

    fn port(e: &Arc<Endpoint>) -> u16 {
        e.url().port()
    }

    #[tokio::test]
    async fn a_pick_right_after_an_update_sees_the_new_endpoints() {
        let x = round_robin();
        let call = CallOptions::default();
        x.shared.apply(urls(&[7001, 7002]));
        // This thread now caches the snapshot of 7001 and 7002.
        assert!(x.select_with(&call, port).is_some());
        x.shared.apply(urls(&[7003]));
        for _ in 0..4 {
            assert_eq!(x.select_with(&call, port), Some(7003));
        }
        x.shared.apply(Vec::new());
        assert_eq!(x.select_with(&call, port), None);
    }

    #[tokio::test]
    async fn a_pick_inside_a_pick_works_across_an_update() {
        let x = round_robin();
        let call = CallOptions::default();
        x.shared.apply(urls(&[7001]));
        let inner = x.select_with(&call, |outer| {
            assert_eq!(port(outer), 7001);
            // The outer pick holds this thread's cache while the endpoints change.
            x.shared.apply(urls(&[7002]));
            x.select_with(&call, port)
        });
        assert_eq!(inner, Some(Some(7002)));
        assert_eq!(x.select_with(&call, port), Some(7002));
    }

    #[tokio::test]
    async fn each_thread_goes_round_the_endpoints_in_turn() {
        let x = round_robin();
        x.shared.apply(urls(&[7001, 7002, 7003]));
        let call = CallOptions::default();
        let rotation = || -> Vec<u16> {
            (0..6)
                .map(|_| x.select_with(&call, port).unwrap())
                .collect()
        };
        std::thread::scope(|scope| {
            let threads: Vec<_> = (0..3).map(|_| scope.spawn(rotation)).collect();
            for thread in threads {
                let picks = thread.join().unwrap();
                let mut first = picks[..3].to_vec();
                first.sort_unstable();
                assert_eq!(first, [7001, 7002, 7003], "{picks:?}");
                assert_eq!(picks[..3], picks[3..], "{picks:?}");
            }
        });
    }
}
