//! [`TlsConfig`]: the TLS settings every network backend reads the same way from its registry
//! URL (or is given in code), and the `rustls` client configuration they make.
//!
//! | parameter | meaning |
//! |---|---|
//! | `tls=true` | use TLS (also implied by `https://` endpoints and by any of the below) |
//! | `cacert=<file>` | PEM bundle of the CAs to trust (default: the platform's roots) |
//! | `cert=<file>`, `key=<file>` | client certificate chain and key, PEM (mutual TLS) |
//! | `tls-server-name=<name>` | the name the server's certificate must carry, when it is not the host dialled |
//! | `insecure-skip-tls-verify=true` | accept any server certificate: tests only, logged as a warning |
//!
//! The names are etcdctl's flags (`--cacert`, `--cert`, `--key`,
//! `--insecure-skip-tls-verify`) and Consul's `CONSUL_TLS_SERVER_NAME`. Files are read when
//! the handle connects; one that is missing or does not parse is an error naming it.
//!
//! One crypto provider serves the whole workspace: `aws-lc-rs`, the one rustls and
//! reqwest default to (and that `zookeeper-client`'s TLS pulls in): two providers in one
//! process would leave rustls unable to pick a default.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tracing::warn;

use crate::params::RegistryParams;
use crate::{Error, Result};

/// The registry URL parameters [`TlsConfig::from_params`] reads.
pub const TLS_PARAMS: &[&str] = &[
    "tls",
    "cacert",
    "cert",
    "key",
    "tls-server-name",
    "insecure-skip-tls-verify",
];

/// PEM data: a file read at connect time, or bytes given in code.
#[derive(Clone, PartialEq, Eq)]
pub enum Pem {
    /// A file, read when the handle connects.
    File(PathBuf),
    /// PEM text held in memory.
    Bytes(Vec<u8>),
}

impl fmt::Debug for Pem {
    /// A file by its path; bytes by their length only (a key must never reach a log).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pem::File(path) => write!(f, "File({})", path.display()),
            Pem::Bytes(bytes) => write!(f, "Bytes({} bytes)", bytes.len()),
        }
    }
}

impl Pem {
    /// The PEM text, and where it came from (a file's path) for messages; `what` names it
    /// in the error when the file cannot be read.
    pub fn load(&self, what: &'static str) -> Result<(Vec<u8>, String)> {
        match self {
            Pem::File(path) => std::fs::read(path)
                .map(|bytes| (bytes, path.display().to_string()))
                .map_err(|e| {
                    Error::invalid(what, path.display(), format!("cannot read the file: {e}"))
                }),
            Pem::Bytes(bytes) => Ok((bytes.clone(), "the PEM given in code".to_owned())),
        }
    }
}

/// TLS settings of a registry handle. The default is plain TCP.
#[derive(Clone, Default)]
#[non_exhaustive]
pub struct TlsConfig {
    /// Whether to use TLS at all.
    pub enabled: bool,
    /// The CAs to trust; the platform's roots when `None`.
    pub ca: Option<Pem>,
    /// A client certificate chain and its key, for mutual TLS.
    pub identity: Option<(Pem, Pem)>,
    /// The name the server's certificate must carry, instead of the host dialled.
    pub server_name: Option<String>,
    /// Accept any server certificate (tests only).
    pub insecure_skip_verify: bool,
    /// A ready configuration from the application, used as it is (the fields above are
    /// then ignored).
    pub client_config: Option<Arc<ClientConfig>>,
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfig")
            .field("enabled", &self.enabled)
            .field("ca", &self.ca)
            .field("identity", &self.identity.as_ref().map(|(cert, _)| cert))
            .field("server_name", &self.server_name)
            .field("insecure_skip_verify", &self.insecure_skip_verify)
            .field("client_config", &self.client_config.is_some())
            .finish()
    }
}

impl PartialEq for TlsConfig {
    fn eq(&self, other: &TlsConfig) -> bool {
        self.enabled == other.enabled
            && self.ca == other.ca
            && self.identity == other.identity
            && self.server_name == other.server_name
            && self.insecure_skip_verify == other.insecure_skip_verify
            && match (&self.client_config, &other.client_config) {
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                (None, None) => true,
                _ => false,
            }
    }
}

impl Eq for TlsConfig {}

impl TlsConfig {
    /// TLS on, trusting the platform's roots.
    pub fn enabled() -> TlsConfig {
        TlsConfig {
            enabled: true,
            ..TlsConfig::default()
        }
    }

    /// Trusting the CAs in `ca` (TLS on).
    #[must_use]
    pub fn with_ca(mut self, ca: Pem) -> TlsConfig {
        self.enabled = true;
        self.ca = Some(ca);
        self
    }

    /// Presenting `cert` (a PEM chain) and `key` (TLS on).
    #[must_use]
    pub fn with_identity(mut self, cert: Pem, key: Pem) -> TlsConfig {
        self.enabled = true;
        self.identity = Some((cert, key));
        self
    }

