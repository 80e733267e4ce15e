//! [`TestPki`]: certificates made when a test runs (never committed): a CA, a server
//! certificate for `localhost` and 127.0.0.1, a client certificate, and a client certificate
//! from another CA, as PEM files in a fresh directory removed on drop.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};

/// PEM files of a throwaway PKI.
#[derive(Debug)]
pub struct TestPki {
    dir: tempfile::TempDir,
}

/// A certificate and its key, as files.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The certificate, PEM.
    pub cert: PathBuf,
    /// Its private key, PEM.
    pub key: PathBuf,
}

struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

fn ca(name: &str) -> Ca {
    let key = KeyPair::generate().expect("a CA key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let cert = params.self_signed(&key).expect("a self-signed CA");
    Ca { cert, key }
}

fn leaf(
    issuer: &Ca,
    name: Option<&str>,
    sans: &[&str],
    usage: Vec<ExtendedKeyUsagePurpose>,
) -> (String, String) {
    let key = KeyPair::generate().expect("a key");
    let sans: Vec<String> = sans.iter().map(|s| (*s).to_owned()).collect();
    let mut params = CertificateParams::new(sans).expect("certificate params");
    params.distinguished_name = rcgen::DistinguishedName::new();
    // A subject all the same (an empty one is not valid without a critical SAN, and Java
    // refuses it): an organisation, and a common name when asked for.
    params
        .distinguished_name
        .push(DnType::OrganizationName, "srpc tests");
    if let Some(name) = name {
        params.distinguished_name.push(DnType::CommonName, name);
    }
    params.extended_key_usages = usage;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    let cert = params
        .signed_by(&key, &issuer.cert, &issuer.key)
        .expect("a signed certificate");
    (cert.pem(), key.serialize_pem())
}

impl TestPki {
    /// Makes the files.
    pub fn generate() -> TestPki {
        let dir = tempfile::Builder::new()
            .prefix("srpc-test-pki-")
            .tempdir()
            .expect("a temporary directory");
        let main = ca("srpc test CA");
        let other = ca("another CA");
        let write = |name: &str, text: &str| {
            std::fs::write(dir.path().join(name), text).expect("write a PEM file");
        };
        write("ca.pem", &main.cert.pem());
        write("other-ca.pem", &other.cert.pem());
        // No common name: etcd's gateway, which dials etcd with the server's certificate,
        // refuses every request when auth is on and that certificate has one.
        let (cert, key) = leaf(
            &main,
            None,
            &["localhost", "127.0.0.1", "server.srpc.test"],
            // Client use too: etcd's gateway dials its own gRPC port with the server's
            // certificate when it requires client certificates.
            vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
        );
        write("server.pem", &cert);
        write("server-key.pem", &key);
        let (cert, key) = leaf(
            &main,
            // No common name either: with auth on, etcd's gateway refuses client
            // certificates that carry one.
            None,
            &[],
            vec![ExtendedKeyUsagePurpose::ClientAuth],
        );
        write("client.pem", &cert);
        write("client-key.pem", &key);
        let (cert, key) = leaf(
            &other,
            Some("stranger"),
            &[],
            vec![ExtendedKeyUsagePurpose::ClientAuth],
        );
        write("stranger.pem", &cert);
        write("stranger-key.pem", &key);
        TestPki { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The directory holding the files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The CA that signed the server and client certificates.
    pub fn ca(&self) -> PathBuf {
        self.path("ca.pem")
    }

    /// A CA that signed nothing the servers trust.
    pub fn other_ca(&self) -> PathBuf {
        self.path("other-ca.pem")
    }

    /// The server's certificate (`localhost`, `127.0.0.1`, `server.srpc.test`).
    pub fn server(&self) -> Identity {
        Identity {
            cert: self.path("server.pem"),
            key: self.path("server-key.pem"),
        }
    }

    /// A client certificate from [`TestPki::ca`].
    pub fn client(&self) -> Identity {
        Identity {
            cert: self.path("client.pem"),
            key: self.path("client-key.pem"),
        }
    }

    /// A client certificate from [`TestPki::other_ca`].
    pub fn stranger(&self) -> Identity {
        Identity {
            cert: self.path("stranger.pem"),
            key: self.path("stranger-key.pem"),
        }
    }

    /// The registry URL parameters for a client of this PKI: `cacert`, `cert` and `key`.
    pub fn client_params(&self) -> String {
        let client = self.client();
        format!(
            "cacert={}&cert={}&key={}",
            self.ca().display(),
            client.cert.display(),
            client.key.display()
        )
    }
}

/// A TLS acceptor for `pki`'s server certificate; with `client_auth`, clients must present
/// a certificate from `pki`'s CA.
pub fn acceptor(pki: &TestPki, client_auth: bool) -> std::io::Result<tokio_rustls::TlsAcceptor> {
    Ok(tokio_rustls::TlsAcceptor::from(server_config(
        pki,
        client_auth,
    )?))
}

/// The rustls server configuration of [`acceptor`].
pub fn server_config(
    pki: &TestPki,
    client_auth: bool,
) -> std::io::Result<Arc<rustls::ServerConfig>> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let bad = |e: &dyn std::fmt::Display| std::io::Error::other(e.to_string());
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let server = pki.server();
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&server.cert)
        .map_err(|e| bad(&e))?
        .collect::<Result<_, _>>()
        .map_err(|e| bad(&e))?;
    let key = PrivateKeyDer::from_pem_file(&server.key).map_err(|e| bad(&e))?;
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(&e))?;
    let builder = if client_auth {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(pki.ca()).map_err(|e| bad(&e))? {
            roots.add(cert.map_err(|e| bad(&e))?).map_err(|e| bad(&e))?;
        }
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| bad(&e))?;
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let config = builder.with_single_cert(chain, key).map_err(|e| bad(&e))?;
    Ok(Arc::new(config))
}

/// A TCP listener whose connections are served once their TLS handshake is done (within
/// 5 s; a failed handshake is dropped), for `axum::serve` in test servers.
pub struct TlsListener {
    tcp: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl TlsListener {
    /// Serves `tcp`'s connections through `acceptor`.
    pub fn new(tcp: tokio::net::TcpListener, acceptor: tokio_rustls::TlsAcceptor) -> TlsListener {
        TlsListener { tcp, acceptor }
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((tcp, addr)) = self.tcp.accept().await else {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            };
            let handshake = self.acceptor.accept(tcp);
            if let Ok(Ok(tls)) = tokio::time::timeout(Duration::from_secs(5), handshake).await {
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

/// Checks an error chain for a refusal of the client's certificate (or of its absence). In
/// TLS 1.3 the server checks it after the client's handshake has ended, so the client reads
/// either the server's alert (then srpc's hint must follow it) or, when the server's close
/// overtakes the alert, a closed connection.
pub fn assert_client_certificate_refused(said: &str) {
    let alert = ["BadCertificate", "CertificateRequired", "UnknownCA"]
        .iter()
        .any(|a| said.contains(a));
    if alert {
        assert!(
            said.contains("hint: the server did not accept this client's certificate"),
            "{said}"
        );
    } else {
        assert!(
            said.contains("connection") || said.contains("closed"),
            "{said}"
        );
    }
}
