//! The conformance suite on ZooKeeper, against the real server `cargo xtask integration`
//! starts (`SRPC_ZOOKEEPER`). Every pair of handles gets its own root node.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code: failures panic.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use srpc_registry::Registry;
use srpc_tests::conformance::Factory;
use srpc_tests::servers::shared_zookeeper;

struct Zookeeper;

#[async_trait]
impl Factory for Zookeeper {
    async fn pair(&self) -> (Arc<dyn Registry>, Arc<dyn Registry>) {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let root = format!(
            "/srpc-conformance-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let url = format!(
            "zookeeper://{}?group={root}&session=10000",
            shared_zookeeper()
        );
        let provider = srpc::registry::connect(&url).await.unwrap();
        let consumer = srpc::registry::connect(&url).await.unwrap();
        (provider, consumer)
    }
}

srpc_tests::conformance_suite!(Zookeeper, #[ignore = "needs ZooKeeper: cargo xtask integration"]);
