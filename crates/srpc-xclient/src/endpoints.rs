//! Endpoints and the immutable snapshot selectors read.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use std::time::Duration;

use arc_swap::ArcSwapOption;
use dubbo_url::Url;
use serde::Serialize;
use serde::de::DeserializeOwned;
use srpc_core::{Client, ClientOptions, Metadata};
use tokio::sync::Mutex;
use tracing::{debug, warn};

use crate::transport::{Call, Connection, Route};

/// The weight of an endpoint without a `weight` parameter (Dubbo's default).
pub const DEFAULT_WEIGHT: u32 = 100;
/// Virtual nodes per endpoint on the consistent-hash ring.
const VIRTUAL_NODES: u32 = 64;
/// Longest smooth-weighted sequence kept; larger totals are scaled down.
const MAX_SEQUENCE: u64 = 1 << 16;

/// One provider: its URL, address, weight, load and (lazily) its connection.
#[derive(Debug)]
pub struct Endpoint {
    url: Url,
    addr: String,
    weight: u32,
    route: Route,
    in_flight: AtomicUsize,
    opened: AtomicUsize,
    link: ArcSwapOption<Link>,
    connecting: Mutex<()>,
    /// Left the XClient's endpoints: its connection is closed and no new one is kept.
    retired: AtomicBool,
}

/// An endpoint's connection: srpc's own, or one a transport opened.
#[derive(Debug)]
pub(crate) enum Link {
    Srpc(Client),
    Other(Arc<dyn Connection>),
}

impl Link {
    fn is_closed(&self) -> bool {
        match self {
            Link::Srpc(client) => client.is_closed(),
            Link::Other(connection) => connection.is_closed(),
        }
    }
}

impl Endpoint {
    /// An endpoint of srpc's own protocol.
    #[cfg(feature = "tower")]
    pub(crate) fn new(url: Url) -> Endpoint {
        Endpoint::with_route(url, Route::Srpc)
    }

    pub(crate) fn with_route(url: Url, route: Route) -> Endpoint {
        let weight = match url.param("weight") {
            None => DEFAULT_WEIGHT,
            Some(w) => w.trim().parse().unwrap_or_else(|_| {
                warn!(%url, weight = w, "unreadable weight; using the default");
                DEFAULT_WEIGHT
            }),
        };
        let addr = url.address();
        Endpoint {
            url,
            addr,
            weight,
            route,
            in_flight: AtomicUsize::new(0),
            opened: AtomicUsize::new(0),
            link: ArcSwapOption::empty(),
            connecting: Mutex::new(()),
            retired: AtomicBool::new(false),
        }
    }

    /// The provider's URL.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// `host:port`.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The weight (from `weight`, default 100; 0 takes no share in weighted selection).
    pub fn weight(&self) -> u32 {
        self.weight
    }

