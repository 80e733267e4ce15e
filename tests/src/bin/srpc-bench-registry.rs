//! Benchmark: register → subscriber notified, p50 and p99 over `SRPC_BENCH_SAMPLES` samples
//! (default 200) per backend, and for ZooKeeper and etcd the same measured with a raw client
//! in the same run (a plain children watch through `zookeeper-client`; a plain watch stream on
//! etcd's gateway), printed as `srpc/raw notify latency ratio`.
//!
//! `cargo xtask bench registry` runs it with the real servers started on loopback
//! (`SRPC_ZOOKEEPER`, `SRPC_ETCD`), and a second time with `mdns` inside a private network
//! namespace. Arguments name the backends to measure (default: every one but `mdns`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::panic,
    missing_docs
)] // A benchmark binary.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use srpc_registry::{Registry, Url};

const BACKENDS: &[&str] = &[
    "inprocess",
    "multicast",
    "http",
    "consul",
    "zookeeper",
    "etcd",
];

/// Latency percentiles of one series.
struct Series {
    p50: Duration,
    p99: Duration,
}

impl Series {
    fn of(mut samples: Vec<Duration>) -> Series {
        samples.sort_unstable();
        let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
        Series {
            p50: at(0.50),
            p99: at(0.99),
        }
    }
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

fn samples() -> usize {
    std::env::var("SRPC_BENCH_SAMPLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200)
}

/// Registers `n` providers one after another through `provider`; each sample is the time
/// from the start of `register` until `consumer`'s subscription holds the new URL.
async fn notify_latency(
    provider: Arc<dyn Registry>,
    consumer: Arc<dyn Registry>,
    interface: &str,
    n: usize,
) -> Series {
    let query: Url = format!("consumer://127.0.0.1/{interface}?category=providers")
        .parse()
        .unwrap();
    let mut sub = consumer.subscribe(&query).await.unwrap();
    let mut latencies = Vec::with_capacity(n);
    for i in 0..n + 10 {
        let url: Url = format!("dubbo://127.0.0.1:{}/{interface}?weight=100", 20000 + i)
            .parse()
            .unwrap();
        let started = Instant::now();
        provider.register(&url).await.unwrap();
        sub.wait_for(|s| s.contains(&url), Duration::from_secs(30))
            .await
            .unwrap();
        // The first ten warm connections and caches up.
        if i >= 10 {
            latencies.push(started.elapsed());
        }
    }
    drop(sub);
    let _ = provider.close().await;
    let _ = consumer.close().await;
    Series::of(latencies)
}

async fn pair(url: &str) -> (Arc<dyn Registry>, Arc<dyn Registry>) {
    (
        srpc::registry::connect(url).await.unwrap(),
        srpc::registry::connect(url).await.unwrap(),
    )
}

fn report(backend: &str, series: &Series) {
    println!(
        "{backend:<10} srpc notify latency: p50 {} p99 {}",
        ms(series.p50),
        ms(series.p99)
    );
}

fn ratio(backend: &str, srpc: &Series, raw: &Series) {
    println!(
        "{backend:<10} raw  notify latency: p50 {} p99 {}",
        ms(raw.p50),
        ms(raw.p99)
    );
    println!(
        "{backend:<10} srpc/raw notify latency ratio: {:.2} (p50), {:.2} (p99)",
        srpc.p50.as_secs_f64() / raw.p50.as_secs_f64(),
        srpc.p99.as_secs_f64() / raw.p99.as_secs_f64()
    );
}

/// A plain ZooKeeper children watch: one client creates an ephemeral node, the other's
/// one-shot watch on the directory fires; re-armed with a listing each time, as any watcher
/// must.
async fn raw_zookeeper(server: &str, n: usize) -> Series {
    use zookeeper_client::{Acls, Client, CreateMode};
    let root = srpc_tests::servers::fresh_root("srpc-bench-raw");
    let writer = Client::connect(server).await.unwrap();
    let reader = Client::connect(server).await.unwrap();
    let persistent = CreateMode::Persistent.with_acls(Acls::anyone_all());
    writer
        .mkdir(&format!("{root}/dir"), &persistent)
        .await
        .unwrap();
    let dir = format!("{root}/dir");
    let ephemeral = CreateMode::Ephemeral.with_acls(Acls::anyone_all());
    let mut latencies = Vec::with_capacity(n);
    for i in 0..n + 10 {
        let (_, watcher) = reader.list_and_watch_children(&dir).await.unwrap();
        let started = Instant::now();
        writer
            .create(&format!("{dir}/node-{i}"), b"", &ephemeral)
            .await
            .unwrap();
        watcher.changed().await;
        if i >= 10 {
            latencies.push(started.elapsed());
        }
    }
    Series::of(latencies)
}

/// A plain etcd watch stream on the JSON gateway: one request streams the watch of a
/// prefix, another puts a key under it; the sample ends when the event's chunk arrives.
async fn raw_etcd(server: &str, n: usize) -> Series {
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let base = format!("http://{server}");
    let prefix = format!("/srpc-bench-raw-{}/", std::process::id());
    let mut end = prefix.clone().into_bytes();
    *end.last_mut().unwrap() += 1;
    let watch = serde_json::json!({
        "create_request": {"key": BASE64.encode(&prefix), "range_end": BASE64.encode(&end)}
    });
    let mut stream = http
        .post(format!("{base}/v3/watch"))
        .json(&watch)
        .send()
        .await
        .unwrap();
    // The first chunk says the watch was created.
    let created = stream.chunk().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&created).contains("created"));
    let mut latencies = Vec::with_capacity(n);
    for i in 0..n + 10 {
        let key = format!("{prefix}{i}");
        let put = serde_json::json!({"key": BASE64.encode(&key), "value": BASE64.encode("x")});
        let started = Instant::now();
        let send = http.post(format!("{base}/v3/kv/put")).json(&put).send();
        let (answer, chunk) = tokio::join!(send, stream.chunk());
        answer.unwrap().error_for_status().unwrap();
        let chunk = chunk.unwrap().unwrap();
        assert!(
            String::from_utf8_lossy(&chunk).contains("events"),
            "{chunk:?}"
        );
        if i >= 10 {
            latencies.push(started.elapsed());
        }
    }
    let delete =
        serde_json::json!({"key": BASE64.encode(&prefix), "range_end": BASE64.encode(&end)});
    let _ = http
        .post(format!("{base}/v3/kv/deleterange"))
        .json(&delete)
        .send()
        .await;
    Series::of(latencies)
}

