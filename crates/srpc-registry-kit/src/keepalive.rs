//! [`Keepalive`]: keeping one registration (or one lease) alive, written once for every
//! backend whose registry forgets what is not renewed.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::watch;
use tokio::task::AbortHandle;
use tracing::{debug, info, warn};

use crate::Result;
use crate::backend::Context;
use crate::catalog::Catalog;
use crate::retry::RetryPolicy;

/// What one renewal found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Renewal {
    /// The registry still had it, and now has it for another TTL.
    Renewed,
    /// The registry no longer has it (an HTTP registry that answered 404, an etcd lease that
    /// expired, a Consul check the agent forgot): it must be written again.
    Lost,
}

/// How a [`Keepalive`] is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeepaliveState {
    /// Written, and not renewed yet: the first period has not passed.
    Started,
    /// The last renewal (or rewrite) went through.
    Alive,
    /// The last renewal failed; it is being retried with backoff.
    Failing,
}

/// The two operations a [`Keepalive`] drives.
#[async_trait]
pub trait Renew: Send + Sync + 'static {
    /// Renews once: a heartbeat, a lease keepalive, a check pass.
    async fn renew(&self) -> Result<Renewal>;

    /// Writes it again after the registry lost it.
    async fn restore(&self) -> Result<()>;
}

/// Keeps a registration alive until dropped: renews every `period` (usually a third of the
/// TTL, [`Keepalive::period_for`]); when the registry has lost it, writes it again at once;
/// when a renewal fails, retries with the registry's backoff (never waiting longer than
/// `period`) and never gives up. While it fails, every subscription of the handle says
/// `connected = false`.
pub struct Keepalive {
    task: AbortHandle,
    state: watch::Receiver<KeepaliveState>,
}

/// Reports a keepalive's failure to the catalog, and clears the report when the keepalive
/// ends (dropped with its task).
struct Source {
    catalog: Arc<Catalog>,
    name: String,
}

impl Keepalive {
    /// Starts keeping `what` (for logs, e.g. the URL) alive through `renewer`. The first
    /// renewal is one `period` from now: the registration was just written. Fails outside a
    /// tokio runtime.
    pub fn start(
        backend: &'static str,
        what: impl Into<String>,
        ctx: &Context,
        period: Duration,
        renewer: impl Renew,
    ) -> Result<Keepalive> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let what = what.into();
        let source = Source {
            catalog: ctx.catalog().clone(),
            name: format!("keepalive#{} {what}", NEXT.fetch_add(1, Ordering::Relaxed)),
        };
        let (tx, state) = watch::channel(KeepaliveState::Started);
        let retry = ctx.retry().capped(period);
        let task = ctx.tasks().spawn(
            "keepalive",
            run(backend, what, period, retry, renewer, source, tx),
        )?;
        Ok(Keepalive { task, state })
    }

    /// A third of `ttl`: three chances to renew before the registry forgets.
    pub fn period_for(ttl: Duration) -> Duration {
        ttl / 3
    }

    /// How it is doing now.
    pub fn state(&self) -> KeepaliveState {
        *self.state.borrow()
    }

    /// Follows its state, e.g. to wait until it failed or recovered.
    pub fn watch_state(&self) -> watch::Receiver<KeepaliveState> {
        self.state.clone()
    }
}

impl Drop for Keepalive {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl fmt::Debug for Keepalive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keepalive")
            .field("state", &self.state())
            .finish_non_exhaustive()
    }
}

impl Drop for Source {
    fn drop(&mut self) {
        self.catalog.set_source_connected(&self.name, true);
    }
}

