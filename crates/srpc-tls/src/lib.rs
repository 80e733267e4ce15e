//! TLS for srpc's servers (the HTTP registry, the RPC server): [`ServerTls`] (certificate,
//! key, optional client CA), the rustls server configuration made from it, and certificate
//! rotation without dropping connections: the certificate and key are read again when their
//! files change (checked every [`RELOAD_CHECK`] by [`ReloadingCert::watch`]) or when
//! [`ReloadingCert::reload`] is called (`srpc registry serve` and `srpc demo --serve` do on
//! SIGHUP). New connections get the new certificate; open ones keep theirs.
//!
//! The crypto provider is aws-lc-rs, the one every srpc crate uses.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use tracing::{info, warn};

/// How often the certificate and key files are checked for a change.
pub const RELOAD_CHECK: Duration = Duration::from_secs(2);

/// HTTPS settings of the registry server.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerTls {
    /// The certificate chain, PEM.
    pub cert: PathBuf,
    /// Its private key, PEM.
    pub key: PathBuf,
    /// When set, clients must present a certificate from one of these CAs (PEM bundle).
    pub client_ca: Option<PathBuf>,
}

impl ServerTls {
    /// HTTPS with this certificate and key, no client certificates asked for.
    pub fn new(cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> ServerTls {
        ServerTls {
            cert: cert.into(),
            key: key.into(),
            client_ca: None,
        }
    }

    /// Requiring client certificates from the CAs in `ca`.
    #[must_use]
    pub fn with_client_ca(mut self, ca: impl Into<PathBuf>) -> ServerTls {
        self.client_ca = Some(ca.into());
        self
    }
}

fn invalid(path: &Path, what: &str, reason: impl std::fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("TLS {what} {}: {reason}", path.display()),
    )
}

fn certificates(path: &Path, what: &str) -> io::Result<Vec<CertificateDer<'static>>> {
    let bytes =
        std::fs::read(path).map_err(|e| invalid(path, what, format!("cannot read: {e}")))?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<_, _>>()
        .map_err(|e| invalid(path, what, format!("not PEM certificates: {e}")))?;
    if certs.is_empty() {
        return Err(invalid(path, what, "holds no certificate"));
    }
    Ok(certs)
}

/// The certificate and key of `tls`, checked to go together.
fn certified_key(tls: &ServerTls, provider: &CryptoProvider) -> io::Result<CertifiedKey> {
    let chain = certificates(&tls.cert, "certificate")?;
    let bytes = std::fs::read(&tls.key)
        .map_err(|e| invalid(&tls.key, "key", format!("cannot read: {e}")))?;
    let key = PrivateKeyDer::from_pem_slice(&bytes)
        .map_err(|e| invalid(&tls.key, "key", format!("not a PEM private key: {e}")))?;
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| invalid(&tls.key, "key", e))?;
    let certified = CertifiedKey::new(chain, signing);
    certified.keys_match().map_err(|e| {
        invalid(
            &tls.cert,
            "certificate",
            format!("does not go with its key: {e}"),
        )
    })?;
    Ok(certified)
}

/// The certificate a server presents now, replaced whole when the files change.
#[derive(Debug)]
pub struct ReloadingCert {
    tls: ServerTls,
    provider: Arc<CryptoProvider>,
    current: ArcSwap<CertifiedKey>,
    /// When the files last changed, as seen at the last load.
    seen: std::sync::Mutex<Option<(SystemTime, SystemTime)>>,
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

fn modified(tls: &ServerTls) -> Option<(SystemTime, SystemTime)> {
    let cert = std::fs::metadata(&tls.cert)
        .and_then(|m| m.modified())
        .ok()?;
    let key = std::fs::metadata(&tls.key)
        .and_then(|m| m.modified())
        .ok()?;
    Some((cert, key))
}

impl ReloadingCert {
    /// Reads the files again; on an error the certificate in use stays, and the error is
    /// returned (and logged).
    pub fn reload(&self) -> io::Result<()> {
        let stamp = modified(&self.tls);
        match certified_key(&self.tls, &self.provider) {
            Ok(key) => {
                self.current.store(Arc::new(key));
                *self.seen.lock().unwrap_or_else(|p| p.into_inner()) = stamp;
                info!(cert = %self.tls.cert.display(), "TLS certificate loaded");
                Ok(())
            }
            Err(error) => {
                warn!(%error, "TLS certificate not reloaded; the one in use stays");
                Err(error)
            }
        }
    }

    /// Reloads when the files' modification times changed since the last load.
    fn reload_if_changed(&self) {
        let stamp = modified(&self.tls);
        let changed =
            stamp.is_some() && *self.seen.lock().unwrap_or_else(|p| p.into_inner()) != stamp;
        if changed {
            let _ = self.reload();
        }
    }

    /// Checks the files every [`RELOAD_CHECK`] and reloads them when they changed, forever:
    /// spawn it, and abort it when the server stops.
    pub async fn watch(self: Arc<Self>) {
        loop {
            tokio::time::sleep(RELOAD_CHECK).await;
            self.reload_if_changed();
        }
    }
}

/// The server configuration for `tls` (HTTP/1.1 offered by ALPN when `alpn_http1`), and its
/// reloading certificate. Errors name the file at fault.
pub fn server_config(
    tls: &ServerTls,
    alpn_http1: bool,
) -> io::Result<(Arc<rustls::ServerConfig>, Arc<ReloadingCert>)> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let stamp = modified(tls);
    let key = certified_key(tls, &provider)?;
    let reloading = Arc::new(ReloadingCert {
        tls: tls.clone(),
        provider: provider.clone(),
        current: ArcSwap::from_pointee(key),
        seen: std::sync::Mutex::new(stamp),
    });
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?;
    let builder = match &tls.client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in certificates(ca, "client CA")? {
                roots.add(cert).map_err(|e| invalid(ca, "client CA", e))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| invalid(ca, "client CA", e))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_cert_resolver(reloading.clone());
    if alpn_http1 {
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
    }
    Ok((Arc::new(config), reloading))
}

/// A server configuration from a certificate chain and key held in memory (no reload, no
/// client certificates): for certificates a program makes for itself, as `srpc demo --tls`
/// does.
pub fn server_config_from_pem(cert: &[u8], key: &[u8]) -> io::Result<Arc<rustls::ServerConfig>> {
    let bad = |what: &str, e: &dyn std::fmt::Display| {
        io::Error::new(io::ErrorKind::InvalidInput, format!("TLS {what}: {e}"))
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert)
        .collect::<Result<_, _>>()
        .map_err(|e| bad("certificate", &e))?;
    let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| bad("key", &e))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| bad("certificate", &e))?;
    Ok(Arc::new(config))
}
