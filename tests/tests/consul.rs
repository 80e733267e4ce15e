//! The conformance suite and the outage contract on Consul: against the fake agent of
//! `srpc_tests::consul`, or against a real agent when `CONSUL_HTTP_ADDR` is set.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code: failures panic.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use srpc_registry::Registry;
use srpc_tests::conformance::{Factory, Outage};
use srpc_tests::consul::FakeConsul;

/// The agents the tests made, kept until the test process ends.
static FAKES: Mutex<Vec<FakeConsul>> = Mutex::new(Vec::new());

/// A real agent's address from `CONSUL_HTTP_ADDR`, else a fresh fake agent's.
async fn agent() -> SocketAddr {
    if let Ok(addr) = std::env::var("CONSUL_HTTP_ADDR") {
        let addr = addr.trim_start_matches("http://").trim_end_matches('/');
        return tokio::net::lookup_host(addr)
            .await
            .unwrap()
            .next()
            .expect("CONSUL_HTTP_ADDR resolves");
    }
    let fake = FakeConsul::start().await.unwrap();
    let addr = fake.addr();
    FAKES.lock().unwrap().push(fake);
    addr
}

struct Consul;

#[async_trait]
impl Factory for Consul {
    async fn pair(&self) -> (Arc<dyn Registry>, Arc<dyn Registry>) {
        // Consul has no namespaces here: every test uses interfaces of its own.
        let url = format!("consul://{}?consul-watch-timeout=5000", agent().await);
        let provider = srpc::registry::connect(&url).await.unwrap();
        let consumer = srpc::registry::connect(&url).await.unwrap();
        (provider, consumer)
    }

    /// Consul's `Meta` values end at 512 characters.
    fn max_url_len(&self) -> usize {
        srpc_registry_consul::MAX_META_VALUE
    }

    async fn outage(&self) -> Option<Outage> {
        // A TTL of 1 s: a provider that cannot pass goes critical (and out of `passing`
        // answers) soon after the cut; passes every third of a second.
        let params =
            "consul-check-pass-interval=1000&consul-watch-timeout=5000&retry.max.period=1s";
        let (lost_after, retry_period) = (Duration::from_secs(2), Duration::from_secs(1));
        Some(Outage::through_proxy("consul", agent().await, params, lost_after, retry_period).await)
    }
}

srpc_tests::conformance_suite!(Consul);
srpc_tests::outage_suite!(Consul);

/// The fake agent over HTTPS, requiring client certificates (Consul's `verify_incoming`):
/// the same suite, with the TLS settings in the registry URL.
mod over_tls {
    use super::*;
    use srpc_tests::tls::TestPki;

    /// A fresh HTTPS agent, the URL parameters of a client it trusts, and their files
    /// (read when the agent starts and when a handle connects; removed when dropped).
    async fn tls_agent() -> (SocketAddr, String, TestPki) {
        let pki = TestPki::generate();
        let fake = FakeConsul::start_tls(&pki).await.unwrap();
        let addr = fake.addr();
        let params = pki.client_params();
        FAKES.lock().unwrap().push(fake);
        (addr, params, pki)
    }

    struct ConsulTls;

    #[async_trait]
    impl Factory for ConsulTls {
        async fn pair(&self) -> (Arc<dyn Registry>, Arc<dyn Registry>) {
            let (addr, tls, _files) = tls_agent().await;
            let url = format!("consul://{addr}?consul-watch-timeout=5000&{tls}");
            let provider = srpc::registry::connect(&url).await.unwrap();
            let consumer = srpc::registry::connect(&url).await.unwrap();
            (provider, consumer)
        }

        fn max_url_len(&self) -> usize {
            srpc_registry_consul::MAX_META_VALUE
        }

        async fn outage(&self) -> Option<Outage> {
            None
        }
    }

    srpc_tests::conformance_suite!(ConsulTls);

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_agent_that_wants_a_client_certificate_refuses_a_client_without_one() {
        let pki = TestPki::generate();
        let fake = FakeConsul::start_tls(&pki).await.unwrap();
        let provider: srpc_registry::Url =
            "dubbo://127.0.0.1:20880/com.acme.ConsulTls?side=provider"
                .parse()
                .unwrap();
        // TLS, the right CA, no client certificate.
        let url = format!(
            "consul://{}?cacert={}&timeout=2s",
            fake.addr(),
            pki.ca().display()
        );
        let registry = srpc::registry::connect(&url).await.unwrap();
        // Refused. (In TLS 1.3 the server checks the client's certificate after the client
        // has finished its handshake, so the error is either the server's alert or a closed
        // connection, whichever the client reads first.)
        assert!(registry.register(&provider).await.is_err());
        // And nothing reached the agent: a client it trusts finds no provider.
        let trusted = srpc::registry::connect(&format!(
            "consul://{}?{}&timeout=2s",
            fake.addr(),
            pki.client_params()
        ))
        .await
        .unwrap();
        let query: srpc_registry::Url =
            "consumer://127.0.0.1/com.acme.ConsulTls?category=providers"
                .parse()
                .unwrap();
        assert!(trusted.lookup(&query).await.unwrap().is_empty());
        // Plain HTTP to an HTTPS agent: refused, not hung.
        let url = format!("consul://{}?timeout=2s", fake.addr());
        let registry = srpc::registry::connect(&url).await.unwrap();
        assert!(registry.register(&provider).await.is_err());
    }
}

#[test]
fn dropping_a_handle_stops_every_task() {
    // The agent runs in a runtime of its own: only the handle's tasks are counted.
    let servers = tokio::runtime::Runtime::new().unwrap();
    let agent = servers.block_on(agent());
    srpc_tests::dropping_a_handle_stops_every_task(
        &format!("consul://{agent}?consul-watch-timeout=5000"),
        Duration::from_secs(10),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handle_from_a_builder_works() {
    let config = srpc::registry::ConsulConfig::builder()
        .agent(&agent().await.to_string())
        .watch_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    srpc_tests::a_handle_from_a_builder_works(srpc::registry::open(config).await.unwrap()).await;
}

/// Issue 27: a live provider's service deregistered at the agent by someone else is
/// registered again by its handle within the bound.
#[tokio::test]
async fn a_service_deregistered_by_someone_else_is_registered_again() {
    let url = format!("consul://{}?consul-watch-timeout=5000", agent().await);
    let provider = srpc::registry::connect(&url).await.unwrap();
    let other = srpc::registry::connect(&url).await.unwrap();
    let echo: srpc_registry::Url = "dubbo://127.0.0.1:20983/org.srpc.restore.Consul?side=provider"
        .parse()
        .unwrap();
    srpc_tests::a_deleted_registration_comes_back(&provider, &other, &echo, || async {
        other.unregister(&echo).await.unwrap();
    })
    .await;
}
