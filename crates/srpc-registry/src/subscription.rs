//! [`Subscription`]: the latest state of a query, never a lossy queue.

use std::collections::{HashSet, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use dubbo_url::Url;
use futures_util::Stream;
use tokio::sync::{mpsc, watch};

use crate::catalog::Taps;
use crate::error::{Error, Result};
use crate::snapshot::{Change, Snapshot};

/// A live view of what a query selects.
///
/// It holds the newest [`Snapshot`] only: bursts of changes coalesce, a slow reader always gets
/// the latest state, and nothing is lost because nothing is queued. [`Subscription::changes`]
/// derives a stream of inserts and removals by diffing snapshots.
///
/// Clones share the subscription; when the last clone is dropped the registry stops
/// updating it.
#[derive(Clone)]
pub struct Subscription {
    query: Url,
    rx: watch::Receiver<Arc<Snapshot>>,
    taps: Option<Arc<Taps>>,
    _guard: Arc<dyn Send + Sync>,
}

impl Subscription {
    /// Wraps a snapshot channel. `guard` is dropped with the last clone; backends use it to
    /// unsubscribe.
    pub fn new(
        query: Url,
        rx: watch::Receiver<Arc<Snapshot>>,
        guard: Arc<dyn Send + Sync>,
    ) -> Subscription {
        Subscription {
            query,
            rx,
            taps: None,
            _guard: guard,
        }
    }

    /// Lets [`Subscription::history`] receive what the catalog publishes.
    pub(crate) fn with_taps(mut self, taps: Option<Arc<Taps>>) -> Subscription {
        self.taps = taps;
        self
    }

    /// A subscription whose content never changes, e.g. for a fixed list of providers.
    pub fn fixed(query: Url, urls: impl IntoIterator<Item = Url>) -> Subscription {
        let (tx, rx) = watch::channel(Arc::new(Snapshot::build(1, true, urls)));
        // Keep the sender alive as long as the subscription so `changed` waits instead of failing.
        Subscription::new(query, rx, Arc::new(tx))
    }

    /// The query this subscription watches.
    pub fn query(&self) -> &Url {
        &self.query
    }

    /// The newest snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.rx.borrow().clone()
    }

    /// A receiver of the underlying channel, for `tokio::select!` and friends. It reports the
    /// channel closed once the subscription ended.
    pub fn watch(&self) -> watch::Receiver<Arc<Snapshot>> {
        let mut rx = self.rx.clone();
        rx.mark_unchanged();
        rx
    }

    /// Every snapshot published from now on, in order and none coalesced — unlike
    /// [`Subscription::changed`], which skips to the newest. For audits and tests that must
    /// see each intermediate state (for example, that no empty snapshot was ever published
    /// during an outage). The stream ends when the subscription does; a reader that falls
    /// behind makes it grow, so read it or drop it. Subscriptions that do not come from a
    /// catalog ([`Subscription::fixed`], custom backends) end it at once.
    pub fn history(&self) -> mpsc::UnboundedReceiver<Arc<Snapshot>> {
        let (tx, rx) = mpsc::unbounded_channel();
        if let Some(taps) = &self.taps {
            taps.lock().unwrap_or_else(|p| p.into_inner()).push(tx);
        }
        rx
    }

    /// Waits for a snapshot newer than the last one this handle returned, and returns it.
    ///
    /// Fails with [`Error::Closed`] once the registry is closed.
    pub async fn changed(&mut self) -> Result<Arc<Snapshot>> {
        self.rx.changed().await.map_err(|_| Error::Closed)?;
        Ok(self.rx.borrow_and_update().clone())
    }

    /// Waits until a snapshot satisfies `predicate`, for at most `deadline`.
    ///
    /// ```
    /// # async fn demo(mut sub: srpc_registry::Subscription) -> srpc_registry::Result<()> {
    /// use std::time::Duration;
    /// let snapshot = sub.wait_for(|s| s.providers().len() >= 2, Duration::from_secs(5)).await?;
    /// # Ok(()) }
    /// ```
    pub async fn wait_for(
        &mut self,
        mut predicate: impl FnMut(&Snapshot) -> bool,
        deadline: Duration,
    ) -> Result<Arc<Snapshot>> {
        let wait = self.rx.wait_for(|snapshot| predicate(snapshot));
        // Turn the borrowed snapshot into an owned Arc before the borrow of `self.rx` ends.
        let outcome = tokio::time::timeout(deadline, wait)
            .await
            .map(|found| found.map(|snapshot| snapshot.clone()));
        match outcome {
            Ok(Ok(snapshot)) => Ok(snapshot),
            Ok(Err(_)) => Err(Error::Closed),
            Err(_) => Err(Error::Timeout {
                backend: "subscription",
                doing: format!(
                    "waiting for a snapshot of {} (last: {:?})",
                    self.query,
                    self.snapshot()
                ),
                after: deadline,
            }),
        }
    }

    /// The changes of this subscription as a stream: first an [`Change::Insert`] for every URL
    /// already present, then inserts and removals as snapshots change, and
    /// [`Change::Connected`] when the registry is lost (before that snapshot's changes) or
    /// back (after them). The stream ends when the subscription is closed. It keeps the
    /// subscription alive.
    pub fn changes(self) -> impl Stream<Item = Change> + Send + 'static {
        struct State {
            sub: Subscription,
            seen: HashSet<Url>,
            pending: VecDeque<Change>,
            first: bool,
            connected: bool,
        }
        let state = State {
            sub: self,
            seen: HashSet::new(),
            pending: VecDeque::new(),
            first: true,
            connected: true,
        };
        futures_util::stream::unfold(state, |mut state| async move {
            loop {
                if let Some(change) = state.pending.pop_front() {
                    return Some((change, state));
                }
                let snapshot = if state.first {
                    state.first = false;
                    state.sub.rx.borrow_and_update().clone()
                } else {
                    state.sub.changed().await.ok()?
                };
                let now: HashSet<Url> = snapshot.urls().cloned().collect();
                let mut removed: Vec<&Url> = state.seen.difference(&now).collect();
                let mut inserted: Vec<&Url> = now.difference(&state.seen).collect();
                removed.sort_unstable_by(|a, b| a.as_full_str().cmp(b.as_full_str()));
                inserted.sort_unstable_by(|a, b| a.as_full_str().cmp(b.as_full_str()));
                let removed: Vec<Change> =
                    removed.into_iter().cloned().map(Change::Remove).collect();
                let inserted: Vec<Change> =
                    inserted.into_iter().cloned().map(Change::Insert).collect();
                if !snapshot.is_connected() && state.connected {
                    state.connected = false;
                    state.pending.push_back(Change::Connected(false));
                }
                state.pending.extend(removed);
                state.pending.extend(inserted);
                if snapshot.is_connected() && !state.connected {
                    state.connected = true;
                    state.pending.push_back(Change::Connected(true));
                }
                state.seen = now;
            }
        })
    }
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("query", &self.query)
            .field("snapshot", &self.rx.borrow())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;

    use super::*;
    use crate::catalog::Catalog;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[tokio::test]
    async fn changes_are_derived_by_diffing() {
        let catalog = Arc::new(Catalog::new());
        catalog.insert("s", url("dubbo://h:1/a.B"));
        let (id, rx) = catalog.subscribe(url("consumer://c/a.B"));
        catalog.mark_listed(id, true);
        let sub = Subscription::new(url("consumer://c/a.B"), rx, catalog.clone());
        let mut changes = Box::pin(sub.changes());
        assert_eq!(
            changes.next().await,
            Some(Change::Insert(url("dubbo://h:1/a.B")))
        );
        catalog.replace("s", [url("dubbo://h:2/a.B")]);
        assert_eq!(
            changes.next().await,
            Some(Change::Remove(url("dubbo://h:1/a.B")))
        );
        assert_eq!(
            changes.next().await,
            Some(Change::Insert(url("dubbo://h:2/a.B")))
        );
        catalog.close();
        assert_eq!(changes.next().await, None);
    }

    #[tokio::test]
    async fn losing_and_regaining_the_registry_are_changes_too() {
        let catalog = Arc::new(Catalog::new());
        catalog.insert("s", url("dubbo://h:1/a.B"));
        let (id, rx) = catalog.subscribe(url("consumer://c/a.B"));
        catalog.mark_listed(id, true);
        let sub = Subscription::new(url("consumer://c/a.B"), rx, catalog.clone());
        let mut changes = Box::pin(sub.changes());
        assert_eq!(
            changes.next().await,
            Some(Change::Insert(url("dubbo://h:1/a.B"))),
            "no Connected(true) for a first snapshot that is connected"
        );
        catalog.set_connected(false);
        assert_eq!(changes.next().await, Some(Change::Connected(false)));
        catalog.replace("s", [url("dubbo://h:2/a.B")]);
        catalog.set_connected(true);
        let mut rest = Vec::new();
        while rest.last() != Some(&Change::Connected(true)) {
            rest.push(changes.next().await.unwrap());
        }
        assert_eq!(
            rest,
            [
                Change::Remove(url("dubbo://h:1/a.B")),
                Change::Insert(url("dubbo://h:2/a.B")),
                Change::Connected(true)
            ]
        );
    }

    #[tokio::test]
    async fn a_slow_reader_gets_the_latest_state() {
        let catalog = Arc::new(Catalog::new());
        let (_, rx) = catalog.subscribe(url("consumer://c/a.B"));
        let mut sub = Subscription::new(url("consumer://c/a.B"), rx, catalog.clone());
        for port in 1..=100 {
            catalog.insert("s", url(&format!("dubbo://h:{port}/a.B")));
        }
        let snapshot = sub.changed().await.unwrap();
        assert_eq!(snapshot.len(), 100, "one wake-up carries the whole burst");
    }

    #[tokio::test(start_paused = true)]
    async fn wait_for_times_out_with_the_last_state() {
        let sub = Subscription::fixed(url("consumer://c/a.B"), [url("dubbo://h:1/a.B")]);
        let err = sub
            .clone()
            .wait_for(|s| s.len() == 2, Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Timeout { .. }), "{err}");
        assert!(err.to_string().contains("a.B"), "{err}");
        let ok = sub
            .clone()
            .wait_for(|s| s.len() == 1, Duration::from_secs(1))
            .await
            .unwrap();
        assert_eq!(ok.len(), 1);
    }
}
