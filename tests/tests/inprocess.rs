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
