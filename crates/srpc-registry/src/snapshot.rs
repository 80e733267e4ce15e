//! [`Snapshot`]: the immutable state a subscription sees, and [`Change`], a difference of two.

use std::collections::BTreeMap;

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
    pub(crate) fn build(
        revision: u64,
        connected: bool,
        urls: impl IntoIterator<Item = Url>,
    ) -> Snapshot {
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
    pub fn contains(&self, url: &Url) -> bool {
        self.category(url.category()).contains(url)
    }
}