    /// Calls in flight through this XClient now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Counts a call in flight on this endpoint until the guard drops: what
    /// [`Selector::LeastLoaded`](crate::Selector::LeastLoaded) reads. For callers that carry
    /// a call themselves over a connection of their own (a gRPC channel, say).
    pub fn track(&self) -> InFlight<'_> {
        self.begin()
    }

    pub(crate) fn begin(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(&self.in_flight)
    }

    /// Calls `method` on this endpoint through its transport.
    pub(crate) async fn call<Req, Resp>(
        &self,
        options: &ClientOptions,
        method: &str,
        request: &Req,
        timeout: Duration,
        metadata: &Metadata,
    ) -> srpc_core::Result<Resp>
    where
        Req: Serialize + ?Sized,
        Resp: DeserializeOwned,
    {
        match (&*self.link(options).await?, &self.route) {
            (Link::Srpc(client), _) => {
                client
                    .call_with_metadata(method, request, timeout, metadata)
                    .await
            }
            (Link::Other(connection), Route::Other(transport)) => {
                let codec = transport.codec();
                let reply = connection
                    .call(Call {
                        method,
                        request: codec.encode(request)?,
                        timeout,
                        metadata,
                    })
                    .await?;
                codec.decode(&reply)
            }
            (Link::Other(_), Route::Srpc) => Err(srpc_core::Error::Protocol(
                "an srpc endpoint holds another transport's connection".into(),
            )),
        }
    }

    /// The connection a transport opened to this endpoint (opened now if there is none):
    /// for callers that carry calls themselves, such as srpc-tonic's channel, which
    /// downcasts it to its own type through [`Connection::as_any`]. `None` for srpc's own
    /// endpoints, whose connection is not a transport's.
    pub async fn connection(
        &self,
        options: &ClientOptions,
    ) -> srpc_core::Result<Option<Arc<dyn Connection>>> {
        Ok(match &*self.link(options).await? {
            Link::Other(connection) => Some(connection.clone()),
            Link::Srpc(_) => None,
        })
    }

    /// The connection, opened on first use and again after it broke. Concurrent callers
    /// share one attempt.
    async fn link(&self, options: &ClientOptions) -> srpc_core::Result<Arc<Link>> {
        if let Some(link) = self.link.load_full().filter(|l| !l.is_closed()) {
            return Ok(link);
        }
        let _connecting = self.connecting.lock().await;
        if let Some(link) = self.link.load_full().filter(|l| !l.is_closed()) {
            return Ok(link);
        }
        debug!(addr = %self.addr, route = ?self.route, "connecting");
        let link = Arc::new(match &self.route {
            Route::Srpc => {
                let options = self.options_for(options)?;
                Link::Srpc(Client::connect(&self.addr, options).await?)
            }
            Route::Other(transport) => Link::Other(transport.connect(&self.url).await?),
        });
        self.opened.fetch_add(1, Ordering::Relaxed);
        self.link.store(Some(link.clone()));
        if self.retired.load(Ordering::SeqCst) {
            // Picked just before it left: this call gets the connection, nobody keeps it.
            self.link.store(None);
        }
        Ok(link)
    }
    /// The connection settings for this endpoint: TLS when its URL says `tls=true` (and
    /// only then), which needs the XClient's TLS settings.
    fn options_for(&self, options: &ClientOptions) -> srpc_core::Result<ClientOptions> {
        let wants_tls = self
            .url
            .param("tls")
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
        #[cfg(feature = "tls")]
        {
            let mut options = options.clone();
            if !wants_tls {
                options.tls = None;
            } else if options.tls.is_none() {
                return Err(srpc_core::Error::Protocol(format!(
                    "{} asks for TLS (tls=true): give the XClient TLS settings \
                     (ClientOptions::with_tls in Options::with_client)",
                    self.addr
                )));
            }
            Ok(options)
        }
        #[cfg(not(feature = "tls"))]
        {
            if wants_tls {
                return Err(srpc_core::Error::Protocol(format!(
                    "{} asks for TLS (tls=true): this build of srpc has no TLS (the `tls` \
                     feature)",
                    self.addr
                )));
            }
            Ok(options.clone())
        }
    }

    /// The endpoint left: its connection goes now (calls in flight keep it until they end),
    /// whoever still holds the endpoint (a thread's pick cache, a caller's handle).
    pub(crate) fn retire(&self) {
        self.retired.store(true, Ordering::SeqCst);
        self.link.store(None);
    }

    /// How many connections were opened to this endpoint (1 while one stays healthy).
    pub fn connections_opened(&self) -> usize {
        self.opened.load(Ordering::Relaxed)
    }

    /// Whether a connection is open now.
    pub fn is_connected(&self) -> bool {
        self.link.load().as_ref().is_some_and(|l| !l.is_closed())
    }
}

