//! The [`Registry`] trait: Dubbo's `RegistryService` contract, async and object-safe.

use async_trait::async_trait;
use dubbo_url::Url;

use crate::error::Result;
use crate::subscription::Subscription;

/// A service registry: where providers publish their URLs and consumers watch them.
///
/// Every backend (inprocess, multicast, zookeeper, etcd, consul, http, mdns) implements this
/// one trait, so code written against `Arc<dyn Registry>` runs on any of them. The futures are
/// `Send`.
#[async_trait]
pub trait Registry: Send + Sync + 'static {
    /// Publishes `url` under its category (`providers` by default).
    ///
    /// Idempotent; the registration survives reconnects and new sessions. With `check=false`
    /// on the URL or the registry, a failure is retried in the background instead of returned.
    /// `dynamic=false` makes the registration persistent: it outlives this handle.
    async fn register(&self, url: &Url) -> Result<()>;

    /// Whether `url`, registered through this handle, is in the registry now: `false` while
    /// its write is on its way, while a `check=false` registration is still being retried in
    /// the background, and for a URL this handle did not register. The default says `true`: for registries that never
    /// register in the background.
    fn is_registered(&self, _url: &Url) -> bool {
        true
    }

    /// Removes a registration. The match is on the full URL (timestamp value ignored).
    async fn unregister(&self, url: &Url) -> Result<()>;

    /// Starts watching what `query` selects (Dubbo's `isMatch`: interface, group, version,
    /// classifier, category list, `enabled`). The first snapshot is complete when this
    /// returns. Dropping every clone of the returned [`Subscription`] unsubscribes.
    async fn subscribe(&self, query: &Url) -> Result<Subscription>;

    /// Reads once what `query` selects, without watching.
    async fn lookup(&self, query: &Url) -> Result<Vec<Url>>;

    /// Unregisters every dynamic registration made through this handle (and, once more, each
    /// URL whose unregister is still being retried), ends every subscription and stops
    /// background tasks. Persistent (`dynamic=false`) registrations stay.
    async fn close(&self) -> Result<()>;
}
