//! [`ZookeeperBackend`]: the ZooKeeper client and its sessions, writes in Dubbo's (or
//! rpcx's) layout, and watches that re-arm with the listing they come with.

use std::collections::HashMap;
use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::FutureExt;
use srpc_registry_kit::{Backend, Context, Error, Result, SessionEvent, Url, WatchScope, Watches};
use tracing::{debug, info, warn};
use zookeeper_client::{
    Acls, AddWatchMode, Client, CreateMode, CreateOptions, Error as ZkError, EventType,
    SessionState,
};

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

async fn new_client(config: &ZookeeperConfig) -> Result<Client> {
    let mut connector = Client::connector()
        .with_session_timeout(config.session)
        .with_connection_timeout(config.timeout);
    if let Some(digest) = &config.digest {
        connector = connector.with_auth("digest", digest.as_bytes());
    }
    let servers = config.connect_string();
    let connecting = connector.connect(&servers);
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
            doing: format!("opening a session with {servers}"),
            after: config.timeout,
        }),
    }
}

/// Resolves with the refusal when, 300 ms into connecting (a server that is up has answered
/// by then), a TCP connection to every server is refused; otherwise never resolves.
async fn every_server_refuses(servers: &[String]) -> std::io::Error {
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

    /// Follows the session: disconnects mark snapshots stale, reconnects re-list, and an
    /// expired session is replaced by a new one after which everything is restored.
    async fn supervise(self: Arc<Self>) {
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

    /// Creates a watched directory if missing. Dubbo directories are empty; rpcx marks its
    /// base with `rpcx_path` and a service directory with the service name, so whoever
    /// creates them first (provider or consumer) writes the markers.
    async fn ensure_dir(&self, client: &Client, dir: &str) -> Result<()> {
        match &self.config.layout {
            Layout::Dubbo { .. } => client
                .mkdir(dir, &self.dir_options())
                .await
                .map_err(|e| zk_error("create", dir, e)),
            Layout::Rpcx { base } => {
                if let Some((parent, _)) = base.rsplit_once('/') {
                    if !parent.is_empty() {
                        client
                            .mkdir(parent, &self.dir_options())
                            .await
                            .map_err(|e| zk_error("create", parent, e))?;
                    }
                }
                if base != "/" {
                    self.create_ignoring_exists(client, base, b"rpcx_path")
                        .await?;
                }
                if dir != base {
                    let service = dir.rsplit('/').next().unwrap_or("");
                    self.create_ignoring_exists(client, dir, service.as_bytes())
                        .await?;
                }
                Ok(())
            }
        }
    }

    async fn create_ignoring_exists(&self, client: &Client, path: &str, data: &[u8]) -> Result<()> {
        match client.create(path, data, &self.dir_options()).await {
            Ok(_) | Err(ZkError::NodeExists) => Ok(()),
            Err(e) => Err(zk_error("create", path, e)),
        }
    }

    /// Creates `path` with `data`: ephemeral unless `persistent`. An ephemeral node that
    /// already exists is kept when this session owns it, and replaced when a dead session
    /// left it behind (it would vanish with that session later).
    async fn write_node(&self, path: &str, data: &[u8], persistent: bool) -> Result<()> {
        let client = self.client()?;
        let Some((parent, _)) = path.rsplit_once('/') else {
            return Err(Error::invalid("registration", path, "no parent node"));
        };
        let mode = if persistent {
            CreateMode::Persistent
        } else {
            CreateMode::Ephemeral
        };
        let options = mode.with_acls(self.acls());
        for _ in 0..3 {
            // The node first: its parents almost always exist, and making them first would
            // cost a round trip per level on every registration.
            match client.create(path, data, &options).await {
                Ok(_) => return Ok(()),
                Err(ZkError::NodeExists) => {}
                Err(ZkError::NoNode) if !parent.is_empty() => {
                    client
                        .mkdir(parent, &self.dir_options())
                        .await
                        .map_err(|e| zk_error("create parents of", path, e))?;
                    continue;
                }
                Err(e) => return Err(zk_error("create", path, e)),
            }
            let stat = match client.check_stat(path).await {
                Ok(Some(stat)) => stat,
                Ok(None) => continue,
                Err(e) => return Err(zk_error("stat", path, e)),
            };
            let ours = stat.ephemeral_owner == client.session_id().0;
            let stale_ephemeral = !persistent && !ours;
            if !stale_ephemeral {
                // Ours already, or persistent: make sure the data is current (rpcx metadata).
                let (current, _) = client
                    .get_data(path)
                    .await
                    .map_err(|e| zk_error("read", path, e))?;
                if current != data {
                    client
                        .set_data(path, data, None)
                        .await
                        .map_err(|e| zk_error("update", path, e))?;
                }
                return Ok(());
            }
            info!(backend = BACKEND, %path, owner = stat.ephemeral_owner, "replacing a node left by another session");
            match client.delete(path, None).await {
                Ok(()) | Err(ZkError::NoNode) => {}
                Err(e) => return Err(zk_error("delete stale", path, e)),
            }
        }
        Err(Error::backend(
            BACKEND,
            format!("node {path} keeps reappearing; another writer owns it"),
        ))
    }

    fn node_of(&self, url: &Url) -> String {
        self.config.layout.path_of(url)
    }

    /// Reads one directory's registrations; a missing directory is empty (and is not
    /// created: reading never writes).
    async fn list_dir(&self, client: &Client, dir: &str) -> Result<Vec<Url>> {
        let children = match client.list_children(dir).await {
            Ok(children) => children,
            Err(ZkError::NoNode) => return Ok(Vec::new()),
            Err(e) => return Err(zk_error("list", dir, e)),
        };
        self.parse_children(client, dir, &children, false).await
    }

    async fn parse_children(
        &self,
        client: &Client,
        dir: &str,
        children: &[String],
        // Keep what was read for the next listing of this (watched) directory.
        cached: bool,
    ) -> Result<Vec<Url>> {
        let layout = &self.config.layout;
        let with_data = matches!(layout, Layout::Rpcx { .. });
        if !with_data {
            return Ok(self.parse_names(dir, children, cached));
        }
        let mut urls = Vec::with_capacity(children.len());
        for name in children {
            let path = format!("{dir}/{name}");
            // Only rpcx keeps anything in node data (the metadata).
            let data = if with_data {
                match client.get_data(&path).await {
                    Ok((data, _)) => String::from_utf8_lossy(&data).into_owned(),
                    Err(ZkError::NoNode) => continue,
                    Err(e) => return Err(zk_error("read", &path, e)),
                }
            } else {
                String::new()
            };
            match layout.parse_entry(dir, name, &data) {
                Ok(url) => urls.push(url),
                Err(error) => {
                    warn!(backend = BACKEND, %path, %error, "skipping unreadable node")
                }
            }
        }
        Ok(urls)
    }

    /// Dubbo children: the name is the URL. Names seen in the last listing of `dir` are
    /// taken from the cache; only new ones are parsed (unreadable ones skipped with a warn).
    fn parse_names(&self, dir: &str, children: &[String], cached: bool) -> Vec<Url> {
        let mut parsed = self.parsed.lock().unwrap_or_else(|p| p.into_inner());
        let mut before = if cached {
            parsed.remove(dir).unwrap_or_default()
        } else {
            HashMap::new()
        };
        let mut now = HashMap::with_capacity(children.len());
        for name in children {
            let url = match before.remove(name) {
                Some(url) => url,
                None => match self.parse_child(dir, name) {
                    Some(url) => url,
                    None => continue,
                },
            };
            now.insert(name.clone(), url);
        }
        let urls = now.values().cloned().collect();
        if cached {
            parsed.insert(dir.to_owned(), now);
        }
        urls
    }

    /// The directories below a root (the interfaces or services present).
    async fn list_root(&self, client: &Client, root: &str) -> Result<Vec<String>> {
        match client.list_children(root).await {
            Ok(children) => Ok(children),
            Err(ZkError::NoNode) => Ok(Vec::new()),
            Err(e) => Err(zk_error("list", root, e)),
        }
    }

    fn root(&self) -> &str {
        self.config.layout.root()
    }

    /// The directories of one interface that `query` selects (for `*` queries).
    fn dirs_of_interface(&self, encoded_interface: &str, query: &Url) -> Vec<String> {
        self.config
            .layout
            .dirs_of_interface(encoded_interface, query)
    }

    /// Every directory `query` needs, listing the root for `*` queries.
    async fn dirs_of(&self, client: &Client, query: &Url) -> Result<Vec<String>> {
        match self.config.layout.dirs_of(query) {
            Some(dirs) => Ok(dirs),
            None => {
                let mut dirs = Vec::new();
                for child in self.list_root(client, self.root()).await? {
                    dirs.extend(self.dirs_of_interface(&child, query));
                }
                Ok(dirs)
            }
        }
    }

    /// Watches `dir` for `query` (a root for `*` queries), with the watch its layout needs.
    fn ensure_watch(self: &Arc<Self>, dir: &str, query: &Url, root: bool) -> Result<()> {
        let inner = self.clone();
        let recursive = matches!(self.config.layout, Layout::Rpcx { .. });
        self.watches.watch(dir, query, move |scope| {
            let inner = inner.clone();
            async move {
                if root {
                    inner.watch_root(scope).await
                } else if recursive {
                    inner.watch_recursive(scope).await
                } else {
                    inner.watch_dir(scope).await
                }
            }
        })?;
        Ok(())
    }

    /// Dubbo directories: lists with a one-shot children watch, publishes, and returns when
    /// the watch fires, to be called again. Each listing re-arms the watch in the same
    /// request, so no change falls between two watches.
    ///
    /// A directory that does not exist is not created (Java consumers create it; listing
    /// and watching never write here): it is empty, and a watch on its existence brings the
    /// listing back as soon as it appears.
    async fn watch_dir(self: Arc<Self>, scope: WatchScope) -> Result<()> {
        if self.persistent_watches.load(Ordering::Relaxed) {
            match self.follow_dir(&scope).await {
                Err(Unimplemented) => {
                    info!(
                        backend = BACKEND,
                        "the ensemble does not take persistent watches (ZooKeeper before 3.6): \
                         directories are relisted after each children watch"
                    );
                    self.persistent_watches.store(false, Ordering::Relaxed);
                }
                Ok(outcome) => return outcome,
            }
        }
        let dir = scope.name();
        let mut client = self.client()?;
        for _ in 0..3 {
            match client.list_and_watch_children(dir).await {
                Ok((children, watcher)) => {
                    let urls = self.parse_children(&client, dir, &children, true).await?;
                    scope.replace(urls);
                    drop(client);
                    let event = watcher.changed().await;
                    debug!(backend = BACKEND, %dir, event = ?event.event_type, "watch fired");
                    return Ok(());
                }
                Err(ZkError::NoNode) => {
                    if self.wait_for_node(client, &scope).await? {
                        return Ok(());
                    }
                    client = self.client()?;
                }
                Err(error) => return Err(zk_error("list", dir, error)),
            }
        }
        Err(appearing_and_disappearing(dir))
    }

    /// Dubbo directories on ZooKeeper 3.6+: a persistent recursive watch names the child
    /// that came or went, so a change is applied as it is, without listing the directory
    /// again (a round trip per notification with one-shot children watches). The watch is
    /// added before the first listing, so nothing falls in between; events already reflected
    /// in that listing apply again harmlessly (adding what is there, removing what is not).
    /// A reconnect or an expiry ends the body, to be started again with a fresh watch and
    /// listing (events around a reconnect can be lost for persistent watches). A directory that does not exist is empty, and
    /// its creation is an event: nothing is created here.
    ///
    /// `Err(Unimplemented)` when the ensemble does not know persistent watches.
    async fn follow_dir(
        &self,
        scope: &WatchScope,
    ) -> std::result::Result<Result<()>, Unimplemented> {
        let dir = scope.name();
        let client = match self.client() {
            Ok(client) => client,
            Err(error) => return Ok(Err(error)),
        };
        let mut watcher = match client.watch(dir, AddWatchMode::PersistentRecursive).await {
            Ok(watcher) => watcher,
            Err(ZkError::Unimplemented) => return Err(Unimplemented),
            Err(error) => return Ok(Err(zk_error("watch", dir, error))),
        };
        let prefix = format!("{dir}/");
        let mut present: HashMap<String, Url> = HashMap::new();
        let mut relist = true;
        loop {
            if relist {
                let children = match client.list_children(dir).await {
                    Ok(children) => children,
                    Err(ZkError::NoNode) => Vec::new(),
                    Err(error) => return Ok(Err(zk_error("list", dir, error))),
                };
                present = children
                    .iter()
                    .filter_map(|name| self.parse_child(dir, name).map(|url| (name.clone(), url)))
                    .collect();
                scope.replace(present.values().cloned());
                relist = false;
            }
            // The next event and every one already queued behind it: one change for all
            // (under churn, one snapshot per batch rather than per node).
            let mut events = vec![watcher.changed().await];
            while let Some(event) = watcher.changed().now_or_never() {
                events.push(event);
            }
            let mut changes = Vec::new();
            for event in events {
                match event.event_type {
                    // Connection lost: the watch and the listing are good again only once
                    // the client is back, and then not the old watch: events right after a
                    // reconnect can be lost for persistent watches (ZOOKEEPER-4698, seen here
                    // with 3.8 when the leader dies). Any other session event ends the body,
                    // to be started at once with a new watch and a new listing (or on a new
                    // session).
                    EventType::Session if event.session_state == SessionState::Disconnected => {}
                    EventType::Session => return Ok(Ok(())),
                    EventType::NodeCreated | EventType::NodeDeleted => {
                        let Some(name) = event.path.strip_prefix(&prefix) else {
                            // The directory itself came or went.
                            relist = true;
                            continue;
                        };
                        if name.contains('/') {
                            continue; // below a provider node: not part of the Dubbo layout
                        }
                        if event.event_type == EventType::NodeCreated {
                            if let Some(url) = self.parse_child(dir, name) {
                                present.insert(name.to_owned(), url.clone());
                                changes.push((url, true));
                            }
                        } else if let Some(url) = present.remove(name) {
                            changes.push((url, false));
                        }
                    }
                    _ => {}
                }
            }
            // A relisting supersedes the events.
            if !relist && !changes.is_empty() {
                scope.update(changes);
            }
        }
    }

    /// A Dubbo child name as a URL; unreadable ones are skipped with a warning.
    fn parse_child(&self, dir: &str, name: &str) -> Option<Url> {
        match self.config.layout.parse_entry(dir, name, "") {
            Ok(url) => Some(url),
            Err(error) => {
                warn!(backend = BACKEND, path = %format!("{dir}/{name}"), %error, "skipping unreadable node");
                None
            }
        }
    }

    /// `scope`'s node does not exist: the scope is empty until it is created. `Ok(true)`
    /// once it appeared (to be listed again); `Ok(false)` when it exists already (created
    /// between two requests: list it now). The client is not held while waiting, so a new
    /// session can replace it.
    async fn wait_for_node(&self, client: Client, scope: &WatchScope) -> Result<bool> {
        let path = scope.name();
        let (stat, watcher) = client
            .check_and_watch_stat(path)
            .await
            .map_err(|e| zk_error("watch the creation of", path, e))?;
        if stat.is_some() {
            return Ok(false);
        }
        scope.replace(Vec::new());
        drop(client);
        let event = watcher.changed().await;
        debug!(backend = BACKEND, %path, event = ?event.event_type, "watch fired");
        Ok(true)
    }

    /// rpcx directories: a persistent recursive watch (ZooKeeper 3.6+) so that metadata
    /// edits (node data) are seen as well as nodes coming and going. The watch is added
    /// before listing, so nothing is missed in between. Returns when the session is gone,
    /// and the watch with it, to be added again.
    async fn watch_recursive(self: Arc<Self>, scope: WatchScope) -> Result<()> {
        let dir = scope.name();
        let client = self.client()?;
        // A persistent watch may be added on a path that does not exist yet: nothing is
        // created, and its creation is an event.
        let mut watcher = client
            .watch(dir, AddWatchMode::PersistentRecursive)
            .await
            .map_err(|e| zk_error("watch", dir, e))?;
        loop {
            scope.replace(self.list_dir(&client, dir).await?);
            let event = watcher.changed().await;
            if event.event_type == EventType::Session && event.session_state.is_terminated() {
                return Ok(());
            }
        }
    }

    /// `*` queries: watches the root's children and follows every interface that appears,
    /// for every query that needs the root.
    async fn watch_root(self: Arc<Self>, scope: WatchScope) -> Result<()> {
        let root = scope.name();
        let mut client = self.client()?;
        let mut listed = None;
        for _ in 0..3 {
            match client.list_and_watch_children(root).await {
                Ok(found) => {
                    listed = Some(found);
                    break;
                }
                Err(ZkError::NoNode) => {
                    if self.wait_for_node(client, &scope).await? {
                        return Ok(());
                    }
                    client = self.client()?;
                }
                Err(error) => return Err(zk_error("list", root, error)),
            }
        }
        let Some((children, watcher)) = listed else {
            return Err(appearing_and_disappearing(root));
        };
        let queries = scope.queries();
        for child in &children {
            for query in &queries {
                for dir in self.dirs_of_interface(child, query) {
                    self.ensure_watch(&dir, query, false)?;
                }
            }
        }
        // The root holds no registrations itself; it works.
        scope.mark_working();
        drop(client);
        let _ = watcher.changed().await;
        Ok(())
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
