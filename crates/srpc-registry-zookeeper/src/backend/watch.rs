//! Reading and watching: one `Watches` scope per directory (one-shot children watches,
//! persistent recursive watches on ZooKeeper 3.6+, rpcx's recursive watch, `*` roots).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use futures_util::FutureExt;
use srpc_registry_kit::{Result, Url, WatchScope};
use tracing::{debug, info, warn};
use zookeeper_client::{AddWatchMode, Client, Error as ZkError, EventType, SessionState};

use super::{BACKEND, Inner, Unimplemented, appearing_and_disappearing, zk_error};
use crate::config::Layout;

impl Inner {
    /// Reads one directory's registrations; a missing directory is empty (and is not
    /// created: reading never writes).
    pub(super) async fn list_dir(&self, client: &Client, dir: &str) -> Result<Vec<Url>> {
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

    pub(super) fn root(&self) -> &str {
        self.config.layout.root()
    }

    /// The directories of one interface that `query` selects (for `*` queries).
    fn dirs_of_interface(&self, encoded_interface: &str, query: &Url) -> Vec<String> {
        self.config
            .layout
            .dirs_of_interface(encoded_interface, query)
    }

    /// Every directory `query` needs, listing the root for `*` queries.
    pub(super) async fn dirs_of(&self, client: &Client, query: &Url) -> Result<Vec<String>> {
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
    pub(super) fn ensure_watch(self: &Arc<Self>, dir: &str, query: &Url, root: bool) -> Result<()> {
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
