//! ZooKeeper over TLS: the conformance suite against a ZooKeeper 3.8 started by each test
//! with a secure client port (Netty, `ssl.clientAuth=need`) and certificates made for it,
//! digest authentication over it, and the refusals.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code: failures panic.

use std::sync::Arc;

use async_trait::async_trait;
use srpc_registry::{Registry, Url};
use srpc_tests::conformance::{Factory, Outage};
use srpc_tests::servers::{ZooKeeper, fresh_root};
use srpc_tests::tls::TestPki;

/// A ZooKeeper of its own serving TLS, stopped when the test's factory is dropped.
struct ZookeeperTls {
    server: ZooKeeper,
    pki: TestPki,
}

impl ZookeeperTls {
    fn start() -> ZookeeperTls {
        let pki = TestPki::generate();
        let server = ZooKeeper::start_tls(&pki).unwrap();
        ZookeeperTls { server, pki }
    }

    fn url(&self, params: &str) -> String {
        format!(
            "zookeeper://{}?group={}&session=10000&timeout=3s&{params}",
            self.server.secure_address().unwrap(),
            fresh_root("srpc-tls")
        )
    }
}

#[async_trait]
impl Factory for ZookeeperTls {
    async fn pair(&self) -> (Arc<dyn Registry>, Arc<dyn Registry>) {
        let url = self.url(&self.pki.client_params());
        let provider = srpc::registry::connect(&url).await.unwrap();
        let consumer = srpc::registry::connect(&url).await.unwrap();
        (provider, consumer)
    }

    async fn outage(&self) -> Option<Outage> {
        None
    }
}

mod zookeeper_tls {
    use super::*;

    srpc_tests::conformance_suite!(ZookeeperTls::start(), #[ignore = "needs ZooKeeper: cargo xtask integration"]);
}

fn provider() -> Url {
    Url::parse("dubbo://127.0.0.1:20880/com.acme.ZkTls?side=provider").unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs ZooKeeper: cargo xtask integration"]
async fn digest_auth_over_tls_and_the_refusals() {
    let zk = ZookeeperTls::start();
    let pki = &zk.pki;
    // Digest authentication works over TLS as without it.
    let url = format!(
        "zookeeper://app:secret@{}?group={}&timeout=3s&{}",
        zk.server.secure_address().unwrap(),
        fresh_root("srpc-tls"),
        pki.client_params()
    );
    let registry = srpc::registry::connect(&url).await.unwrap();
    registry.register(&provider()).await.unwrap();
    let query = Url::parse("consumer://127.0.0.1/com.acme.ZkTls?category=providers").unwrap();
    assert_eq!(registry.lookup(&query).await.unwrap(), vec![provider()]);
    registry.close().await.unwrap();

    // No client certificate: no session.
    let refused = srpc::registry::connect(&zk.url(&format!("cacert={}", pki.ca().display()))).await;
    let said = srpc_registry::with_root_cause(&refused.err().unwrap());
    assert!(said.contains("over TLS (hint:"), "{said}");
    // A server certificate from a CA the client does not trust: no session.
    let client = pki.client();
    let refused = srpc::registry::connect(&zk.url(&format!(
        "cacert={}&cert={}&key={}",
        pki.other_ca().display(),
        client.cert.display(),
        client.key.display()
    )))
    .await;
    assert!(
        refused.is_err(),
        "connected to a server it should not trust"
    );
    // A missing CA file: named.
    let missing = pki.dir().join("nowhere.pem");
    let err = srpc::registry::connect(&zk.url(&format!("cacert={}", missing.display())))
        .await
        .err()
        .unwrap();
    assert!(
        err.to_string().contains(&missing.display().to_string()),
        "{err}"
    );
}