    /// Checking the server's certificate against `name` (TLS on).
    #[must_use]
    pub fn with_server_name(mut self, name: impl Into<String>) -> TlsConfig {
        self.enabled = true;
        self.server_name = Some(name.into());
        self
    }

    /// Accepting any server certificate (TLS on). For tests only: anyone on the path can
    /// read and change the traffic.
    #[must_use]
    pub fn with_insecure_skip_verify(mut self) -> TlsConfig {
        self.enabled = true;
        self.insecure_skip_verify = true;
        self
    }

    /// Using `config` as it is (TLS on).
    #[must_use]
    pub fn with_client_config(mut self, config: Arc<ClientConfig>) -> TlsConfig {
        self.enabled = true;
        self.client_config = Some(config);
        self
    }

    /// Reads [`TLS_PARAMS`] from a registry URL. Any of them but `tls=false` turns TLS on;
    /// `cert` without `key` (or the reverse) is refused.
    pub fn from_params(params: &RegistryParams<'_>) -> Result<TlsConfig> {
        let url = params.url();
        let file = |name: &str| {
            url.param(name)
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(|v| Pem::File(PathBuf::from(v)))
        };
        let ca = file("cacert");
        let identity = match (file("cert"), file("key")) {
            (Some(cert), Some(key)) => Some((cert, key)),
            (None, None) => None,
            _ => return Err(params.invalid("cert and key go together: give both, or neither")),
        };
        let server_name = url
            .param("tls-server-name")
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned);
        let insecure_skip_verify = url.param_bool("insecure-skip-tls-verify", false)?;
        let implied =
            ca.is_some() || identity.is_some() || server_name.is_some() || insecure_skip_verify;
        let enabled = url.param_bool("tls", implied)?;
        if !enabled && implied {
            return Err(params.invalid(
                "tls=false, but TLS settings are given (cacert, cert, key, tls-server-name or \
                 insecure-skip-tls-verify): remove one or the other",
            ));
        }
        Ok(TlsConfig {
            enabled,
            ca,
            identity,
            server_name,
            insecure_skip_verify,
            client_config: None,
        })
    }

    /// The rustls client configuration these settings describe, reading the files now.
    pub fn client_config(&self) -> Result<Arc<ClientConfig>> {
        if let Some(config) = &self.client_config {
            return Ok(config.clone());
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::invalid("TLS config", "protocol versions", e.to_string()))?;
        let verifier: Arc<dyn ServerCertVerifier> = if self.insecure_skip_verify {
            warn!(
                "insecure-skip-tls-verify: the server's certificate is NOT checked; anyone on \
                 the path can read and change this traffic (use it in tests only)"
            );
            Arc::new(AcceptAny(provider.clone()))
        } else {
            let roots = Arc::new(self.roots()?);
            let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                .build()
                .map_err(|e| Error::invalid("TLS config", "CA certificates", e.to_string()))?;
            match &self.server_name {
                Some(name) => {
                    let name = ServerName::try_from(name.clone()).map_err(|_| {
                        Error::invalid(
                            "TLS config",
                            name,
                            "tls-server-name is not a DNS name or IP address",
                        )
                    })?;
                    Arc::new(Renamed {
                        inner: webpki,
                        name,
                    })
                }
                None => webpki,
            }
        };
        let builder = builder
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let config = match &self.identity {
            Some((cert, key)) => {
                let (cert_pem, cert_source) = cert.load("TLS client certificate")?;
                let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
                    .collect::<std::result::Result<_, _>>()
                    .map_err(|e| {
                        Error::invalid(
                            "TLS client certificate",
                            &cert_source,
                            format!("not PEM certificates: {e}"),
                        )
                    })?;
                if chain.is_empty() {
                    return Err(Error::invalid(
                        "TLS client certificate",
                        &cert_source,
                        "holds no certificate",
                    ));
                }
                let (key_pem, key_source) = key.load("TLS client key")?;
                let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
                    Error::invalid(
                        "TLS client key",
                        &key_source,
                        format!("not a PEM private key: {e}"),
                    )
                })?;
                builder.with_client_auth_cert(chain, key).map_err(|e| {
                    Error::invalid(
                        "TLS client certificate",
                        &cert_source,
                        format!("does not go with its key: {e}"),
                    )
                })?
            }
            None => builder.with_no_client_auth(),
        };
        Ok(Arc::new(config))
    }

    /// The CAs given, or the platform's.
    fn roots(&self) -> Result<RootCertStore> {
        let mut roots = RootCertStore::empty();
        match &self.ca {
            Some(ca) => {
                let (pem, source) = ca.load("TLS CA bundle")?;
                for cert in CertificateDer::pem_slice_iter(&pem) {
                    let cert = cert.map_err(|e| {
                        Error::invalid("TLS CA bundle", &source, format!("not PEM: {e}"))
                    })?;
                    roots.add(cert).map_err(|e| {
                        Error::invalid("TLS CA bundle", &source, format!("a bad certificate: {e}"))
                    })?;
                }
                if roots.is_empty() {
                    return Err(Error::invalid(
                        "TLS CA bundle",
                        &source,
                        "holds no certificate",
                    ));
                }
            }
            None => {
                let native = rustls_native_certs::load_native_certs();
                let (added, _) = roots.add_parsable_certificates(native.certs);
                if added == 0 {
                    return Err(Error::invalid(
                        "TLS config",
                        "the platform's CA certificates",
                        "none found: give cacert=<file>",
                    ));
                }
            }
        }
        Ok(roots)
    }
}

