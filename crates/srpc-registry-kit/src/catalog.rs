//! [`Catalog`]: the matcher and notifier that turns a backend's raw listings into
//! per-subscription snapshots.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use dubbo_url::{Url, is_match};
use tokio::sync::watch;

use crate::{History, Members, Snapshot};

/// Identifies one subscription inside a [`Catalog`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubscriptionId(u64);

/// Everything a backend currently knows, and the subscriptions that watch it.
///
/// A backend feeds the catalog what it reads from its registry, organised in *scopes* of its
/// own choosing (a ZooKeeper category path, an etcd prefix, one scope for a multicast group).
/// It either replaces a whole scope with a fresh listing ([`Catalog::replace`]) or applies
/// single events ([`Catalog::insert`], [`Catalog::remove`]). The catalog keeps the union of all
/// scopes, and after every change recomputes, for each subscription whose selection changed,
/// the matching set ([`dubbo_url::is_match`]) and publishes one new [`Snapshot`]. Subscriptions
/// whose selection did not change see nothing. `empty://` markers are never stored.
///
/// A snapshot says `connected = true` only when all of these hold: its listing is in
/// ([`Catalog::mark_listed`]); no handle-wide source is down ([`Catalog::set_connected`],
/// [`Catalog::set_source_connected`]); and no scope that feeds its query is stale
/// ([`Catalog::set_scope_connected`], with the feeds declared by [`Catalog::link`]). So one
/// failing watch marks only the subscriptions it feeds. Whatever is down, snapshots keep their
/// URLs (empty protection).
///
/// Every method is synchronous and holds a short lock, so backends may call it from any task
/// or callback.
#[derive(Debug, Default)]
pub struct Catalog {
    state: Mutex<State>,
}

/// The source [`Catalog::set_connected`] reports for: the backend's connection.
const CONNECTION: &str = "connection";

#[derive(Debug, Default)]
struct State {
    scopes: HashMap<String, HashSet<Url>>,
    /// How many scopes hold each URL.
    counts: HashMap<Url, usize>,
    subs: HashMap<SubscriptionId, Sub>,
    next_id: u64,
    /// Handle-wide sources that are down now (the connection, a failing keepalive).
    down: HashSet<String>,
    /// Scopes whose watch is failing: the subscriptions they feed are not connected.
    stale: HashSet<String>,
    /// Which queries each scope feeds.
    links: HashMap<String, HashSet<Url>>,
    closed: bool,
}

#[derive(Debug)]
struct Sub {
    query: Url,
    members: Members,
    listed: bool,
    /// The `connected` flag of the last published snapshot.
    connected: bool,
    revision: u64,
    tx: watch::Sender<Arc<Snapshot>>,
    history: Arc<History>,
}

impl Catalog {
    /// An empty catalog, connected.
    pub fn new() -> Catalog {
        Catalog::default()
    }

    /// Starts a subscription for `query`. Its first snapshot holds what the catalog already
    /// knows; it counts as connected once [`Catalog::mark_listed`] says its listing is in.
    pub fn subscribe(&self, query: Url) -> (SubscriptionId, watch::Receiver<Arc<Snapshot>>) {
        let mut state = self.lock();
        let id = SubscriptionId(state.next_id);
        state.next_id += 1;
        let members: Members = state
            .counts
            .keys()
            .filter(|url| is_match(&query, url))
            .cloned()
            .collect();
        let snapshot = members.snapshot(1, false);
        let (tx, rx) = watch::channel(Arc::new(snapshot));
        if !state.closed {
            state.subs.insert(
                id,
                Sub {
                    query,
                    members,
                    listed: false,
                    connected: false,
                    revision: 1,
                    tx,
                    history: Arc::default(),
                },
            );
        }
        (id, rx)
    }

    /// Where a subscription's every snapshot goes, for [`crate::Subscription::history`].
    pub fn history(&self, id: SubscriptionId) -> Option<Arc<History>> {
        self.lock().subs.get(&id).map(|sub| sub.history.clone())
    }

    /// Ends a subscription: its receivers see the channel close.
    pub fn unsubscribe(&self, id: SubscriptionId) {
        self.lock().subs.remove(&id);
    }

