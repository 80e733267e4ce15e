//! In-memory srpc registry: every handle created with the same hub name, in one process, sees
//! the same registrations. The reference backend, and the test double for users' own tests.
//!
//! A hub lives as long as the process. Registrations behave as on a real registry: dynamic
//! ones disappear when the handle that made them is closed or dropped (like ephemeral nodes
//! of a dead session), `dynamic=false` ones stay in the hub.
//!
//! ```
//! use std::time::Duration;
//! use srpc_registry_kit::{Registry, Url};
//! use srpc_registry_inprocess::open;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> srpc_registry_kit::Result<()> {
//! let provider_side = open("doc-example");
//! let consumer_side = open("doc-example");
//!
//! let mut sub = consumer_side.subscribe(&"consumer://127.0.0.1/com.acme.Echo".parse()?).await?;
//! let url: Url = "dubbo://127.0.0.1:20880/com.acme.Echo".parse()?;
//! provider_side.register(&url).await?;
//!
//! let snapshot = sub.wait_for(|s| s.providers().len() == 1, Duration::from_secs(1)).await?;
//! assert_eq!(snapshot.providers(), [url]);
//! # Ok(()) }
//! ```

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, Weak};

use async_trait::async_trait;
use srpc_registry_kit::{
    Backend, Catalog, Context, FailbackConfig, FailbackRegistry, RegistryParams, Result, Url,
    is_dynamic,
};
use tracing::debug;

/// The URL scheme of this backend: `inprocess://<hub-name>`.
pub const SCHEME: &str = "inprocess";

/// The scope under which a member's catalog holds the hub's content.
const SCOPE: &str = "hub";

/// A registry handle on a named in-process hub.
pub type InprocessRegistry = FailbackRegistry<InprocessBackend>;

/// The [`Backend`] of one handle on a hub.
#[derive(Debug)]
pub struct InprocessBackend {
    hub: Arc<Hub>,
    member: u64,
}

#[derive(Debug, Default)]
struct Hub {
    name: String,
    state: Mutex<HubState>,
}

#[derive(Debug, Default)]
struct HubState {
    /// Every registration, with the members that registered it.
    entries: HashMap<Url, HashSet<u64>>,
    /// The catalogs of live members, fed on every change.
    members: HashMap<u64, Weak<Catalog>>,
}

static HUBS: LazyLock<Mutex<HashMap<String, Arc<Hub>>>> = LazyLock::new(Mutex::default);
static NEXT_MEMBER: AtomicU64 = AtomicU64::new(1);

/// The URL parameters an `inprocess://` registry URL reads, besides the kit's
/// [`COMMON_PARAMS`](srpc_registry_kit::COMMON_PARAMS): none.
pub const PARAMS: &[&str] = &[];

/// Settings of an in-process registry handle: which hub, and the failback settings.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct InprocessConfig {
    /// The hub's name: handles on the same name in one process share it.
    pub hub: String,
    /// Retry, `check` and cache file settings.
    pub failback: FailbackConfig,
}

impl InprocessConfig {
    /// Hub `hub` with default settings.
    pub fn new(hub: impl Into<String>) -> InprocessConfig {
        InprocessConfig {
            hub: hub.into(),
            failback: FailbackConfig::default(),
        }
    }

    /// With other retry, `check` and cache file settings.
    pub fn failback(mut self, failback: FailbackConfig) -> InprocessConfig {
        self.failback = failback;
        self
    }

    /// Reads `inprocess://<hub-name>[?check=…]`.
    pub fn from_url(registry: &Url) -> Result<InprocessConfig> {
        let params = RegistryParams::new(registry);
        let name = registry.host();
        if name.is_empty() {
            return Err(params.invalid("name the hub: inprocess://<hub-name>"));
        }
        Ok(InprocessConfig::new(name).failback(params.failback()?))
    }

    /// A handle on the hub (created on first use).
    pub fn connect(self) -> Result<InprocessRegistry> {
        if self.hub.is_empty() {
            return Err(srpc_registry_kit::Error::invalid(
                "inprocess config",
                "hub \"\"",
                "name the hub",
            ));
        }
        self.failback.validate()?;
        let hub = self.hub;
        Ok(FailbackRegistry::new(self.failback, |ctx| {
            InprocessBackend::join(&hub, ctx)
        }))
    }
}

/// A new handle on hub `name` (created on first use) with default settings.
pub fn open(name: &str) -> InprocessRegistry {
    FailbackRegistry::new(FailbackConfig::default(), |ctx| {
        InprocessBackend::join(name, ctx)
    })
}

/// Opens a handle from a registry URL `inprocess://<hub-name>[?check=…]` (its scheme was
/// checked by whoever chose this backend).
pub fn connect(registry: &Url) -> Result<InprocessRegistry> {
    InprocessConfig::from_url(registry)?.connect()
}

