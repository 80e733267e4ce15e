//! The server's state: every service, its instances and who holds a lease on each.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode, header};
use srpc_registry_kit::{Bucket, Url};
use tokio::sync::{Notify, OnceCell, Semaphore, watch};
use tokio::time::Instant;
use tracing::info;

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
    /// Told of every change, for the state file's writer.
    pub(super) dirty: Arc<Notify>,
    /// Permits to write a large listing: one fewer than the cores (at least one), so that
    /// readers of everything cannot take the CPU heartbeats need.
    pub(super) large_listings: Arc<Semaphore>,
    /// The bytes large listings may write, all of them together (`max-listing-rate`).
    pub(super) listing_bytes: Arc<Mutex<Bucket>>,
    /// Until when a restart may still be noticed, after a start that restored no state;
    /// `None` once over (or never open).
    pub(super) warm_until: Mutex<Option<Instant>>,
    /// Whether a client showed that this server restarted (a watcher knew a revision this
    /// server never reached; lost leases are no proof, they also expire in an outage): until
    /// `warm_until`, listings then say `warming`.
    pub(super) restarted: AtomicBool,
}

#[derive(Default)]
pub(super) struct Book {
    pub(super) revision: u64,
    pub(super) services: BTreeMap<String, Service>,
    /// Instances of every service, counted as they come and go (`max-instances`).
    pub(super) instances: usize,
    /// This revision's `GET /v1/instances` and `GET /v1/services` bodies, each made once,
    /// outside the lock, by the first reader who needs it; replaced on every change.
    pub(super) all_listing: Listing,
    pub(super) services_listing: Listing,
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

/// A response body made once per revision and shared by every reader of it, with the
/// revision it holds: readers never build a listing under the lock heartbeats need, and N
/// readers hold one copy.
pub(super) type Listing = Arc<OnceCell<(u64, Bytes)>>;

pub(super) struct Service {
    pub(super) revision: watch::Sender<u64>,
    pub(super) instances: HashMap<Url, Instance>,
    /// This revision's `GET /v1/services/{key}` body.
    pub(super) listing: Listing,
}

impl Service {
    pub(super) fn new() -> Service {
        Service {
            revision: watch::Sender::new(0),
            instances: HashMap::new(),
            listing: Listing::default(),
        }
    }
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
        // A second's worth, up to 1 MiB, goes at once; beyond it, the rate.
        let rate = config.limits.listing_rate as f64;
        let listing_bytes = Bucket::new(rate.min(1024.0 * 1024.0), rate);
        Shared {
            listing_bytes: Arc::new(Mutex::new(listing_bytes)),
            config,
            stop: watch::Sender::new(false),
            book: Mutex::default(),
            revision: watch::Sender::new(0),
            registrations: AtomicU64::new(0),
            heartbeats: AtomicU64::new(0),
            expirations: AtomicU64::new(0),
            watchers: AtomicU64::new(0),
            dirty: Arc::new(Notify::new()),
            large_listings: Arc::new(Semaphore::new(
                std::thread::available_parallelism()
                    .map_or(1, |n| n.get().saturating_sub(1))
                    .max(1),
            )),
            warm_until: Mutex::new(None),
            restarted: AtomicBool::new(false),
        }
    }

    /// Whether listings may still lack instances registered before a restart.
    pub(super) fn is_warming(&self) -> bool {
        self.restarted.load(Ordering::Acquire) && self.warm_until().is_some()
    }

    fn warm_until(&self) -> MutexGuard<'_, Option<Instant>> {
        self.warm_until.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A client showed that this server restarted: while the warm-up lasts, listings say
    /// `warming`. Outside the warm-up (or after a restored state) this changes nothing.
    pub(super) fn restart_seen(&self, how: &str) {
        if self.warm_until().is_some() && !self.restarted.swap(true, Ordering::AcqRel) {
            info!(
                backend = "http",
                evidence = how,
                "a client knew this registry before a restart: listings say warming until the warm-up ends"
            );
            let mut book = self.book();
            let keys: Vec<String> = book.services.keys().cloned().collect();
            for key in &keys {
                self.changed(&mut book, key);
            }
            self.changed(&mut book, "");
        }
    }

    pub(super) fn book(&self) -> MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes need the write token, when one is set.
    pub(super) fn authorize(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        match &self.config.token {
            None => Ok(()),
            Some(token) if presented(headers).is_some_and(|given| same(given, token)) => Ok(()),
            Some(_) => Err(error(
                StatusCode::UNAUTHORIZED,
                "missing or wrong bearer token (writes need the registry's token)".into(),
            )),
        }
    }

    /// Reads need the read token or the write token, when a read token is set.
    pub(super) fn authorize_read(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let Some(read) = &self.config.read_token else {
            return Ok(());
        };
        let given = presented(headers);
        let accepted = [Some(read), self.config.token.as_ref()]
            .into_iter()
            .flatten()
            .any(|token| given.is_some_and(|g| same(g, token)));
        if accepted {
            Ok(())
        } else {
            Err(error(
                StatusCode::UNAUTHORIZED,
                "missing or wrong bearer token (this registry protects reads too)".into(),
            ))
        }
    }

    /// Bumps the global revision and stamps `key` with it; wakes that service's and the
    /// global watchers.
    pub(super) fn changed(&self, book: &mut Book, key: &str) {
        book.revision += 1;
        let revision = book.revision;
        if let Some(service) = book.services.get_mut(key) {
            service.listing = Listing::default();
            service.revision.send_replace(revision);
        }
        book.all_listing = Listing::default();
        book.services_listing = Listing::default();
        self.revision.send_replace(revision);
        self.dirty.notify_one();
    }
}

/// The bearer token of a request: `Bearer`, `bearer`, `BEARER` (the scheme is
/// case-insensitive, RFC 9110 §11.1).
fn presented(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
}

/// Compares tokens in time that depends on their lengths only, not on where they differ.
fn same(given: &str, token: &str) -> bool {
    given.len() == token.len()
        && given
            .bytes()
            .zip(token.bytes())
            .fold(0u8, |diff, (a, b)| diff | (a ^ b))
            == 0
}
