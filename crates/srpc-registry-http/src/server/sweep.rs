//! Expiry: instances whose every lease lapsed leave, every [`SWEEP`](super::SWEEP).

use std::sync::Weak;
use std::sync::atomic::Ordering;

use tokio::time::Instant;
use tracing::info;

use super::SWEEP;
use super::book::{Book, Shared};

/// Expires instances every [`SWEEP`] until the server state is gone (the server shut down,
/// or the router of [`app`] was dropped).
pub(super) async fn sweep(state: Weak<Shared>) {
    let mut ticker = tokio::time::interval(SWEEP);
    loop {
        ticker.tick().await;
        let Some(state) = state.upgrade() else { return };
        state.sweep_once();
    }
}

impl Shared {
    /// Drops expired instances and compatibility entries, and service entries nobody needs.
    fn sweep_once(&self) {
        let now = Instant::now();
        self.end_warm_up(now);
        let mut book = self.book();
        book.servers.retain(|_, expires| *expires > now);
        let mut expired_keys = Vec::new();
        let mut lapsed = Vec::new();
        let Book {
            services,
            holders,
            instances,
            ..
        } = &mut *book;
        for (key, service) in services.iter_mut() {
            let before = service.instances.len();
            service.instances.retain(|_, i| {
                i.holders.retain(|holder, lease| {
                    let alive = lease.expires > now;
                    if !alive {
                        lapsed.push((holder.clone(), key.clone(), i.url.clone()));
                    }
                    alive
                });
                !i.holders.is_empty()
            });
            let gone = before - service.instances.len();
            *instances -= gone;
            if gone > 0 {
                self.expirations.fetch_add(gone as u64, Ordering::Relaxed);
                expired_keys.push(key.clone());
            }
        }
        for (holder, key, url) in lapsed {
            if let Some(set) = holders.get_mut(&holder) {
                set.remove(&(key, url));
                if set.is_empty() {
                    holders.remove(&holder);
                }
            }
        }
        // Entries made by GETs of unknown keys, or left by services that went away, are
        // dropped once nobody watches them, so that such requests cannot grow the map.
        book.services.retain(|_, service| {
            !service.instances.is_empty() || service.revision.receiver_count() > 0
        });
        for key in expired_keys {
            info!(backend = "http", service = %key, "instances expired without heartbeat");
            self.changed(&mut book, &key);
        }
    }

    /// Ends the warm-up once its time is over: every service's revision moves, so that
    /// watchers are answered at once with listings that are authoritative again.
    fn end_warm_up(&self, now: Instant) {
        {
            let mut warm_until = self.warm_until.lock().unwrap_or_else(|p| p.into_inner());
            match *warm_until {
                Some(until) if now >= until => *warm_until = None,
                _ => return,
            }
        }
        if !self.restarted.load(Ordering::Acquire) {
            return; // No client came from before a restart: nothing was said warming.
        }
        let mut book = self.book();
        let keys: Vec<String> = book.services.keys().cloned().collect();
        for key in &keys {
            self.changed(&mut book, key);
        }
        if keys.is_empty() {
            self.changed(&mut book, "");
        }
        info!(
            backend = "http",
            services = keys.len(),
            "warm-up over: listings are authoritative again"
        );
    }
}
