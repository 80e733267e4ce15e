//! [`ZookeeperBackend`]: the ZooKeeper client and its sessions, writes in Dubbo's (or
//! rpcx's) layout, and watches that re-arm with the listing they come with.
//!
//! `session` follows the session, `nodes` writes, `watch` reads and watches; this file
//! holds the handle, its state and the [`Backend`] operations.

mod nodes;
mod session;
mod watch;

use self::session::new_client;

use std::collections::HashMap;
use std::net::UdpSocket;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use srpc_registry_kit::{Backend, Context, Error, Result, SessionEvent, Url, Watches};
use tracing::{debug, info, warn};
use zookeeper_client::{Acls, Client, CreateMode, CreateOptions, Error as ZkError};

use crate::config::{Layout, ZookeeperConfig};

const BACKEND: &str = crate::SCHEME;

/// The ZooKeeper [`Backend`].
#[derive(Debug)]
pub struct ZookeeperBackend {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: ZookeeperConfig,
    /// The current session's client; replaced after an expiry, taken on close.
    client: RwLock<Slot>,
    ctx: Context,
    /// Node data of Dubbo registrations: the creator's IP, as Curator writes it for Java.
    creator_ip: Vec<u8>,
    /// Watched directories (and roots, for `*` queries), with the queries that need them.
    watches: Watches,
    /// Dubbo child names already read, by directory: a name is the whole URL, so a relisting
    /// parses only the names it has not seen (a notification costs one parse, not one per
    /// provider). Rebuilt from each listing, so names that went are forgotten.
    parsed: Mutex<HashMap<String, HashMap<String, Url>>>,
    /// Whether the ensemble takes persistent recursive watches (ZooKeeper 3.6+). Cleared for
    /// good the first time it answers "unimplemented": Dubbo directories are then watched
    /// with one-shot children watches, as before 3.6.
    persistent_watches: AtomicBool,
}

/// Where the session stands.
#[derive(Debug)]
enum Slot {
    /// No session yet: `connect` with `check=false` found the ensemble unreachable, and the
    /// supervisor keeps trying in the background.
    Opening,
    /// A session's client.
    Open(Client),
    /// Closed by `close`.
    Closed,
}

/// The ensemble answered "unimplemented" to a request (older than the request).
#[derive(Debug)]
struct Unimplemented;

/// A ZooKeeper operation that failed, with the client's error kept as its source.
#[derive(Debug, thiserror::Error)]
#[error("{doing} {path}: {source}")]
struct ZkOperation {
    doing: String,
    path: String,
    source: ZkError,
}

/// The longest wait between attempts to open a session or restart a watch, whatever
/// `retry.max.period` says: how soon the registry comes back is what users feel.
const RETRY_CAP: Duration = Duration::from_secs(10);

impl ZookeeperBackend {
    /// Connects (waiting at most the configured `timeout`) and starts the session supervisor.
    ///
    /// With `check=false` an unreachable ensemble is not an error: the handle starts without
    /// a session (its subscriptions say `connected = false`, registrations wait in the retry
    /// book) and the supervisor opens one in the background, then restores everything.
    pub async fn connect(config: ZookeeperConfig, ctx: Context) -> Result<ZookeeperBackend> {
        let slot = match new_client(&config).await {
            Ok(client) => {
                info!(
                    backend = BACKEND,
                    servers = %config.connect_string(),
                    session_id = client.session_id().0,
                    timeout = ?client.session_timeout(),
                    "connected"
                );
                Slot::Open(client)
            }
            Err(error) if !config.failback.check => {
                warn!(
                    backend = BACKEND,
                    servers = %config.connect_string(),
                    %error,
                    "no session yet (check=false): starting anyway, connecting in the background"
                );
                ctx.report(SessionEvent::Lost);
                Slot::Opening
            }
            Err(error) => return Err(error),
        };
        let creator_ip = creator_ip(&config.servers).into_bytes();
        let persistent_watches = AtomicBool::new(config.persistent_watches);
        let watches = Watches::with_retry(BACKEND, &ctx, ctx.retry().capped(RETRY_CAP));
        let inner = Arc::new(Inner {
            config,
            client: RwLock::new(slot),
            ctx,
            creator_ip,
            watches,
            parsed: Mutex::default(),
            persistent_watches,
        });
        inner
            .ctx
            .tasks()
            .spawn("session supervisor", inner.clone().supervise())?;
        Ok(ZookeeperBackend { inner })
    }

    /// The current session id (it changes after an expiry).
    pub fn session_id(&self) -> Option<i64> {
        self.inner.client().ok().map(|c| c.session_id().0)
    }

    /// The current session's id and password, e.g. for tests that expire it on purpose.
    pub fn session(&self) -> Option<zookeeper_client::SessionInfo> {
        self.inner.client().ok().map(|c| c.session().clone())
    }
}

/// A watched path that exists and is gone again at every attempt: retried with backoff.
fn appearing_and_disappearing(path: &str) -> Error {
    Error::backend(
        BACKEND,
        format!("{path} keeps appearing and disappearing between two requests"),
    )
}

/// The address this host uses to reach the first server, found by routing a UDP socket
/// (nothing is sent); loopback when that fails.
fn creator_ip(servers: &[String]) -> String {
    servers
        .first()
        .and_then(|server| {
            let socket = UdpSocket::bind("0.0.0.0:0").ok()?;
            socket.connect(server.as_str()).ok()?;
            Some(socket.local_addr().ok()?.ip().to_string())
        })
        .unwrap_or_else(|| "127.0.0.1".to_owned())
}

