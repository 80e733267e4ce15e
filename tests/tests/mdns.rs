//! The conformance suite on the mDNS backend, on loopback, inside a private network
//! namespace made for this test binary ([`srpc_tests::netns`]): nothing reaches this
//! machine's networks.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code: failures panic.

use std::sync::Arc;

use async_trait::async_trait;
use srpc_registry::Registry;
use srpc_tests::conformance::Factory;

struct Mdns;

#[async_trait]
impl Factory for Mdns {
    async fn pair(&self) -> (Arc<dyn Registry>, Arc<dyn Registry>) {
        srpc_tests::netns::private();
        srpc_tests::init_logs();
        let url = "mdns://local?timeout=300";
        let provider = srpc::registry::connect(url).await.unwrap();
        let consumer = srpc::registry::connect(url).await.unwrap();
        (provider, consumer)
    }

    /// Each parameter is one TXT string of at most 255 bytes: the suite's long URL has one
    /// long parameter.
    fn max_url_len(&self) -> usize {
        300
    }
}

srpc_tests::conformance_suite!(Mdns);
