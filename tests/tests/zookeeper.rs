//! The conformance suite on ZooKeeper, against the real server `cargo xtask integration`
//! starts (`SRPC_ZOOKEEPER`). Every pair of handles gets its own root node.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code: failures panic.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use srpc_registry::Registry;
use srpc_tests::conformance::{Factory, Outage};
use srpc_tests::proxy::TcpProxy;
use srpc_tests::servers::shared_zookeeper;

struct Zookeeper;

#[async_trait]
impl Factory for Zookeeper {
    async fn pair(&self) -> (Arc<dyn Registry>, Arc<dyn Registry>) {
        let root = root();
        let url = format!(
            "zookeeper://{}?group={root}&session=10000",
            shared_zookeeper()
        );
        let provider = srpc::registry::connect(&url).await.unwrap();
        let consumer = srpc::registry::connect(&url).await.unwrap();
        (provider, consumer)
    }

    async fn outage(&self) -> Option<Outage> {
        let root = root();
        let proxy = TcpProxy::start(shared_zookeeper().parse().unwrap())
            .await
            .unwrap();
        // Sessions of 2 s expire soon after the cut; new ones are tried at most 1 s apart.
        let params = format!("group={root}&session=2000&retry.max.period=1s");
        let cut = format!("zookeeper://{}?{params}", proxy.addr());
        let direct = format!("zookeeper://{}?{params}", shared_zookeeper());
        Some(Outage {
            provider: srpc::registry::connect(&cut).await.unwrap(),
            consumer: srpc::registry::connect(&cut).await.unwrap(),
            bystander: srpc::registry::connect(&direct).await.unwrap(),
            proxy,
            lost_after: Duration::from_secs(2),
            retry_period: Duration::from_secs(1),
        })
    }
}

/// A root node of its own for every registry the tests make.
fn root() -> String {
    srpc_tests::servers::fresh_root("srpc-conformance")
}

srpc_tests::conformance_suite!(Zookeeper, #[ignore = "needs ZooKeeper: cargo xtask integration"]);
srpc_tests::outage_suite!(Zookeeper, #[ignore = "needs ZooKeeper: cargo xtask integration"]);