    /// Records whether a subscription's listing has been read from the registry.
    pub fn mark_listed(&self, id: SubscriptionId, listed: bool) {
        let mut state = self.lock();
        if let Some(sub) = state.subs.get_mut(&id) {
            sub.listed = listed;
        }
        state.refresh_connected();
    }

    /// Marks every subscription as needing a fresh listing (after a new session), keeping
    /// their URLs.
    pub fn mark_all_unlisted(&self) {
        let mut state = self.lock();
        for sub in state.subs.values_mut() {
            sub.listed = false;
        }
        state.refresh_connected();
    }

    /// Records whether the backend is connected to its registry. While it is not, every
    /// snapshot keeps its URLs and says `connected = false` (empty protection).
    pub fn set_connected(&self, connected: bool) {
        self.set_source_connected(CONNECTION, connected);
    }

    /// Records whether one handle-wide `source` (such as the keepalive of a registration) is
    /// working. While any source is down, every snapshot says `connected = false`.
    pub fn set_source_connected(&self, source: &str, connected: bool) {
        let mut state = self.lock();
        if mark(&mut state.down, source, !connected) {
            state.refresh_connected();
        }
    }

    /// Records whether the watch behind `scope` is working. While it is not, the
    /// subscriptions whose queries the scope feeds ([`Catalog::link`]) say
    /// `connected = false`, and the others are unaffected.
    pub fn set_scope_connected(&self, scope: &str, connected: bool) {
        let mut state = self.lock();
        if mark(&mut state.stale, scope, !connected) {
            state.refresh_connected();
        }
    }

    /// Declares that `scope` feeds the subscriptions of `query`, so that a stale scope marks
    /// exactly those.
    pub fn link(&self, scope: &str, query: &Url) {
        let mut state = self.lock();
        state
            .links
            .entry(scope.to_owned())
            .or_default()
            .insert(query.clone());
        if state.stale.contains(scope) {
            state.refresh_connected();
        }
    }

    /// Undoes [`Catalog::link`].
    pub fn unlink(&self, scope: &str, query: &Url) {
        let mut state = self.lock();
        if let Some(queries) = state.links.get_mut(scope) {
            queries.remove(query);
            if queries.is_empty() {
                state.links.remove(scope);
            }
        }
        state.refresh_connected();
    }

    /// Whether the backend's connection is up and no handle-wide source is down.
    pub fn is_connected(&self) -> bool {
        self.lock().down.is_empty()
    }

    /// Adds `url` to `scope`.
    pub fn insert(&self, scope: &str, url: Url) {
        self.apply(scope, vec![url], Vec::new(), false);
    }

    /// Removes `url` from `scope`.
    pub fn remove(&self, scope: &str, url: &Url) {
        self.apply(scope, Vec::new(), vec![url.clone()], false);
    }

    /// Adds `added` to `scope` and removes `removed` from it, as one change: subscriptions
    /// see it in one snapshot. A URL must not be in both.
    pub fn update(&self, scope: &str, added: Vec<Url>, removed: Vec<Url>) {
        self.apply(scope, added, removed, false);
    }

    /// Replaces the whole content of `scope` with `urls` (a fresh listing).
    pub fn replace(&self, scope: &str, urls: impl IntoIterator<Item = Url>) {
        self.apply(scope, urls.into_iter().collect(), Vec::new(), true);
    }

    /// Drops a scope and everything only it held, with its stale mark and its links.
    pub fn clear_scope(&self, scope: &str) {
        self.apply(scope, Vec::new(), Vec::new(), true);
        let mut state = self.lock();
        let linked = state.links.remove(scope).is_some();
        if state.stale.remove(scope) || linked {
            state.refresh_connected();
        }
    }

    /// Every URL the catalog holds that `query` selects, sorted by full string.
    pub fn lookup(&self, query: &Url) -> Vec<Url> {
        let mut urls: Vec<Url> = self
            .lock()
            .counts
            .keys()
            .filter(|url| is_match(query, url))
            .cloned()
            .collect();
        urls.sort_unstable_by(|a, b| a.as_full_str().cmp(b.as_full_str()));
        urls
    }

