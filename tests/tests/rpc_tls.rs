//! The srpc RPC protocol over TLS: a call over TLS and over mutual TLS, a plain client
//! against a TLS server failing fast and saying why, and the XClient opening TLS
//! connections to the endpoints whose URL says `tls=true`, with its TLS settings given once.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code: failures panic.

use std::time::{Duration, Instant};

use srpc::registry::{Pem, TlsConfig};
use srpc::rpc::{Client, ClientOptions, HandlerError, RunningServer, Server};
use srpc::xclient::{Discovery, Options, XClient};
use srpc_registry::Url;
use srpc_tests::tls::TestPki;

const SECOND: Duration = Duration::from_secs(1);

async fn tls_server(pki: &TestPki, client_auth: bool) -> RunningServer {
    Server::new()
        .with_tls(srpc_tests::tls::server_config(pki, client_auth).unwrap())
        .handle("Foo.Sum", |(a, b): (i64, i64)| async move {
            Ok::<_, HandlerError>(a + b)
        })
        .bind("127.0.0.1:0")
        .await
        .unwrap()
}

/// Client settings trusting `pki`'s CA, with its client certificate when `identity`.
fn client_tls(pki: &TestPki, identity: bool) -> ClientOptions {
    let mut tls = TlsConfig::enabled().with_ca(Pem::File(pki.ca()));
    if identity {
        let client = pki.client();
        tls = tls.with_identity(Pem::File(client.cert), Pem::File(client.key));
    }
    ClientOptions::default().with_tls(tls.client_config().unwrap(), Some("localhost".into()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_over_tls_and_mutual_tls() {
    let pki = TestPki::generate();
    for client_auth in [false, true] {
        let server = tls_server(&pki, client_auth).await;
        let addr = server.local_addr().to_string();
        let client = Client::connect(&addr, client_tls(&pki, client_auth))
            .await
            .unwrap();
        let sum: i64 = client.call("Foo.Sum", &(40, 2), SECOND).await.unwrap();
        assert_eq!(sum, 42);
        if client_auth {
            // Without a client certificate the server does not serve it.
            let refused = async {
                let client = Client::connect(&addr, client_tls(&pki, false)).await?;
                client.call::<_, i64>("Foo.Sum", &(1, 1), SECOND).await
            }
            .await;
            assert!(refused.is_err(), "{refused:?}");
        }
        server.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_client_against_a_tls_server_fails_fast_saying_why() {
    let pki = TestPki::generate();
    let server = tls_server(&pki, false).await;
    let started = Instant::now();
    let err = Client::connect(
        &server.local_addr().to_string(),
        ClientOptions::default().with_connect_timeout(Duration::from_secs(10)),
    )
    .await
    .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}: {err}",
        started.elapsed()
    );
    assert!(err.to_string().contains("TLS"), "{err}");
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_xclient_speaks_tls_to_endpoints_that_ask_for_it() {
    let pki = TestPki::generate();
    let server = tls_server(&pki, true).await;
    let registry = srpc::registry::connect("inprocess://rpc-tls")
        .await
        .unwrap();
    let provider = Url::parse(&format!(
        "srpc://{}/Foo?tls=true&side=provider",
        server.local_addr()
    ))
    .unwrap();
    registry.register(&provider).await.unwrap();
    let discover = || async {
        let sub = registry
            .subscribe(&Url::parse("consumer://127.0.0.1/Foo").unwrap())
            .await
            .unwrap();
        Discovery::subscription(sub)
    };
    let with_tls = XClient::new(
        discover().await,
        Options::default().with_client(client_tls(&pki, true)),
    );
    with_tls
        .wait_for_endpoints(|e| !e.list().is_empty(), 5 * SECOND)
        .await
        .unwrap();
    let sum: i64 = with_tls.call("Foo.Sum", &(2, 3)).await.unwrap();
    assert_eq!(sum, 5);
    // Without TLS settings, the endpoint's tls=true is an error that says what to give.
    let without = XClient::new(discover().await, Options::default());
    without
        .wait_for_endpoints(|e| !e.list().is_empty(), 5 * SECOND)
        .await
        .unwrap();
    let err = without
        .call::<_, i64>("Foo.Sum", &(2, 3))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("asks for TLS"), "{err}");
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_certificate_serves_new_connections_and_open_ones_carry_on() {
    let (old, new) = (TestPki::generate(), TestPki::generate());
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("server.pem"), dir.path().join("key.pem"));
    std::fs::copy(old.server().cert, &cert).unwrap();
    std::fs::copy(old.server().key, &key).unwrap();
    let server = Server::new()
        .with_tls_files(&srpc::rpc::ServerTls::new(&cert, &key))
        .unwrap()
        .handle("Foo.Sum", |(a, b): (i64, i64)| async move {
            Ok::<_, HandlerError>(a + b)
        })
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let addr = server.local_addr().to_string();
    let before = Client::connect(&addr, client_tls(&old, false))
        .await
        .unwrap();
    assert!(
        Client::connect(&addr, client_tls(&new, false))
            .await
            .is_err()
    );
    let staged = dir.path().join("staged.pem");
    std::fs::copy(new.server().cert, &staged).unwrap();
    std::fs::rename(&staged, &cert).unwrap();
    std::fs::copy(new.server().key, &staged).unwrap();
    std::fs::rename(&staged, &key).unwrap();
    server.reload_tls().unwrap();
    let after = Client::connect(&addr, client_tls(&new, false))
        .await
        .unwrap();
    let sum: i64 = after.call("Foo.Sum", &(1, 2), SECOND).await.unwrap();
    assert_eq!(sum, 3);
    assert!(
        Client::connect(&addr, client_tls(&old, false))
            .await
            .is_err()
    );
    let sum: i64 = before.call("Foo.Sum", &(3, 4), SECOND).await.unwrap();
    assert_eq!(
        sum, 7,
        "the connection opened before the rotation carries on"
    );
    server.shutdown().await.unwrap();
}
