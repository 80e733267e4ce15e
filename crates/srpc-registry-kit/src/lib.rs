//! What every srpc registry backend is built from, so that a backend writes only its own
//! protocol.
//!
//! A backend implements [`Backend`] (the raw operations) and is wrapped in
//! [`FailbackRegistry`], which implements the [`Registry`] contract of `srpc-registry` on top:
//! bookkeeping, `check`, retries, recovery after a new session, the cache file. The backend
//! gets a [`Context`]: the [`Catalog`] it feeds, the retry policy, the [`Tasks`] its
//! background work runs in (aborted on close and drop), and [`Context::report`] to say what
//! happened to its connection ([`SessionEvent`]). [`Watches`] runs one watch task per scope, [`Keepalive`] keeps
//! a registration alive, [`Prober`] verifies providers of server-less registries,
//! `GroupSocket` (feature `group`) opens their multicast socket on one interface,
//! [`RegistryParams`] reads the common parts of a registry URL, [`RetryPolicy`] is how every
//! loop backs off, [`Bucket`] how it is paced, [`AgedSet`] how caches fed by peers stay bounded, and [`layout`] is Dubbo's (and rpcx's) path layout for backends that store
//! paths. `docs/registry.md` ("Writing a backend") has the guide.
//!
//! The contract's types are re-exported here, so a backend depends on this crate alone.

mod aged;
mod answers;
mod backend;
mod bucket;
mod cache;
mod catalog;
mod failback;
mod files;
#[cfg(feature = "group")]
mod group;
mod keepalive;
pub mod layout;
mod params;
mod prober;
mod properties;
mod retry;
mod rules;
mod tasks;
#[cfg(feature = "tls")]
mod tls;
mod watches;

pub use srpc_registry::{
    Change, Error, History, Members, Registry, Result, Snapshot, Subscription, Url, with_root_cause,
};

pub use crate::aged::AgedSet;
pub use crate::answers::wait_for_answers;
pub use crate::backend::{Backend, Context, SessionEvent};
pub use crate::bucket::Bucket;
pub use crate::catalog::{Catalog, SubscriptionId};
pub use crate::failback::FailbackRegistry;
pub use crate::files::{read_no_follow, write_atomically};
#[cfg(feature = "group")]
pub use crate::group::{
    BindTo, GroupSocket, GroupSocketError, Interface, JoinedSocket, is_interface_name,
};
pub use crate::keepalive::{Keepalive, KeepaliveState, Renew, Renewal};
pub use crate::params::{
    COMMON_PARAMS, FailbackConfig, RegistryParams, http_base, require_positive,
};
pub use crate::prober::{
    DEFAULT_PROBE_CONCURRENCY, MAX_PROBE_CONCURRENCY, MAX_PROBE_TIMEOUT, ProbeOutcome, Probed,
    Prober, ProberSettings, is_local, is_probe_candidate, probe, probe_outcome,
};
pub use crate::retry::{Backoff, RetryPolicy, retry_delays};
pub use crate::rules::{is_dynamic, validate_publication, validate_query, validate_registration};
pub use crate::tasks::Tasks;
#[cfg(feature = "tls")]
pub use crate::tls::{Pem, TLS_PARAMS, TlsConfig, tls_hint};
pub use crate::watches::{WatchScope, Watches};

/// Entry points for the fuzz targets (`cargo xtask fuzz`), built only with `--cfg fuzzing`.
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod fuzzing {
    /// Reads a cache file's bytes as `file=` does at start; checks that what the properties
    /// reader accepts, written back, reads the same.
    pub fn read_cache_file(bytes: &[u8]) {
        let _ = crate::cache::read_lists(std::path::Path::new("fuzz.cache"), bytes);
        let entries: Vec<(String, String)> = crate::properties::entries(bytes).collect();
        let text = crate::properties::write(
            "c",
            "d",
            entries.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        );
        let again: Vec<(String, String)> = crate::properties::entries(text.as_bytes()).collect();
        assert_eq!(again, entries, "written as {text:?}");
    }
}