    /// Every URL in `scope`.
    pub fn scope(&self, scope: &str) -> Vec<Url> {
        self.lock()
            .scopes
            .get(scope)
            .map(|set| set.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Closes every subscription and refuses new ones.
    pub fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        state.subs.clear();
    }

    fn apply(&self, scope: &str, added: Vec<Url>, removed: Vec<Url>, replace: bool) {
        let mut guard = self.lock();
        let state = &mut *guard;
        let set = state.scopes.entry(scope.to_owned()).or_default();
        let mut gone: Vec<Url> = Vec::new();
        let mut new: Vec<Url> = Vec::new();
        if replace {
            let fresh: HashSet<Url> = added
                .into_iter()
                .filter(|u| !u.is_empty_protocol())
                .collect();
            // URLs equal apart from `timestamp` count as unchanged. The scope keeps the newest
            // copy, but subscriptions keep the copy they first saw.
            gone.extend(set.iter().filter(|u| !fresh.contains(*u)).cloned());
            new.extend(fresh.iter().filter(|u| !set.contains(*u)).cloned());
            *set = fresh;
        } else {
            for url in removed {
                if set.remove(&url) {
                    gone.push(url);
                }
            }
            for url in added {
                if !url.is_empty_protocol() && set.insert(url.clone()) {
                    new.push(url);
                }
            }
        }
        if set.is_empty() {
            state.scopes.remove(scope);
        }

        // Only URLs whose scope count crosses zero change what subscriptions see.
        let mut appeared = Vec::new();
        let mut vanished = Vec::new();
        for url in gone {
            if let Some(count) = state.counts.get_mut(&url) {
                *count -= 1;
                if *count == 0 {
                    state.counts.remove(&url);
                    vanished.push(url);
                }
            }
        }
        for url in new {
            let count = state.counts.entry(url.clone()).or_insert(0);
            *count += 1;
            if *count == 1 {
                appeared.push(url);
            }
        }
        if appeared.is_empty() && vanished.is_empty() {
            return;
        }
        for sub in state.subs.values_mut() {
            let mut changed = false;
            for url in &vanished {
                changed |= sub.members.remove(url);
            }
            for url in &appeared {
                if is_match(&sub.query, url) {
                    sub.members.replace(url.clone());
                    changed = true;
                }
            }
            if changed {
                let connected = sub.connected;
                sub.publish(connected);
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the maps half-updated in a way that
        // matters more than losing every subscription, so recover the guard.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Puts `name` in `set` or takes it out; whether that changed anything.
fn mark(set: &mut HashSet<String>, name: &str, present: bool) -> bool {
    if present {
        set.insert(name.to_owned())
    } else {
        set.remove(name)
    }
}

impl State {
    /// Recomputes every subscription's `connected` flag and publishes where it changed.
    fn refresh_connected(&mut self) {
        let State {
            subs,
            down,
            stale,
            links,
            ..
        } = self;
        for sub in subs.values_mut() {
            let fed_by_stale = stale.iter().any(|scope| {
                links
                    .get(scope)
                    .is_some_and(|queries| queries.contains(&sub.query))
            });
            let connected = sub.listed && down.is_empty() && !fed_by_stale;
            if connected != sub.connected {
                sub.publish(connected);
            }
        }
    }
}

impl Drop for Sub {
    fn drop(&mut self) {
        // Ends the history streams with the subscription.
        self.history.end();
    }
}

impl Sub {
    fn publish(&mut self, connected: bool) {
        self.revision += 1;
        self.connected = connected;
        let snapshot = Arc::new(self.members.snapshot(self.revision, connected));
        self.history.publish(&snapshot);
        self.tx.send_replace(snapshot);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn subscription_sees_matching_inserts_and_removes_only() {
        let catalog = Catalog::new();
        let (id, rx) = catalog.subscribe(url("consumer://c/a.B"));
        catalog.mark_listed(id, true);
        let rev = rx.borrow().revision();
        catalog.insert("s", url("dubbo://h:1/a.C"));
        assert_eq!(
            rx.borrow().revision(),
            rev,
            "non-matching insert must not publish"
        );
        catalog.insert("s", url("dubbo://h:1/a.B"));
        assert_eq!(rx.borrow().providers(), [url("dubbo://h:1/a.B")]);
        assert!(rx.borrow().is_connected());
        catalog.remove("s", &url("dubbo://h:1/a.B"));
        assert!(rx.borrow().is_empty());
    }

    #[test]
    fn replace_diffs_and_scopes_union() {
        let catalog = Catalog::new();
        let (_, rx) = catalog.subscribe(url("consumer://c/a.B"));
        catalog.replace("x", [url("dubbo://h:1/a.B"), url("dubbo://h:2/a.B")]);
        catalog.replace("y", [url("dubbo://h:2/a.B")]);
        assert_eq!(rx.borrow().len(), 2);
        catalog.replace("x", [url("dubbo://h:3/a.B")]);
        let ports: Vec<u16> = rx.borrow().urls().map(Url::port).collect();
        assert_eq!(ports, [2, 3], "h:2 is still held by scope y");
        catalog.clear_scope("y");
        assert_eq!(rx.borrow().len(), 1);
    }

    #[test]
    fn disconnect_keeps_urls_and_clears_connected() {
        let catalog = Catalog::new();
        let (id, rx) = catalog.subscribe(url("consumer://c/a.B"));
        catalog.mark_listed(id, true);
        catalog.insert("s", url("dubbo://h:1/a.B"));
        catalog.set_connected(false);
        assert!(!rx.borrow().is_connected());
        assert_eq!(rx.borrow().len(), 1);
        catalog.set_connected(true);
        assert!(rx.borrow().is_connected());
    }

    #[test]
    fn a_stale_scope_marks_only_the_subscriptions_it_feeds() {
        let catalog = Catalog::new();
        let (qa, qb) = (url("consumer://c/a.A"), url("consumer://c/a.B"));
        let (a, rx_a) = catalog.subscribe(qa.clone());
        let (b, rx_b) = catalog.subscribe(qb.clone());
        catalog.mark_listed(a, true);
        catalog.mark_listed(b, true);
        catalog.link("dir-a", &qa);
        catalog.link("dir-b", &qb);
        catalog.insert("dir-a", url("dubbo://h:1/a.A"));
        catalog.set_scope_connected("dir-a", false);
        assert!(!rx_a.borrow().is_connected());
        assert_eq!(rx_a.borrow().len(), 1, "a stale scope keeps its URLs");
        assert!(rx_b.borrow().is_connected(), "b is fed by another scope");
        catalog.set_scope_connected("dir-a", true);
        assert!(rx_a.borrow().is_connected());
        // Dropping the scope drops its stale mark too.
        catalog.set_scope_connected("dir-a", false);
        catalog.clear_scope("dir-a");
        assert!(rx_a.borrow().is_connected() && rx_a.borrow().is_empty());
    }

    #[test]
    fn every_handle_wide_source_must_be_up() {
        let catalog = Catalog::new();
        let (id, rx) = catalog.subscribe(url("consumer://c/a.B"));
        catalog.mark_listed(id, true);
        catalog.set_connected(false);
        catalog.set_source_connected("keepalive", false);
        catalog.set_connected(true);
        assert!(!rx.borrow().is_connected(), "the keepalive is still down");
        assert!(!catalog.is_connected());
        catalog.set_source_connected("keepalive", true);
        assert!(rx.borrow().is_connected());
    }

    #[test]
    fn connectivity_changes_publish_only_when_the_flag_changes() {
        let catalog = Catalog::new();
        let (id, rx) = catalog.subscribe(url("consumer://c/a.B"));
        catalog.mark_listed(id, true);
        let revision = rx.borrow().revision();
        catalog.set_connected(true);
        catalog.set_scope_connected("unlinked", false);
        assert_eq!(rx.borrow().revision(), revision);
    }

    #[test]
    fn empty_markers_are_not_stored_and_first_snapshot_has_known_urls() {
        let catalog = Catalog::new();
        catalog.insert("s", url("empty://h/a.B?category=providers"));
        catalog.insert("s", url("dubbo://h:1/a.B?category=routers"));
        let (_, rx) = catalog.subscribe(url("consumer://c/a.B?category=providers,routers"));
        assert_eq!(rx.borrow().category("routers").len(), 1);
        assert!(rx.borrow().providers().is_empty());
        assert_eq!(rx.borrow().revision(), 1);
    }

    #[test]
    fn close_ends_subscriptions() {
        let catalog = Catalog::new();
        let (_, rx) = catalog.subscribe(url("consumer://c/a.B"));
        catalog.close();
        assert!(rx.has_changed().is_err());
        let (_, rx2) = catalog.subscribe(url("consumer://c/a.B"));
        assert!(
            rx2.has_changed().is_err(),
            "a closed catalog refuses new subscriptions"
        );
    }
}
