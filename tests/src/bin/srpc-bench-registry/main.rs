//! Benchmark of the registries, by section (the arguments; default every one but `mdns`):
//!
//! - a backend's name (`inprocess`, `multicast`, `http`, `consul`, `zookeeper`, `etcd`,
//!   `mdns`; `notify` names all but `mdns`): register → subscriber notified, p50, p95 and
//!   p99 over `SRPC_BENCH_SAMPLES` samples (default 500; Consul's 20 ms apart); for ZooKeeper
//!   and etcd the same with a raw client in the same run (a plain children watch through
//!   `zookeeper-client`; a plain watch stream on etcd's gateway), printed as
//!   `srpc/raw notify latency ratio`;
//! - `scale`: a fresh subscriber's first snapshot of 1 000 / 10 000 / 100 000 providers;
//! - `resync`: from healing a cut connection to a connected, current snapshot;
//! - `memory`: what a subscriber holds per provider;
//! - `churn`: 1 000 providers registering and unregistering for 10 s: notifications against
//!   snapshots published, and the subscriber thread's CPU;
//! - `heartbeats`: HTTP registry heartbeats per second against etcd lease keepalives;
//! - `reads`: heartbeat latency of an HTTP registry process while 8 clients list its 10 000
//!   instances over and over, against the same heartbeats alone, and its peak memory;
//! - `floods` (in a private network namespace): heap a multicast watcher, an mDNS watcher
//!   and an RPC server hold after floods of junk, each against its unbounded anchor where
//!   one can be configured, and the questions an mDNS watcher asks during one;
//! - `dashboard` (in a private network namespace): headless Chromium's first render of the
//!   dashboard's services page with 10 000 providers, against a static table of the same
//!   rows, and the heap the dashboard holds.
//!
//! `cargo xtask bench registry` runs each section in its own process with the real servers
//! started on loopback (`SRPC_ZOOKEEPER`, `SRPC_ETCD`), and `mdns` inside a private network
//! namespace. docs/performance.md has the method and the figures.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::panic,
    missing_docs
)] // A benchmark binary.

mod churn;
mod common;
mod dashboard;
mod floods;
mod heartbeats;
mod memory;
mod notify;
mod reads;
mod resync;
mod scale;

use std::time::Duration;

use crate::churn::churn;
use crate::common::{free_port, http_server, ms, pair, samples};
use crate::heartbeats::heartbeat_capacity;
use crate::memory::memory_per_provider;
use crate::notify::{CONSUL_GAP, RawProbe, SrpcProbe, compare, notify_latency, ratio, report};
use crate::resync::resync;
use crate::scale::report_scale;

/// Counts live heap bytes, for the subscriber's memory per provider.
#[global_allocator]
static ALLOCATOR: cap::Cap<std::alloc::System> = cap::Cap::new(std::alloc::System, usize::MAX);

/// The backends of the notify-latency section (`notify` names them all).
const NOTIFY: &[&str] = &[
    "inprocess",
    "multicast",
    "http",
    "consul",
    "zookeeper",
    "etcd",
];