/// Scale: `n` providers of one service are registered (64 at a time); then a fresh handle
/// subscribes, and the sample is how long `subscribe` takes to return its first snapshot,
/// which holds them all. Returns that time and, for the HTTP registry, the anchor: one plain
/// GET of the same service's listing, its JSON parsed, in the same run.
async fn scale(registry_url: &str, interface: &str, n: usize) -> (Duration, Option<Duration>) {
    use futures_util::StreamExt;
    let provider = srpc::registry::connect(registry_url).await.unwrap();
    futures_util::stream::iter(0..n)
        .map(|i| {
            let provider = provider.clone();
            let url: Url = format!(
                "dubbo://10.{}.{}.{}:20880/{interface}?weight=100&side=provider",
                i / 65536,
                (i / 256) % 256,
                i % 256
            )
            .parse()
            .unwrap();
            async move { provider.register(&url).await.unwrap() }
        })
        .buffer_unordered(64)
        .collect::<Vec<()>>()
        .await;
    let query: Url = format!("consumer://127.0.0.1/{interface}?category=providers")
        .parse()
        .unwrap();
    let consumer = srpc::registry::connect(registry_url).await.unwrap();
    let started = Instant::now();
    let sub = consumer.subscribe(&query).await.unwrap();
    let took = started.elapsed();
    assert_eq!(
        sub.snapshot().providers().len(),
        n,
        "the first snapshot holds them all"
    );
    drop(sub);
    let anchor = if let Some(base) = registry_url.strip_prefix("http://") {
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        let started = Instant::now();
        let body = http
            .get(format!("http://{base}/v1/services/{interface}"))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let listing: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(listing["instances"].as_array().map(Vec::len), Some(n));
        Some(started.elapsed())
    } else {
        None
    };
    let _ = consumer.close().await;
    let _ = provider.close().await;
    (took, anchor)
}