/// Counts a call in flight on an endpoint while it lives ([`Endpoint::track`]).
#[derive(Debug)]
pub struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// An immutable set of endpoints with everything selectors precompute.
#[derive(Debug, Default)]
pub struct Endpoints {
    pub(crate) list: Vec<Arc<Endpoint>>,
    /// Smooth weighted round-robin: the exact pick sequence of one cycle.
    pub(crate) weighted: Vec<u32>,
    /// Consistent hashing: (point, endpoint index), sorted.
    pub(crate) ring: Vec<(u64, u32)>,
    /// An index into `ring` by a point's top bits: bucket `b` holds the ring entries from
    /// `buckets[b]` up to `buckets[b + 1]`, so a lookup searches a handful of entries near
    /// each other instead of the whole ring (640 000 entries at 10 000 endpoints).
    buckets: Vec<u32>,
    /// The shift that takes a point to its bucket.
    bucket_shift: u32,
    /// Providers left out because no transport calls their protocol: each protocol with its
    /// count, and the service they offer.
    pub(crate) uncallable: Vec<(String, usize)>,
    pub(crate) service: String,
}

/// Which precomputed tables a snapshot carries: only what its selector reads (the hash ring
/// is 10 MB at 10 000 endpoints).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tables {
    /// The smooth weighted sequence (weighted round-robin).
    pub(crate) weighted: bool,
    /// The hash ring (consistent hashing).
    pub(crate) ring: bool,
}

#[cfg(test)]
impl Tables {
    /// Every table.
    pub(crate) const ALL: Tables = Tables {
        weighted: true,
        ring: true,
    };
}

impl Endpoints {
    /// [`Endpoints::build_routed`] for srpc endpoints.
    #[cfg(test)]
    pub(crate) fn build(
        urls: Vec<Url>,
        previous: &Endpoints,
        tables: Tables,
    ) -> (Endpoints, Vec<Arc<Endpoint>>) {
        let routed = urls.into_iter().map(|u| (u, Route::Srpc)).collect();
        Endpoints::build_routed(routed, previous, tables)
    }

    /// Builds a snapshot, reusing `previous` endpoints (and their connections) for URLs that
    /// stayed, with the `tables` its selector reads. Also returns the endpoints of `previous`
    /// that were not reused: the ones that left.
    pub(crate) fn build_routed(
        urls: Vec<(Url, Route)>,
        previous: &Endpoints,
        tables: Tables,
    ) -> (Endpoints, Vec<Arc<Endpoint>>) {
        let mut reusable: HashMap<&str, usize> = previous
            .list
            .iter()
            .enumerate()
            .map(|(i, e)| (e.url.as_full_str(), i))
            .collect();
        let mut reused = vec![false; previous.list.len()];
        let mut list: Vec<Arc<Endpoint>> = urls
            .into_iter()
            .map(|(url, route)| match reusable.remove(url.as_full_str()) {
                Some(i) => {
                    reused[i] = true;
                    previous.list[i].clone()
                }
                None => Arc::new(Endpoint::with_route(url, route)),
            })
            .collect();
        let left = previous
            .list
            .iter()
            .zip(&reused)
            .filter(|(_, reused)| !**reused)
            .map(|(e, _)| e.clone())
            .collect();
        list.sort_by(|a, b| a.url.as_full_str().cmp(b.url.as_full_str()));
        let weighted = if tables.weighted {
            smooth_weighted_sequence(&list.iter().map(|e| e.weight).collect::<Vec<_>>())
        } else {
            Vec::new()
        };
        let ring = if tables.ring { ring(&list) } else { Vec::new() };
        let (buckets, bucket_shift) = buckets(&ring);
        let endpoints = Endpoints {
            list,
            weighted,
            ring,
            buckets,
            bucket_shift,
            uncallable: Vec::new(),
            service: String::new(),
        };
        (endpoints, left)
    }

