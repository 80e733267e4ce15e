//! [`AgedSet`]: a set that remembers when each item last arrived, so that a cache fed by
//! untrusted peers can be bounded in count and in age, oldest first.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::time::Duration;

use tokio::time::Instant;

/// Items with the time each last arrived. Evicting the oldest, or those older than an age,
/// costs O(1) per item evicted: arrivals are kept in order in a queue, and a refreshed item's
/// earlier place is skipped when reached (the queue is compacted when such places pile up).
#[derive(Debug)]
pub struct AgedSet<T> {
    /// Item → (its arrival number, when it arrived).
    items: HashMap<T, (u64, Instant)>,
    /// Arrivals, oldest first; an entry whose number is not the item's current one is stale.
    order: VecDeque<(u64, Instant, T)>,
    next: u64,
}

impl<T> Default for AgedSet<T> {
    fn default() -> AgedSet<T> {
        AgedSet {
            items: HashMap::new(),
            order: VecDeque::new(),
            next: 0,
        }
    }
}

impl<T: Hash + Eq + Clone> AgedSet<T> {
    /// An empty set.
    pub fn new() -> AgedSet<T> {
        AgedSet::default()
    }

    /// How many items it holds.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Whether it holds `item`.
    pub fn contains(&self, item: &T) -> bool {
        self.items.contains_key(item)
    }

    /// Records that `item` arrived at `now` (an item already held becomes the newest);
    /// whether it is new.
    pub fn insert(&mut self, item: T, now: Instant) -> bool {
        let seq = self.next;
        self.next += 1;
        let new = self.items.insert(item.clone(), (seq, now)).is_none();
        self.order.push_back((seq, now, item));
        if self.order.len() > 2 * self.items.len() + 64 {
            self.compact();
        }
        new
    }

    /// Forgets `item`; whether it was held.
    pub fn remove(&mut self, item: &T) -> bool {
        let removed = self.items.remove(item).is_some();
        if removed && self.order.len() > 2 * self.items.len() + 64 {
            self.compact();
        }
        removed
    }

    /// Removes and returns the item that arrived longest ago.
    pub fn pop_oldest(&mut self) -> Option<T> {
        while let Some((seq, _, item)) = self.order.pop_front() {
            if self.items.get(&item).is_some_and(|(s, _)| *s == seq) {
                self.items.remove(&item);
                return Some(item);
            }
        }
        None
    }

    /// Removes and returns every item that arrived `age` or more before `now`.
    pub fn expire(&mut self, now: Instant, age: Duration) -> Vec<T> {
        let mut expired = Vec::new();
        while let Some((seq, at, item)) = self.order.front() {
            let current = self.items.get(item).is_some_and(|(s, _)| s == seq);
            if current && now.saturating_duration_since(*at) < age {
                break;
            }
            if let Some((_, _, item)) = self.order.pop_front() {
                if current {
                    self.items.remove(&item);
                    expired.push(item);
                }
            }
        }
        expired
    }

    /// Removes and returns every item `take` selects.
    pub fn take_where(&mut self, mut take: impl FnMut(&T) -> bool) -> Vec<T> {
        let taken: Vec<T> = self.items.keys().filter(|i| take(i)).cloned().collect();
        for item in &taken {
            self.items.remove(item);
        }
        if !taken.is_empty() {
            self.compact();
        }
        taken
    }

    /// Drops the stale places from the queue.
    fn compact(&mut self) {
        let items = &self.items;
        self.order
            .retain(|(seq, _, item)| items.get(item).is_some_and(|(s, _)| s == seq));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_goes_first_and_a_refresh_makes_an_item_new() {
        let t0 = Instant::now();
        let mut set = AgedSet::new();
        assert!(set.insert("a", t0));
        assert!(set.insert("b", t0 + Duration::from_secs(1)));
        assert!(!set.insert("a", t0 + Duration::from_secs(2)), "a refresh");
        assert_eq!(set.len(), 2);
        assert_eq!(set.pop_oldest(), Some("b"));
        assert_eq!(set.pop_oldest(), Some("a"));
        assert_eq!(set.pop_oldest(), None);
    }

    #[test]
    fn expiry_takes_what_is_old_enough_and_only_that() {
        let t0 = Instant::now();
        let mut set = AgedSet::new();
        set.insert(1, t0);
        set.insert(2, t0 + Duration::from_secs(5));
        set.insert(1, t0 + Duration::from_secs(6)); // refreshed: not expired at 10 s
        set.insert(3, t0 + Duration::from_secs(7));
        let expired = set.expire(t0 + Duration::from_secs(10), Duration::from_secs(5));
        assert_eq!(expired, vec![2]);
        assert_eq!(set.len(), 2);
        let expired = set.expire(t0 + Duration::from_secs(20), Duration::from_secs(5));
        assert_eq!(expired, vec![1, 3]);
        assert!(set.is_empty());
    }

    #[test]
    fn refreshes_and_removals_do_not_grow_the_queue_without_bound() {
        let t0 = Instant::now();
        let mut set = AgedSet::new();
        for i in 0..100_000u32 {
            set.insert(i % 10, t0);
            set.remove(&((i + 5) % 10));
        }
        assert!(set.len() <= 10);
        assert!(set.order.len() <= 2 * set.len() + 65, "{}", set.order.len());
        let taken = set.take_where(|i| i % 2 == 0);
        assert!(taken.iter().all(|i| i % 2 == 0));
        assert!(set.order.len() == set.len());
    }
}
