//! [`ConsulBackend`]: agent services with TTL checks kept passing by the kit's keepalive, and
//! blocking queries on each watched service.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use srpc_registry_kit::{
    Backend, Bucket, Context, Error, Keepalive, Renew, Renewal, Result, Url, WatchScope, Watches,
};
use tracing::{debug, warn};

use crate::client::{Client, ConsulError, HealthEntry, Registration};
use crate::config::ConsulConfig;
use crate::mapping::{DUBBO_TAG, check_id, read_entry, registration};

const BACKEND: &str = crate::SCHEME;

/// The longest wait between two attempts to restart a watch, whatever `retry.max.period` says.
const WATCH_RETRY_CAP: Duration = Duration::from_secs(5);

/// The scope that follows the catalog for `*` queries.
const CATALOG_SCOPE: &str = "catalog";

/// The Consul [`Backend`].
#[derive(Debug)]
pub struct ConsulBackend {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: ConsulConfig,
    client: Client,
    ctx: Context,
    watches: Watches,
    /// One keepalive (check passes) per registration.
    keepalives: Mutex<HashMap<Url, Keepalive>>,
}

/// The check passes of one registration.
struct Passer {
    inner: Arc<Inner>,
    registration: Registration,
}

/// Paces the blocking-query loop. An answer whose index moved is news: the next query goes
/// at once (up to 100 a second, so even an agent that bumps its index on every answer cannot
/// make a busy loop). An answer whose index did not move (a timed-out wait, a misbehaving
/// agent that answers at once) spends from a bucket of 2 that refills at one a second.
struct RateLimit {
    idle: Bucket,
    news: Bucket,
}

impl ConsulBackend {
    /// A backend for `config`; no request is made until it is used.
    pub fn new(config: ConsulConfig, ctx: Context) -> Result<ConsulBackend> {
        let client = Client::new(
            config.base.clone(),
            config.token.clone(),
            config.timeout,
            &config.tls,
        )?;
        let watches = Watches::with_retry(BACKEND, &ctx, ctx.retry().capped(WATCH_RETRY_CAP));
        Ok(ConsulBackend {
            inner: Arc::new(Inner {
                config,
                client,
                ctx,
                watches,
                keepalives: Mutex::default(),
            }),
        })
    }
}

impl Inner {
    fn keepalives(&self) -> MutexGuard<'_, HashMap<Url, Keepalive>> {
        self.keepalives.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The passing Dubbo instances of service `name` at `index` (blocking when it is not 0);
    /// unreadable entries are skipped with a warning.
    async fn instances(&self, name: &str, index: u64) -> Result<(u64, Vec<Url>)> {
        let answer = self
            .client
            .health(name, DUBBO_TAG, index, self.config.watch_timeout)
            .await?;
        Ok((answer.index, read_entries(&answer.value)))
    }

    /// The services of the catalog tagged `dubbo`, blocking at `index` like
    /// [`Inner::instances`]; with the index to ask with next.
    async fn dubbo_services(&self, index: u64) -> Result<(u64, Vec<String>)> {
        let answer = self
            .client
            .services(index, self.config.watch_timeout)
            .await?;
        let names = answer
            .value
            .into_iter()
            .filter(|(_, tags)| tags.iter().any(|t| t == DUBBO_TAG))
            .map(|(name, _)| name)
            .collect();
        Ok((answer.index, names))
    }

    /// The services `query` selects: its interface, or every Dubbo service for `*`.
    async fn services_of(&self, query: &Url) -> Result<Vec<String>> {
        match query.service_interface() {
            dubbo_url::ANY_VALUE => Ok(self.dubbo_services(0).await?.1),
            interface => Ok(vec![interface.to_owned()]),
        }
    }

    fn watch_service(self: &Arc<Self>, name: &str, query: &Url, index: u64) -> Result<()> {
        let inner = self.clone();
        let name_owned = name.to_owned();
        let index = Arc::new(AtomicU64::new(index));
        self.watches.watch(&scope_of(name), query, move |scope| {
            let inner = inner.clone();
            let name = name_owned.clone();
            let index = index.clone();
            async move { inner.follow_service(scope, name, index).await }
        })?;
        Ok(())
    }

