//! [`EtcdBackend`]: keys in Dubbo's (or rpcx's) layout, one lease per handle that is granted
//! again whenever it is lost, and watches that resume from the last revision they saw.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use srpc_registry_kit::layout::{PathLayout, rpcx_metadata};
use srpc_registry_kit::{
    Backend, Context, Keepalive, Renew, Renewal, Result, SessionEvent, Url, WatchScope, Watches,
    is_dynamic,
};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::config::EtcdConfig;
use crate::error::EtcdError;
use crate::gateway::{Event, Gateway, KeyValue, WatchMessage, WatchStream};

const BACKEND: &str = crate::SCHEME;

/// How long a watch stream may stay silent before it is opened again (from the revision it
/// reached, so nothing is missed): a connection that died without a word is noticed within it.
const WATCH_IDLE: Duration = Duration::from_secs(60);

/// The longest wait between two attempts to restart a watch, whatever `retry.max.period`
/// says: how soon a watch comes back is what users feel.
const WATCH_RETRY_CAP: Duration = Duration::from_secs(5);

/// The etcd [`Backend`].
#[derive(Debug)]
pub struct EtcdBackend {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: EtcdConfig,
    gateway: Gateway,
    ctx: Context,
    watches: Watches,
    /// This handle's lease; granting is serialised so that one lease serves every key.
    lease: tokio::sync::Mutex<Lease>,
    /// Renews the lease; started with the first grant.
    keepalive: Mutex<Option<Keepalive>>,
    /// What each watched directory holds and up to which revision, kept across restarts of
    /// its watch so that it resumes where it stopped.
    dirs: Mutex<HashMap<String, Arc<Mutex<DirState>>>>,
    /// The marker keys this handle has made sure of.
    markers: Mutex<HashSet<String>>,
}

#[derive(Debug, Clone, Copy)]
struct Lease {
    /// 0 while there is none.
    id: i64,
    ttl: Duration,
    /// The last time etcd confirmed it (grant or renewal), on a monotonic clock.
    confirmed: Instant,
    /// A lease was lost and none granted since: the next grant must have every registration
    /// written again.
    lost: bool,
}

#[derive(Debug, Default)]
struct DirState {
    /// Everything up to this revision is in `entries`; 0 before the first listing.
    revision: i64,
    entries: HashMap<Vec<u8>, Url>,
}

/// The lease's keepalive.
struct LeaseKeeper {
    inner: Arc<Inner>,
    /// The lease a renewal found lost, for `restore`.
    lost: AtomicI64,
}

impl EtcdBackend {
    /// A backend for `config`; no request is made until it is used.
    pub fn new(config: EtcdConfig, ctx: Context) -> Result<EtcdBackend> {
        let gateway = Gateway::new(
            config.endpoints.clone(),
            config.credentials.clone(),
            config.timeout,
            &config.tls,
        )?;
        let watches = Watches::with_retry(BACKEND, &ctx, ctx.retry().capped(WATCH_RETRY_CAP));
        Ok(EtcdBackend {
            inner: Arc::new(Inner {
                config,
                gateway,
                ctx,
                watches,
                lease: tokio::sync::Mutex::new(Lease {
                    id: 0,
                    ttl: Duration::ZERO,
                    confirmed: Instant::now(),
                    lost: false,
                }),
                keepalive: Mutex::default(),
                dirs: Mutex::default(),
                markers: Mutex::default(),
            }),
        })
    }

    /// The ID of this handle's lease, once one was granted.
    pub async fn lease_id(&self) -> Option<i64> {
        let lease = *self.inner.lease.lock().await;
        (lease.id != 0).then_some(lease.id)
    }

    /// How many seconds etcd gives this handle's lease now: `None` without a lease, `Some(-1)`
    /// when etcd no longer has it.
    pub async fn lease_time_to_live(&self) -> Result<Option<i64>> {
        match self.lease_id().await {
            Some(id) => Ok(Some(self.inner.gateway.time_to_live(id).await?)),
            None => Ok(None),
        }
    }
}