    /// The first ring entry at or after `point` (`ring.len()` when there is none), as
    /// `ring.partition_point(|(p, _)| *p < point)` would say, through the bucket index.
    pub(crate) fn ring_position(&self, point: u64) -> usize {
        let bucket = (point >> self.bucket_shift) as usize;
        match (self.buckets.get(bucket), self.buckets.get(bucket + 1)) {
            (Some(&lo), Some(&hi)) => {
                let (lo, hi) = (lo as usize, hi as usize);
                lo + self.ring[lo..hi].partition_point(|(p, _)| *p < point)
            }
            _ => self.ring.partition_point(|(p, _)| *p < point),
        }
    }

    /// The endpoints.
    pub fn list(&self) -> &[Arc<Endpoint>] {
        &self.list
    }

    /// The providers discovery offered that are not in [`Endpoints::list`] because this
    /// XClient has no transport for their protocol: each protocol with its count, by protocol.
    pub fn uncallable(&self) -> &[(String, usize)] {
        &self.uncallable
    }
}

/// nginx's smooth weighted round-robin, run for one full cycle: each step adds every weight
/// to its current value, picks the largest, and takes the total off it. The result spreads
/// picks evenly (5,1,1 gives a,a,b,a,c,a,a). Totals above 65536 are scaled down; a total
/// of 0 gives an empty sequence (selection then falls back to round-robin).
pub(crate) fn smooth_weighted_sequence(weights: &[u32]) -> Vec<u32> {
    let total: u64 = weights.iter().map(|w| u64::from(*w)).sum();
    if total == 0 {
        return Vec::new();
    }
    let weights: Vec<i64> = if total > MAX_SEQUENCE {
        weights
            .iter()
            .map(|w| {
                if *w == 0 {
                    0
                } else {
                    (u64::from(*w) * MAX_SEQUENCE / total).max(1) as i64
                }
            })
            .collect()
    } else {
        weights.iter().map(|w| i64::from(*w)).collect()
    };
    let total: i64 = weights.iter().sum();
    let mut current = vec![0i64; weights.len()];
    let mut sequence = Vec::with_capacity(total as usize);
    for _ in 0..total {
        let mut best = 0;
        for (i, w) in weights.iter().enumerate() {
            current[i] += w;
            if current[i] > current[best] {
                best = i;
            }
        }
        current[best] -= total;
        sequence.push(best as u32);
    }
    sequence
}

fn ring(list: &[Arc<Endpoint>]) -> Vec<(u64, u32)> {
    let mut ring: Vec<(u64, u32)> = list
        .iter()
        .enumerate()
        .flat_map(|(i, e)| {
            (0..VIRTUAL_NODES).map(move |v| (fnv1a(format!("{}#{v}", e.addr).as_bytes()), i as u32))
        })
        .collect();
    ring.sort_unstable();
    ring
}

/// The bucket index of a ring: about four entries per bucket, a power of two of buckets (at
/// most 2^18), each bucket the range of entries whose points share their top bits.
fn buckets(ring: &[(u64, u32)]) -> (Vec<u32>, u32) {
    // At least two buckets, so the shift stays below 64.
    let count = (ring.len() / 4).clamp(2, 1 << 18).next_power_of_two();
    let shift = 64 - count.trailing_zeros();
    let mut buckets = Vec::with_capacity(count + 1);
    let mut at = 0usize;
    for bucket in 0..count as u64 {
        // The first entry whose point is in this bucket or a later one.
        let start = bucket << shift;
        while at < ring.len() && ring[at].0 < start {
            at += 1;
        }
        buckets.push(at as u32);
    }
    buckets.push(ring.len() as u32);
    (buckets, shift)
}

