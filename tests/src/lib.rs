//! The srpc conformance suite: one set of contract tests, written once, that every registry
//! backend runs through a small [`conformance::Factory`], plus shared test helpers.
//!
//! A backend's test file expands the suite with [`conformance_suite!`]:
//!
//! ```text
//! struct MyFactory;
//! #[async_trait::async_trait]
//! impl srpc_tests::conformance::Factory for MyFactory { /* … */ }
//! srpc_tests::conformance_suite!(MyFactory);
//! // For a backend that needs a real server:
//! // srpc_tests::conformance_suite!(MyFactory, #[ignore = "needs ZooKeeper: cargo xtask integration"]);
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code: failures panic.

pub mod avahi;
pub mod browser;
pub mod conformance;
pub mod consul;
#[cfg(feature = "grpc")]
pub mod grpc;
pub mod netns;
pub mod peer;
pub mod proxy;
pub mod servers;
pub mod tls;

/// An axum application served on a free loopback port; stopped when dropped.
pub struct Served {
    /// Where it listens.
    pub addr: std::net::SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves `app` on `127.0.0.1` at a free port, in the background.
pub async fn serve_on_loopback(app: axum::Router) -> Served {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port");
    let addr = listener.local_addr().expect("its address");
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Served { addr, task }
}

/// Sends the logs of the code under test to the test's output, filtered by `RUST_LOG`
/// (nothing when it is unset): `RUST_LOG=srpc_registry_etcd=debug cargo test …`.
pub fn init_logs() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
}

/// A loopback port where connections are never accepted and never refused: a listener with
/// a backlog of one that is already full, so a new connection attempt hangs until its
/// timeout, as at a provider whose host is overloaded or behind a firewall that drops. Holds
/// the port until dropped.
pub struct Unanswering {
    listener: std::net::TcpListener,
    _queued: Vec<std::net::TcpStream>,
}

impl Unanswering {
    /// Binds `127.0.0.1:<free port>` and fills its queue.
    pub fn start() -> std::io::Result<Unanswering> {
        use socket2::{Domain, Socket, Type};
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
        socket.bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into())?;
        socket.listen(0)?;
        let listener: std::net::TcpListener = socket.into();
        let addr = listener.local_addr()?;
        let mut queued = Vec::new();
        // Connect until one cannot: the queue is full from then on.
        while queued.len() < 16 {
            match std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_millis(300))
            {
                Ok(stream) => queued.push(stream),
                Err(_) => {
                    return Ok(Unanswering {
                        listener,
                        _queued: queued,
                    });
                }
            }
        }
        Err(std::io::Error::other("the listen queue never filled"))
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map_or(0, |a| a.port())
    }
}

/// Records every snapshot a subscription publishes from now on, uncoalesced
/// ([`srpc_registry::Subscription::history`]): (providers, connected) each.
pub fn record(
    sub: &srpc_registry::Subscription,
) -> std::sync::Arc<std::sync::Mutex<Vec<(usize, bool)>>> {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut history = sub.history();
    let log = seen.clone();
    tokio::spawn(async move {
        while let Some(s) = history.recv().await {
            log.lock()
                .unwrap()
                .push((s.providers().len(), s.is_connected()));
        }
    });
    seen
}

