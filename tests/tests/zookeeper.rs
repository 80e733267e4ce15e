//! The conformance suite on ZooKeeper, against the real server `cargo xtask integration`
//! starts (`SRPC_ZOOKEEPER`). Every pair of handles gets its own root node.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code: failures panic.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use srpc_registry::Registry;
use srpc_tests::conformance::{Factory, Outage};
use srpc_tests::servers::shared_zookeeper;

struct Zookeeper;

/// The same suite with `watch=children`: one-shot children watches and a relisting per
/// change, what srpc falls back to on ensembles older than 3.6 (the servers here are newer,
/// so this keeps that path tested).
struct ZookeeperChildrenWatch;

/// Two handles on a root of their own, with `extra` parameters.
async fn pair(extra: &str) -> (Arc<dyn Registry>, Arc<dyn Registry>) {
    let root = root();
    let url = format!(
        "zookeeper://{}?group={root}&session=10000{extra}",
        shared_zookeeper()
    );
    let provider = srpc::registry::connect(&url).await.unwrap();
    let consumer = srpc::registry::connect(&url).await.unwrap();
    (provider, consumer)
}

#[async_trait]
impl Factory for ZookeeperChildrenWatch {
    async fn pair(&self) -> (Arc<dyn Registry>, Arc<dyn Registry>) {
        pair("&watch=children").await
    }
}

#[async_trait]
impl Factory for Zookeeper {
    async fn pair(&self) -> (Arc<dyn Registry>, Arc<dyn Registry>) {
        pair("").await
    }

    async fn outage(&self) -> Option<Outage> {
        // Sessions of 2 s expire soon after the cut; new ones are tried at most 1 s apart.
        let params = format!("group={}&session=2000&retry.max.period=1s", root());
        let server = shared_zookeeper().parse().unwrap();
        let (lost_after, retry_period) = (Duration::from_secs(2), Duration::from_secs(1));
        Some(Outage::through_proxy("zookeeper", server, &params, lost_after, retry_period).await)
    }
}

/// A root node of its own for every registry the tests make.
fn root() -> String {
    srpc_tests::servers::fresh_root("srpc-conformance")
}

srpc_tests::conformance_suite!(Zookeeper, #[ignore = "needs ZooKeeper: cargo xtask integration"]);
mod children_watch {
    use super::*;
    srpc_tests::conformance_suite!(ZookeeperChildrenWatch, #[ignore = "needs ZooKeeper: cargo xtask integration"]);
}
srpc_tests::outage_suite!(Zookeeper, #[ignore = "needs ZooKeeper: cargo xtask integration"]);

/// Listing and watching never write: subscribing (exact and `*`) and looking up an interface
/// nobody registered leave no node behind (Java consumers create their category
/// directories; srpc does not), and the subscriptions still see the path appear.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs ZooKeeper: cargo xtask integration"]
async fn reading_never_writes_and_still_sees_the_path_appear() {
    use srpc_registry::Url;
    let root = root();
    let url = format!("zookeeper://{}?group={root}", shared_zookeeper());
    let reader = srpc::registry::connect(&url).await.unwrap();
    let query: Url = "consumer://127.0.0.1/com.acme.Ehco?category=providers,configurators,routers"
        .parse()
        .unwrap();
    let everything: Url = "consumer://127.0.0.1/*?interface=*&category=providers&version=*&group=*"
        .parse()
        .unwrap();
    let mut sub = reader.subscribe(&query).await.unwrap();
    let mut all = reader.subscribe(&everything).await.unwrap();
    assert!(reader.lookup(&query).await.unwrap().is_empty());
    assert!(
        sub.snapshot().is_connected(),
        "an absent path is an empty, working listing"
    );
    assert!(
        !srpc_tests::servers::zookeeper_has(&root).await,
        "a reader wrote {root}"
    );
    let writer = srpc::registry::connect(&url).await.unwrap();
    let provider: Url = "dubbo://127.0.0.1:20990/com.acme.Ehco".parse().unwrap();
    writer.register(&provider).await.unwrap();
    let deadline = Duration::from_secs(10);
    sub.wait_for(|s| s.contains(&provider), deadline)
        .await
        .unwrap();
    all.wait_for(|s| s.contains(&provider), deadline)
        .await
        .unwrap();
}

#[test]
#[ignore = "needs ZooKeeper: cargo xtask integration"]
fn dropping_a_handle_stops_every_task() {
    let url = format!(
        "zookeeper://{}?group={}&session=10000",
        shared_zookeeper(),
        root()
    );
    srpc_tests::dropping_a_handle_stops_every_task(&url, Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs ZooKeeper: cargo xtask integration"]
async fn a_handle_from_a_builder_works() {
    let config = srpc::registry::ZookeeperConfig::builder()
        .servers([shared_zookeeper()])
        .layout(srpc_registry_zookeeper::Layout::dubbo(&root()))
        .session(Duration::from_secs(10))
        .build()
        .unwrap();
    srpc_tests::a_handle_from_a_builder_works(srpc::registry::open(config).await.unwrap()).await;
}

/// Issue 27: a live provider's node deleted by someone else (as `srpc unregister` or zkCli
/// would) is written again by its handle within the bound.
#[tokio::test]
#[ignore = "needs ZooKeeper: cargo xtask integration"]
async fn a_node_deleted_by_someone_else_is_written_again() {
    let url = format!("zookeeper://{}?group={}", shared_zookeeper(), root());
    let provider = srpc::registry::connect(&url).await.unwrap();
    let other = srpc::registry::connect(&url).await.unwrap();
    let echo: srpc_registry::Url = "dubbo://127.0.0.1:20981/org.srpc.restore.Zk?side=provider"
        .parse()
        .unwrap();
    srpc_tests::a_deleted_registration_comes_back(&provider, &other, &echo, || async {
        other.unregister(&echo).await.unwrap();
    })
    .await;
}