/// FNV-1a, 64 bit: stable across runs and platforms, as a hash ring must be.
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    // Mix the bits so that nearby keys land far apart on the ring.
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
    hash ^ (hash >> 33)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::selector::Selector;

    #[test]
    fn the_bucket_index_finds_what_a_full_search_finds() {
        for n in [0usize, 1, 3, 100, 2_000] {
            let urls = (0..n)
                .map(|i| Url::parse(&format!("srpc://10.0.{}.{}:1/Foo", i / 256, i % 256)).unwrap())
                .collect();
            let (e, _) = Endpoints::build(urls, &Endpoints::default(), Tables::ALL);
            let mut point = 0x9e37_79b9_7f4a_7c15_u64;
            for _ in 0..20_000 {
                point = point
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1);
                let full = e.ring.partition_point(|(p, _)| *p < point);
                assert_eq!(e.ring_position(point), full, "n={n} point={point:#x}");
            }
            for point in [0, u64::MAX, 1 << 63] {
                assert_eq!(
                    e.ring_position(point),
                    e.ring.partition_point(|(p, _)| *p < point)
                );
            }
        }
    }

    #[test]
    fn a_snapshot_precomputes_only_what_its_selector_reads() {
        let urls = || {
            (1..=3)
                .map(|p| Url::parse(&format!("srpc://127.0.0.1:{p}/Foo")).unwrap())
                .collect::<Vec<_>>()
        };
        let none = Endpoints::default();
        let (rr, _) = Endpoints::build(urls(), &none, Selector::RoundRobin.tables());
        assert!(rr.weighted.is_empty() && rr.ring.is_empty());
        let (wrr, _) = Endpoints::build(urls(), &none, Selector::WeightedRoundRobin.tables());
        assert!(!wrr.weighted.is_empty() && wrr.ring.is_empty());
        let (hash, _) = Endpoints::build(urls(), &none, Selector::ConsistentHash.tables());
        assert!(hash.weighted.is_empty() && hash.ring.len() == 3 * VIRTUAL_NODES as usize);
    }

    #[test]
    fn smooth_weighted_round_robin_is_nginxs() {
        let names = ["a", "b", "c"];
        let picks: String = smooth_weighted_sequence(&[5, 1, 1])
            .iter()
            .map(|i| names[*i as usize])
            .collect();
        assert_eq!(picks, "aabacaa");
        assert_eq!(smooth_weighted_sequence(&[1, 1]), [0, 1]);
        assert_eq!(smooth_weighted_sequence(&[0, 3]), [1, 1, 1]);
        assert!(
            smooth_weighted_sequence(&[0, 0]).is_empty(),
            "total 0: no crash, no sequence"
        );
        let big = smooth_weighted_sequence(&[u32::MAX, 1, u32::MAX]);
        assert!(
            big.len() as u64 <= MAX_SEQUENCE + 3 && big.contains(&1),
            "scaled, and weight 1 keeps a share"
        );
    }

    #[test]
    fn endpoints_keep_their_identity_across_rebuilds() {
        let url = |p: u16| Url::parse(&format!("srpc://127.0.0.1:{p}/Foo?weight=7")).unwrap();
        let (first, none_left) =
            Endpoints::build(vec![url(1), url(2)], &Endpoints::default(), Tables::ALL);
        assert!(none_left.is_empty());
        let (second, left) = Endpoints::build(vec![url(2), url(3)], &first, Tables::ALL);
        assert!(
            Arc::ptr_eq(&first.list[1], &second.list[0]),
            "the endpoint that stayed is the same"
        );
        assert_eq!(left.len(), 1, "only port 1 left");
        assert!(Arc::ptr_eq(&left[0], &first.list[0]));
        // A URL listed twice makes two endpoints; one is reused, the other has left.
        let (twice, _) = Endpoints::build(vec![url(4), url(4)], &Endpoints::default(), Tables::ALL);
        let (_, left) = Endpoints::build(vec![url(4)], &twice, Tables::ALL);
        assert_eq!(left.len(), 1, "the duplicate that was not reused left");
        assert_eq!(second.list[0].weight(), 7);
        assert_eq!(second.ring.len(), 2 * VIRTUAL_NODES as usize);
    }
}