/// A server killed and started again on its data, seen through two handles on it:
/// `provider` registers `first`, and the subscription `sub` of `consumer` sees it. While the
/// server is down the subscription keeps it with `connected = false`; once it is back, it is
/// still there, connected, `second` registers and is seen, and no published snapshot was ever
/// without a provider.
pub async fn restart_keeps_providers(
    provider: &dyn srpc_registry::Registry,
    sub: &mut srpc_registry::Subscription,
    (first, second): (&srpc_registry::Url, &srpc_registry::Url),
    kill: impl FnOnce(),
    launch: impl FnOnce(),
) {
    const DEADLINE: std::time::Duration = std::time::Duration::from_secs(30);
    provider.register(first).await.unwrap();
    sub.wait_for(|s| s.len() == 1 && s.is_connected(), DEADLINE)
        .await
        .unwrap();
    let seen = record(sub);

    kill();
    let s = sub.wait_for(|s| !s.is_connected(), DEADLINE).await.unwrap();
    assert_eq!(
        s.len(),
        1,
        "the last known provider stays while the server is down"
    );
    launch();
    sub.wait_for(|s| s.is_connected() && s.len() == 1, DEADLINE)
        .await
        .unwrap();

    // And the registry works again: a new provider shows up.
    provider.register(second).await.unwrap();
    sub.wait_for(|s| s.len() == 2, DEADLINE).await.unwrap();
    let seen = seen.lock().unwrap().clone();
    assert!(
        seen.iter().all(|(providers, _)| *providers >= 1),
        "a snapshot lost the provider: {seen:?}"
    );
    assert!(
        seen.iter().any(|(_, connected)| !connected),
        "the outage was visible: {seen:?}"
    );
}

