//! Selectors: which endpoint serves the next call.

use crate::endpoints::{Endpoints, Tables, fnv1a};

/// How an endpoint is picked for a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Selector {
    /// Uniformly at random.
    #[default]
    Random,
    /// In turn. Each thread keeps its own rotation (starting at a random place), so that
    /// picks on many threads never write to one shared counter: the picks of one thread go
    /// round the endpoints in order, and over many calls every endpoint gets an even share.
    RoundRobin,
    /// Smooth weighted round-robin (nginx's) by the `weight` parameter, a rotation per thread
    /// as with `RoundRobin`. A total weight of 0 falls back to round-robin.
    WeightedRoundRobin,
    /// Consistent hashing of the caller's key (`CallOptions::key`): the same key goes to the
    /// same endpoint while the set is stable, and few keys move when it changes. Without a
    /// key, random.
    ConsistentHash,
    /// The less loaded of two random endpoints (power of two choices), by calls in flight.
    LeastLoaded,
}

impl Selector {
    /// The precomputed tables this selector reads.
    pub(crate) fn tables(self) -> Tables {
        Tables {
            weighted: self == Selector::WeightedRoundRobin,
            ring: self == Selector::ConsistentHash,
        }
    }
}

/// Picks an endpoint index, avoiding `exclude` while another endpoint exists. `turn` is the
/// picking thread's own counter for the round-robin selectors (the XClient advances it by one
/// per pick): a rotation per thread, with no write shared between threads.
pub(crate) fn pick(
    selector: Selector,
    endpoints: &Endpoints,
    key: Option<&[u8]>,
    exclude: &[usize],
    turn: usize,
) -> Option<usize> {
    let n = endpoints.list.len();
    if n == 0 {
        return None;
    }
    let allowed = |i: usize| !exclude.contains(&i) || exclude.len() >= n;
    let first = match selector {
        Selector::Random => fastrand::usize(..n),
        Selector::RoundRobin => turn % n,
        Selector::WeightedRoundRobin => {
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
        Endpoints::build(urls, &Endpoints::default(), Tables::ALL).0
    }

    fn counts(selector: Selector, e: &Endpoints, picks: usize) -> HashMap<usize, usize> {
        let mut counts = HashMap::new();
        for turn in 0..picks {
            *counts
                .entry(pick(selector, e, None, &[], turn).unwrap())
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
        let before = endpoints(&[1, 1, 1, 1]);
        let keys: Vec<String> = (0..1000).map(|i| format!("user-{i}")).collect();
        let owner = |e: &Endpoints, k: &str| {
            e.list[pick(Selector::ConsistentHash, e, Some(k.as_bytes()), &[], 0).unwrap()]
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
        for selector in [
            Selector::Random,
            Selector::RoundRobin,
            Selector::WeightedRoundRobin,
            Selector::ConsistentHash,
            Selector::LeastLoaded,
        ] {
            for turn in 0..50 {
                let i = pick(selector, &e, Some(b"k"), &[0, 1], turn).unwrap();
                assert_eq!(i, 2, "{selector:?}");
            }
            assert!(
                pick(selector, &e, Some(b"k"), &[0, 1, 2], 0).is_some(),
                "all excluded: pick anyway"
            );
        }
        assert_eq!(
            pick(Selector::Random, &Endpoints::default(), None, &[], 0),
            None
        );
    }
}