impl Inner {
    fn dirs(&self) -> MutexGuard<'_, HashMap<String, Arc<Mutex<DirState>>>> {
        self.dirs.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn dir_state(&self, dir: &str) -> Arc<Mutex<DirState>> {
        self.dirs().entry(dir.to_owned()).or_default().clone()
    }

    /// This handle's lease, granted (and its keepalive started) if there is none. A grant
    /// that replaces a lost lease has every registration written again.
    async fn lease(self: &Arc<Self>) -> Result<i64> {
        let mut lease = self.lease.lock().await;
        if lease.id != 0 {
            return Ok(lease.id);
        }
        let (id, ttl) = self.gateway.grant(self.config.ttl_seconds()).await?;
        let ttl = Duration::from_secs(u64::try_from(ttl).unwrap_or(0).max(1));
        let replaces_a_lost_one = lease.lost;
        *lease = Lease {
            id,
            ttl,
            confirmed: Instant::now(),
            lost: false,
        };
        drop(lease);
        info!(backend = BACKEND, lease = id, ?ttl, "lease granted");
        if replaces_a_lost_one {
            warn!(
                backend = BACKEND,
                lease = id,
                "the lease was lost; writing every registration again with a new one"
            );
            self.ctx.report(SessionEvent::Renewed);
        }
        let mut keepalive = self.keepalive.lock().unwrap_or_else(|p| p.into_inner());
        if keepalive.is_none() {
            let keeper = LeaseKeeper {
                inner: self.clone(),
                lost: AtomicI64::new(0),
            };
            *keepalive = Some(Keepalive::start(
                BACKEND,
                "the lease of this handle",
                &self.ctx,
                Keepalive::period_for(ttl),
                keeper,
            )?);
        }
        Ok(id)
    }

    /// The lease `lost` is gone: forgets it (unless another was granted meanwhile) and grants
    /// a new one, which has every registration written again. If the grant fails, the loss is
    /// remembered: the keepalive keeps trying, and so does the next registration.
    async fn replace_lease(self: &Arc<Self>, lost: i64) -> Result<i64> {
        {
            let mut lease = self.lease.lock().await;
            if lost != 0 && lease.id == lost {
                warn!(backend = BACKEND, lease = lost, "lease lost");
                lease.id = 0;
                lease.lost = true;
            }
        }
        self.lease().await
    }

    /// The key and value of a registration.
    fn entry_of(&self, url: &Url, lease: i64) -> (String, Vec<u8>) {
        let key = self.config.layout.path_of(url);
        let value = match &self.config.layout {
            // Java writes the lease ID of a dynamic key, and the path's hash code otherwise.
            PathLayout::Dubbo { .. } if lease != 0 => lease.to_string().into_bytes(),
            PathLayout::Dubbo { .. } => java_hash_code(&key).to_string().into_bytes(),
            PathLayout::Rpcx { .. } => rpcx_metadata(url).into_bytes(),
        };
        (key, value)
    }

    /// The persistent keys that make a registration visible to readers that list parents:
    /// `/<root>/<interface>` for Java `*` subscribers (dubbo-admin), rpcx's markers.
    async fn write_markers(&self, url: &Url) -> Result<()> {
        let markers: Vec<(String, Vec<u8>)> = match &self.config.layout {
            PathLayout::Dubbo { root } => {
                let dir = srpc_registry_kit::layout::interface_dir(root, url.service_interface());
                let value = java_hash_code(&dir).to_string().into_bytes();
                vec![(dir, value)]
            }
            PathLayout::Rpcx { base } => vec![
                (base.clone(), b"rpcx_path".to_vec()),
                (
                    srpc_registry_kit::layout::join(base, url.service_interface()),
                    url.service_interface().as_bytes().to_vec(),
                ),
            ],
        };
        for (key, value) in markers {
            // Markers are persistent: one put-if-absent per handle is enough.
            if self.markers().contains(&key) {
                continue;
            }
            self.gateway.put_if_absent(key.as_bytes(), &value).await?;
            self.markers().insert(key);
        }
        Ok(())
    }

