//! [`Subscription`]: the latest state of a query, never a lossy queue.

use std::collections::{HashSet, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dubbo_url::Url;
use futures_util::Stream;
use futures_util::future::BoxFuture;
use tokio::sync::{mpsc, watch};

use crate::error::{Error, Result};
use crate::hint::Elsewhere;
use crate::snapshot::{Change, Snapshot};

/// A read of what a registry holds that a query selects ([`Registry::lookup`]): the source of
/// [`Subscription::elsewhere`].
///
/// [`Registry::lookup`]: crate::Registry::lookup
pub type Lookup = Arc<dyn Fn(Url) -> BoxFuture<'static, Result<Vec<Url>>> + Send + Sync>;

/// How long [`Subscription::elsewhere`] waits for the registry's answer.
const ELSEWHERE_WAIT: Duration = Duration::from_secs(2);

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
    history: Option<Arc<History>>,
    lookup: Option<Lookup>,
    _guard: Arc<dyn Send + Sync>,
}

/// The readers of [`Subscription::history`] for one subscription: whoever publishes its
/// snapshots (the kit's catalog) hands each one to [`History::publish`] too.
#[derive(Debug, Default)]
pub struct History {
    readers: Mutex<Vec<mpsc::UnboundedSender<Arc<Snapshot>>>>,
}

impl History {
    /// No reader yet.
    pub fn new() -> History {
        History::default()
    }

    /// Hands `snapshot` to every reader, forgetting those that went away.
    pub fn publish(&self, snapshot: &Arc<Snapshot>) {
        let mut readers = self.readers();
        if !readers.is_empty() {
            readers.retain(|reader| reader.send(snapshot.clone()).is_ok());
        }
    }

    /// Ends every reader's stream: the subscription is over.
    pub fn end(&self) {
        self.readers().clear();
    }

