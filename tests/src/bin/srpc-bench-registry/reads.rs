//! `reads`: heartbeat latency of a `srpc registry serve` process while clients read every
//! instance over and over, against the same heartbeats without the readers (the anchor),
//! and the server's peak memory.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;

use crate::common::{Series, ms};

/// Instances registered, and concurrent readers of all of them.
const INSTANCES: usize = 10_000;
const READERS: usize = 8;
/// One phase (with or without readers); the phases alternate, two of each.
const PHASE: Duration = Duration::from_secs(5);
/// Heartbeats of the probe holder are this far apart: 1,000 a side, so that the p99 is the
/// tenth-slowest, not one stall of the machine.
const PACE: Duration = Duration::from_millis(10);

/// A provider URL of about 400 bytes, as Java Dubbo writes them.
fn instance(i: usize) -> String {
    format!(
        "dubbo://10.{}.{}.{}:20880/bench.Reads?anyhost=true&application=bench-reads&deprecated=false&dubbo=2.0.2&dynamic=true&generic=false&interface=bench.Reads&methods=echo,ping,sum,list,get,put,delete&pid=4242&release=3.3.0&service-name-mapping=true&side=provider&threads=200&timeout=3000&timestamp=1700000000000&version=1.0.0&weight=100",
        i / 65536,
        (i / 256) % 256,
        i % 256
    )
}

/// The server's memory now and at its peak, from `/proc/<pid>/status`, in MB.
fn memory(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kb = |field: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (kb("VmRSS:") / 1024.0, kb("VmHWM:") / 1024.0)
}

/// [`heartbeats`] on a thread and runtime of its own, so that what it measures is the
/// server, not this process's readers queued ahead of it on a shared runtime.
async fn heartbeats_apart(base: &str, phase: Duration) -> Vec<Duration> {
    let base = base.to_owned();
    tokio::task::spawn_blocking(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        runtime.block_on(heartbeats(&http, &base, phase))
    })
    .await
    .unwrap()
}

/// Holder heartbeats every [`PACE`] for `phase`, one keep-alive connection; their latencies.
async fn heartbeats(http: &reqwest::Client, base: &str, phase: Duration) -> Vec<Duration> {
    let mut pace = tokio::time::interval(PACE);
    let mut latencies = Vec::new();
    let started = Instant::now();
    while started.elapsed() < phase {
        pace.tick().await;
        let sent = Instant::now();
        let answer = http
            .post(format!("{base}/v1/holders/heartbeat"))
            .json(&serde_json::json!({"holder": "probe"}))
            .send()
            .await
            .unwrap();
        assert!(answer.status().is_success());
        answer.bytes().await.unwrap();
        latencies.push(sent.elapsed());
    }
    latencies
}

pub(crate) async fn heartbeats_under_reads() {
    let server_bin =
        std::env::var("SRPC_SERVER_BIN").unwrap_or_else(|_| "target/release/srpc".to_owned());
    let most = (INSTANCES * 2).to_string();
    let flags = [
        "--max-instances",
        most.as_str(),
        "--max-instances-per-service",
        most.as_str(),
        "--max-instances-per-holder",
        most.as_str(),
    ];
    let server = srpc_tests::servers::HttpRegistryProcess::start(server_bin.as_ref(), &flags)
        .unwrap_or_else(|e| {
            panic!("{e} (SRPC_SERVER_BIN names the srpc binary: cargo xtask bench registry)")
        });
    let pid = server.pid().unwrap();
    let base = format!("http://{}", server.addr());
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    futures_util::stream::iter(0..INSTANCES)
        .map(|i| {
            let (http, base) = (http.clone(), base.clone());
            async move {
                let body =
                    serde_json::json!({"url": instance(i), "ttl_ms": 600_000, "holder": "bulk"});
                let answer = http
                    .post(format!("{base}/v1/register"))
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                assert!(answer.status().is_success(), "{}", answer.status());
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<()>>()
        .await;
    let probe = serde_json::json!({"url": "dubbo://127.0.0.1:1/bench.Probe", "ttl_ms": 600_000, "holder": "probe"});
    http.post(format!("{base}/v1/register"))
        .json(&probe)
        .send()
        .await
        .unwrap();
    let (idle_rss, _) = memory(pid);

    // The registry changes ten times a second in both phases, so that listings are made
    // again and again while the readers read.
    let stop = Arc::new(AtomicBool::new(false));
    let churn = {
        let (http, base, stop) = (http.clone(), base.clone(), stop.clone());
        tokio::spawn(async move {
            let mut pace = tokio::time::interval(Duration::from_millis(100));
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                pace.tick().await;
                n += 1;
                let url = format!("dubbo://127.0.0.1:{}/bench.Churn", 30_000 + n % 100);
                let body = serde_json::json!({"url": url, "ttl_ms": 600_000, "holder": "churn"});
                let path = if n % 2 == 0 { "register" } else { "deregister" };
                let _ = http
                    .post(format!("{base}/v1/{path}"))
                    .json(&body)
                    .send()
                    .await;
            }
        })
    };
    let mut idle = Vec::new();
    let mut loaded = Vec::new();
    let mut listings = 0u64;
    let mut listed_bytes = 0u64;
    let mut reading_time = Duration::ZERO;
    for _round in 0..2 {
        idle.extend(heartbeats_apart(&base, PHASE).await);
        let reading = Arc::new(AtomicBool::new(true));
        let readers: Vec<_> = (0..READERS)
            .map(|_| {
                // Each reader its own connection, as separate clients would have.
                let http = reqwest::Client::builder().no_proxy().build().unwrap();
                let (base, reading) = (base.clone(), reading.clone());
                tokio::spawn(async move {
                    let (mut read, mut bytes) = (0u64, 0u64);
                    while reading.load(Ordering::Relaxed) {
                        let answer = http
                            .get(format!("{base}/v1/instances"))
                            .send()
                            .await
                            .unwrap();
                        let body = answer.bytes().await.unwrap();
                        assert!(body.len() > INSTANCES * 300);
                        read += 1;
                        bytes += body.len() as u64;
                    }
                    (read, bytes)
                })
            })
            .collect();
        let started = Instant::now();
        loaded.extend(heartbeats_apart(&base, PHASE).await);
        reading.store(false, Ordering::Relaxed);
        for reader in readers {
            let (read, bytes) = reader.await.unwrap();
            listings += read;
            listed_bytes += bytes;
        }
        reading_time += started.elapsed();
    }
    stop.store(true, Ordering::Relaxed);
    churn.await.unwrap();
    let (_, peak_rss) = memory(pid);
    let (idle, loaded) = (Series::of(idle), Series::of(loaded));
    println!(
        "http       heartbeat under reads, {INSTANCES} instances: alone p50 {} p95 {} p99 {}; with {READERS} clients listing all p50 {} p95 {} p99 {}; p99 ratio {:.2}",
        ms(idle.p50),
        ms(idle.p95),
        ms(idle.p99),
        ms(loaded.p50),
        ms(loaded.p95),
        ms(loaded.p99),
        loaded.p99.as_secs_f64() / idle.p99.as_secs_f64().max(1e-9),
    );
    let seconds = reading_time.as_secs_f64().max(1e-9);
    println!(
        "http       listings served meanwhile: {listings} ({:.1} a second, {:.0} MB/s; max-listing-rate paces them)",
        listings as f64 / seconds,
        listed_bytes as f64 / seconds / 1e6,
    );
    println!(
        "http       server memory: {idle_rss:.0} MB with {INSTANCES} instances, peak {peak_rss:.0} MB under the readers"
    );
}