    fn markers(&self) -> MutexGuard<'_, HashSet<String>> {
        self.markers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Lists one directory: its registrations and the revision of the listing. Entries that
    /// are not registrable URLs are skipped with a warning.
    async fn list_dir(&self, dir: &str) -> Result<(i64, HashMap<Vec<u8>, Url>)> {
        let prefix = format!("{dir}/");
        let range = self.gateway.range_prefix(&prefix, false).await?;
        let entries = range
            .kvs
            .iter()
            .filter_map(|kv| Some((kv.key.clone(), self.parse(&prefix, kv)?)))
            .collect();
        Ok((range.revision, entries))
    }

    /// Reads one key of directory `prefix` (`<dir>/`): `None` for keys deeper than one
    /// segment, and for unreadable ones (with a warning).
    fn parse(&self, prefix: &str, kv: &KeyValue) -> Option<Url> {
        parse_kv(&self.config.layout, prefix, kv)
    }

    /// Lists `dir` into its state and the catalog, unless its watch already knows a newer
    /// revision (it then holds everything the listing would bring).
    async fn relist_dir(&self, dir: &str, write: impl FnOnce(Vec<Url>)) -> Result<()> {
        let (revision, entries) = self.list_dir(dir).await?;
        let state = self.dir_state(dir);
        let mut state = state.lock().unwrap_or_else(|p| p.into_inner());
        if revision >= state.revision {
            state.revision = revision;
            state.entries = entries;
            write(state.entries.values().cloned().collect());
        }
        Ok(())
    }

    /// The interface (or rpcx service) directories under the root, by name as written.
    async fn interfaces(&self) -> Result<(i64, HashSet<String>)> {
        let root = self.config.layout.root();
        let prefix = root_prefix(root);
        let range = self.gateway.range_prefix(&prefix, true).await?;
        let names = range
            .kvs
            .iter()
            .filter_map(|kv| first_segment(&prefix, &kv.key))
            .collect();
        Ok((range.revision, names))
    }

    /// Every directory `query` needs, listing the root for `*` queries.
    async fn dirs_of(&self, query: &Url) -> Result<Vec<String>> {
        let layout = &self.config.layout;
        match layout.dirs_of(query) {
            Some(dirs) => Ok(dirs),
            None => {
                let (_, names) = self.interfaces().await?;
                Ok(names
                    .iter()
                    .flat_map(|name| layout.dirs_of_interface(name, query))
                    .collect())
            }
        }
    }

    fn watch_dir(self: &Arc<Self>, dir: &str, query: &Url) -> Result<()> {
        let inner = self.clone();
        self.watches.watch(dir, query, move |scope| {
            let inner = inner.clone();
            async move { inner.follow_dir(scope).await }
        })?;
        Ok(())
    }

    fn watch_root(self: &Arc<Self>, query: &Url) -> Result<()> {
        let inner = self.clone();
        let root = self.config.layout.root().to_owned();
        self.watches.watch(&root, query, move |scope| {
            let inner = inner.clone();
            async move { inner.follow_root(scope).await }
        })?;
        Ok(())
    }

    /// Follows one directory without gaps: lists it if it never was, then watches from the
    /// revision after the one it knows; resumes from there after any failure; lists again
    /// when that revision was compacted, so deletions made meanwhile are seen too.
    async fn follow_dir(self: Arc<Self>, scope: WatchScope) -> Result<()> {
        let dir = scope.name().to_owned();
        let prefix = format!("{dir}/");
        let state = self.dir_state(&dir);
        if lock(&state).revision == 0 {
            self.relist_dir(&dir, |urls| scope.replace(urls)).await?;
        }
        loop {
            let start = lock(&state).revision + 1;
            let mut stream = self.gateway.watch_prefix(&prefix, start).await?;
            loop {
                let Some(message) = next_message(&mut stream, &prefix).await? else {
                    debug!(backend = BACKEND, %dir, "watch idle; opening it again");
                    break;
                };
                if message.canceled {
                    if message.compact_revision > 0 {
                        warn!(backend = BACKEND, %dir, from = start, compacted = message.compact_revision,
                            "revisions since the last one seen were compacted; listing again");
                        self.relist_dir(&dir, |urls| scope.replace(urls)).await?;
                        break;
                    }
                    return Err(EtcdError::WatchEnded {
                        key: prefix.clone(),
                        reason: message.cancel_reason,
                    }
                    .into());
                }
                self.apply(
                    &scope,
                    &prefix,
                    &state,
                    message.events,
                    message.revision,
                    message.created,
                );
            }
        }
    }

