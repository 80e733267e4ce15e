//! The conformance suite on the in-process backend, through the facade's `connect`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code: failures panic.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use srpc_registry::Registry;
use srpc_tests::conformance::Factory;

struct Inprocess;

#[async_trait]
impl Factory for Inprocess {
    async fn pair(&self) -> (Arc<dyn Registry>, Arc<dyn Registry>) {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let hub = format!(
            "inprocess://conformance-{}",
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let provider = srpc::registry::connect(&hub).await.unwrap();
        let consumer = srpc::registry::connect(&hub).await.unwrap();
        (provider, consumer)
    }
}

srpc_tests::conformance_suite!(Inprocess);

#[tokio::test]
async fn a_handle_from_a_builder_works() {
    use srpc::registry::{FailbackConfig, InprocessConfig};
    let config = InprocessConfig::new("builder-test").failback(FailbackConfig::default());
    srpc_tests::a_handle_from_a_builder_works(srpc::registry::open(config).await.unwrap()).await;
}
