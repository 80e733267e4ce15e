//! [`Snapshot`]: the immutable state a subscription sees, and [`Change`], a difference of two.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, HashSet};

use dubbo_url::Url;

/// The full set of URLs a subscription selects at one moment, grouped by category.
///
/// Snapshots are immutable and shared (`Arc<Snapshot>`); every change in the registry produces
/// a new one with a higher [`revision`](Snapshot::revision). Within a category URLs are sorted
/// by their full string, so two snapshots with the same content compare equal.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub(crate) revision: u64,
    pub(crate) connected: bool,
    pub(crate) categories: BTreeMap<String, Vec<Url>>,
}

/// Where a full string's `timestamp` value begins.
const TIMESTAMP_IS: &str = "timestamp=";

/// The URLs one subscription selects, kept in snapshot order as they change, so that
/// publishing a snapshot copies them (one reference count each) instead of sorting them: a
/// change to a subscription of 10 000 providers costs a copy, not 10 000 × log 10 000 string
/// comparisons.
///
/// A backend that publishes its own snapshots (the kit's catalog does) keeps one per
/// subscription and calls [`Members::snapshot`] after each change.
#[derive(Debug, Default)]
pub struct Members {
    /// By [`Url`]'s equality (which ignores `timestamp`): what is a member.
    set: HashSet<Url>,
    /// The same URLs by category, each sorted by full string.
    ordered: BTreeMap<String, BTreeSet<ByFullString>>,
}

impl Members {
    /// Adds `url`, replacing an equal member (one that differs in `timestamp` only).
    pub fn replace(&mut self, url: Url) {
        if let Some(old) = self.set.replace(url.clone()) {
            self.forget(old);
        }
        match self.ordered.get_mut(url.category()) {
            Some(urls) => {
                urls.insert(ByFullString(url));
            }
            None => {
                let category = url.category().to_owned();
                self.ordered
                    .insert(category, BTreeSet::from([ByFullString(url)]));
            }
        }
    }

    /// Removes the member equal to `url`; whether there was one.
    pub fn remove(&mut self, url: &Url) -> bool {
        match self.set.take(url) {
            Some(old) => {
                self.forget(old);
                true
            }
            None => false,
        }
    }

    fn forget(&mut self, old: Url) {
        if let Some(urls) = self.ordered.get_mut(old.category()) {
            urls.remove(&ByFullString(old.clone()));
            if urls.is_empty() {
                self.ordered.remove(old.category());
            }
        }
    }

    /// The snapshot of the members now.
    pub fn snapshot(&self, revision: u64, connected: bool) -> Snapshot {
        let categories = self
            .ordered
            .iter()
            .map(|(category, urls)| (category.clone(), urls.iter().map(|u| u.0.clone()).collect()))
            .collect();
        Snapshot {
            revision,
            connected,
            categories,
        }
    }
}

impl FromIterator<Url> for Members {
    fn from_iter<I: IntoIterator<Item = Url>>(urls: I) -> Members {
        let mut members = Members::default();
        for url in urls {
            members.replace(url);
        }
        members
    }
}

/// A URL ordered by its full string, as snapshots list a category.
#[derive(Debug)]
struct ByFullString(Url);

impl Ord for ByFullString {
    fn cmp(&self, other: &ByFullString) -> Ordering {
        self.0.as_full_str().cmp(other.0.as_full_str())
    }
}

impl PartialOrd for ByFullString {
    fn partial_cmp(&self, other: &ByFullString) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for ByFullString {
    fn eq(&self, other: &ByFullString) -> bool {
        self.0.as_full_str() == other.0.as_full_str()
    }
}

impl Eq for ByFullString {}

/// One difference between two snapshots, as a `tower::discover::Change` carries it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Change {
    /// The URL appeared.
    Insert(Url),
    /// The URL went away.
    Remove(Url),
    /// The subscription lost (`false`) or regained (`true`) its registry: the URLs are kept
    /// meanwhile, as the last ones known. Not emitted for a first snapshot that is connected.
    Connected(bool),
}

impl Snapshot {
    /// A snapshot of `urls` at `revision`: grouped by category, each sorted by full string.
    pub fn new(revision: u64, connected: bool, urls: impl IntoIterator<Item = Url>) -> Snapshot {
        let mut categories: BTreeMap<String, Vec<Url>> = BTreeMap::new();
        for url in urls {
            match categories.get_mut(url.category()) {
                Some(list) => list.push(url),
                None => {
                    categories.insert(url.category().to_owned(), vec![url]);
                }
            }
        }
        for urls in categories.values_mut() {
            // The full strings are made once per URL and shared: no formatting per build.
            urls.sort_unstable_by(|a, b| a.as_full_str().cmp(b.as_full_str()));
        }
        Snapshot {
            revision,
            connected,
            categories,
        }
    }

    /// Increases with every published change, starting at 1 for the first snapshot.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// Whether this snapshot reflects a live listing. `false` while the backend has lost its
    /// registry (or has not listed yet): the URLs are then the last known ones, never emptied
    /// because of the outage.
    pub fn is_connected(&self) -> bool {
        self.connected
    }