    /// Applies one watch message to a directory's state and the catalog. Events the state
    /// already holds (at or below its revision) are skipped, so a listing made meanwhile is
    /// never rolled back.
    fn apply(
        &self,
        scope: &WatchScope,
        prefix: &str,
        state: &Mutex<DirState>,
        events: Vec<Event>,
        revision: i64,
        created: bool,
    ) {
        let mut state = lock(state);
        if events.is_empty() {
            // A progress notification promises every later event is newer than its revision.
            if !created && revision > state.revision {
                state.revision = revision;
            }
            scope.mark_working();
            return;
        }
        // Every event of the answer, applied as one change: one snapshot per watch answer,
        // not one per event.
        let mut changes: Vec<(Url, bool)> = Vec::new();
        for event in events {
            let (kv, put) = match event {
                Event::Put(kv) => (kv, true),
                Event::Delete(kv) => (kv, false),
            };
            if kv.mod_revision <= state.revision {
                continue;
            }
            state.revision = kv.mod_revision;
            if put {
                if let Some(url) = self.parse(prefix, &kv) {
                    if let Some(old) = state.entries.insert(kv.key, url.clone()) {
                        if old.as_full_str() != url.as_full_str() {
                            changes.push((old, false));
                        }
                    }
                    changes.push((url, true));
                }
            } else if let Some(old) = state.entries.remove(&kv.key) {
                changes.push((old, false));
            }
        }
        if changes.is_empty() {
            scope.mark_working();
        } else {
            scope.update(changes);
        }
    }

    /// Follows the root for `*` queries: every interface directory that appears (a marker
    /// key, or any key under it) gets the watches the queries need. The root holds no
    /// registrations itself.
    async fn follow_root(self: Arc<Self>, scope: WatchScope) -> Result<()> {
        let layout = &self.config.layout;
        let prefix = root_prefix(layout.root());
        let (revision, names) = self.interfaces().await?;
        let mut known: HashSet<String> = HashSet::new();
        let mut start = revision + 1;
        let mut follow = |inner: &Arc<Inner>, names: HashSet<String>| -> Result<()> {
            for name in names {
                if known.insert(name.clone()) {
                    for query in scope.queries() {
                        for dir in layout.dirs_of_interface(&name, &query) {
                            inner.watch_dir(&dir, &query)?;
                        }
                    }
                }
            }
            Ok(())
        };
        follow(&self, names)?;
        scope.mark_working();
        loop {
            let mut stream = self.gateway.watch_prefix(&prefix, start).await?;
            loop {
                let Some(message) = next_message(&mut stream, &prefix).await? else {
                    break; // Idle: open it again.
                };
                if message.canceled {
                    // Compacted: list the names again; the watches of known ones carry on.
                    let (revision, names) = self.interfaces().await?;
                    follow(&self, names)?;
                    start = revision + 1;
                    break;
                }
                let mut fresh = HashSet::new();
                for event in &message.events {
                    if let Event::Put(kv) = event {
                        start = start.max(kv.mod_revision + 1);
                        fresh.extend(first_segment(&prefix, &kv.key));
                    }
                }
                if message.events.is_empty() && !message.created && message.revision >= start {
                    start = message.revision + 1;
                }
                follow(&self, fresh)?;
                scope.mark_working();
            }
        }
    }
}

