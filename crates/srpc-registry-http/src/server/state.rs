//! The state file: what the server holds, written after changes and read back when it
//! starts, so that a restart does not tell consumers that live providers are gone.
//!
//! The file holds every instance with its holders and their TTLs — not deadlines: read back,
//! each lease runs its full TTL from the restart, so a provider that keeps heartbeating never
//! misses, and one that died meanwhile leaves one TTL after the restart, as it would have
//! without one. It is written at most once a second after a change (heartbeats change
//! nothing), atomically and without following a planted link, and once more on shutdown.
//! What changed in the last second before a crash is missing from it; those holders find
//! out at their next heartbeat and register again.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use srpc_registry_kit::{Url, read_no_follow, validate_registration, write_atomically};
use tokio::sync::Notify;
use tokio::time::Instant;
use tracing::{info, warn};

use super::book::{Instance, Lease, Service, Shared};

/// The least time between two writes.
const GATHER: Duration = Duration::from_secs(1);
/// The format's version, written and checked.
const VERSION: u32 = 1;

#[derive(Debug, Serialize, Deserialize)]
struct StateFile {
    version: u32,
    instances: Vec<SavedInstance>,
}

#[derive(Debug, Serialize, Deserialize)]
struct SavedInstance {
    url: String,
    /// Holder → TTL in milliseconds.
    holders: HashMap<String, u64>,
}

/// Reads `path` into the book; the number of instances restored. A missing file is a first
/// start (0); a file that cannot be read or parsed is refused with an error naming it, so
/// that an operator does not lose the registry's state to a typo; entries that do not parse,
/// or that limits refuse, are skipped with a warning.
pub(super) fn restore(state: &Shared, path: &Path) -> io::Result<usize> {
    let bytes = match read_no_follow(path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(error) => {
            return Err(io::Error::new(
                error.kind(),
                format!("cannot read the state file {}: {error}", path.display()),
            ));
        }
    };
    let file: StateFile = serde_json::from_slice(&bytes).map_err(|error| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "the state file {} is not one this server wrote ({error}); move it away to \
                 start empty",
                path.display()
            ),
        )
    })?;
    if file.version != VERSION {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "the state file {} has version {}, this server reads {VERSION}",
                path.display(),
                file.version
            ),
        ));
    }
    let limits = &state.config.limits;
    let now = Instant::now();
    let mut book = state.book();
    let mut restored = 0usize;
    let mut skipped = 0usize;
    for saved in file.instances {
        let url = match Url::parse(&saved.url)
            .map_err(|e| e.to_string())
            .and_then(|url| {
                validate_registration(&url)
                    .map(|()| url)
                    .map_err(|e| e.to_string())
            }) {
            Ok(url) if saved.url.len() <= limits.url_len => url,
            Ok(_) => {
                warn!(backend = "http", file = %path.display(), "state file: instance longer than max-url-len skipped");
                skipped += 1;
                continue;
            }
            Err(error) => {
                warn!(backend = "http", file = %path.display(), %error, "state file: instance skipped");
                skipped += 1;
                continue;
            }
        };
        let key = url.service_key();
        let listed = book.services.get(&key).map_or(0, |s| s.instances.len());
        if book.instances >= limits.instances || listed >= limits.instances_per_service {
            skipped += 1;
            continue;
        }
        let mut holders = HashMap::new();
        for (holder, ttl_ms) in saved.holders {
            let held = book.holders.get(&holder).map_or(0, |h| h.len());
            if held >= limits.instances_per_holder {
                continue;
            }
            // Never longer than this server grants now.
            let ttl = Duration::from_millis(ttl_ms).min(state.config.ttl);
            if ttl.is_zero() {
                continue;
            }
            book.hold(&holder, &key, &url);
            holders.insert(
                holder,
                Lease {
                    ttl,
                    expires: now + ttl,
                },
            );
        }
        if holders.is_empty() {
            skipped += 1;
            continue;
        }
        let service = book.services.entry(key).or_insert_with(Service::new);
        if service
            .instances
            .insert(url.clone(), Instance { url, holders })
            .is_none()
        {
            book.instances += 1;
            restored += 1;
        }
    }
    book.revision += 1;
    // Long-polls of everything wait on this; it must say what the listings say.
    state.revision.send_replace(book.revision);
    drop(book);
    info!(backend = "http", file = %path.display(), restored, skipped, "state file read: leases run their TTL from now");
    Ok(restored)
}

/// Writes the state file whenever the book changed, at most once per [`GATHER`], until the
/// server state is gone; retries a failed write at the next change or second.
pub(super) async fn writer(state: Weak<Shared>, path: PathBuf, dirty: Arc<Notify>) {
    let mut failing = false;
    loop {
        if !failing {
            dirty.notified().await;
        }
        tokio::time::sleep(GATHER).await;
        let Some(shared) = state.upgrade() else {
            return;
        };
        let written = save(&shared, &path).await;
        drop(shared);
        match written {
            Ok(()) if failing => {
                info!(backend = "http", file = %path.display(), "state file written again");
                failing = false;
            }
            Ok(()) => {}
            Err(error) => {
                if !failing {
                    warn!(backend = "http", file = %path.display(), %error, "cannot write the state file; a restart now would forget what changed since the last write");
                }
                failing = true;
            }
        }
    }
}

/// Writes the book to `path` now: what it holds is gathered under the lock (reference
/// counts and TTLs), written out of it.
pub(super) async fn save(state: &Shared, path: &Path) -> io::Result<()> {
    let instances: Vec<(Url, Vec<(String, u64)>)> = {
        let book = state.book();
        book.services
            .values()
            .flat_map(|s| s.instances.values())
            .map(|i| {
                let holders = i
                    .holders
                    .iter()
                    .map(|(h, lease)| (h.clone(), lease.ttl.as_millis() as u64))
                    .collect();
                (i.url.clone(), holders)
            })
            .collect()
    };
    let path = path.to_owned();
    // Writing 100 000 URLs out takes milliseconds: off the runtime's workers, which
    // heartbeats need.
    tokio::task::spawn_blocking(move || {
        let file = StateFile {
            version: VERSION,
            instances: instances
                .into_iter()
                .map(|(url, holders)| SavedInstance {
                    url: url.to_full_string(),
                    holders: holders.into_iter().collect(),
                })
                .collect(),
        };
        let bytes = serde_json::to_vec(&file).map_err(io::Error::other)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        write_atomically(&path, &bytes)
    })
    .await
    .map_err(io::Error::other)?
}