    fn readers(&self) -> std::sync::MutexGuard<'_, Vec<mpsc::UnboundedSender<Arc<Snapshot>>>> {
        self.readers.lock().unwrap_or_else(|p| p.into_inner())
    }
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
            history: None,
            lookup: None,
            _guard: guard,
        }
    }

    /// Lets [`Subscription::history`] receive every snapshot the source publishes through
    /// `history`.
    pub fn with_history(mut self, history: Arc<History>) -> Subscription {
        self.history = Some(history);
        self
    }

    /// Lets [`Subscription::elsewhere`] ask the registry what else the interface has.
    pub fn with_lookup(mut self, lookup: Lookup) -> Subscription {
        self.lookup = Some(lookup);
        self
    }

    /// What the registry holds of this query's interface that the query does not select:
    /// providers of other groups or versions, disabled ones. One read of the registry (of
    /// every group and version of the interface; nothing is written), given up after 2 s;
    /// `None` when there is nothing of the kind, the read failed, or the subscription did
    /// not come from a registry ([`Subscription::fixed`]).
    ///
    /// ```
    /// # async fn demo(sub: &srpc_registry::Subscription) {
    /// if sub.snapshot().providers().is_empty() {
    ///     if let Some(hint) = sub.elsewhere().await {
    ///         eprintln!("no provider; {hint}");
    ///     }
    /// }
    /// # }
    /// ```
    pub async fn elsewhere(&self) -> Option<Elsewhere> {
        let lookup = self.lookup.as_ref()?;
        let read = lookup(Elsewhere::widened(&self.query));
        let known = tokio::time::timeout(ELSEWHERE_WAIT, read)
            .await
            .ok()?
            .ok()?;
        Elsewhere::of(&self.query, &known)
    }

    /// A subscription whose content never changes, e.g. for a fixed list of providers.
    pub fn fixed(query: Url, urls: impl IntoIterator<Item = Url>) -> Subscription {
        let (tx, rx) = watch::channel(Arc::new(Snapshot::new(1, true, urls)));
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
        if let Some(history) = &self.history {
            history.readers().push(tx);
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
            Err(_) => {
                let last = self.snapshot();
                let elsewhere = if last.providers().is_empty() {
                    self.elsewhere().await
                } else {
                    None
                };
                let hint = elsewhere.map(|h| format!("; {h}")).unwrap_or_default();
                Err(Error::Timeout {
                    backend: "subscription",
                    doing: format!(
                        "waiting for a snapshot of {} (last: {}){hint}",
                        self.query,
                        summary(&last)
                    ),
                    after: deadline,
                })
            }
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

/// A snapshot in a line of bounded length: its revision, whether connected, and its URLs
/// when there are few of them, else their number by category.
fn summary(snapshot: &Snapshot) -> String {
    const LISTED: usize = 3;
    let state = if snapshot.is_connected() {
        "connected"
    } else {
        "not connected"
    };
    let urls = if snapshot.len() <= LISTED {
        let all: Vec<String> = snapshot.urls().map(|u| u.to_string()).collect();
        format!("[{}]", all.join(", "))
    } else {
        let counts: Vec<String> = snapshot
            .categories()
            .map(|(category, urls)| format!("{} {category}", urls.len()))
            .collect();
        counts.join(", ")
    };
    format!("revision {}, {state}, {urls}", snapshot.revision())
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

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    /// A subscription fed by hand, as a backend's source would feed it: publish a snapshot
    /// with `send`, end the subscription by dropping the sender.
    fn fed(urls: &[&str]) -> (watch::Sender<Arc<Snapshot>>, Subscription) {
        let first = Snapshot::new(1, true, urls.iter().map(|u| url(u)));
        let (tx, rx) = watch::channel(Arc::new(first));
        let sub = Subscription::new(url("consumer://c/a.B"), rx, Arc::new(()));
        (tx, sub)
    }

    fn publish(tx: &watch::Sender<Arc<Snapshot>>, connected: bool, urls: &[&str]) {
        let revision = tx.borrow().revision() + 1;
        tx.send_replace(Arc::new(Snapshot::new(
            revision,
            connected,
            urls.iter().map(|u| url(u)),
        )));
    }

    #[tokio::test]
    async fn changes_are_derived_by_diffing() {
        let (tx, sub) = fed(&["dubbo://h:1/a.B"]);
        let mut changes = Box::pin(sub.changes());
        assert_eq!(
            changes.next().await,
            Some(Change::Insert(url("dubbo://h:1/a.B")))
        );
        publish(&tx, true, &["dubbo://h:2/a.B"]);
        assert_eq!(
            changes.next().await,
            Some(Change::Remove(url("dubbo://h:1/a.B")))
        );
        assert_eq!(
            changes.next().await,
            Some(Change::Insert(url("dubbo://h:2/a.B")))
        );
        drop(tx);
        assert_eq!(changes.next().await, None);
    }

    #[tokio::test]
    async fn losing_and_regaining_the_registry_are_changes_too() {
        let (tx, sub) = fed(&["dubbo://h:1/a.B"]);
        let mut changes = Box::pin(sub.changes());
        assert_eq!(
            changes.next().await,
            Some(Change::Insert(url("dubbo://h:1/a.B"))),
            "no Connected(true) for a first snapshot that is connected"
        );
        publish(&tx, false, &["dubbo://h:1/a.B"]);
        assert_eq!(changes.next().await, Some(Change::Connected(false)));
        publish(&tx, false, &["dubbo://h:2/a.B"]);
        publish(&tx, true, &["dubbo://h:2/a.B"]);
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
        let (tx, mut sub) = fed(&[]);
        let mut urls = Vec::new();
        for port in 1..=100 {
            urls.push(format!("dubbo://h:{port}/a.B"));
            let now: Vec<&str> = urls.iter().map(String::as_str).collect();
            publish(&tx, true, &now);
        }
        let snapshot = sub.changed().await.unwrap();
        assert_eq!(snapshot.len(), 100, "one wake-up carries the whole burst");
    }

    #[tokio::test]
    async fn history_gets_every_published_snapshot_and_ends_with_it() {
        let (_tx, sub) = fed(&[]);
        let history = Arc::new(History::new());
        let sub = sub.with_history(history.clone());
        let mut seen = sub.history();
        for revision in 2..=4 {
            history.publish(&Arc::new(Snapshot::new(revision, true, [])));
        }
        for revision in 2..=4 {
            assert_eq!(seen.recv().await.unwrap().revision(), revision);
        }
        history.end();
        assert!(seen.recv().await.is_none());
        assert!(
            Subscription::fixed(url("consumer://c/a.B"), [])
                .history()
                .recv()
                .await
                .is_none(),
            "a subscription without a history source ends it at once"
        );
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

    #[tokio::test(start_paused = true)]
    async fn a_query_that_finds_nothing_says_what_the_interface_has() {
        let held = [
            url("dubbo://h:1/a.B?version=2.0"),
            url("dubbo://h:2/a.B?version=1.0&enabled=false"),
        ];
        let lookup: Lookup = Arc::new(move |query: Url| {
            let found = held
                .iter()
                .filter(|u| dubbo_url::is_match(&query, u))
                .cloned()
                .collect();
            Box::pin(async move { Ok(found) })
        });
        let sub = Subscription::fixed(url("consumer://c/a.B?version=1.0"), []).with_lookup(lookup);
        let hint = sub.elsewhere().await.unwrap();
        assert_eq!((hint.unselected, hint.disabled), (1, 1));
        let err = sub
            .clone()
            .wait_for(|s| !s.providers().is_empty(), Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains(
                "the interface a.B has 2 provider(s): 1 in other groups or versions (a.B:2.0), \
                 1 disabled (enabled=false)"
            ),
            "{err}"
        );
        // Without a source of what else is held, nothing is claimed.
        let plain = Subscription::fixed(url("consumer://c/a.B?version=1.0"), []);
        assert_eq!(plain.elsewhere().await, None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_timeout_message_stays_short_whatever_the_snapshot_holds() {
        let many = (1..=1000).map(|port| url(&format!("dubbo://h:{port}/a.B")));
        let sub = Subscription::fixed(url("consumer://c/a.B"), many);
        let err = sub
            .clone()
            .wait_for(|s| s.len() > 1000, Duration::from_secs(1))
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("1000 providers"), "{text}");
        assert!(text.len() < 300, "{text}");
    }
}