async fn report_scale(backend: &str, registry_url: &str, interface: &str, sizes: &[usize]) {
    for &n in sizes {
        let (took, anchor) = scale(registry_url, &format!("{interface}{n}"), n).await;
        match anchor {
            Some(raw) => println!(
                "{backend:<10} scale {n:>6} providers: fresh subscriber's snapshot in {}; raw GET + JSON in {}; ratio {:.2}",
                ms(took),
                ms(raw),
                took.as_secs_f64() / raw.as_secs_f64()
            ),
            None => println!(
                "{backend:<10} scale {n:>6} providers: fresh subscriber's snapshot in {}",
                ms(took)
            ),
        }
    }
}

fn free_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let chosen: Vec<&str> = if args.is_empty() {
        BACKENDS.to_vec()
    } else {
        args.iter().map(String::as_str).collect()
    };
    let n = samples();
    let chosen_consul = chosen.contains(&"consul");
    if std::env::var_os("SRPC_TEST_PRIVATE_NETWORK").is_none() {
        println!("register -> subscriber notified, {n} samples per series");
    }
    for backend in chosen {
        match backend {
            "inprocess" => {
                let (p, c) = pair(&format!("inprocess://bench-{}", std::process::id())).await;
                report(backend, &notify_latency(p, c, "bench.Inprocess", n).await);
            }
            "multicast" => {
                let url = format!(
                    "multicast://239.255.77.90:{}?interface=127.0.0.1&timeout=100",
                    free_port()
                );
                let (p, c) = pair(&url).await;
                report(backend, &notify_latency(p, c, "bench.Multicast", n).await);
            }
            "http" => {
                let server = srpc::http::HttpRegistryServer::bind(srpc::http::ServerConfig::new(
                    ([127, 0, 0, 1], 0).into(),
                ))
                .await
                .unwrap();
                let (p, c) = pair(&format!("http://{}", server.local_addr())).await;
                report(backend, &notify_latency(p, c, "bench.Http", n).await);
                server.shutdown().await.unwrap();
            }
            "consul" => {
                // Against srpc's fake agent (no Consul binary here): measures srpc's side.
                let agent = srpc_tests::consul::FakeConsul::start().await.unwrap();
                let (p, c) = pair(&format!("consul://{}", agent.addr())).await;
                report("consul*", &notify_latency(p, c, "bench.Consul", n).await);
            }
            "zookeeper" => {
                let server = srpc_tests::servers::shared_zookeeper();
                let root = srpc_tests::servers::fresh_root("srpc-bench");
                let (p, c) = pair(&format!("zookeeper://{server}?group={root}")).await;
                let srpc = notify_latency(p, c, "bench.Zookeeper", n).await;
                report(backend, &srpc);
                ratio(backend, &srpc, &raw_zookeeper(&server, n).await);
            }
            "etcd" => {
                let server = std::env::var("SRPC_ETCD")
                    .expect("SRPC_ETCD: run under cargo xtask bench registry");
                let root = srpc_tests::servers::fresh_root("srpc-bench");
                let (p, c) = pair(&format!("etcd://{server}?group={root}")).await;
                let srpc = notify_latency(p, c, "bench.Etcd", n).await;
                report(backend, &srpc);
                ratio(backend, &srpc, &raw_etcd(&server, n).await);
            }
            "scale" => {
                let hub = format!("inprocess://bench-scale-{}", std::process::id());
                report_scale("inprocess", &hub, "bench.Scale", &[1_000, 10_000, 100_000]).await;
                let server = srpc::http::HttpRegistryServer::bind(srpc::http::ServerConfig::new(
                    ([127, 0, 0, 1], 0).into(),
                ))
                .await
                .unwrap();
                let url = format!("http://{}", server.local_addr());
                report_scale("http", &url, "bench.Scale", &[1_000, 10_000]).await;
                server.shutdown().await.unwrap();
            }
            "mdns" => {
                srpc_tests::netns::private();
                let (p, c) = pair("mdns://local?timeout=100").await;
                report(backend, &notify_latency(p, c, "bench.Mdns", n).await);
            }
            other => panic!("unknown backend {other}: one of {BACKENDS:?} or mdns"),
        }
    }
    if chosen_consul {
        println!("(consul*: against srpc's fake agent, so srpc's own cost only)");
    }
}