#[async_trait]
impl Renew for LeaseKeeper {
    async fn renew(&self) -> Result<Renewal> {
        let inner = &self.inner;
        let lease = *inner.lease.lock().await;
        if lease.id == 0 {
            // A lost lease not replaced yet (the grant failed) must be; otherwise there is
            // nothing to keep alive.
            self.lost.store(0, Ordering::Release);
            return Ok(if lease.lost {
                Renewal::Lost
            } else {
                Renewal::Renewed
            });
        }
        // Unheard-from for a whole TTL: etcd has dropped it, whatever it may say later.
        if lease.confirmed.elapsed() > lease.ttl {
            self.lost.store(lease.id, Ordering::Release);
            return Ok(Renewal::Lost);
        }
        match inner.gateway.keep_alive(lease.id).await {
            Ok(ttl) if ttl > 0 => {
                let mut current = inner.lease.lock().await;
                if current.id == lease.id {
                    current.confirmed = Instant::now();
                }
                Ok(Renewal::Renewed)
            }
            Ok(_) => {
                self.lost.store(lease.id, Ordering::Release);
                Ok(Renewal::Lost)
            }
            Err(error) if error.is_lease_not_found() => {
                self.lost.store(lease.id, Ordering::Release);
                Ok(Renewal::Lost)
            }
            Err(error) => Err(error.into()),
        }
    }

    async fn restore(&self) -> Result<()> {
        let lost = self.lost.load(Ordering::Acquire);
        self.inner.replace_lease(lost).await.map(|_| ())
    }
}

#[async_trait]
impl Backend for EtcdBackend {
    const NAME: &'static str = BACKEND;

    async fn register(&self, url: &Url) -> Result<()> {
        let inner = &self.inner;
        let dynamic = is_dynamic(url)?;
        inner.write_markers(url).await?;
        let lease = if dynamic { inner.lease().await? } else { 0 };
        let (key, value) = inner.entry_of(url, lease);
        match inner.gateway.put(key.as_bytes(), &value, lease).await {
            Ok(_) => {}
            Err(error) if error.is_lease_not_found() => {
                // Lost before its keepalive noticed: replace it now, and every other key with it.
                let lease = inner.replace_lease(lease).await?;
                let (key, value) = inner.entry_of(url, lease);
                inner.gateway.put(key.as_bytes(), &value, lease).await?;
            }
            Err(error) => return Err(error.into()),
        }
        debug!(backend = BACKEND, %key, lease, "key written");
        Ok(())
    }

    async fn unregister(&self, url: &Url) -> Result<()> {
        let key = self.inner.config.layout.path_of(url);
        self.inner.gateway.delete(key.as_bytes()).await?;
        Ok(())
    }

    /// One transaction of count-only ranges over this handle's keys: those that are gone.
    async fn missing(&self, registered: &[Url]) -> Result<Vec<Url>> {
        let layout = &self.inner.config.layout;
        let keys: Vec<String> = registered.iter().map(|url| layout.path_of(url)).collect();
        let refs: Vec<&[u8]> = keys.iter().map(|key| key.as_bytes()).collect();
        let exist = self.inner.gateway.exist(&refs).await?;
        Ok(registered
            .iter()
            .zip(exist)
            .filter(|(_, exists)| !exists)
            .map(|(url, _)| url.clone())
            .collect())
    }

    async fn subscribe(&self, query: &Url) -> Result<()> {
        let inner = &self.inner;
        let catalog = inner.ctx.catalog();
        for dir in inner.dirs_of(query).await? {
            inner
                .relist_dir(&dir, |urls| catalog.replace(&dir, urls))
                .await?;
            inner.watch_dir(&dir, query)?;
        }
        if inner.config.layout.dirs_of(query).is_none() {
            inner.watch_root(query)?;
        }
        Ok(())
    }

    async fn unsubscribe(&self, query: &Url) -> Result<()> {
        let released = self.inner.watches.release(query);
        let mut dirs = self.inner.dirs();
        for scope in released {
            dirs.remove(&scope);
        }
        Ok(())
    }

    async fn lookup(&self, query: &Url) -> Result<Vec<Url>> {
        let mut urls = Vec::new();
        for dir in self.inner.dirs_of(query).await? {
            urls.extend(self.inner.list_dir(&dir).await?.1.into_values());
        }
        Ok(urls)
    }