impl InprocessBackend {
    /// Joins hub `name` (creating it on first use), feeding `ctx`'s catalog.
    pub fn join(name: &str, ctx: Context) -> InprocessBackend {
        let hub = lock(&HUBS)
            .entry(name.to_owned())
            .or_insert_with(|| {
                Arc::new(Hub {
                    name: name.to_owned(),
                    state: Mutex::default(),
                })
            })
            .clone();
        let member = NEXT_MEMBER.fetch_add(1, Ordering::Relaxed);
        {
            let mut state = lock(&hub.state);
            ctx.catalog().replace(SCOPE, state.entries.keys().cloned());
            state.members.insert(member, Arc::downgrade(ctx.catalog()));
        }
        debug!(backend = SCHEME, hub = name, member, "joined hub");
        InprocessBackend { hub, member }
    }

    /// The hub's name.
    pub fn hub_name(&self) -> &str {
        &self.hub.name
    }
}

impl HubState {
    fn broadcast(&mut self, change: impl Fn(&Catalog)) {
        self.members.retain(|_, catalog| match catalog.upgrade() {
            Some(catalog) => {
                change(&catalog);
                true
            }
            None => false,
        });
    }

    fn insert(&mut self, member: u64, url: &Url) {
        match self.entries.get_mut(url) {
            Some(owners) => {
                owners.insert(member);
                // Equal but possibly newer (timestamp): store the newest form.
                let owners = std::mem::take(owners);
                self.entries.remove(url);
                self.entries.insert(url.clone(), owners);
            }
            None => {
                self.entries.insert(url.clone(), HashSet::from([member]));
            }
        }
        self.broadcast(|catalog| catalog.insert(SCOPE, url.clone()));
    }

    fn remove(&mut self, url: &Url) {
        if self.entries.remove(url).is_some() {
            self.broadcast(|catalog| catalog.remove(SCOPE, url));
        }
    }
}

#[async_trait]
impl Backend for InprocessBackend {
    const NAME: &'static str = SCHEME;

    async fn register(&self, url: &Url) -> Result<()> {
        lock(&self.hub.state).insert(self.member, url);
        Ok(())
    }

    async fn unregister(&self, url: &Url) -> Result<()> {
        lock(&self.hub.state).remove(url);
        Ok(())
    }

    async fn subscribe(&self, _query: &Url) -> Result<()> {
        // The member's catalog mirrors the whole hub from the moment it joined.
        Ok(())
    }

    async fn unsubscribe(&self, _query: &Url) -> Result<()> {
        Ok(())
    }

    async fn lookup(&self, _query: &Url) -> Result<Vec<Url>> {
        Ok(lock(&self.hub.state).entries.keys().cloned().collect())
    }

    async fn close(&self) -> Result<()> {
        lock(&self.hub.state).members.remove(&self.member);
        Ok(())
    }
}

impl Drop for InprocessBackend {
    /// A handle that goes away takes its dynamic registrations with it, as a dead session's
    /// ephemeral nodes go.
    fn drop(&mut self) {
        let mut state = lock(&self.hub.state);
        state.members.remove(&self.member);
        let member = self.member;
        let orphaned: Vec<Url> = state
            .entries
            .iter_mut()
            .filter_map(|(url, owners)| {
                owners.remove(&member);
                // Registered URLs passed validation: `dynamic` reads.
                let dynamic = !matches!(is_dynamic(url), Ok(false));
                (owners.is_empty() && dynamic).then(|| url.clone())
            })
            .collect();
        for url in orphaned {
            state.remove(&url);
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use srpc_registry_kit::Registry;

    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[tokio::test]
    async fn hubs_with_different_names_are_isolated() {
        let a = open("iso-a");
        let b = open("iso-b");
        a.register(&url("dubbo://h:1/a.B")).await.unwrap();
        let seen_by_b = b.lookup(&url("consumer://c/a.B")).await.unwrap();
        assert!(seen_by_b.is_empty());
        let seen_by_a2 = open("iso-a")
            .lookup(&url("consumer://c/a.B"))
            .await
            .unwrap();
        assert_eq!(seen_by_a2, [url("dubbo://h:1/a.B")]);
    }

    #[tokio::test]
    async fn dropping_a_handle_removes_its_dynamic_registrations() {
        let provider = open("drop-hub");
        let consumer = open("drop-hub");
        provider.register(&url("dubbo://h:1/a.B")).await.unwrap();
        provider
            .register(&url("dubbo://h:2/a.B?dynamic=false"))
            .await
            .unwrap();
        let mut sub = consumer.subscribe(&url("consumer://c/a.B")).await.unwrap();
        assert_eq!(sub.snapshot().len(), 2);
        drop(provider);
        let snapshot = sub
            .wait_for(|s| s.len() == 1, Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(snapshot.providers()[0].port(), 2);
    }

    #[test]
    fn connect_checks_the_url() {
        assert!(connect(&url("inprocess://named")).is_ok());
        assert!(connect(&url("inprocess:///nohub")).is_err());
    }
}
