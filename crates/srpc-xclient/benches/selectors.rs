//! Benchmark: the cost of one pick, per selector, over 3, 100 and 10 000 endpoints, through
//! the public `XClient::select` (snapshot load, pick, endpoint handle).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    missing_docs
)] // A benchmark binary.

use std::hint::black_box;
use std::time::{Duration, Instant};

use srpc_xclient::{CallOptions, Discovery, Options, Selector, XClient};

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
        println!(
            "{:<20} {:>12} {:>12} {:>12}",
            "ns per pick", "3", "100", "10000"
        );
        for selector in selectors {
            let mut row = format!("{:<20}", format!("{selector:?}"));
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
                let keys: Vec<CallOptions> = (0..1024)
                    .map(|k| CallOptions::default().with_key(format!("user-{k}")))
                    .collect();
                for call in keys.iter().take(100) {
                    black_box(x.select(call));
                }
                let picks = 1_000_000u32;
                let started = Instant::now();
                for i in 0..picks {
                    black_box(x.select(&keys[(i as usize) & 1023]));
                }
                let per_pick: Duration = started.elapsed() / picks;
                row.push_str(&format!(" {:>12.1}", per_pick.as_nanos() as f64));
            }
            println!("{row}");
        }
    });
}
