//! `scale`: a fresh subscriber's first snapshot of many providers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use srpc_registry::{Registry, Url};

use crate::common::{ms, provider};

/// Puts providers `0..n` of `interface` into the registry, 64 at a time. An HTTP registry
/// gets plain register requests with a ten-minute TTL (the data is what matters here, not
/// `n` keepalives in this process); other registries get them through a handle, which is
/// returned to be closed after the measurement.
pub(crate) async fn populate(
    registry_url: &str,
    interface: &str,
    n: usize,
) -> Option<Arc<dyn Registry>> {
    use futures_util::StreamExt;
    if let Some(base) = registry_url.strip_prefix("http://") {
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        let register = format!("http://{}/v1/register", base.split('?').next().unwrap());
        futures_util::stream::iter(0..n)
            .map(|i| {
                let body = serde_json::json!({
                    "url": provider(interface, i).to_full_string(),
                    "ttl_ms": 600_000,
                    "holder": "bench",
                });
                let request = http.post(&register).json(&body).send();
                async move {
                    request.await.unwrap().error_for_status().unwrap();
                }
            })
            .buffer_unordered(64)
            .collect::<Vec<()>>()
            .await;
        return None;
    }
    let registry = srpc::registry::connect(registry_url).await.unwrap();
    futures_util::stream::iter(0..n)
        .map(|i| {
            let registry = registry.clone();
            let url = provider(interface, i);
            async move { registry.register(&url).await.unwrap() }
        })
        .buffer_unordered(64)
        .collect::<Vec<()>>()
        .await;
    Some(registry)
}

/// Scale: `n` providers of one service are registered (64 at a time); then a fresh handle
/// subscribes, and the sample is how long `subscribe` takes to return its first snapshot,
/// which holds them all. Returns that time and, for the HTTP registry, the anchor: one plain
/// GET of the same service's listing, its JSON parsed, in the same run.
pub(crate) async fn scale(
    registry_url: &str,
    interface: &str,
    n: usize,
) -> (Duration, Option<Duration>) {
    let provider = populate(registry_url, interface, n).await;
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
    if let Some(provider) = provider {
        let _ = provider.close().await;
    }
    (took, anchor)
}

pub(crate) async fn report_scale(
    backend: &str,
    registry_url: &str,
    interface: &str,
    sizes: &[usize],
) {
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
