//! Benchmark: the cost of one pick, per selector, over 3, 100 and 10 000 endpoints, through
//! the public API: `XClient::select_with` (snapshot read and pick; the caller looks at the
//! endpoint in place) and `XClient::select` (the same plus a counted `Arc<Endpoint>` handle).
//!
//! Each figure is the median of 11 batches of 200 000 picks after a warm-up, with the fastest
//! batch in brackets: on these shared machines whole stretches of a run are up to 2x slower,
//! so the fastest batch is the closer measure of what the code costs.
//!
//! Two anchors run in the same process, over the same addresses: the floor (a random index
//! into a plain slice, with the RNG the selectors use: no snapshot, nothing shared) and the
//! same pick under a `std::sync::RwLock` read, as an endpoint list guarded by a read-write
//! lock is picked from (rpcx's `xClient` takes an `RWMutex` read lock per call). They tell
//! what kind of stretch a run is on: the floor moves with the machine's speed, the `RwLock`
//! pick also with the cost of atomic read-modify-writes, which varies on its own here.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    missing_docs
)] // A benchmark binary.

use std::hint::black_box;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use srpc_xclient::{CallOptions, Discovery, Options, Selector, XClient};

const BATCHES: usize = 11;
const PICKS: u32 = 200_000;

/// Nanoseconds per call of `pick`, median and fastest of `BATCHES` batches, after a 200 ms
/// warm-up (long enough for the CPU to leave its idle clock and for the caches to fill).
fn per_pick_ns(keys: &[CallOptions], mut pick: impl FnMut(&CallOptions)) -> String {
    let warm = Instant::now();
    while warm.elapsed() < Duration::from_millis(200) {
        keys.iter().for_each(&mut pick);
    }
    let mut batches: Vec<f64> = (0..BATCHES)
        .map(|_| {
            let started = Instant::now();
            for i in 0..PICKS {
                pick(&keys[(i as usize) & 1023]);
            }
            started.elapsed().as_secs_f64() * 1e9 / f64::from(PICKS)
        })
        .collect();
    batches.sort_by(f64::total_cmp);
    format!(" {:>6.1} ({:>4.1})", batches[BATCHES / 2], batches[0])
}

const SIZES: [usize; 3] = [3, 100, 10_000];

/// `n` endpoint addresses only: picking never connects. Weights vary for the weighted one.
fn addresses(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            format!(
                "srpc://10.{}.{}.{}:8972/Svc?weight={}",
                i / 65536,
                (i / 256) % 256,
                i % 256,
                1 + i % 10
            )
        })
        .collect()
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let selectors = [
            Selector::Random,
            Selector::RoundRobin,
            Selector::WeightedRoundRobin,
            Selector::ConsistentHash,
            Selector::LeastLoaded,
        ];
        let keys: Vec<CallOptions> = (0..1024)
            .map(|k| CallOptions::default().with_key(format!("user-{k}")))
            .collect();
        let mut rows = Vec::new();
        let mut floor = format!("{:<20}", "anchor: floor");
        let mut locked = format!("{:<20}", "anchor: RwLock");
        for n in SIZES {
            let addrs = addresses(n);
            floor.push_str(&per_pick_ns(&keys, |_| {
                black_box(std::ptr::from_ref(&addrs[fastrand::usize(..addrs.len())]) as usize);
            }));
            let list = RwLock::new(Arc::new(addrs));
            locked.push_str(&per_pick_ns(&keys, |_| {
                let Ok(guard) = list.read() else { return };
                black_box(std::ptr::from_ref(&guard[fastrand::usize(..guard.len())]) as usize);
            }));
        }
        for selector in selectors {
            let mut in_place = format!("{:<20}", format!("{selector:?}"));
            let mut handle = in_place.clone();
            for n in SIZES {
                let addrs = addresses(n);
                let (discovery, _list) =
                    Discovery::servers(addrs.iter().map(String::as_str)).unwrap();
                let x = XClient::new(discovery, Options::default().with_selector(selector));
                in_place.push_str(&per_pick_ns(&keys, |call| {
                    black_box(x.select_with(call, |e| std::ptr::from_ref(e) as usize));
                }));
                handle.push_str(&per_pick_ns(&keys, |call| {
                    black_box(x.select(call));
                }));
            }
            rows.push((in_place, handle));
        }
        for (title, column) in [
            ("ns per pick (select_with)", 0),
            ("ns per pick + handle (select)", 1),
        ] {
            println!("{title:<30}");
            println!("{:<20} {:>13} {:>13} {:>13}", "", "3", "100", "10000");
            for row in &rows {
                println!("{}", if column == 0 { &row.0 } else { &row.1 });
            }
            if column == 0 {
                println!("{floor}\n{locked}");
            }
        }
    });
}