/// What to do about a TLS failure somewhere in `error`'s chain of causes, as a clause to
/// append to its message (`""` when the chain shows none): rustls and the peer's alerts name
/// the fault tersely (`BadCertificate`, `UnknownIssuer`); this says which setting fixes it.
pub fn tls_hint(error: &(dyn std::error::Error + 'static)) -> &'static str {
    let mut text = String::new();
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = cause {
        text.push_str(&e.to_string());
        text.push('\n');
        cause = e.source();
    }
    if text.contains("BadCertificate")
        || text.contains("CertificateRequired")
        || text.contains("UnknownCA")
    {
        "; hint: the server did not accept this client's certificate (or its absence): give \
         cert= and key= for a certificate from a CA the server trusts"
    } else if text.contains("UnknownIssuer") {
        "; hint: the server's certificate is not from a CA this client trusts: give cacert= \
         with the CA that signed it"
    } else if text.contains("not valid for name") || text.contains("NotValidForName") {
        "; hint: the server's certificate does not name the host dialled: dial a name it \
         carries, or set tls-server-name="
    } else if text.contains("InvalidContentType") || text.contains("corrupt message") {
        "; hint: the server does not speak TLS on this port: drop the TLS settings or use \
         http://"
    } else {
        ""
    }
}

/// Checks the server's certificate against a given name instead of the host dialled.
#[derive(Debug)]
struct Renamed {
    inner: Arc<WebPkiServerVerifier>,
    name: ServerName<'static>,
}

impl ServerCertVerifier for Renamed {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _dialled: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        self.inner
            .verify_server_cert(end_entity, intermediates, &self.name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Accepts any certificate, still checking that the handshake is signed by it.
#[derive(Debug)]
struct AcceptAny(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Url;

    fn from(url: &str) -> Result<TlsConfig> {
        let url = Url::parse(url).unwrap();
        TlsConfig::from_params(&RegistryParams::new(&url))
    }

    #[test]
    fn parameters_turn_tls_on_and_name_files() {
        assert!(!from("etcd://h:1").unwrap().enabled);
        assert!(from("etcd://h:1?tls=true").unwrap().enabled);
        let c = from("etcd://h:1?cacert=/ca.pem&cert=/c.pem&key=/k.pem&tls-server-name=etcd.local")
            .unwrap();
        assert!(c.enabled);
        assert_eq!(c.ca, Some(Pem::File("/ca.pem".into())));
        assert_eq!(
            c.identity,
            Some((Pem::File("/c.pem".into()), Pem::File("/k.pem".into())))
        );
        assert_eq!(c.server_name.as_deref(), Some("etcd.local"));
        for (bad, why) in [
            ("etcd://h:1?cert=/c.pem", "cert and key go together"),
            ("etcd://h:1?tls=false&cacert=/ca.pem", "tls=false"),
            (
                "etcd://h:1?insecure-skip-tls-verify=maybe",
                "insecure-skip-tls-verify",
            ),
        ] {
            let err = from(bad).unwrap_err().to_string();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn files_that_are_missing_or_not_pem_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not a certificate").unwrap();
        for (config, name) in [
            (
                TlsConfig::enabled().with_ca(Pem::File(missing.clone())),
                &missing,
            ),
            (TlsConfig::enabled().with_ca(Pem::File(junk.clone())), &junk),
            (
                TlsConfig::enabled()
                    .with_identity(Pem::File(junk.clone()), Pem::File(missing.clone())),
                &junk,
            ),
        ] {
            let err = config.client_config().unwrap_err().to_string();
            assert!(err.contains(&name.display().to_string()), "{err}");
        }
    }

    #[test]
    fn debug_never_shows_key_bytes() {
        let config = TlsConfig::enabled().with_identity(
            Pem::Bytes(b"-----BEGIN CERTIFICATE-----".to_vec()),
            Pem::Bytes(b"-----BEGIN PRIVATE KEY-----secret".to_vec()),
        );
        let text = format!("{config:?}");
        assert!(
            !text.contains("secret") && !text.contains("PRIVATE"),
            "{text}"
        );
    }
}
