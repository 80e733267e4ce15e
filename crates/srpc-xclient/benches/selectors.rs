//! Benchmark: the cost of one pick, per selector, over 3, 100 and 10 000 endpoints, through
//! the public API: `XClient::select_with` (snapshot read and pick; the caller looks at the
//! endpoint in place) and `XClient::select` (the same plus a counted `Arc<Endpoint>` handle).
//!
//! Each figure is the median of 11 batches of 200 000 picks after a warm-up, with the fastest
//! batch in brackets: on these shared machines whole stretches of a run are up to 2x slower,
//! so the fastest batch is the closer measure of what the code costs.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    missing_docs
)] // A benchmark binary.

use std::hint::black_box;
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
        for selector in selectors {
            let mut in_place = format!("{:<20}", format!("{selector:?}"));
            let mut handle = in_place.clone();
            for n in [3usize, 100, 10_000] {
                // Addresses only: picking never connects. Weights vary for the weighted one.
                let addrs: Vec<String> = (0..n)
                    .map(|i| {
                        format!(
                            "srpc://10.{}.{}.{}:8972/Svc?weight={}",
                            i / 65536,
                            (i / 256) % 256,
                            i % 256,
                            1 + i % 10
                        )
                    })
                    .collect();
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
        }
    });
}