    async fn close(&self) -> Result<()> {
        // The watches and the keepalive were stopped with the handle's tasks.
        let inner = &self.inner;
        inner
            .keepalive
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let lease = std::mem::replace(&mut inner.lease.lock().await.id, 0);
        if lease != 0 {
            // The keys were deleted one by one already; revoking removes any left over.
            inner.gateway.revoke(lease).await?;
            info!(backend = BACKEND, lease, "lease revoked");
        }
        Ok(())
    }
}

/// The next message of a watch of `prefix`; `None` when it stayed silent for
/// [`WATCH_IDLE`] (open it again); an error when it failed or the server closed it.
async fn next_message(stream: &mut WatchStream, prefix: &str) -> Result<Option<WatchMessage>> {
    match tokio::time::timeout(WATCH_IDLE, stream.next()).await {
        Err(_) => Ok(None),
        Ok(Ok(Some(message))) => Ok(Some(message)),
        Ok(Ok(None)) => Err(EtcdError::WatchEnded {
            key: prefix.to_owned(),
            reason: "the server closed the stream".into(),
        }
        .into()),
        Ok(Err(error)) => Err(error.into()),
    }
}

/// Reads one key of directory `prefix` (`<dir>/`) by `layout`: `None` for keys deeper than
/// one segment, and for unreadable ones (with a warning).
pub(crate) fn parse_kv(
    layout: &srpc_registry_kit::layout::PathLayout,
    prefix: &str,
    kv: &KeyValue,
) -> Option<Url> {
    let key = match std::str::from_utf8(&kv.key) {
        Ok(key) => key,
        Err(_) => {
            warn!(backend = BACKEND, key = ?String::from_utf8_lossy(&kv.key), "skipping a key that is not UTF-8");
            return None;
        }
    };
    let name = key.strip_prefix(prefix)?;
    if name.is_empty() || name.contains('/') {
        return None; // Not a registration of this directory.
    }
    let dir = &prefix[..prefix.len() - 1];
    let value = String::from_utf8_lossy(&kv.value);
    match layout.parse_entry(dir, name, &value) {
        Ok(url) => Some(url),
        Err(error) => {
            warn!(backend = BACKEND, %key, %error, "skipping unreadable key");
            None
        }
    }
}

fn lock(state: &Mutex<DirState>) -> MutexGuard<'_, DirState> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

/// `root` with a trailing `/` (`/` stays `/`).
fn root_prefix(root: &str) -> String {
    if root.ends_with('/') {
        root.to_owned()
    } else {
        format!("{root}/")
    }
}

/// The first path segment of `key` below `prefix` (an interface directory name).
fn first_segment(prefix: &str, key: &[u8]) -> Option<String> {
    let key = std::str::from_utf8(key).ok()?;
    let rest = key.strip_prefix(prefix)?;
    let name = rest.split('/').next()?;
    (!name.is_empty()).then(|| name.to_owned())
}

/// Java's `String.hashCode()`: what Java Dubbo writes as the value of persistent keys.
fn java_hash_code(text: &str) -> i32 {
    text.encode_utf16().fold(0i32, |hash, unit| {
        hash.wrapping_mul(31).wrapping_add(i32::from(unit))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_hash_codes() {
        // Java's String.hashCode() of these strings (s[0]*31^(n-1) + … over UTF-16 units,
        // wrapping at 32 bits), worked out independently of this code.
        assert_eq!(java_hash_code(""), 0);
        assert_eq!(java_hash_code("a"), 97);
        assert_eq!(java_hash_code("/dubbo"), 1_441_505_071);
        assert_eq!(java_hash_code("/dubbo/com.acme.Echo"), -923_091_092);
        assert_eq!(java_hash_code("東京"), 841_051);
    }

    #[test]
    fn segments_under_the_root() {
        assert_eq!(
            first_segment("/dubbo/", b"/dubbo/a.B/providers/x"),
            Some("a.B".into())
        );
        assert_eq!(first_segment("/dubbo/", b"/dubbo/a.B"), Some("a.B".into()));
        assert_eq!(first_segment("/dubbo/", b"/dubbo/"), None);
        assert_eq!(first_segment("/dubbo/", b"/other/a"), None);
        assert_eq!(root_prefix("/"), "/");
        assert_eq!(root_prefix("/dubbo"), "/dubbo/");
    }
}