    /// Follows one service with blocking queries, by Consul's rules: the index only moves
    /// forward (when it goes backwards, start again from 0), is never reused as 0, and the
    /// loop is rate-limited. The catalog publishes only when the payload changed.
    async fn follow_service(
        self: Arc<Self>,
        scope: WatchScope,
        name: String,
        index: Arc<AtomicU64>,
    ) -> Result<()> {
        let mut limit = RateLimit::new();
        let mut progressed = false;
        loop {
            limit.wait(progressed).await;
            let asked = index.load(Ordering::Acquire);
            let (answered, urls) = self.instances(&name, asked).await?;
            let next = next_index(asked, answered, &name);
            progressed = asked != 0 && next > asked;
            index.store(next, Ordering::Release);
            scope.replace(urls);
        }
    }

    /// Follows the catalog for `*` queries: every service tagged `dubbo` gets a watch.
    async fn follow_catalog(self: Arc<Self>, scope: WatchScope) -> Result<()> {
        let mut limit = RateLimit::new();
        let mut index = 0;
        let mut progressed = false;
        loop {
            limit.wait(progressed).await;
            let (answered, names) = self.dubbo_services(index).await?;
            let next = next_index(index, answered, CATALOG_SCOPE);
            progressed = index != 0 && next > index;
            index = next;
            for name in &names {
                for query in scope.queries() {
                    self.watch_service(name, &query, 0)?;
                }
            }
            scope.mark_working();
        }
    }
}

#[async_trait]
impl Renew for Passer {
    async fn renew(&self) -> Result<Renewal> {
        match self
            .inner
            .client
            .pass(&check_id(&self.registration.id))
            .await
        {
            Ok(()) => Ok(Renewal::Renewed),
            Err(error) if error.is_forgotten() => Ok(Renewal::Lost),
            Err(error) => Err(error.into()),
        }
    }

    async fn restore(&self) -> Result<()> {
        // Registered again with its check passing, as at first.
        self.inner.client.register(&self.registration).await?;
        Ok(())
    }
}

#[async_trait]
impl Backend for ConsulBackend {
    const NAME: &'static str = BACKEND;

    async fn register(&self, url: &Url) -> Result<()> {
        let inner = &self.inner;
        let registration = registration(url, &inner.config)?;
        inner.client.register(&registration).await?;
        debug!(backend = BACKEND, id = %registration.id, %url, "service registered");
        let period = Keepalive::period_for(inner.config.check_ttl);
        let passer = Passer {
            inner: inner.clone(),
            registration,
        };
        let keepalive = Keepalive::start(BACKEND, url.to_string(), &inner.ctx, period, passer)?;
        inner.keepalives().insert(url.clone(), keepalive);
        Ok(())
    }

    /// One `GET /v1/agent/services`: the registrations whose service ID the agent forgot.
    async fn missing(&self, registered: &[Url]) -> Result<Vec<Url>> {
        let known = self.inner.client.agent_service_ids().await?;
        Ok(registered
            .iter()
            .filter(|url| !known.contains(&crate::mapping::service_id(url)))
            .cloned()
            .collect())
    }

    async fn unregister(&self, url: &Url) -> Result<()> {
        let inner = &self.inner;
        inner.keepalives().remove(url);
        inner
            .client
            .deregister(&crate::mapping::service_id(url))
            .await?;
        Ok(())
    }

    async fn subscribe(&self, query: &Url) -> Result<()> {
        let inner = &self.inner;
        for name in inner.services_of(query).await? {
            let (index, urls) = inner.instances(&name, 0).await?;
            inner.ctx.catalog().replace(&scope_of(&name), urls);
            inner.watch_service(&name, query, index)?;
        }
        if query.service_interface() == dubbo_url::ANY_VALUE {
            let follower = inner.clone();
            inner.watches.watch(CATALOG_SCOPE, query, move |scope| {
                follower.clone().follow_catalog(scope)
            })?;
        }
        Ok(())
    }

