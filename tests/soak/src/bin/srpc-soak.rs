//! `cargo xtask soak`: the HTTP registry server under a steady load for minutes.
//!
//! The server (`srpc registry serve`, its own process, so that its memory is its own) holds
//! `--instances` instances (100 000) of one service, registered with a 30 s TTL and kept
//! alive by heartbeats at a third of it, paced evenly by a bounded load generator (64 in
//! flight) on loopback; `--watchers` (4) long-poll the service's listing meanwhile, and
//! `--readers` (2) read every instance over and over (`GET /v1/instances`, no index), the
//! load that once starved heartbeats. For `--minutes` (10) it checks:
//! - zero false expirations: the server's `expirations_total` stays 0 and no heartbeat is
//!   answered 404 (every instance is heartbeated in time, so any expiry is false);
//! - zero lost instances: every listing a watcher or reader gets holds all of them;
//! - flat memory: the server's RSS at the end is within 10 % (+ 16 MiB) of its highest RSS
//!   in the first half of the run, sampled every 5 s from one TTL (30 s) of heartbeats and
//!   watchers on (a leak grows the second half beyond the first; the band RSS moves in
//!   does not).
//!
//! It reports heartbeat latency p50/p99/max and how far the generator fell behind its pace
//! (a generator late by more than a TTL would cause expiries that are not the server's).
//! Exits 1 when a check fails.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::panic,
    missing_docs
)] // A measurement binary: failures end it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::Mutex;
use tokio::time::Instant;

const TTL: Duration = Duration::from_secs(30);
const IN_FLIGHT: usize = 64;
/// How often the server's RSS is read.
const RSS_SAMPLE: Duration = Duration::from_secs(5);
/// How often a line of progress is printed.
const REPORT_EVERY: Duration = Duration::from_secs(30);

struct Options {
    minutes: f64,
    instances: usize,
    watchers: usize,
    readers: usize,
    server: String,
}

fn options() -> Options {
    let mut options = Options {
        minutes: 10.0,
        instances: 100_000,
        watchers: 4,
        readers: 2,
        server: "target/release/srpc".to_owned(),
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = || args.next().expect("a value after the option").clone();
        match arg.as_str() {
            "--minutes" => options.minutes = value().parse().expect("--minutes N"),
            "--instances" => options.instances = value().parse().expect("--instances N"),
            "--watchers" => options.watchers = value().parse().expect("--watchers N"),
            "--readers" => options.readers = value().parse().expect("--readers N"),
            "--server" => options.server = value(),
            other => panic!("unknown option {other:?}"),
        }
    }
    options
}

fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn instance(i: usize) -> String {
    format!(
        "dubbo://10.{}.{}.{}:20880/soak.Service?interface=soak.Service&side=provider",
        (i / 65536) % 256,
        (i / 256) % 256,
        i % 256
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let o = options();
    let duration = Duration::from_secs_f64(o.minutes * 60.0);
    let max = (o.instances * 2).to_string();
    let server = srpc_soak::HttpRegistryProcess::start(
        o.server.as_ref(),
        &[
            "--ttl",
            "30s",
            // One service of `--instances` instances, all held by one holder: above the
            // defaults a small estate never reaches.
            "--max-instances",
            &max,
            "--max-instances-per-service",
            &max,
            "--max-instances-per-holder",
            &max,
        ],
    )
    .unwrap();
    let pid = server.pid().unwrap();
    let base = format!("http://{}", server.addr());
    let http = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(IN_FLIGHT + o.watchers + o.readers)
        .build()
        .unwrap();
    println!(
        "soak: {} instances, TTL {}s, heartbeat every {}s, {} watchers, {} readers, {} min, server pid {pid}",
        o.instances,
        TTL.as_secs(),
        (TTL / 3).as_secs(),
        o.watchers,
        o.readers,
        o.minutes
    );

    // Register everything, 64 at a time.
    let registering = Instant::now();
    let service: String = futures_util::stream::iter(0..o.instances)
        .map(|i| {
            let request = http
                .post(format!("{base}/v1/register"))
                .json(&serde_json::json!({"url": instance(i), "ttl_ms": TTL.as_millis() as u64, "holder": "soak"}))
                .send();
            async move {
                let answer: srpc_registry_http::api::RegisterResponse =
                    request.await.unwrap().error_for_status().unwrap().json().await.unwrap();
                answer.service
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .fold(String::new(), |_, s| async move { s })
        .await;
    let rss_registered = rss_mib(pid);
    println!(
        "registered in {:.1}s; server RSS {rss_registered:.1} MiB",
        registering.elapsed().as_secs_f64()
    );

    let stop = Arc::new(AtomicBool::new(false));
    let latencies = Arc::new(Mutex::new(Vec::<u32>::new()));
    let forgotten = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let max_lag_ms = Arc::new(AtomicU64::new(0));
    let next = Arc::new(AtomicUsize::new(0));
    // Heartbeats: instance `n mod N` is due at `n` slots after the start, one cycle a third of
    // the TTL: each instance is renewed every 10 s, evenly spread.
    let slot = TTL / 3 / o.instances as u32;
    let paced_from = Instant::now();
    let generators: Vec<_> = (0..IN_FLIGHT)
        .map(|_| {
            let (http, base) = (http.clone(), base.clone());
            let (stop, latencies, forgotten, failed, max_lag_ms, next) = (
                stop.clone(),
                latencies.clone(),
                forgotten.clone(),
                failed.clone(),
                max_lag_ms.clone(),
                next.clone(),
            );
            let instances = o.instances;
            tokio::spawn(async move {
                let mut mine = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    let due = paced_from + slot * n as u32;
                    // Pacing the load, not waiting for a state.
                    tokio::time::sleep_until(due).await;
                    let lag = due.elapsed().as_millis() as u64;
                    max_lag_ms.fetch_max(lag, Ordering::Relaxed);
                    let url = instance(n % instances);
                    let sent = Instant::now();
                    let answer = http
                        .post(format!("{base}/v1/heartbeat"))
                        .json(&serde_json::json!({"url": url, "holder": "soak"}))
                        .send()
                        .await;
                    mine.push(sent.elapsed().as_micros() as u32);
                    match answer.map(|a| a.status()) {
                        Ok(status) if status.is_success() => {}
                        Ok(status) if status == reqwest::StatusCode::NOT_FOUND => {
                            forgotten.fetch_add(1, Ordering::Relaxed);
                            let _ = http
                                .post(format!("{base}/v1/register"))
                                .json(&serde_json::json!({"url": url, "ttl_ms": TTL.as_millis() as u64, "holder": "soak"}))
                                .send()
                                .await;
                        }
                        _ => {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                latencies.lock().await.extend(mine);
            })
        })
        .collect();

    // Watchers: long-poll the listing; every answer must hold every instance.
    let lost_views = Arc::new(AtomicU64::new(0));
    let views = Arc::new(AtomicU64::new(0));
    let fewest = Arc::new(AtomicUsize::new(usize::MAX));
    let watchers: Vec<_> = (0..o.watchers)
        .map(|_| {
            let (http, base, service) = (http.clone(), base.clone(), service.clone());
            let (stop, lost_views, views, fewest) = (
                stop.clone(),
                lost_views.clone(),
                views.clone(),
                fewest.clone(),
            );
            let instances = o.instances;
            tokio::spawn(async move {
                let mut index = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let answer = http
                        .get(format!(
                            "{base}/v1/services/{service}?index={index}&wait=10s"
                        ))
                        .send()
                        .await;
                    let Ok(answer) = answer else { continue };
                    let Ok(body) = answer
                        .json::<srpc_registry_http::api::ServiceResponse>()
                        .await
                    else {
                        continue;
                    };
                    index = body.revision;
                    views.fetch_add(1, Ordering::Relaxed);
                    fewest.fetch_min(body.instances.len(), Ordering::Relaxed);
                    if body.instances.len() != instances {
                        lost_views.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();

    // Readers: every instance, read again as soon as read.
    let reads = Arc::new(AtomicU64::new(0));
    let readers: Vec<_> = (0..o.readers)
        .map(|_| {
            let (http, base) = (http.clone(), base.clone());
            let (stop, lost_views, reads, fewest) = (
                stop.clone(),
                lost_views.clone(),
                reads.clone(),
                fewest.clone(),
            );
            let instances = o.instances;
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let Ok(answer) = http.get(format!("{base}/v1/instances")).send().await else {
                        continue;
                    };
                    let Ok(body) = answer
                        .json::<srpc_registry_http::api::InstancesResponse>()
                        .await
                    else {
                        continue;
                    };
                    reads.fetch_add(1, Ordering::Relaxed);
                    fewest.fetch_min(body.instances.len(), Ordering::Relaxed);
                    if body.instances.len() != instances {
                        lost_views.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();

    // Memory: sampled every 5 s from one TTL of heartbeats and watchers on (by then every
    // instance was renewed three times and every watcher has had several answers; a
    // baseline taken after the first 10 s cycle was 97 MiB where the server settles at 124).
    // The baseline is the highest RSS of the first half, not one sample: under this load the
    // server's RSS goes on rising for a minute or so after the first TTL, then moves within
    // a band of some 30 MiB while the registry stays unchanged (an 8-minute run: 248, 263,
    // 277, 261, 258 MiB; with glibc's mmap threshold fixed, 216, 259, 258, 252, 262), and a
    // single sample at one TTL caught it low (a 2-minute CI run failed at 225 -> 265 MiB).
    // Most of the band is the dashboard at /ui, a client with its own copy of every
    // instance: with `--no-dashboard` two 0.5-minute runs held at 110.2-110.5 MiB.
    // A leak still shows: it lifts the second half above the first half's highest.
    tokio::time::sleep(TTL + Duration::from_secs(1)).await;
    let soak_started = Instant::now();
    let half = duration / 2;
    let rss_warm = rss_mib(pid);
    let (mut rss_base, mut rss_max) = (rss_warm, rss_warm);
    let mut reported = Instant::now();
    while soak_started.elapsed() < duration {
        let left = duration.saturating_sub(soak_started.elapsed());
        tokio::time::sleep(left.min(RSS_SAMPLE)).await;
        let rss = rss_mib(pid);
        rss_max = rss_max.max(rss);
        if soak_started.elapsed() <= half {
            rss_base = rss_base.max(rss);
        }
        if reported.elapsed() >= REPORT_EVERY || soak_started.elapsed() >= duration {
            reported = Instant::now();
            println!(
                "  {:>5.1} min: server RSS {rss:.1} MiB, {} heartbeats sent, generator lag max {} ms",
                soak_started.elapsed().as_secs_f64() / 60.0,
                next.load(Ordering::Relaxed),
                max_lag_ms.load(Ordering::Relaxed)
            );
        }
    }
    stop.store(true, Ordering::Relaxed);
    for generator in generators {
        generator.await.unwrap();
    }
    for watcher in watchers.into_iter().chain(readers) {
        watcher.abort();
    }
    let rss_end = rss_mib(pid);
    let expirations = srpc_soak::http_metric(&http, &base, "expirations_total").await;
    let held = srpc_soak::http_metric(&http, &base, "instances").await;
    drop(server);

    let mut latencies = std::mem::take(&mut *latencies.lock().await);
    latencies.sort_unstable();
    let at = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0) as f64
            / 1000.0
    };
    let sent = latencies.len();
    let rate = sent as f64 / paced_from.elapsed().as_secs_f64();
    let forgotten = forgotten.load(Ordering::Relaxed);
    let failed = failed.load(Ordering::Relaxed);
    let lost_views = lost_views.load(Ordering::Relaxed);
    let fewest = fewest.load(Ordering::Relaxed);
    let lag = max_lag_ms.load(Ordering::Relaxed);
    let flat = rss_end <= rss_base * 1.10 + 16.0;
    println!("soak results:");
    println!(
        "  heartbeats: {sent} ({rate:.0}/s), latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; generator lag max {lag} ms",
        at(0.5),
        at(0.99),
        at(1.0)
    );
    println!(
        "  false expirations: {expirations} (server), {forgotten} heartbeats answered 404; {failed} heartbeats failed"
    );
    println!(
        "  instances held at the end: {held} of {}; listings seen by watchers: {}, full reads by readers: {}, short of instances: {lost_views} (fewest {})",
        o.instances,
        views.load(Ordering::Relaxed),
        reads.load(Ordering::Relaxed),
        if fewest == usize::MAX { 0 } else { fewest }
    );
    println!(
        "  server RSS: {rss_registered:.1} MiB registered, {rss_warm:.1} MiB after one TTL, {rss_base:.1} MiB highest in the first half, {rss_max:.1} MiB max, {rss_end:.1} MiB at the end ({})",
        if flat { "flat" } else { "GREW" }
    );
    let ok = expirations == 0
        && forgotten == 0
        && failed == 0
        && lost_views == 0
        && held as usize == o.instances
        && flat
        && lag < TTL.as_millis() as u64 / 3;
    if ok {
        println!("soak: passed");
    } else {
        println!("soak: FAILED");
        std::process::exit(1);
    }
}
