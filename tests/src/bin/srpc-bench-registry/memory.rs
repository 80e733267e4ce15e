//! `memory`: what a subscriber holds per provider.

use std::time::Duration;

use srpc_registry::Url;

use crate::ALLOCATOR;
use crate::common::{http_server, provider};
use crate::scale::populate;

/// The subscriber's memory per provider: live heap bytes a fresh HTTP subscriber (its own
/// handle) holds once its snapshot has all `n` providers, measured as what its teardown
/// frees, per provider, beside the URL's own text.
pub(crate) async fn memory_per_provider(n: usize) -> (f64, usize) {
    let server = http_server().await;
    let base = format!("http://{}", server.local_addr());
    let interface = format!("bench.Memory{n}");
    populate(&base, &interface, n).await;
    let text = provider(&interface, n / 2).to_full_string().len();
    let query: Url = format!("consumer://127.0.0.1/{interface}?category=providers")
        .parse()
        .unwrap();
    let consumer = srpc::registry::connect(&base).await.unwrap();
    let sub = consumer.subscribe(&query).await.unwrap();
    assert_eq!(sub.snapshot().providers().len(), n);
    // What the subscriber holds is what goes when it is dropped: measured that way round,
    // the garbage other parts of this process free meanwhile (the population's connections)
    // cannot hide in the figure. The pauses let the first long-poll and the teardown settle.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let with = ALLOCATOR.allocated();
    drop(sub);
    consumer.close().await.unwrap();
    drop(consumer);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let held = with.saturating_sub(ALLOCATOR.allocated());
    server.shutdown().await.unwrap();
    (held as f64 / n as f64, text)
}
