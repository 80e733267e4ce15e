//! The session supervisor: opens sessions, follows their state, reports it to the kit, and
//! opens a new one after an expiry.

use std::sync::Arc;

use srpc_registry_kit::{Error, Result, SessionEvent};
use tracing::{info, warn};
use zookeeper_client::{Client, SessionState};

use super::{BACKEND, Inner, RETRY_CAP, Slot};
use crate::config::ZookeeperConfig;

pub(super) async fn new_client(config: &ZookeeperConfig) -> Result<Client> {
    let mut connector = Client::connector()
        .with_session_timeout(config.session)
        .with_connection_timeout(config.timeout);
    if let Some(digest) = &config.digest {
        connector = connector.with_auth("digest", digest.as_bytes());
    }
    let servers = config.connect_string();
    let connecting = if config.tls.enabled {
        connector = connector.with_tls(tls_options(&config.tls)?);
        // Every server over TLS (`tcp+tls://`).
        futures_util::future::Either::Left(connector.secure_connect(&servers))
    } else {
        futures_util::future::Either::Right(connector.connect(&servers))
    };
    // The client retries a refused connection until the whole timeout has passed; when every
    // server refuses, say so at once instead.
    let refused = every_server_refuses(&config.servers);
    let attempt = async {
        tokio::select! {
            connected = connecting => Ok(connected),
            error = refused => Err(error),
        }
    };
    match tokio::time::timeout(config.timeout, attempt).await {
        Ok(Err(refused)) => Err(Error::not_connected_by(
            BACKEND,
            format!("cannot open a session with {servers}: every server refused the connection"),
            refused,
        )),
        Ok(Ok(Ok(client))) => Ok(client),
        Ok(Ok(Err(error))) => Err(Error::not_connected_by(
            BACKEND,
            format!("cannot open a session with {servers}"),
            error,
        )),
        Err(_) => Err(Error::Timeout {
            backend: BACKEND,
            doing: if config.tls.enabled {
                // The ZooKeeper client retries a failed handshake until the timeout, without
                // saying why: say what to check.
                format!(
                    "opening a session with {servers} over TLS (hint: a refused or untrusted \
                     certificate looks like this: check cacert= against the server's CA, and \
                     cert= and key= against the CA the server wants client certificates from)"
                )
            } else {
                format!("opening a session with {servers}")
            },
            after: config.timeout,
        }),
    }
}

/// The ZooKeeper client's TLS options from the shared settings (checked by the config's
/// `build`: a CA, no server name override): the files are read now, and one that is missing
/// or does not parse is an error naming it.
fn tls_options(tls: &srpc_registry_kit::TlsConfig) -> Result<zookeeper_client::TlsOptions> {
    let text = |pem: &srpc_registry_kit::Pem, what: &'static str| -> Result<(String, String)> {
        let (bytes, source) = pem.load(what)?;
        let text =
            String::from_utf8(bytes).map_err(|_| Error::invalid(what, &source, "not PEM text"))?;
        Ok((text, source))
    };
    let mut options = zookeeper_client::TlsOptions::new();
    if let Some(ca) = &tls.ca {
        let (pem, source) = text(ca, "TLS CA bundle")?;
        options = options
            .with_pem_ca(&pem)
            .map_err(|e| Error::invalid("TLS CA bundle", &source, e.to_string()))?;
    }
    if let Some((cert, key)) = &tls.identity {
        let (cert, source) = text(cert, "TLS client certificate")?;
        let (key, _) = text(key, "TLS client key")?;
        options = options
            .with_pem_identity(&cert, &key)
            .map_err(|e| Error::invalid("TLS client certificate", &source, e.to_string()))?;
    }
    Ok(options)
}

/// Resolves with the refusal when, 300 ms into connecting (a server that is up has answered
/// by then), a TCP connection to every server is refused; otherwise never resolves.
pub(super) async fn every_server_refuses(servers: &[String]) -> std::io::Error {
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let mut last = None;
    for server in servers {
        match tokio::time::timeout(
            std::time::Duration::from_secs(1),
            tokio::net::TcpStream::connect(server.as_str()),
        )
        .await
        {
            Ok(Err(error)) if error.kind() == std::io::ErrorKind::ConnectionRefused => {
                last = Some(error);
            }
            _ => return std::future::pending().await,
        }
    }
    match last {
        Some(error) => error,
        None => std::future::pending().await,
    }
}

impl Inner {
    /// Follows the session: disconnects mark snapshots stale, reconnects re-list, and an
    /// expired session is replaced by a new one after which everything is restored.
    pub(super) async fn supervise(self: Arc<Self>) {
        loop {
            if let Ok(client) = self.client() {
                self.follow_session(client).await;
            }
            if self.is_closed() {
                return;
            }
            self.ctx.report(SessionEvent::Lost);
            let mut backoff = self.ctx.retry().capped(RETRY_CAP).backoff();
            let client = loop {
                match new_client(&self.config).await {
                    Ok(client) => break client,
                    Err(error) => {
                        warn!(backend = BACKEND, %error, "cannot open a new session yet");
                        backoff.wait().await;
                    }
                }
            };
            info!(
                backend = BACKEND,
                session_id = client.session_id().0,
                "new session; restoring registrations and re-listing"
            );
            {
                let mut slot = self.client.write().unwrap_or_else(|p| p.into_inner());
                if matches!(*slot, Slot::Closed) {
                    return; // Closed meanwhile.
                }
                *slot = Slot::Open(client);
            }
            self.ctx.report(SessionEvent::Renewed);
        }
    }

    /// Follows one session until it ends (expired, failed) or the handle is closed.
    async fn follow_session(&self, client: Client) {
        let mut states = client.state_watcher();
        drop(client);
        loop {
            match states.changed().await {
                SessionState::Disconnected => {
                    warn!(
                        backend = BACKEND,
                        "disconnected; keeping the last known providers until reconnected"
                    );
                    self.ctx.report(SessionEvent::Lost);
                }
                SessionState::SyncConnected | SessionState::ConnectedReadOnly => {
                    // The server kept the session, with its ephemeral nodes: nothing to
                    // write again, but changes made meanwhile may have been missed.
                    info!(
                        backend = BACKEND,
                        "reconnected in the same session; re-listing"
                    );
                    self.ctx.report(SessionEvent::Resumed);
                }
                SessionState::Closed => return,
                terminal => {
                    warn!(backend = BACKEND, state = ?terminal, "session ended; opening a new one");
                    return;
                }
            }
        }
    }
}
