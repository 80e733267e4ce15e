//! [`Catalog`]: the matcher and notifier that turns a backend's raw listings into
//! per-subscription snapshots.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use dubbo_url::{Url, is_match};
use tokio::sync::watch;

use crate::snapshot::Snapshot;

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
/// Every method is synchronous and holds a short lock, so backends may call it from any task
/// or callback.
#[derive(Debug, Default)]
pub struct Catalog {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    scopes: HashMap<String, HashSet<Url>>,
    /// How many scopes hold each URL.
    counts: HashMap<Url, usize>,
    subs: HashMap<SubscriptionId, Sub>,
    next_id: u64,
    disconnected: bool,
    closed: bool,
}

#[derive(Debug)]
struct Sub {
    query: Url,
    members: HashSet<Url>,
    listed: bool,
    revision: u64,
    tx: watch::Sender<Arc<Snapshot>>,
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
        let members: HashSet<Url> = state
            .counts
            .keys()
            .filter(|url| is_match(&query, url))
            .cloned()
            .collect();
        let snapshot = Snapshot::build(1, false, members.iter().cloned());
        let (tx, rx) = watch::channel(Arc::new(snapshot));
        if !state.closed {
            state.subs.insert(
                id,
                Sub {
                    query,
                    members,
                    listed: false,
                    revision: 1,
                    tx,
                },
            );
        }
        (id, rx)
    }

    /// Ends a subscription: its receivers see the channel close.
    pub fn unsubscribe(&self, id: SubscriptionId) {
        self.lock().subs.remove(&id);
    }

    /// Records whether a subscription's listing has been read from the registry.
    pub fn mark_listed(&self, id: SubscriptionId, listed: bool) {
        let mut state = self.lock();
        let connected = !state.disconnected;
        if let Some(sub) = state.subs.get_mut(&id) {
            if sub.listed != listed {
                sub.listed = listed;
                sub.publish(connected);
            }
        }
    }

    /// Marks every subscription as needing a fresh listing (after a new session), keeping
    /// their URLs.
    pub fn mark_all_unlisted(&self) {
        let mut state = self.lock();
        let connected = !state.disconnected;
        for sub in state.subs.values_mut() {
            if sub.listed {
                sub.listed = false;
                sub.publish(connected);
            }
        }
    }

    /// Records whether the backend is connected to its registry. While it is not, every
    /// snapshot keeps its URLs and says `connected = false` (empty protection).
    pub fn set_connected(&self, connected: bool) {
        let mut state = self.lock();
        if state.disconnected != connected {
            return;
        }
        state.disconnected = !connected;
        for sub in state.subs.values_mut() {
            sub.publish(connected);
        }
    }

    /// Whether the backend last said it is connected.
    pub fn is_connected(&self) -> bool {
        !self.lock().disconnected
    }

    /// Adds `url` to `scope`.
    pub fn insert(&self, scope: &str, url: Url) {
        self.apply(scope, vec![url], Vec::new(), false);
    }

    /// Removes `url` from `scope`.
    pub fn remove(&self, scope: &str, url: &Url) {
        self.apply(scope, Vec::new(), vec![url.clone()], false);
    }

    /// Replaces the whole content of `scope` with `urls` (a fresh listing).
    pub fn replace(&self, scope: &str, urls: impl IntoIterator<Item = Url>) {
        self.apply(scope, urls.into_iter().collect(), Vec::new(), true);
    }

    /// Drops a scope and everything only it held.
    pub fn clear_scope(&self, scope: &str) {
        self.apply(scope, Vec::new(), Vec::new(), true);
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
        urls.sort_by_cached_key(Url::to_full_string);
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
        let connected = !state.disconnected;
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

impl Sub {
    fn publish(&mut self, connected: bool) {
        self.revision += 1;
        let snapshot = Snapshot::build(
            self.revision,
            connected && self.listed,
            self.members.iter().cloned(),
        );
        self.tx.send_replace(Arc::new(snapshot));
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
