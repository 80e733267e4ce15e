//! The HTTP registry over HTTPS: the conformance suite with client certificates required,
//! the refusals (no client certificate, plain HTTP to an HTTPS server and the reverse), and
//! certificate rotation (new connections get the new certificate, open ones carry on).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code: failures panic.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use srpc::registry::{Pem, TlsConfig};
use srpc_registry::{Registry, Url};
use srpc_registry_http::{HttpRegistryServer, ServerConfig, ServerTls};
use srpc_tests::conformance::{Factory, Outage};
use srpc_tests::tls::TestPki;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A server on HTTPS requiring client certificates from `pki`'s CA.
async fn https_server(pki: &TestPki) -> HttpRegistryServer {
    let server = pki.server();
    let tls = ServerTls::new(server.cert, server.key).with_client_ca(pki.ca());
    HttpRegistryServer::bind("127.0.0.1:0", ServerConfig::new().with_tls(tls))
        .await
        .unwrap()
}

struct Https;

#[async_trait]
impl Factory for Https {
    async fn pair(&self) -> (Arc<dyn Registry>, Arc<dyn Registry>) {
        // The files are read when the server starts and when a handle connects; they are
        // removed when `pki` is dropped, at the end of this function.
        let pki = TestPki::generate();
        // Dropping the handle leaves the server serving until the test ends.
        let server = https_server(&pki).await;
        let url = format!(
            "https://{}?ttl=5s&wait=5s&{}",
            server.local_addr(),
            pki.client_params()
        );
        let provider = srpc::registry::connect(&url).await.unwrap();
        let consumer = srpc::registry::connect(&url).await.unwrap();
        (provider, consumer)
    }

    async fn outage(&self) -> Option<Outage> {
        None
    }
}

srpc_tests::conformance_suite!(Https);

/// The same over HTTPS without client certificates: the server proves itself, clients trust
/// its CA and send nothing but their bearer token, if any.
mod without_client_certificates {
    use super::*;

    struct HttpsServerOnly;

    #[async_trait]
    impl Factory for HttpsServerOnly {
        async fn pair(&self) -> (Arc<dyn Registry>, Arc<dyn Registry>) {
            let pki = TestPki::generate();
            let id = pki.server();
            let server = HttpRegistryServer::bind(
                "127.0.0.1:0",
                ServerConfig::new()
                    .with_tls(ServerTls::new(id.cert, id.key))
                    .with_token("s3cret"),
            )
            .await
            .unwrap();
            let url = format!(
                "https://{}?ttl=5s&wait=5s&token=s3cret&cacert={}",
                server.local_addr(),
                pki.ca().display()
            );
            let provider = srpc::registry::connect(&url).await.unwrap();
            let consumer = srpc::registry::connect(&url).await.unwrap();
            (provider, consumer)
        }

        async fn outage(&self) -> Option<Outage> {
            None
        }
    }

    srpc_tests::conformance_suite!(HttpsServerOnly);
}

fn provider() -> Url {
    Url::parse("dubbo://127.0.0.1:20880/com.acme.Https?side=provider").unwrap()
}

fn query() -> Url {
    Url::parse("consumer://127.0.0.1/com.acme.Https?category=providers").unwrap()
}

/// What `register` says against `url`, with the root cause.
async fn refusal(url: &str) -> String {
    let registry = srpc::registry::connect(url).await.unwrap();
    let error = registry.register(&provider()).await.unwrap_err();
    srpc_registry::with_root_cause(&error)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_cannot_prove_itself_is_refused_saying_why() {
    let pki = TestPki::generate();
    let server = https_server(&pki).await;
    let addr = server.local_addr();
    let said = refusal(&format!(
        "https://{addr}?cacert={}&check=true",
        pki.ca().display()
    ))
    .await;
    srpc_tests::tls::assert_client_certificate_refused(&said);
    // Plain HTTP to an HTTPS server: an error, not a hang.
    let started = Instant::now();
    let said = refusal(&format!("http://{addr}")).await;
    assert!(started.elapsed() < Duration::from_secs(10), "{said}");
    // HTTPS to a plain server.
    let plain = HttpRegistryServer::bind("127.0.0.1:0", ServerConfig::new())
        .await
        .unwrap();
    let said = refusal(&format!(
        "https://{}?{}",
        plain.local_addr(),
        pki.client_params()
    ))
    .await;
    assert!(said.contains("does not speak TLS"), "{said}");
    // And a certificate or key file that is broken stops the server's start, named.
    let junk = pki.dir().join("junk.pem");
    std::fs::write(&junk, "junk").unwrap();
    let tls = ServerTls::new(&junk, pki.server().key);
    let err = HttpRegistryServer::bind("127.0.0.1:0", ServerConfig::new().with_tls(tls))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains(&junk.display().to_string()),
        "{err}"
    );
}