    /// The URLs of category `providers`.
    pub fn providers(&self) -> &[Url] {
        self.category(dubbo_url::DEFAULT_CATEGORY)
    }

    /// The URLs of one category (empty when there are none).
    pub fn category(&self, category: &str) -> &[Url] {
        self.categories.get(category).map_or(&[], Vec::as_slice)
    }

    /// The categories with at least one URL, with their URLs.
    pub fn categories(&self) -> impl Iterator<Item = (&str, &[Url])> {
        self.categories
            .iter()
            .map(|(c, urls)| (c.as_str(), urls.as_slice()))
    }

    /// Every URL of every category.
    pub fn urls(&self) -> impl Iterator<Item = &Url> {
        self.categories.values().flatten()
    }

    /// How many URLs, over all categories.
    pub fn len(&self) -> usize {
        self.categories.values().map(Vec::len).sum()
    }

    /// Whether no URL is selected.
    pub fn is_empty(&self) -> bool {
        self.categories.is_empty()
    }

    /// Whether `url` is selected (timestamp values ignored, as in URL equality).
    ///
    /// A binary search, not a scan: URLs equal to `url` differ from it at most in the value
    /// of `timestamp`, so their full strings (by which a category is sorted) share all of
    /// `url`'s up to its first `timestamp=`, and only the few URLs with that prefix are
    /// compared.
    pub fn contains(&self, url: &Url) -> bool {
        let urls = self.category(url.category());
        let full = url.as_full_str();
        let prefix = match full.find(TIMESTAMP_IS) {
            Some(at) => &full[..at + TIMESTAMP_IS.len()],
            // No timestamp: only the same full string is equal.
            None => full,
        };
        let start = urls.partition_point(|u| u.as_full_str() < prefix);
        urls[start..]
            .iter()
            .take_while(|u| u.as_full_str().starts_with(prefix))
            .any(|u| u == url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn members_publish_what_a_sorted_build_would() {
        let urls = [
            "dubbo://h:3/a.B",
            "dubbo://h:1/a.B?category=routers",
            "dubbo://h:2/a.B",
            "dubbo://h:10/a.B",
            "dubbo://h:1/a.B?category=configurators",
            "dubbo://h:1/a.B",
        ]
        .map(url);
        let mut members: Members = urls.iter().cloned().collect();
        assert_eq!(
            members.snapshot(7, true),
            Snapshot::new(7, true, urls.iter().cloned())
        );
        assert!(members.remove(&url("dubbo://h:2/a.B")));
        assert!(!members.remove(&url("dubbo://h:2/a.B")), "already gone");
        assert!(members.remove(&url("dubbo://h:1/a.B?category=routers")));
        let left = members.snapshot(8, true);
        assert_eq!(left.category("routers"), []);
        assert_eq!(
            left.providers(),
            ["dubbo://h:1/a.B", "dubbo://h:10/a.B", "dubbo://h:3/a.B"].map(url)
        );
    }

    #[test]
    fn contains_ignores_timestamps_among_neighbours() {
        let urls = [
            "dubbo://h:1/a.B?side=provider&timestamp=5&weight=1",
            "dubbo://h:1/a.B?side=provider&timestamp=6&weight=2",
            "dubbo://h:1/a.B?side=provider&timestamp=7&weight=3",
            "dubbo://h:1/a.B?side=provider",
            "dubbo://h:2/a.B?note=timestamp=1&side=provider",
            "dubbo://h:3/a.B",
        ]
        .map(url);
        let snapshot = Snapshot::new(1, true, urls.iter().cloned());
        for u in &urls {
            assert!(snapshot.contains(u), "{u}");
        }
        // Equal apart from the timestamp value, sorted elsewhere than the member.
        assert!(snapshot.contains(&url("dubbo://h:1/a.B?side=provider&timestamp=9&weight=1")));
        assert!(snapshot.contains(&url("dubbo://h:1/a.B?side=provider&timestamp=0&weight=3")));
        assert!(snapshot.contains(&url("dubbo://h:2/a.B?note=timestamp=1&side=provider")));
        for absent in [
            "dubbo://h:1/a.B?side=provider&timestamp=9&weight=4",
            "dubbo://h:1/a.B?side=consumer",
            "dubbo://h:1/a.B?side=provider&weight=1",
            "dubbo://h:2/a.B?note=timestamp=2&side=provider",
            "dubbo://h:3/a.B?category=routers",
            "dubbo://h:4/a.B",
        ] {
            assert!(!snapshot.contains(&url(absent)), "{absent}");
        }
    }

    #[test]
    fn a_newer_copy_replaces_the_member_it_equals() {
        let mut members: Members = [url("dubbo://h:1/a.B?timestamp=1")].into_iter().collect();
        members.replace(url("dubbo://h:1/a.B?timestamp=2"));
        let snapshot = members.snapshot(2, true);
        assert_eq!(snapshot.len(), 1);
        assert_eq!(
            snapshot.providers()[0].as_full_str(),
            "dubbo://h:1/a.B?timestamp=2"
        );
        assert!(members.remove(&url("dubbo://h:1/a.B?timestamp=3")));
        assert!(members.snapshot(3, true).is_empty());
    }
}
