//! The conformance suite and the outage contract on etcd 3.4 and 3.5, against the real
//! servers `cargo xtask integration` starts (`SRPC_ETCD`, `SRPC_ETCD_35`). Every pair of
//! handles gets its own root key.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code: failures panic.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use srpc_registry::Registry;
use srpc_tests::conformance::{Factory, Outage};
use srpc_tests::servers::{EtcdVersion, fresh_root, shared_etcd};

struct Etcd(EtcdVersion);

#[async_trait]
impl Factory for Etcd {
    async fn pair(&self) -> (Arc<dyn Registry>, Arc<dyn Registry>) {
        let url = format!(
            "etcd://{}?group={}&session=10000",
            shared_etcd(self.0),
            fresh_root("srpc-conformance")
        );
        let provider = srpc::registry::connect(&url).await.unwrap();
        let consumer = srpc::registry::connect(&url).await.unwrap();
        (provider, consumer)
    }

    async fn outage(&self) -> Option<Outage> {
        // A lease of 2 s (etcd's minimum) expires soon after the cut; keepalives go every
        // 2/3 s, and a lease unheard-from for its TTL is replaced at the first renewal.
        let params = format!(
            "group={}&session=2000&retry.max.period=1s",
            fresh_root("srpc-outage")
        );
        let server = shared_etcd(self.0).parse().unwrap();
        // The TTL plus etcd's expiry check (it sweeps leases every 500 ms).
        let (lost_after, retry_period) = (Duration::from_secs(3), Duration::from_secs(1));
        Some(Outage::through_proxy("etcd", server, &params, lost_after, retry_period).await)
    }
}

mod etcd_3_4 {
    use super::*;

    srpc_tests::conformance_suite!(Etcd(EtcdVersion::V3_4), #[ignore = "needs etcd: cargo xtask integration"]);
    srpc_tests::outage_suite!(Etcd(EtcdVersion::V3_4), #[ignore = "needs etcd: cargo xtask integration"]);
}

mod etcd_3_5 {
    use super::*;

    srpc_tests::conformance_suite!(Etcd(EtcdVersion::V3_5), #[ignore = "needs etcd: cargo xtask integration"]);
    srpc_tests::outage_suite!(Etcd(EtcdVersion::V3_5), #[ignore = "needs etcd: cargo xtask integration"]);
}

#[test]
#[ignore = "needs etcd: cargo xtask integration"]
fn dropping_a_handle_stops_every_task() {
    let url = format!(
        "etcd://{}?group={}&session=10000",
        shared_etcd(EtcdVersion::V3_4),
        fresh_root("srpc-conformance")
    );
    srpc_tests::dropping_a_handle_stops_every_task(&url, std::time::Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs etcd: cargo xtask integration"]
async fn a_handle_from_a_builder_works() {
    let config = srpc::registry::EtcdConfig::builder()
        .endpoints([shared_etcd(EtcdVersion::V3_4)])
        .layout(srpc_registry_etcd::Layout::dubbo(&fresh_root(
            "srpc-builder",
        )))
        .session(std::time::Duration::from_secs(10))
        .build()
        .unwrap();
    srpc_tests::a_handle_from_a_builder_works(srpc::registry::open(config).await.unwrap()).await;
}

/// Issue 27: a live provider's key deleted by someone else (as `etcdctl del` or `srpc
/// unregister` would) is written again by its handle within the bound, on 3.4 and 3.5.
#[tokio::test]
#[ignore = "needs etcd: cargo xtask integration"]
async fn a_key_deleted_by_someone_else_is_written_again() {
    for version in [EtcdVersion::V3_4, EtcdVersion::V3_5] {
        let url = format!(
            "etcd://{}?group={}",
            shared_etcd(version),
            fresh_root("srpc-restore")
        );
        let provider = srpc::registry::connect(&url).await.unwrap();
        let other = srpc::registry::connect(&url).await.unwrap();
        let echo: srpc_registry::Url =
            "dubbo://127.0.0.1:20982/org.srpc.restore.Etcd?side=provider"
                .parse()
                .unwrap();
        srpc_tests::a_deleted_registration_comes_back(&provider, &other, &echo, || async {
            other.unregister(&echo).await.unwrap();
        })
        .await;
        provider.close().await.unwrap();
    }
}