async fn run(
    backend: &'static str,
    what: String,
    period: Duration,
    retry: RetryPolicy,
    renewer: impl Renew,
    source: Source,
    state: watch::Sender<KeepaliveState>,
) {
    let mut backoff = retry.backoff();
    let mut failing = false;
    tokio::time::sleep(period).await;
    loop {
        let outcome = match renewer.renew().await {
            Ok(Renewal::Renewed) => Ok(()),
            Ok(Renewal::Lost) => {
                info!(backend, %what, "the registry lost it; writing it again");
                renewer.restore().await
            }
            Err(error) => Err(error),
        };
        match outcome {
            Ok(()) => {
                if failing {
                    info!(backend, %what, "keepalive works again");
                    source.catalog.set_source_connected(&source.name, true);
                }
                failing = false;
                state.send_replace(KeepaliveState::Alive);
                backoff.reset();
                tokio::time::sleep(period).await;
            }
            Err(error) => {
                if failing {
                    debug!(backend, %what, %error, "keepalive failed again");
                } else {
                    warn!(backend, %what, %error, "keepalive failed; retrying until it goes through");
                    source.catalog.set_source_connected(&source.name, false);
                }
                failing = true;
                state.send_replace(KeepaliveState::Failing);
                // Jitter may push a delay past the cap: a period is the longest wait.
                tokio::time::sleep(backoff.next_delay().min(period)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use dubbo_url::Url;

    use super::*;

    /// A registry entry with a TTL that the test can make forget it or fail.
    #[derive(Default)]
    struct Entry {
        log: Mutex<Vec<&'static str>>,
        present: std::sync::atomic::AtomicBool,
        failures: AtomicU64,
    }

    struct Renewer(Arc<Entry>);

    #[async_trait]
    impl Renew for Renewer {
        async fn renew(&self) -> Result<Renewal> {
            let entry = &self.0;
            if entry.failures.load(Ordering::SeqCst) > 0 {
                entry.failures.fetch_sub(1, Ordering::SeqCst);
                entry.log.lock().unwrap().push("fail");
                return Err(crate::Error::not_connected("test", "injected"));
            }
            entry.log.lock().unwrap().push("renew");
            Ok(if entry.present.load(Ordering::SeqCst) {
                Renewal::Renewed
            } else {
                Renewal::Lost
            })
        }
        async fn restore(&self) -> Result<()> {
            self.0.log.lock().unwrap().push("restore");
            self.0.present.store(true, Ordering::SeqCst);
            Ok(())
        }
    }

    fn context() -> Context {
        Context::new(
            "test",
            RetryPolicy::new(Duration::from_millis(100), Duration::from_secs(30)),
        )
        .0
    }

    const PERIOD: Duration = Duration::from_secs(10);

    #[tokio::test(start_paused = true)]
    async fn renews_every_period_and_writes_again_at_once_when_lost() {
        let ctx = context();
        let entry = Arc::new(Entry::default());
        entry.present.store(true, Ordering::SeqCst);
        let keepalive =
            Keepalive::start("test", "x", &ctx, PERIOD, Renewer(entry.clone())).unwrap();
        let mut state = keepalive.watch_state();
        tokio::time::sleep(PERIOD * 2 + PERIOD / 2).await;
        assert_eq!(*entry.log.lock().unwrap(), ["renew", "renew"]);
        // The registry forgets it: the next renewal finds out and writes it again at once.
        entry.present.store(false, Ordering::SeqCst);
        tokio::time::sleep(PERIOD).await;
        assert_eq!(
            *entry.log.lock().unwrap(),
            ["renew", "renew", "renew", "restore"]
        );
        assert_eq!(*state.borrow_and_update(), KeepaliveState::Alive);
    }

    #[tokio::test(start_paused = true)]
    async fn failures_back_off_within_the_period_and_mark_subscriptions() {
        let ctx = context();
        let (id, rx) = ctx
            .catalog()
            .subscribe(Url::parse("consumer://c/a.B").unwrap());
        ctx.catalog().mark_listed(id, true);
        let entry = Arc::new(Entry::default());
        entry.present.store(true, Ordering::SeqCst);
        entry.failures.store(50, Ordering::SeqCst);
        let keepalive =
            Keepalive::start("test", "x", &ctx, PERIOD, Renewer(entry.clone())).unwrap();
        let mut state = keepalive.watch_state();
        state
            .wait_for(|s| *s == KeepaliveState::Failing)
            .await
            .unwrap();
        assert!(
            !rx.borrow().is_connected(),
            "a failing keepalive is reported"
        );
        // Fifty failures in a row: it never gives up, and never waits longer than a period.
        let started = tokio::time::Instant::now();
        state
            .wait_for(|s| *s == KeepaliveState::Alive)
            .await
            .unwrap();
        assert!(started.elapsed() <= PERIOD * 50, "{:?}", started.elapsed());
        assert!(rx.borrow().is_connected(), "recovered");

        // Dropped while failing: the report goes with it.
        entry.failures.store(1_000, Ordering::SeqCst);
        tokio::time::sleep(PERIOD * 2).await;
        assert!(!rx.borrow().is_connected());
        drop(keepalive);
        tokio::task::yield_now().await;
        assert!(rx.borrow().is_connected());
    }
}