/// A TLS connection of its own to `addr`, trusting `ca`, presenting `pki`'s client
/// certificate.
async fn tls_connection(
    addr: std::net::SocketAddr,
    ca: &std::path::Path,
    pki: &TestPki,
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let client = pki.client();
    let config = TlsConfig::enabled()
        .with_ca(Pem::File(ca.to_path_buf()))
        .with_identity(Pem::File(client.cert), Pem::File(client.key))
        .client_config()
        .unwrap();
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut stream = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await?;
    // The server checks the client's certificate after the client's handshake ends: a
    // request and its answer prove the connection is accepted.
    get_healthz(&mut stream).await?;
    Ok(stream)
}

/// `GET /healthz` on an open connection, kept alive.
async fn get_healthz(
    stream: &mut tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
) -> std::io::Result<()> {
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await?;
    let mut answer = vec![0u8; 1024];
    let n = stream.read(&mut answer).await?;
    let text = String::from_utf8_lossy(&answer[..n]);
    if text.starts_with("HTTP/1.1 200") {
        Ok(())
    } else {
        Err(std::io::Error::other(format!("answered {text:?}")))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_certificate_serves_new_connections_and_open_ones_carry_on() {
    // Two server certificates from two CAs, for the same names; clients of both CAs.
    let old = TestPki::generate();
    let new = TestPki::generate();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (
        dir.path().join("server.pem"),
        dir.path().join("server-key.pem"),
    );
    std::fs::copy(old.server().cert, &cert).unwrap();
    std::fs::copy(old.server().key, &key).unwrap();
    // Clients of either CA are accepted: the client CA bundle holds both.
    let both = dir.path().join("clients.pem");
    let bundle = [
        std::fs::read(old.ca()).unwrap(),
        std::fs::read(new.ca()).unwrap(),
    ]
    .concat();
    std::fs::write(&both, bundle).unwrap();
    let tls = ServerTls::new(&cert, &key).with_client_ca(&both);
    let server = HttpRegistryServer::bind("127.0.0.1:0", ServerConfig::new().with_tls(tls))
        .await
        .unwrap();
    let addr = server.local_addr();
    let mut open = tls_connection(addr, &old.ca(), &old).await.unwrap();
    assert!(tls_connection(addr, &new.ca(), &new).await.is_err());

    // Rotate: new files put in place whole (as tools do, by rename).
    let staged = dir.path().join("staged.pem");
    std::fs::copy(new.server().cert, &staged).unwrap();
    std::fs::rename(&staged, &cert).unwrap();
    std::fs::copy(new.server().key, &staged).unwrap();
    std::fs::rename(&staged, &key).unwrap();
    server.reload_tls().unwrap();

    tls_connection(addr, &new.ca(), &new)
        .await
        .expect("a new connection gets the new certificate");
    assert!(
        tls_connection(addr, &old.ca(), &old).await.is_err(),
        "and no longer the old one"
    );
    get_healthz(&mut open)
        .await
        .expect("the connection opened before the rotation carries on");

    // A broken file is not taken: the certificate in use stays.
    std::fs::write(&cert, "junk").unwrap();
    assert!(server.reload_tls().is_err());
    tls_connection(addr, &new.ca(), &new).await.unwrap();
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_files_that_change_are_read_again_without_a_signal() {
    let old = TestPki::generate();
    let new = TestPki::generate();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (
        dir.path().join("server.pem"),
        dir.path().join("server-key.pem"),
    );
    std::fs::copy(old.server().cert, &cert).unwrap();
    std::fs::copy(old.server().key, &key).unwrap();
    let server = HttpRegistryServer::bind(
        "127.0.0.1:0",
        ServerConfig::new().with_tls(ServerTls::new(&cert, &key)),
    )
    .await
    .unwrap();
    let url = |pki: &TestPki| {
        format!(
            "https://{}?cacert={}&ttl=5s",
            server.local_addr(),
            pki.ca().display()
        )
    };
    let consumer = srpc::registry::connect(&url(&old)).await.unwrap();
    consumer.lookup(&query()).await.unwrap();
    let staged = dir.path().join("staged.pem");
    std::fs::copy(new.server().cert, &staged).unwrap();
    std::fs::rename(&staged, &cert).unwrap();
    std::fs::copy(new.server().key, &staged).unwrap();
    std::fs::rename(&staged, &key).unwrap();
    // Within a few checks of the files, a client of the new CA gets in.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let fresh = srpc::registry::connect(&url(&new)).await.unwrap();
        if fresh.lookup(&query()).await.is_ok() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new certificate was never served"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    server.shutdown().await.unwrap();
}
