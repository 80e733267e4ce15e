//! `resync`: from healing a cut connection to a connected, current snapshot.

use std::time::{Duration, Instant};

use srpc_registry::Url;

use crate::common::{http_server, provider};
use crate::scale::populate;

/// Resync after a cut: `n` providers are in the HTTP registry; a subscriber reaches it
/// through a proxy; the proxy is cut, one provider leaves and one arrives while cut, then the
/// proxy is healed. The figure is the time from the heal until the subscriber's snapshot is
/// connected again and holds the new state. Retries are set to 10–20 ms so that the backoff
/// does not hide the resync itself.
pub(crate) async fn resync(n: usize) -> Duration {
    let server = http_server().await;
    let direct = format!("http://{}", server.local_addr());
    let interface = format!("bench.Resync{n}");
    populate(&direct, &interface, n).await;
    let registry = srpc::registry::connect(&direct).await.unwrap();
    let proxy = srpc_tests::proxy::TcpProxy::start(server.local_addr())
        .await
        .unwrap();
    let consumer = srpc::registry::connect(&format!(
        "http://{}?retry.period=10&retry.max.period=20",
        proxy.addr()
    ))
    .await
    .unwrap();
    let query: Url = format!("consumer://127.0.0.1/{interface}?category=providers")
        .parse()
        .unwrap();
    let mut sub = consumer.subscribe(&query).await.unwrap();
    assert_eq!(sub.snapshot().providers().len(), n);
    proxy.cut();
    sub.wait_for(|s| !s.is_connected(), Duration::from_secs(30))
        .await
        .unwrap();
    let (gone, new) = (provider(&interface, 0), provider(&interface, n));
    // `gone` was registered by `populate`'s raw requests: every holder lets it go.
    reqwest::Client::new()
        .post(format!("{direct}/v1/deregister"))
        .json(&serde_json::json!({"url": gone.to_full_string(), "holder": "*"}))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
    registry.register(&new).await.unwrap();
    let healed = Instant::now();
    proxy.restore();
    sub.wait_for(
        |s| s.is_connected() && s.contains(&new) && !s.contains(&gone),
        Duration::from_secs(30),
    )
    .await
    .unwrap();
    let took = healed.elapsed();
    drop(sub);
    let _ = consumer.close().await;
    let _ = registry.close().await;
    server.shutdown().await.unwrap();
    took
}
