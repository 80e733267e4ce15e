//! Selectors: which endpoint serves the next call.

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::endpoints::{Endpoints, fnv1a};

/// How an endpoint is picked for a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Selector {
    /// Uniformly at random.
    #[default]
    Random,
    /// In turn.
    RoundRobin,
    /// Smooth weighted round-robin (nginx's) by the `weight` parameter. A total weight of 0
    /// falls back to round-robin.
    WeightedRoundRobin,
    /// Consistent hashing of the caller's key (`CallOptions::key`): the same key goes to the
    /// same endpoint while the set is stable, and few keys move when it changes. Without a
    /// key, random.
    ConsistentHash,
    /// The less loaded of two random endpoints (power of two choices), by calls in flight.
    LeastLoaded,
}

/// Per-XClient selection state: only counters, so picking never takes a lock.
#[derive(Debug, Default)]
pub(crate) struct Picker {
    next: AtomicUsize,
}

impl Picker {
    /// Picks an endpoint index, avoiding `exclude` while another endpoint exists.
    pub(crate) fn pick(
        &self,
        selector: Selector,
        endpoints: &Endpoints,
        key: Option<&[u8]>,
        exclude: &[usize],
    ) -> Option<usize> {
        let n = endpoints.list.len();
        if n == 0 {
            return None;
        }
        let allowed = |i: usize| !exclude.contains(&i) || exclude.len() >= n;
        let first = match selector {
            Selector::Random => fastrand::usize(..n),
            Selector::RoundRobin => self.next.fetch_add(1, Ordering::Relaxed) % n,
            Selector::WeightedRoundRobin => {
                let turn = self.next.fetch_add(1, Ordering::Relaxed);
                if endpoints.weighted.is_empty() {
                    turn % n
                } else {
                    endpoints.weighted[turn % endpoints.weighted.len()] as usize
                }
            }
            Selector::ConsistentHash => match key {
                None => fastrand::usize(..n),
                Some(key) => {
                    let point = fnv1a(key);
                    let at = endpoints.ring_position(point);
                    let ring = &endpoints.ring;
                    // Walk the ring clockwise to the first allowed endpoint.
                    let found = (0..ring.len())
                        .map(|step| ring[(at + step) % ring.len()].1 as usize)
                        .find(|i| allowed(*i));
                    return found;
                }
            },
            Selector::LeastLoaded => {
                let a = fastrand::usize(..n);
                let b = if n > 1 {
                    (a + 1 + fastrand::usize(..n - 1)) % n
                } else {
                    a
                };
                let (a, b) = match (allowed(a), allowed(b)) {
                    (true, false) => (a, a),
                    (false, true) => (b, b),
                    _ => (a, b),
                };
                if endpoints.list[b].in_flight() < endpoints.list[a].in_flight() {
                    b
                } else {
                    a
                }
            }
        };
        if allowed(first) {
            return Some(first);
        }
        // Step to the next allowed endpoint.
        (1..n).map(|step| (first + step) % n).find(|i| allowed(*i))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use dubbo_url::Url;

    use super::*;

    fn endpoints(weights: &[u32]) -> Endpoints {
        let urls = weights
            .iter()
            .enumerate()
            .map(|(i, w)| {
                Url::parse(&format!("srpc://127.0.0.1:{}/Foo?weight={w}", 9000 + i)).unwrap()
            })
            .collect();
        Endpoints::build(urls, &Endpoints::default(), None)
    }

    fn counts(selector: Selector, e: &Endpoints, picks: usize) -> HashMap<usize, usize> {
        let picker = Picker::default();
        let mut counts = HashMap::new();
        for _ in 0..picks {
            *counts
                .entry(picker.pick(selector, e, None, &[]).unwrap())
                .or_default() += 1;
        }
        counts
    }

    #[test]
    fn round_robin_and_weighted_follow_their_rules() {
        let e = endpoints(&[100, 100, 100]);
        assert_eq!(
            counts(Selector::RoundRobin, &e, 300)
                .values()
                .copied()
                .collect::<Vec<_>>(),
            [100, 100, 100]
        );
        let e = endpoints(&[5, 1, 1]);
        let c = counts(Selector::WeightedRoundRobin, &e, 700);
        assert_eq!((c[&0], c[&1], c[&2]), (500, 100, 100));
        let zero = endpoints(&[0, 0]);
        let c = counts(Selector::WeightedRoundRobin, &zero, 10);
        assert_eq!(
            (c[&0], c[&1]),
            (5, 5),
            "total weight 0: round-robin, no crash"
        );
    }

    #[test]
    fn random_reaches_everyone() {
        let e = endpoints(&[1, 1, 1, 1]);
        assert_eq!(counts(Selector::Random, &e, 400).len(), 4);
    }

    #[test]
    fn consistent_hash_is_stable_and_moves_few_keys() {
        let picker = Picker::default();
        let before = endpoints(&[1, 1, 1, 1]);
        let keys: Vec<String> = (0..1000).map(|i| format!("user-{i}")).collect();
        let owner = |e: &Endpoints, k: &str| {
            e.list[picker
                .pick(Selector::ConsistentHash, e, Some(k.as_bytes()), &[])
                .unwrap()]
            .addr()
            .to_owned()
        };
        for k in &keys {
            assert_eq!(owner(&before, k), owner(&before, k));
        }
        let after = endpoints(&[1, 1, 1, 1, 1]);
        let moved = keys
            .iter()
            .filter(|k| owner(&before, k) != owner(&after, k))
            .count();
        assert!(
            moved < 400,
            "adding one endpoint of five moved {moved} of 1000 keys"
        );
        assert!(moved > 0);
    }

    #[test]
    fn least_loaded_prefers_the_idle_endpoint() {
        let e = endpoints(&[1, 1]);
        let busy: Vec<_> = (0..10).map(|_| e.list[0].begin()).collect();
        let c = counts(Selector::LeastLoaded, &e, 100);
        assert_eq!(c.get(&1), Some(&100));
        drop(busy);
    }

    #[test]
    fn excluded_endpoints_are_avoided_while_another_exists() {
        let e = endpoints(&[1, 1, 1]);
        let picker = Picker::default();
        for selector in [
            Selector::Random,
            Selector::RoundRobin,
            Selector::WeightedRoundRobin,
            Selector::ConsistentHash,
            Selector::LeastLoaded,
        ] {
            for _ in 0..50 {
                let i = picker.pick(selector, &e, Some(b"k"), &[0, 1]).unwrap();
                assert_eq!(i, 2, "{selector:?}");
            }
            assert!(
                picker.pick(selector, &e, Some(b"k"), &[0, 1, 2]).is_some(),
                "all excluded: pick anyway"
            );
        }
        assert_eq!(
            picker.pick(Selector::Random, &Endpoints::default(), None, &[]),
            None
        );
    }
}
