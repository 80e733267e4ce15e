//! etcd over TLS with client certificates: the conformance suite against etcd 3.4 and 3.5
//! started by each test with `--cert-file/--key-file/--trusted-ca-file/--client-cert-auth`
//! and certificates made for it ([`TestPki`]), and the refusals: no client certificate, one
//! from another CA, the wrong server name, a file that is missing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code: failures panic.

use std::sync::Arc;

use async_trait::async_trait;
use srpc_registry::{Registry, Url};
use srpc_tests::conformance::{Factory, Outage};
use srpc_tests::servers::{Etcd, EtcdVersion, fresh_root};
use srpc_tests::tls::TestPki;

/// An etcd member of its own serving TLS, stopped when the test's factory is dropped.
struct EtcdTls {
    server: Etcd,
    pki: TestPki,
}

impl EtcdTls {
    fn start(version: EtcdVersion) -> EtcdTls {
        let pki = TestPki::generate();
        let server = Etcd::start_tls(version, &pki).unwrap();
        EtcdTls { server, pki }
    }

    /// A registry URL of this server with `params` (TLS settings) and a fresh root.
    fn url(&self, params: &str) -> String {
        format!(
            "etcd://{}?group={}&session=10000&timeout=3s&{params}",
            self.server.address(),
            fresh_root("srpc-tls")
        )
    }
}

#[async_trait]
impl Factory for EtcdTls {
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

mod etcd_tls_3_4 {
    use super::*;

    srpc_tests::conformance_suite!(EtcdTls::start(EtcdVersion::V3_4), #[ignore = "needs etcd: cargo xtask integration"]);
}

mod etcd_tls_3_5 {
    use super::*;

    srpc_tests::conformance_suite!(EtcdTls::start(EtcdVersion::V3_5), #[ignore = "needs etcd: cargo xtask integration"]);
}

fn provider() -> Url {
    Url::parse("dubbo://127.0.0.1:20880/com.acme.Tls?side=provider").unwrap()
}

/// What `register` says with these TLS settings, its whole chain of causes.
async fn refusal(etcd: &EtcdTls, params: &str) -> String {
    let url = etcd.url(params);
    let registry = match srpc::registry::connect(&url).await {
        Ok(registry) => registry,
        Err(error) => return srpc_registry::with_root_cause(&error),
    };
    let error = registry.register(&provider()).await.unwrap_err();
    srpc_registry::with_root_cause(&error)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs etcd: cargo xtask integration"]
async fn what_cannot_prove_itself_is_refused_saying_why() {
    let etcd = EtcdTls::start(EtcdVersion::V3_4);
    let pki = &etcd.pki;
    let ca = pki.ca().display().to_string();
    let stranger = pki.stranger();
    let client = pki.client();

    // No client certificate: the server asks for one.
    let said = refusal(&etcd, &format!("cacert={ca}")).await;
    srpc_tests::tls::assert_client_certificate_refused(&said);

    // A client certificate from a CA the server does not trust.
    let said = refusal(
        &etcd,
        &format!(
            "cacert={ca}&cert={}&key={}",
            stranger.cert.display(),
            stranger.key.display()
        ),
    )
    .await;
    srpc_tests::tls::assert_client_certificate_refused(&said);

    // The server's certificate does not name what the client expects.
    let said = refusal(
        &etcd,
        &format!(
            "{}&tls-server-name=etcd.elsewhere.test",
            pki.client_params()
        ),
    )
    .await;
    assert!(
        said.contains("NotValidForName") || said.contains("not valid for"),
        "{said}"
    );

    // A server certificate from a CA the client does not trust.
    let said = refusal(
        &etcd,
        &format!(
            "cacert={}&cert={}&key={}",
            pki.other_ca().display(),
            client.cert.display(),
            client.key.display()
        ),
    )
    .await;
    assert!(
        said.contains("UnknownIssuer") || said.contains("unknown issuer"),
        "{said}"
    );

    // A file that is not there: named, before anything is sent.
    let missing = pki.dir().join("nowhere.pem");
    let said = refusal(&etcd, &format!("cacert={}", missing.display())).await;
    assert!(said.contains(&missing.display().to_string()), "{said}");

    // And with everything right, the server name given explicitly: it works.
    let url = etcd.url(&format!(
        "{}&tls-server-name=localhost",
        pki.client_params()
    ));
    let registry = srpc::registry::connect(&url).await.unwrap();
    registry.register(&provider()).await.unwrap();
    registry.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs etcd: cargo xtask integration"]
async fn endpoints_fail_over_over_tls() {
    let etcd = EtcdTls::start(EtcdVersion::V3_4);
    let dead = srpc_tests::servers::free_port();
    let url = format!(
        "etcd://127.0.0.1:{dead},{}?group={}&session=10000&timeout=3s&{}",
        etcd.server.address(),
        fresh_root("srpc-tls"),
        etcd.pki.client_params()
    );
    let registry = srpc::registry::connect(&url).await.unwrap();
    registry.register(&provider()).await.unwrap();
    let found = registry
        .lookup(&Url::parse("consumer://127.0.0.1/com.acme.Tls?category=providers").unwrap())
        .await
        .unwrap();
    assert_eq!(found, vec![provider()]);
    registry.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs etcd: cargo xtask integration"]
async fn user_and_password_over_tls() {
    let etcd = EtcdTls::start(EtcdVersion::V3_5);
    let client = etcd.pki.client();
    let etcdctl = |args: &[&str]| {
        let out = std::process::Command::new(EtcdVersion::V3_5.etcdctl().unwrap())
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints=https://{}", etcd.server.address()))
            .arg(format!("--cacert={}", etcd.pki.ca().display()))
            .arg(format!("--cert={}", client.cert.display()))
            .arg(format!("--key={}", client.key.display()))
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "etcdctl {args:?}: {out:?}");
    };
    etcdctl(&["user", "add", "root:s3cret", "--interactive=false"]);
    etcdctl(&["auth", "enable"]);
    let with = |credentials: &str| {
        format!(
            "etcd://{credentials}{}?group={}&timeout=3s&{}",
            etcd.server.address(),
            fresh_root("srpc-tls"),
            etcd.pki.client_params()
        )
    };
    // Without a user, refused: the gateway never takes the certificate's name as one.
    let denied = srpc::registry::connect(&with("")).await.unwrap();
    let err = denied.register(&provider()).await.unwrap_err();
    assert!(err.to_string().contains("user name"), "{err}");
    let root = srpc::registry::connect(&with("root:s3cret@"))
        .await
        .unwrap();
    root.register(&provider()).await.unwrap();
    let found = root
        .lookup(&Url::parse("consumer://127.0.0.1/com.acme.Tls?category=providers").unwrap())
        .await
        .unwrap();
    assert_eq!(found, vec![provider()]);
    root.close().await.unwrap();
}
