//! The server's state: every service, its instances and who holds a lease on each.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode, header};
use srpc_registry_kit::Url;
use tokio::sync::watch;
use tokio::time::Instant;

use super::ServerConfig;
use super::reply::{ApiError, error};

pub(super) struct Shared {
    pub(super) config: ServerConfig,
    /// Set on shutdown: parked long-polls answer at once instead of holding it up.
    pub(super) stop: watch::Sender<bool>,
    pub(super) book: Mutex<Book>,
    /// The global revision, for watchers of everything.
    pub(super) revision: watch::Sender<u64>,
    pub(super) registrations: AtomicU64,
    pub(super) heartbeats: AtomicU64,
    pub(super) expirations: AtomicU64,
    pub(super) watchers: AtomicU64,
}

#[derive(Default)]
pub(super) struct Book {
    pub(super) revision: u64,
    pub(super) services: BTreeMap<String, Service>,
    /// Compatibility endpoint: address → expiry.
    pub(super) servers: BTreeMap<String, Instant>,
    /// Which instances each holder has a lease on (service key, URL), so that one request
    /// renews them all.
    pub(super) holders: HashMap<String, HashSet<(String, Url)>>,
}

impl Book {
    pub(super) fn hold(&mut self, holder: &str, key: &str, url: &Url) {
        let held = (key.to_owned(), url.clone());
        match self.holders.get_mut(holder) {
            Some(set) => {
                // A newer copy (another timestamp) replaces the one held.
                set.replace(held);
            }
            None => {
                self.holders
                    .insert(holder.to_owned(), HashSet::from([held]));
            }
        }
    }

    pub(super) fn release(&mut self, holder: &str, key: &str, url: &Url) {
        if let Some(set) = self.holders.get_mut(holder) {
            set.remove(&(key.to_owned(), url.clone()));
            if set.is_empty() {
                self.holders.remove(holder);
            }
        }
    }
}

pub(super) struct Service {
    pub(super) revision: watch::Sender<u64>,
    pub(super) instances: HashMap<Url, Instance>,
}

/// A registered URL and who holds it: it lives while any holder's lease does.
pub(super) struct Instance {
    pub(super) url: Url,
    pub(super) holders: HashMap<String, Lease>,
}

pub(super) struct Lease {
    pub(super) ttl: Duration,
    pub(super) expires: Instant,
}

/// Counts a long-poll while it waits.
pub(super) struct Watching<'a>(pub(super) &'a AtomicU64);

impl Drop for Watching<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Shared {
    pub(super) fn new(config: ServerConfig) -> Shared {
        Shared {
            config,
            stop: watch::Sender::new(false),
            book: Mutex::default(),
            revision: watch::Sender::new(0),
            registrations: AtomicU64::new(0),
            heartbeats: AtomicU64::new(0),
            expirations: AtomicU64::new(0),
            watchers: AtomicU64::new(0),
        }
    }

    pub(super) fn book(&self) -> MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn authorize(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let Some(token) = &self.config.token else {
            return Ok(());
        };
        // `Bearer`, `bearer`, `BEARER`: the scheme is case-insensitive (RFC 9110 §11.1).
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim());
        if given == Some(token.as_str()) {
            Ok(())
        } else {
            Err(error(
                StatusCode::UNAUTHORIZED,
                "missing or wrong bearer token".into(),
            ))
        }
    }

    /// Bumps the global revision and stamps `key` with it; wakes that service's and the
    /// global watchers.
    pub(super) fn changed(&self, book: &mut Book, key: &str) {
        book.revision += 1;
        let revision = book.revision;
        if let Some(service) = book.services.get(key) {
            service.revision.send_replace(revision);
        }
        self.revision.send_replace(revision);
    }
}
