//! The HTTP registry under load: full listings read over and over, by several clients at
//! once, while the registry changes, must not delay heartbeats until a live provider expires.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code: failures panic.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use srpc_registry::Url;
use srpc_registry_http::{HttpRegistryServer, Limits, ServerConfig};

/// Instances in the registry, and the size of each URL: 3 000 × 60 KB, 180 MB of listing
/// (the scale at which listings made under the lock expired a live provider).
const BULK: usize = 3_000;
const URL_PAD: usize = 60_000;
/// Concurrent readers of every instance.
const READERS: usize = 6;
/// How long the load runs: six TTLs of the provider that must stay.
const LOAD: Duration = Duration::from_secs(12);

/// A provider with a 2 s TTL heartbeats through 12 s of six clients listing 180 MB of
/// instances over and over while the registry changes ten times a second: it is never
/// expired, and its consumer never sees it leave.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn listings_under_load_never_starve_the_heartbeat_of_a_live_provider() {
    srpc_tests::init_logs();
    let mut limits = Limits::default();
    limits.url_len = 64 * 1024;
    let config = ServerConfig::new()
        .with_ttl(Duration::from_secs(600))
        .with_limits(limits);
    let server = HttpRegistryServer::bind("127.0.0.1:0", config)
        .await
        .unwrap();
    let base = format!("http://{}", server.local_addr());
    let http = reqwest::Client::builder().no_proxy().build().unwrap();

    // The bulk: large instances held by a holder that stays for the whole test (60 s TTL).
    futures_util::stream::iter(0..BULK)
        .map(|i| {
            let http = http.clone();
            let base = base.clone();
            async move {
                let url = format!(
                    "dubbo://10.1.{}.{}:20880/bench.Bulk?pad={}",
                    i / 250,
                    i % 250,
                    "x".repeat(URL_PAD)
                );
                let body = serde_json::json!({"url": url, "ttl_ms": 600_000, "holder": "bulk"});
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

    // The provider that must stay, and its consumer recording every snapshot.
    let provider = srpc::registry::connect(&format!("{base}?ttl=2s"))
        .await
        .unwrap();
    let alive: Url = "dubbo://127.0.0.1:20990/com.acme.Alive?side=provider"
        .parse()
        .unwrap();
    provider.register(&alive).await.unwrap();
    let consumer = srpc::registry::connect(&base).await.unwrap();
    let query: Url = "consumer://127.0.0.1/com.acme.Alive?category=providers"
        .parse()
        .unwrap();
    let mut subscription = consumer.subscribe(&query).await.unwrap();
    let mut history = subscription.history();
    subscription
        .wait_for(|s| s.len() == 1, Duration::from_secs(10))
        .await
        .unwrap();
    let expired_before = srpc_tests::http_metric(&http, &base, "expirations_total").await;

    // The load: readers of everything, and a registry that keeps changing, so that their
    // listings are made again and again.
    let stop = Arc::new(AtomicBool::new(false));
    let listed = Arc::new(AtomicU64::new(0));
    let mut load = Vec::new();
    for _ in 0..READERS {
        let (http, base, stop, listed) = (http.clone(), base.clone(), stop.clone(), listed.clone());
        load.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let body = http
                    .get(format!("{base}/v1/instances"))
                    .send()
                    .await
                    .unwrap();
                let bytes = body.bytes().await.unwrap();
                assert!(bytes.len() > BULK * URL_PAD, "a full listing");
                listed.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    {
        let (http, base, stop) = (http.clone(), base.clone(), stop.clone());
        load.push(tokio::spawn(async move {
            let mut pace = tokio::time::interval(Duration::from_millis(100));
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                pace.tick().await;
                n += 1;
                let url = format!("dubbo://127.0.0.1:{}/bench.Churn", 30_000 + n % 100);
                let body = serde_json::json!({"url": url, "ttl_ms": 600_000, "holder": "churn"});
                let path = if n % 2 == 0 { "register" } else { "deregister" };
                http.post(format!("{base}/v1/{path}"))
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
            }
        }));
    }
    // The load runs for its time; that is the measurement, not a synchronisation.
    tokio::time::sleep(LOAD).await;
    stop.store(true, Ordering::Relaxed);
    for task in load {
        task.await.unwrap();
    }

    assert!(
        listed.load(Ordering::Relaxed) >= READERS as u64,
        "the readers read"
    );
    assert_eq!(
        srpc_tests::http_metric(&http, &base, "expirations_total").await,
        expired_before,
        "nothing expired under the load"
    );
    while let Ok(snapshot) = history.try_recv() {
        assert!(
            snapshot.providers().iter().any(|p| p == &alive),
            "the consumer saw the live provider leave: {snapshot:?}"
        );
    }
    provider.close().await.unwrap();
    consumer.close().await.unwrap();
    server.shutdown().await.unwrap();
}