/// A multicast registry URL on loopback with a group port no other socket uses right now,
/// plus extra parameters (`k=v&…`).
pub fn multicast_url(extra: &str) -> String {
    let port = std::net::UdpSocket::bind("0.0.0.0:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("a free UDP port");
    let sep = if extra.is_empty() { "" } else { "&" };
    format!("multicast://239.255.77.77:{port}?interface=127.0.0.1{sep}{extra}")
}

/// Expands the outage contract ([`conformance::outage_keeps_the_last_providers_and_recovers`])
/// for a factory whose [`conformance::Factory::outage`] gives a cuttable setup.
#[macro_export]
macro_rules! outage_suite {
    ($factory:expr $(, #[$attr:meta])* $(,)?) => {
        $crate::conformance_suite!(@one $factory, [$(#[$attr])*], outage_keeps_the_last_providers_and_recovers);
        $crate::conformance_suite!(@one $factory, [$(#[$attr])*], starts_while_the_registry_is_unreachable);
        $crate::conformance_suite!(@one $factory, [$(#[$attr])*], starts_from_the_cache_file_while_the_registry_is_unreachable);
    };
}

/// Expands every contract test of [`conformance`] as a `#[tokio::test]` for one factory.
/// Extra attributes (such as `#[ignore = "…"]`) are put on every test.
#[macro_export]
macro_rules! conformance_suite {
    ($factory:expr $(, #[$attr:meta])* $(,)?) => {
        $crate::conformance_suite!(@tests $factory, [$(#[$attr])*],
            register_then_subscribe_sees_it,
            subscribe_then_register_is_notified,
            unregister_is_notified,
            urls_differing_only_in_params_coexist,
            first_snapshot_is_ready_when_subscribe_returns,
            group_version_and_classifier_filter,
            interface_wildcard_sees_every_interface,
            category_lists_and_exclusion,
            disabled_providers_hidden_unless_enabled_wildcard,
            consumer_urls_land_in_consumers,
            lookup_equals_the_snapshot,
            close_removes_dynamic_and_keeps_persistent,
            dropping_a_subscription_stops_its_updates,
            concurrent_registrations_are_all_seen,
            large_and_non_ascii_urls_round_trip,
            invalid_input_is_an_error,
        );
    };
    (@tests $factory:expr, $attrs:tt, $name:ident, $($rest:ident,)*) => {
        $crate::conformance_suite!(@one $factory, $attrs, $name);
        $crate::conformance_suite!(@tests $factory, $attrs, $($rest,)*);
    };
    (@tests $factory:expr, $attrs:tt,) => {};
    (@one $factory:expr, [$(#[$attr:meta])*], $name:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        $(#[$attr])*
        async fn $name() {
            $crate::init_logs();
            $crate::conformance::$name(&$factory).await;
        }
    };
}

/// Issue 26: a registry handle dropped without `close()` stops every task it started, the
/// backend's and the kit's.
///
/// The handle is opened from `registry_url` in a runtime of its own, registers a provider,
/// subscribes to it and sees it: by then it runs background work (receive loops, watches,
/// keepalives, the prober). Then the subscription and the handle are dropped, and every task
/// of that runtime must end within `deadline`: none is left behind holding sockets, sessions
/// or memory. Servers the backend talks to must run elsewhere (another runtime, a process).
pub fn dropping_a_handle_stops_every_task(registry_url: &str, deadline: std::time::Duration) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let metrics = tokio::runtime::Handle::current().metrics();
        let registry = srpc::registry::connect(registry_url).await.unwrap();
        let provider: srpc_registry::Url = "dubbo://127.0.0.1:1/org.srpc.tasks.Drop?side=provider"
            .parse()
            .unwrap();
        registry.register(&provider).await.unwrap();
        let mut sub = registry
            .subscribe(&"consumer://127.0.0.1/org.srpc.tasks.Drop".parse().unwrap())
            .await
            .unwrap();
        sub.wait_for(|s| s.providers().contains(&provider), deadline)
            .await
            .unwrap();
        let running = metrics.num_alive_tasks();
        assert!(
            running > 0,
            "{registry_url}: a subscribed handle runs background tasks"
        );
        drop(sub);
        drop(registry);
        let stopped = tokio::time::timeout(deadline, async {
            while metrics.num_alive_tasks() > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        })
        .await;
        assert!(
            stopped.is_ok(),
            "{registry_url}: {} of {running} tasks still alive {deadline:?} after the handle \
             was dropped",
            metrics.num_alive_tasks()
        );
    });
}

/// Issue 26: a handle opened from a typed config (no URL string) registers, subscribes and
/// sees its provider like one opened from a URL, then closes.
pub async fn a_handle_from_a_builder_works(registry: std::sync::Arc<dyn srpc_registry::Registry>) {
    let provider: srpc_registry::Url = "dubbo://127.0.0.1:2/org.srpc.builder.Echo?side=provider"
        .parse()
        .unwrap();
    registry.register(&provider).await.unwrap();
    let mut sub = registry
        .subscribe(
            &"consumer://127.0.0.1/org.srpc.builder.Echo"
                .parse()
                .unwrap(),
        )
        .await
        .unwrap();
    let seen = sub
        .wait_for(
            |s| s.is_connected() && s.providers().contains(&provider),
            std::time::Duration::from_secs(10),
        )
        .await
        .unwrap();
    assert_eq!(seen.providers(), [provider]);
    registry.close().await.unwrap();
}

/// How soon a registration deleted behind its handle's back must be in the registry again:
/// the kit's `restore.period` (1 s) and one write, on a loaded machine.
pub const RESTORED_WITHIN: std::time::Duration = std::time::Duration::from_secs(3);

/// Issue 27: `provider` registers `url`; `delete` removes it from the registry behind the
/// provider's back (as `srpc unregister`, `etcdctl del` or an agent's deregister would) and
/// returns once it is gone; the registry, read by `reader`, holds it again within
/// [`RESTORED_WITHIN`], and `provider` still counts it as registered.
pub async fn a_deleted_registration_comes_back<F, Fut>(
    provider: &std::sync::Arc<dyn srpc_registry::Registry>,
    reader: &std::sync::Arc<dyn srpc_registry::Registry>,
    url: &srpc_registry::Url,
    delete: F,
) where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let query: srpc_registry::Url = format!(
        "consumer://127.0.0.1/{}?category=providers",
        url.service_interface()
    )
    .parse()
    .unwrap();
    let present = || async {
        reader
            .lookup(&query)
            .await
            .map(|found| found.contains(url))
            .unwrap_or(false)
    };
    provider.register(url).await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !present().await {
        assert!(
            std::time::Instant::now() < deadline,
            "{url} was not registered"
        );
    }
    delete().await;
    let deleted = std::time::Instant::now();
    // Polling the registry (not a synchronisation: each lookup is a request).
    while !present().await {
        assert!(
            deleted.elapsed() < RESTORED_WITHIN,
            "{url} was not registered again within {RESTORED_WITHIN:?} of its deletion"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(provider.is_registered(url));
}

pub use srpc_soak::http_metric;
