//! Node writes: directories (with rpcx's markers) and registrations, ephemeral or not, in
//! Dubbo's or rpcx's layout.

use srpc_registry_kit::{Error, Result, Url};
use tracing::info;
use zookeeper_client::{Client, CreateMode, Error as ZkError};

use super::{BACKEND, Inner, zk_error};
use crate::config::Layout;

impl Inner {
    /// Creates a watched directory if missing. Dubbo directories are empty; rpcx marks its
    /// base with `rpcx_path` and a service directory with the service name, so whoever
    /// creates them first (provider or consumer) writes the markers.
    pub(super) async fn ensure_dir(&self, client: &Client, dir: &str) -> Result<()> {
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
    pub(super) async fn write_node(&self, path: &str, data: &[u8], persistent: bool) -> Result<()> {
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

    pub(super) fn node_of(&self, url: &Url) -> String {
        self.config.layout.path_of(url)
    }
}