/// A failed ZooKeeper operation as a registry error, keeping the client's error as its
/// source: connection trouble is [`Error::NotConnected`], anything else [`Error::Backend`].
fn zk_error(doing: &str, path: &str, error: ZkError) -> Error {
    match error {
        ZkError::ConnectionLoss
        | ZkError::SessionExpired
        | ZkError::NoHosts
        | ZkError::Timeout
        | ZkError::ClientClosed => {
            Error::not_connected_by(BACKEND, format!("{doing} {path}"), error)
        }
        other => Error::backend(
            BACKEND,
            ZkOperation {
                doing: doing.to_owned(),
                path: path.to_owned(),
                source: other,
            },
        ),
    }
}

impl Inner {
    fn client(&self) -> Result<Client> {
        match &*self.client.read().unwrap_or_else(|p| p.into_inner()) {
            Slot::Open(client) => Ok(client.clone()),
            Slot::Opening => Err(Error::not_connected(
                BACKEND,
                format!(
                    "no session with {} yet (connecting in the background)",
                    self.config.connect_string()
                ),
            )),
            Slot::Closed => Err(Error::Closed),
        }
    }

    fn is_closed(&self) -> bool {
        matches!(
            *self.client.read().unwrap_or_else(|p| p.into_inner()),
            Slot::Closed
        )
    }

    fn acls(&self) -> Acls<'static> {
        if self.config.digest.is_some() {
            Acls::creator_all()
        } else {
            Acls::anyone_all()
        }
    }

    fn dir_options(&self) -> CreateOptions<'static> {
        CreateMode::Persistent.with_acls(self.acls())
    }
}

#[async_trait]
impl Backend for ZookeeperBackend {
    const NAME: &'static str = BACKEND;

    async fn register(&self, url: &Url) -> Result<()> {
        let inner = &self.inner;
        let path = inner.node_of(url);
        let persistent = !url.param_bool("dynamic", true)?;
        let data = match &inner.config.layout {
            Layout::Dubbo { .. } => inner.creator_ip.clone(),
            Layout::Rpcx { .. } => {
                let client = inner.client()?;
                let dir = inner.config.layout.dir_of(url);
                inner.ensure_dir(&client, &dir).await?;
                srpc_registry_kit::layout::rpcx_metadata(url).into_bytes()
            }
        };
        inner.write_node(&path, &data, persistent).await?;
        debug!(backend = BACKEND, %path, persistent, "node written");
        Ok(())
    }

    async fn unregister(&self, url: &Url) -> Result<()> {
        let path = self.inner.node_of(url);
        let client = self.inner.client()?;
        match client.delete(&path, None).await {
            Ok(()) | Err(ZkError::NoNode) => Ok(()),
            Err(e) => Err(zk_error("delete", &path, e)),
        }
    }

    /// One `exists` per registration node: those that are gone. (A listing of their
    /// directories would return every provider of the service, each second.)
    async fn missing(&self, registered: &[Url]) -> Result<Vec<Url>> {
        let client = self.inner.client()?;
        let mut missing = Vec::new();
        for url in registered {
            let path = self.inner.node_of(url);
            match client.check_stat(&path).await {
                Ok(Some(_)) => {}
                Ok(None) => missing.push(url.clone()),
                Err(e) => return Err(zk_error("check", &path, e)),
            }
        }
        Ok(missing)
    }

    async fn subscribe(&self, query: &Url) -> Result<()> {
        let inner = &self.inner;
        let client = inner.client()?;
        let dirs = inner.dirs_of(&client, query).await?;
        for dir in &dirs {
            let urls = inner.list_dir(&client, dir).await?;
            inner.ctx.catalog().replace(dir, urls);
        }
        for dir in &dirs {
            inner.ensure_watch(dir, query, false)?;
        }
        if inner.config.layout.dirs_of(query).is_none() {
            inner.ensure_watch(inner.root(), query, true)?;
        }
        Ok(())
    }

    async fn unsubscribe(&self, query: &Url) -> Result<()> {
        self.inner.watches.release(query);
        // Forget what was read for its directories (a query still watching one of them
        // only parses it once more).
        if let Some(dirs) = self.inner.config.layout.dirs_of(query) {
            let mut parsed = self.inner.parsed.lock().unwrap_or_else(|p| p.into_inner());
            for dir in dirs {
                parsed.remove(&dir);
            }
        }
        Ok(())
    }

    async fn lookup(&self, query: &Url) -> Result<Vec<Url>> {
        let client = self.inner.client()?;
        let mut urls = Vec::new();
        for dir in self.inner.dirs_of(&client, query).await? {
            urls.extend(self.inner.list_dir(&client, &dir).await?);
        }
        Ok(urls)
    }

    async fn close(&self) -> Result<()> {
        // The supervisor and the watches were stopped with the handle's tasks. Dropping the last client closes the session; ephemeral nodes go at once.
        *self.inner.client.write().unwrap_or_else(|p| p.into_inner()) = Slot::Closed;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zookeeper_errors_keep_the_client_error_as_their_source() {
        let err = zk_error("list", "/dubbo/a.B/providers", ZkError::ConnectionLoss);
        assert!(matches!(err, Error::NotConnected { .. }), "{err}");
        let source = std::error::Error::source(&err).expect("a typed source");
        assert!(matches!(
            source.downcast_ref::<ZkError>(),
            Some(ZkError::ConnectionLoss)
        ));

        let err = zk_error("create", "/dubbo", ZkError::NoAuth);
        assert!(matches!(err, Error::Backend { .. }), "{err}");
        assert!(err.to_string().contains("create /dubbo"), "{err}");
        let operation = std::error::Error::source(&err).expect("the operation");
        let client = operation.source().expect("the client error");
        assert!(matches!(
            client.downcast_ref::<ZkError>(),
            Some(ZkError::NoAuth)
        ));
    }
}