const BACKENDS: &[&str] = &[
    "notify",
    "scale",
    "resync",
    "memory",
    "churn",
    "heartbeats",
    "reads",
];

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let chosen: Vec<&str> = if args.is_empty() {
        BACKENDS.to_vec()
    } else {
        args.iter().map(String::as_str).collect()
    };
    let chosen: Vec<&str> = chosen
        .into_iter()
        .flat_map(|c| {
            if c == "notify" {
                NOTIFY.to_vec()
            } else {
                vec![c]
            }
        })
        .collect();
    let n = samples();
    let chosen_consul = chosen.contains(&"consul");
    if std::env::var_os("SRPC_TEST_PRIVATE_NETWORK").is_none()
        && chosen.iter().any(|c| NOTIFY.contains(c))
    {
        println!("register -> subscriber notified, {n} samples per series");
    }
    for backend in chosen {
        match backend {
            "inprocess" => {
                let url = format!("inprocess://bench-{}", std::process::id());
                let probe = SrpcProbe::new(pair(&url).await, "bench.Inprocess").await;
                report(backend, &notify_latency(probe, n, Duration::ZERO).await);
            }
            "multicast" => {
                let url = format!(
                    "multicast://239.255.77.90:{}?interface=127.0.0.1&timeout=100",
                    free_port()
                );
                let probe = SrpcProbe::new(pair(&url).await, "bench.Multicast").await;
                report(backend, &notify_latency(probe, n, Duration::ZERO).await);
            }
            "http" => {
                let server = http_server().await;
                let url = format!("http://{}", server.local_addr());
                let probe = SrpcProbe::new(pair(&url).await, "bench.Http").await;
                report(backend, &notify_latency(probe, n, Duration::ZERO).await);
                server.shutdown().await.unwrap();
            }
            "consul" => {
                // Against srpc's fake agent (no Consul binary here): measures srpc's side.
                let agent = srpc_tests::consul::FakeConsul::start().await.unwrap();
                let url = format!("consul://{}", agent.addr());
                let probe = SrpcProbe::new(pair(&url).await, "bench.Consul").await;
                report("consul*", &notify_latency(probe, n, CONSUL_GAP).await);
            }
            "zookeeper" => {
                let server = srpc_tests::servers::shared_zookeeper();
                let root = srpc_tests::servers::fresh_root("srpc-bench");
                let url = format!("zookeeper://{server}?group={root}");
                let srpc = SrpcProbe::new(pair(&url).await, "bench.Zookeeper").await;
                let raw = RawProbe::zookeeper(&server).await;
                let (srpc, raw) = compare(srpc, raw, n).await;
                report(backend, &srpc);
                ratio(backend, &srpc, &raw);
            }
            "etcd" => {
                let server = std::env::var("SRPC_ETCD")
                    .expect("SRPC_ETCD: run under cargo xtask bench registry");
                let root = srpc_tests::servers::fresh_root("srpc-bench");
                let url = format!("etcd://{server}?group={root}");
                let srpc = SrpcProbe::new(pair(&url).await, "bench.Etcd").await;
                let raw = RawProbe::etcd(&server).await;
                let (srpc, raw) = compare(srpc, raw, n).await;
                report(backend, &srpc);
                ratio(backend, &srpc, &raw);
            }
            "scale" => {
                let hub = format!("inprocess://bench-scale-{}", std::process::id());
                report_scale("inprocess", &hub, "bench.Scale", &[1_000, 10_000, 100_000]).await;
                let server = http_server().await;
                let url = format!("http://{}", server.local_addr());
                report_scale("http", &url, "bench.Scale", &[1_000, 10_000, 100_000]).await;
                server.shutdown().await.unwrap();
            }
            "churn" => {
                let secs = Duration::from_secs(10);
                let hub = format!("inprocess://bench-churn-{}", std::process::id());
                churn(&hub, "bench.Churn", 1_000, secs).await;
                let server = http_server().await;
                churn(
                    &format!("http://{}", server.local_addr()),
                    "bench.Churn",
                    1_000,
                    secs,
                )
                .await;
                server.shutdown().await.unwrap();
                if let Ok(server) = std::env::var("SRPC_ZOOKEEPER") {
                    let root = srpc_tests::servers::fresh_root("srpc-bench-churn");
                    churn(
                        &format!("zookeeper://{server}?group={root}"),
                        "bench.Churn",
                        1_000,
                        secs,
                    )
                    .await;
                }
                if let Ok(server) = std::env::var("SRPC_ETCD") {
                    let root = srpc_tests::servers::fresh_root("srpc-bench-churn");
                    churn(
                        &format!("etcd://{server}?group={root}"),
                        "bench.Churn",
                        1_000,
                        secs,
                    )
                    .await;
                }
            }
            "resync" => {
                for n in [1_000, 10_000] {
                    println!(
                        "http       resync {n:>6} providers after a cut: {} from heal to a connected, current snapshot",
                        ms(resync(n).await)
                    );
                }
            }
            "memory" => {
                for n in [10_000, 100_000] {
                    let (per, text) = memory_per_provider(n).await;
                    println!(
                        "http       memory {n:>6} providers: subscriber holds {per:.0} bytes per provider (URL text {text} bytes; {:.0} beyond it)",
                        per - text as f64
                    );
                }
            }
            "heartbeats" => {
                heartbeat_capacity(1_000, Duration::from_secs(8)).await;
            }
            "reads" => reads::heartbeats_under_reads().await,
            "floods" => floods::floods().await,
            "dashboard" => dashboard::dashboard().await,
            "mdns" => {
                srpc_tests::netns::private();
                let pair = pair("mdns://local?timeout=100").await;
                let probe = SrpcProbe::new(pair, "bench.Mdns").await;
                report(backend, &notify_latency(probe, n, Duration::ZERO).await);
            }
            other => {
                panic!("unknown backend {other}: one of {BACKENDS:?}, mdns, floods or dashboard")
            }
        }
    }
    if chosen_consul {
        println!("(consul*: against srpc's fake agent, so srpc's own cost only)");
    }
}
