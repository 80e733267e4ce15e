//! The conformance suite on the multicast backend, on loopback: every pair of handles gets
//! its own free group port, joined and sent on 127.0.0.1.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code: failures panic.

use std::sync::Arc;

use async_trait::async_trait;
use srpc_registry::Registry;
use srpc_tests::conformance::Factory;

struct Multicast;

#[async_trait]
impl Factory for Multicast {
    async fn pair(&self) -> (Arc<dyn Registry>, Arc<dyn Registry>) {
        let url = srpc_tests::multicast_url("timeout=300");
        let provider = srpc::registry::connect(&url).await.unwrap();
        let consumer = srpc::registry::connect(&url).await.unwrap();
        (provider, consumer)
    }

    fn max_url_len(&self) -> usize {
        srpc_registry_multicast::wire::MAX_URL_LEN
    }
}

srpc_tests::conformance_suite!(Multicast);

#[test]
fn dropping_a_handle_stops_every_task() {
    srpc_tests::dropping_a_handle_stops_every_task(
        &srpc_tests::multicast_url("timeout=300"),
        std::time::Duration::from_secs(10),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handle_from_a_builder_works() {
    use srpc::registry::MulticastConfig;
    let port = std::net::UdpSocket::bind("0.0.0.0:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = MulticastConfig::builder("239.255.77.77".parse().unwrap(), port)
        .interface(std::net::Ipv4Addr::LOCALHOST)
        .timeout(std::time::Duration::from_millis(300))
        .clean(false)
        .build()
        .unwrap();
    srpc_tests::a_handle_from_a_builder_works(srpc::registry::open(config).await.unwrap()).await;
}