    async fn unsubscribe(&self, query: &Url) -> Result<()> {
        self.inner.watches.release(query);
        Ok(())
    }

    async fn lookup(&self, query: &Url) -> Result<Vec<Url>> {
        let inner = &self.inner;
        let mut urls = Vec::new();
        for name in inner.services_of(query).await? {
            urls.extend(inner.instances(&name, 0).await?.1);
        }
        Ok(urls)
    }

    async fn close(&self) -> Result<()> {
        // The keepalives and watches were stopped with the handle's tasks.
        self.inner.keepalives().clear();
        Ok(())
    }
}

impl RateLimit {
    fn new() -> RateLimit {
        RateLimit {
            idle: Bucket::new(2.0, 1.0),
            news: Bucket::new(100.0, 100.0),
        }
    }

    /// Waits before the next query; `progressed`: the last answer's index moved.
    async fn wait(&mut self, progressed: bool) {
        if progressed {
            self.news.take().await;
        } else {
            self.idle.take().await;
        }
    }
}

fn scope_of(service: &str) -> String {
    format!("service:{service}")
}

fn read_entries(entries: &[HealthEntry]) -> Vec<Url> {
    entries
        .iter()
        .filter_map(|entry| match read_entry(entry) {
            Ok(url) => Some(url),
            Err(error) => {
                warn!(backend = BACKEND, service = %entry.service.service, id = %entry.service.id, %error, "skipping unreadable service entry");
                None
            }
        })
        .collect()
}

/// The index to ask with next, by Consul's rules: one that went backwards (a restored
/// snapshot, a restarted agent) starts again from 0, which answers at once; otherwise never 0.
fn next_index(asked: u64, answered: u64, what: &str) -> u64 {
    if answered < asked {
        debug!(
            backend = BACKEND,
            what, asked, answered, "the index went backwards; starting again"
        );
        0
    } else {
        answered.max(1)
    }
}

impl From<ConsulError> for Error {
    fn from(error: ConsulError) -> Error {
        match &error {
            ConsulError::Unreachable { .. } => Error::not_connected_by(BACKEND, "request", error),
            // A wrong token or a body the agent refused: retrying cannot help.
            e if e.is_refused() => Error::invalid("consul request", "", error.to_string()),
            // 429, 5xx, 404, an unreadable answer: worth another try later.
            _ => Error::backend(BACKEND, error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::Instant;

    #[test]
    fn index_rules() {
        assert_eq!(next_index(0, 0, "x"), 1, "never 0 after an answer");
        assert_eq!(next_index(0, 42, "x"), 42);
        assert_eq!(next_index(42, 42, "x"), 42);
        assert_eq!(next_index(42, 7, "x"), 0, "backwards: start again");
    }

    #[tokio::test(start_paused = true)]
    async fn answers_without_news_are_rate_limited_after_a_burst() {
        let mut limit = RateLimit::new();
        let start = Instant::now();
        for _ in 0..12 {
            limit.wait(false).await;
        }
        // Two at once, then one a second.
        let elapsed = start.elapsed();
        assert!(elapsed >= Duration::from_secs(10), "{elapsed:?}");
        assert!(elapsed < Duration::from_secs(11), "{elapsed:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn news_is_followed_at_once_but_never_in_a_busy_loop() {
        let mut limit = RateLimit::new();
        let start = Instant::now();
        for _ in 0..100 {
            limit.wait(true).await;
        }
        assert_eq!(
            start.elapsed(),
            Duration::ZERO,
            "a burst of changes is followed at once"
        );
        for _ in 0..200 {
            limit.wait(true).await;
        }
        // Then 100 a second.
        let elapsed = start.elapsed();
        assert!(elapsed >= Duration::from_secs(2), "{elapsed:?}");
        assert!(elapsed < Duration::from_millis(2100), "{elapsed:?}");
    }
}
