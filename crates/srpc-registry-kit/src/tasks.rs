//! [`Tasks`]: every background task of one registry handle, in one set that is aborted on
//! close and when the handle goes away.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use tokio::task::AbortHandle;
use tracing::debug;

use crate::{Error, Result};

/// The background tasks of one registry handle: the backend's own (receive loops, session
/// supervisors) and the kit's (watches, keepalives, the prober, retries).
///
/// Clones share the set. [`Tasks::close`] aborts every task in it and refuses new ones;
/// [`crate::FailbackRegistry`] calls it on `close()` and when the handle and every
/// subscription made through it are gone, so a backend writes no teardown of its own. A task
/// that ends by itself leaves the set, so the set holds only live tasks.
#[derive(Clone)]
pub struct Tasks {
    inner: Arc<Inner>,
}

struct Inner {
    backend: &'static str,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    next: u64,
    /// Every task started and not yet ended; `None` while its spawn is under way.
    live: HashMap<u64, (&'static str, Option<AbortHandle>)>,
    closed: bool,
}

/// Takes a task out of the set when its future ends or is dropped (aborted).
struct Leave {
    inner: Weak<Inner>,
    id: u64,
}

impl Tasks {
    /// An empty, open set for `backend` (for logs and errors).
    pub fn new(backend: &'static str) -> Tasks {
        Tasks {
            inner: Arc::new(Inner {
                backend,
                state: Mutex::default(),
            }),
        }
    }

    /// Runs `future` as a task of this set; `what` names it in logs. Returns a handle to
    /// abort this one task early. Fails with [`Error::Closed`] after [`Tasks::close`], and
    /// with a backend error outside a tokio runtime.
    pub fn spawn<F>(&self, what: &'static str, future: F) -> Result<AbortHandle>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let inner = &self.inner;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            Error::backend(
                inner.backend,
                format!("{what}: background tasks need a tokio runtime to run on"),
            )
        })?;
        let id = {
            let mut state = inner.state();
            if state.closed {
                return Err(Error::Closed);
            }
            state.next += 1;
            let id = state.next;
            state.live.insert(id, (what, None));
            id
        };
        let leave = Leave {
            inner: Arc::downgrade(inner),
            id,
        };
        // Spawned without the lock: a runtime that is shutting down drops the future at once,
        // and `Leave` takes the lock.
        let task = runtime.spawn(async move {
            let _leave = leave;
            future.await;
        });
        let handle = task.abort_handle();
        let mut state = inner.state();
        if state.closed {
            drop(state);
            handle.abort();
        } else if let Some((_, slot)) = state.live.get_mut(&id) {
            *slot = Some(handle.clone());
        }
        Ok(handle)
    }

    /// How many tasks are running now.
    pub fn len(&self) -> usize {
        self.inner.state().live.len()
    }

    /// Whether no task is running now.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether [`Tasks::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.inner.state().closed
    }

    /// Aborts every task and refuses new ones. Idempotent.
    pub fn close(&self) {
        let handles: Vec<(&'static str, AbortHandle)> = {
            let mut state = self.inner.state();
            state.closed = true;
            state
                .live
                .values_mut()
                .filter_map(|(what, handle)| handle.take().map(|h| (*what, h)))
                .collect()
        };
        // Aborted without the lock, for the same reason as in `spawn`.
        for (what, handle) in handles {
            debug!(backend = self.inner.backend, task = what, "task stopped");
            handle.abort();
        }
    }
}

impl Inner {
    fn state(&self) -> MutexGuard<'_, State> {
        // The maps stay consistent at every step, so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for Leave {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.upgrade() {
            inner.state().live.remove(&self.id);
        }
    }
}

impl fmt::Debug for Tasks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.inner.state();
        let mut names: Vec<&str> = state.live.values().map(|(what, _)| *what).collect();
        names.sort_unstable();
        f.debug_struct("Tasks")
            .field("backend", &self.inner.backend)
            .field("live", &names)
            .field("closed", &state.closed)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Waits until `tasks` holds `n` tasks, for at most a second.
    async fn until_len(tasks: &Tasks, n: usize) {
        tokio::time::timeout(Duration::from_secs(1), async {
            while tasks.len() != n {
                tokio::task::yield_now().await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{tasks:?} never held {n} tasks"));
    }

    #[tokio::test]
    async fn close_aborts_every_task_and_refuses_new_ones() {
        let tasks = Tasks::new("test");
        let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(1);
        for _ in 0..3 {
            let tx = tx.clone();
            tasks
                .spawn("pending", async move {
                    let _tx = tx;
                    std::future::pending::<()>().await;
                })
                .unwrap();
        }
        drop(tx);
        assert_eq!(tasks.len(), 3);
        tasks.close();
        // Every sender is dropped with its aborted task: the channel closes.
        assert!(rx.recv().await.is_none());
        until_len(&tasks, 0).await;
        assert!(matches!(tasks.spawn("late", async {}), Err(Error::Closed)));
    }

    #[tokio::test]
    async fn a_task_that_ends_leaves_the_set() {
        let tasks = Tasks::new("test");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tasks
            .spawn("waits", async move {
                let _ = rx.await;
            })
            .unwrap();
        assert_eq!(tasks.len(), 1);
        tx.send(()).unwrap();
        until_len(&tasks, 0).await;
        assert!(!tasks.is_closed());
    }

    #[tokio::test]
    async fn one_task_can_be_aborted_alone() {
        let tasks = Tasks::new("test");
        let one = tasks.spawn("one", std::future::pending::<()>()).unwrap();
        tasks.spawn("other", std::future::pending::<()>()).unwrap();
        one.abort();
        until_len(&tasks, 1).await;
        tasks.close();
        until_len(&tasks, 0).await;
    }

    #[test]
    fn outside_a_runtime_spawning_is_an_error_not_a_panic() {
        let err = Tasks::new("test").spawn("x", async {}).unwrap_err();
        assert!(err.to_string().contains("tokio runtime"), "{err}");
    }
}
