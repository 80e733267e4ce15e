//! The XClient against real srpc servers on loopback.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code: failures panic.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use srpc_core::{HandlerError, RunningServer, Server};
use srpc_registry::{Registry, Url};
use srpc_xclient::{CallOptions, Discovery, Error, FailMode, Options, Selector, XClient};

/// A server whose `Svc.Name` answers its name after `delay`, counting its calls.
struct Node {
    server: RunningServer,
    calls: Arc<AtomicUsize>,
}

async fn node(name: &str, delay: Duration) -> Node {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let name = name.to_owned();
    let server = Server::new()
        .handle("Svc.Name", move |(): ()| {
            let name = name.clone();
            let calls = counted.clone();
            async move {
                calls.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(delay).await;
                Ok::<_, HandlerError>(name)
            }
        })
        .handle("Svc.Fail", |(): ()| async move {
            Err::<(), _>(HandlerError::from("no"))
        })
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    Node { server, calls }
}

impl Node {
    fn addr(&self) -> String {
        self.server.local_addr().to_string()
    }
    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

/// An address where nothing listens.
fn dead_addr() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}

fn xclient(addrs: &[&str], options: Options) -> XClient {
    XClient::new(
        Discovery::servers(addrs.iter().copied()).unwrap().0,
        options,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follows_a_registry_subscription_and_drops_endpoints_that_leave() {
    let (a, b) = (
        node("a", Duration::ZERO).await,
        node("b", Duration::ZERO).await,
    );
    let registry = srpc_registry_inprocess::open("xclient-follow");
    let url = |n: &Node| Url::parse(&format!("srpc://{}/Svc", n.addr())).unwrap();
    registry.register(&url(&a)).await.unwrap();
    registry.register(&url(&b)).await.unwrap();
    let mut sub = registry
        .subscribe(&Url::parse("consumer://127.0.0.1/Svc").unwrap())
        .await
        .unwrap();
    sub.wait_for(|s| s.len() == 2, Duration::from_secs(5))
        .await
        .unwrap();
    let x = XClient::new(
        sub.clone().into(),
        Options::default().with_selector(Selector::RoundRobin),
    );
    let mut names = Vec::new();
    for _ in 0..4 {
        names.push(x.call::<_, String>("Svc.Name", &()).await.unwrap());
    }
    names.sort();
    assert_eq!(names, ["a", "a", "b", "b"]);

    // b leaves: its connection is closed at once, though this thread's pick cache (and the
    // handle taken here) still hold the endpoint; the next pick lets the cache's go.
    let gone = x
        .endpoints()
        .list()
        .iter()
        .find(|e| e.addr() == b.addr())
        .cloned()
        .unwrap();
    assert!(gone.is_connected());
    registry.unregister(&url(&b)).await.unwrap();
    let b_addr = b.addr();
    x.wait_for_endpoints(
        |e| e.list().iter().all(|e| e.addr() != b_addr),
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    assert!(
        !gone.is_connected(),
        "the endpoint that left still has its connection"
    );
    let gone = {
        let weak = Arc::downgrade(&gone);
        drop(gone);
        weak
    };
    for _ in 0..4 {
        assert_eq!(x.call::<_, String>("Svc.Name", &()).await.unwrap(), "a");
    }
    assert!(
        gone.upgrade().is_none(),
        "the endpoint that left is still held after this thread picked again"
    );
}

#[tokio::test]
async fn select_and_select_with_make_the_same_real_picks() {
    let addrs = ["127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"];
    let x = xclient(
        &addrs,
        Options::default().with_selector(Selector::RoundRobin),
    );
    let call = CallOptions::default();
    // Round-robin advances on every pick, whichever call makes it: six picks alternate
    // between the two, and the six together visit each endpoint twice.
    let picks: Vec<String> = (0..6)
        .map(|i| {
            if i % 2 == 0 {
                x.select(&call).unwrap().addr().to_owned()
            } else {
                x.select_with(&call, |e| e.addr().to_owned()).unwrap()
            }
        })
        .collect();
    for addr in addrs {
        assert_eq!(picks.iter().filter(|p| *p == addr).count(), 2, "{picks:?}");
    }
    assert_eq!(picks[0..3], picks[3..6], "a stable rotation: {picks:?}");
    // The key decides under consistent hashing, for both.
    let x = xclient(
        &addrs,
        Options::default().with_selector(Selector::ConsistentHash),
    );
    let keyed = CallOptions::default().with_key("user-7");
    let owner = x.select(&keyed).unwrap().addr().to_owned();
    assert_eq!(x.select_with(&keyed, |e| e.addr().to_owned()), Some(owner));
    let empty = xclient(&[], Options::default());
    assert!(empty.select_with(&call, |_| ()).is_none());
}

#[tokio::test]
async fn static_lists_can_be_replaced_and_filters_apply() {
    let (a, b) = (
        node("a", Duration::ZERO).await,
        node("b", Duration::ZERO).await,
    );
    let (discovery, list) = Discovery::servers([a.addr().as_str()]).unwrap();
    let x = XClient::new(discovery, Options::default());
    assert_eq!(x.call::<_, String>("Svc.Name", &()).await.unwrap(), "a");
    list.update([b.addr().as_str()]).unwrap();
    let b_addr = b.addr();
    x.wait_for_endpoints(
        |e| e.list().iter().all(|e| e.addr() == b_addr),
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    assert_eq!(x.call::<_, String>("Svc.Name", &()).await.unwrap(), "b");

    let urls = [
        format!("srpc://{}/Svc?group=g", a.addr()),
        format!("srpc://{}/Svc?group=h", b.addr()),
        format!("srpc://{}/Svc?group=g&state=inactive", dead_addr()),
        format!("srpc://{}/Svc?group=g&enabled=false", dead_addr()),
    ];
    let x = xclient(
        &urls.iter().map(String::as_str).collect::<Vec<_>>(),
        Options::default().with_group("g"),
    );
    assert_eq!(
        x.endpoints().list().len(),
        1,
        "group, state=inactive and enabled=false filter"
    );
    assert_eq!(x.call::<_, String>("Svc.Name", &()).await.unwrap(), "a");
    let none = xclient(&[], Options::default());
    assert!(matches!(
        none.call::<_, String>("Svc.Name", &()).await,
        Err(Error::NoEndpoints { elsewhere: None })
    ));
}

/// "no endpoint available" for a query without the version the providers have says which
/// versions there are, as `srpc list` and `srpc call` do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_endpoint_errors_name_the_versions_the_registry_has() {
    let registry = srpc_registry_inprocess::open("xclient-elsewhere");
    let provider = Url::parse(&format!("srpc://{}/Svc?version=2.0", dead_addr())).unwrap();
    registry.register(&provider).await.unwrap();
    let sub = registry
        .subscribe(&Url::parse("consumer://127.0.0.1/Svc?version=1.0").unwrap())
        .await
        .unwrap();
    let x = XClient::new(sub.into(), Options::default());
    let waited = x
        .wait_for_endpoints(|e| !e.list().is_empty(), Duration::from_millis(50))
        .await
        .unwrap_err();
    assert!(waited.to_string().ends_with("(Svc:2.0)"), "{waited}");
    // Calls fail at once, with what was looked up.
    let err = x.call::<_, String>("Svc.Name", &()).await.unwrap_err();
    let Error::NoEndpoints {
        elsewhere: Some(hint),
    } = &err
    else {
        panic!("{err:?}");
    };
    assert_eq!(hint.services, ["Svc:2.0"]);
    assert_eq!(
        err.to_string(),
        "no endpoint available; the interface Svc has 1 provider(s): 1 in other groups or \
         versions (Svc:2.0)"
    );
    assert_eq!(x.no_endpoint_error().to_string(), err.to_string());
}

#[tokio::test]
async fn failover_moves_to_another_endpoint_and_counts_attempts() {
    let a = node("a", Duration::ZERO).await;
    let dead = dead_addr();
    let options = Options::default()
        .with_selector(Selector::RoundRobin)
        .with_fail_mode(FailMode::Failover, 2);
    let x = xclient(&[&a.addr(), &dead], options.clone());
    for _ in 0..10 {
        assert_eq!(x.call::<_, String>("Svc.Name", &()).await.unwrap(), "a");
    }
    // Only dead endpoints: every attempt is counted.
    let (d1, d2) = (dead_addr(), dead_addr());
    let x = xclient(&[&d1, &d2], options.clone());
    let err = x.call::<_, String>("Svc.Name", &()).await.unwrap_err();
    assert_eq!(err.attempts(), 3, "{err}");
    // A handler error is the application's answer: never retried.
    let x = xclient(&[&a.addr(), &a.addr()], options);
    let before = a.calls();
    let err = x.call::<_, ()>("Svc.Fail", &()).await.unwrap_err();
    assert_eq!(err.attempts(), 1);
    assert!(err.source_error().unwrap().is_handler_error());
    assert_eq!(a.calls(), before, "Svc.Fail does not count as Svc.Name");
    let fast = xclient(&[&d1], Options::default());
    assert_eq!(
        fast.call::<_, String>("Svc.Name", &())
            .await
            .unwrap_err()
            .attempts(),
        1,
        "failfast"
    );
}

#[tokio::test]
async fn failtry_retries_the_same_endpoint() {
    let dead = dead_addr();
    let a = node("a", Duration::ZERO).await;
    let options = Options::default()
        .with_selector(Selector::ConsistentHash)
        .with_fail_mode(FailMode::Failtry, 3);
    let x = xclient(&[&dead, &a.addr()], options);
    // A key that consistent hashing sends to the dead endpoint.
    let key = (0..1000u32)
        .map(|k| CallOptions::default().with_key(k.to_string()))
        .find(|call| x.select(call).is_some_and(|e| e.addr() == dead))
        .unwrap();
    let err = x
        .call_with::<_, String>("Svc.Name", &(), &key)
        .await
        .unwrap_err();
    assert_eq!(err.attempts(), 4, "{err}");
    assert!(
        err.to_string().contains(&dead),
        "every attempt on the same endpoint: {err}"
    );
    assert_eq!(a.calls(), 0, "failtry never moved to the live endpoint");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failbackup_hedges_a_slow_endpoint() {
    let slow = node("slow", Duration::from_secs(5)).await;
    let fast = node("fast", Duration::ZERO).await;
    let x = xclient(
        &[&slow.addr(), &fast.addr()],
        Options::default()
            .with_selector(Selector::RoundRobin)
            .with_fail_mode(FailMode::Failbackup, 0)
            .with_backup_delay(Duration::from_millis(50)),
    );
    let started = Instant::now();
    for _ in 0..2 {
        // Whichever is picked first, the fast one answers.
        assert_eq!(x.call::<_, String>("Svc.Name", &()).await.unwrap(), "fast");
    }
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "hedged calls did not wait for the slow endpoint"
    );
    assert!(
        slow.calls() >= 1,
        "the slow endpoint was tried first at least once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcast_reaches_everyone_and_the_first_error_cancels_the_rest() {
    let (a, b) = (
        node("a", Duration::ZERO).await,
        node("b", Duration::ZERO).await,
    );
    let x = xclient(&[&a.addr(), &b.addr()], Options::default());
    let mut names: Vec<String> = x.broadcast("Svc.Name", &()).await.unwrap();
    names.sort();
    assert_eq!(names, ["a", "b"]);

    let slow = node("slow", Duration::from_secs(5)).await;
    let x = xclient(&[&slow.addr(), &dead_addr()], Options::default());
    let started = Instant::now();
    let err = x.broadcast::<_, String>("Svc.Name", &()).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "the error did not cancel the slow call"
    );
    assert!(err.source_error().unwrap().is_retryable(), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fork_returns_the_first_success() {
    let slow = node("slow", Duration::from_secs(5)).await;
    let fast = node("fast", Duration::from_millis(10)).await;
    let x = xclient(
        &[&slow.addr(), &fast.addr(), &dead_addr()],
        Options::default(),
    );
    let started = Instant::now();
    assert_eq!(x.fork::<_, String>("Svc.Name", &()).await.unwrap(), "fast");
    assert!(started.elapsed() < Duration::from_secs(4));
    let all_dead = xclient(&[&dead_addr(), &dead_addr()], Options::default());
    assert_eq!(
        all_dead
            .fork::<_, String>("Svc.Name", &())
            .await
            .unwrap_err()
            .attempts(),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_connection_per_endpoint_is_reused_by_every_call() {
    let a = node("a", Duration::ZERO).await;
    let x = Arc::new(xclient(&[&a.addr()], Options::default()));
    let calls = (0..50).map(|_| {
        let x = x.clone();
        tokio::spawn(async move { x.call::<_, String>("Svc.Name", &()).await.unwrap() })
    });
    for call in calls {
        call.await.unwrap();
    }
    let endpoints = x.endpoints();
    let endpoint = &endpoints.list()[0];
    assert!(endpoint.is_connected());
    assert_eq!(
        endpoint.connections_opened(),
        1,
        "50 concurrent calls, one connection"
    );
}

#[tokio::test]
async fn call_metadata_reaches_the_handler_through_failover() {
    let server = Server::new()
        .handle_with_context(
            "Svc.Tenant",
            |call: srpc_core::CallContext, (): ()| async move {
                Ok::<_, HandlerError>(call.metadata.get("tenant").map(str::to_owned))
            },
        )
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let addr = server.local_addr().to_string();
    let x = xclient(
        &[&dead_addr(), &addr],
        Options::default()
            .with_selector(Selector::RoundRobin)
            .with_fail_mode(FailMode::Failover, 2),
    );
    let call = CallOptions::default()
        .with_metadata(srpc_core::Metadata::new().with("tenant", "acme").unwrap());
    for _ in 0..4 {
        let tenant: Option<String> = x.call_with("Svc.Tenant", &(), &call).await.unwrap();
        assert_eq!(tenant.as_deref(), Some("acme"));
    }
    let none: Option<String> = x.call("Svc.Tenant", &()).await.unwrap();
    assert_eq!(none, None);
    server.shutdown().await.unwrap();
}

/// Dubbo Admin's "disable" and "weight" are override rules in the `configurators` category:
/// an XClient subscribed to it stops calling a disabled provider, weighs by the rule, and
/// calls it again once the rule is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn override_rules_disable_and_weigh_providers() {
    let (a, b) = (
        node("a", Duration::ZERO).await,
        node("b", Duration::ZERO).await,
    );
    let registry = srpc_registry_inprocess::open("xclient-overrides");
    let url = |n: &Node| Url::parse(&format!("srpc://{}/Svc", n.addr())).unwrap();
    registry.register(&url(&a)).await.unwrap();
    registry.register(&url(&b)).await.unwrap();
    let sub = registry
        .subscribe(
            &Url::parse("consumer://127.0.0.1/Svc?category=providers,configurators").unwrap(),
        )
        .await
        .unwrap();
    let x = XClient::new(
        sub.into(),
        Options::default().with_selector(Selector::RoundRobin),
    );
    x.wait_for_endpoints(|e| e.list().len() == 2, Duration::from_secs(5))
        .await
        .unwrap();

    let disable = Url::parse(&format!(
        "override://{}/Svc?category=configurators&dynamic=false&disabled=true",
        b.addr()
    ))
    .unwrap();
    registry.register(&disable).await.unwrap();
    x.wait_for_endpoints(|e| e.list().len() == 1, Duration::from_secs(5))
        .await
        .unwrap();
    let before = b.calls();
    for _ in 0..6 {
        assert_eq!(x.call::<_, String>("Svc.Name", &()).await.unwrap(), "a");
    }
    assert_eq!(b.calls(), before, "a disabled provider was called");

    // The rule gone, b is called again; a weight rule for a alone then weighs 3:1.
    registry.unregister(&disable).await.unwrap();
    x.wait_for_endpoints(|e| e.list().len() == 2, Duration::from_secs(5))
        .await
        .unwrap();
    let weigh = Url::parse(&format!(
        "override://{}/Svc?category=configurators&dynamic=false&weight=300",
        a.addr()
    ))
    .unwrap();
    registry.register(&weigh).await.unwrap();
    let a_addr = a.addr();
    let now = x
        .wait_for_endpoints(
            |e| e.list().iter().any(|e| e.weight() == 300),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    // The weighted selectors read this weight (their shares are tested in selector.rs).
    let weights: Vec<(String, u32)> = now
        .list()
        .iter()
        .map(|e| (e.addr().to_owned(), e.weight()))
        .collect();
    assert!(weights.contains(&(a_addr, 300)), "{weights:?}");
    assert!(weights.contains(&(b.addr(), 100)), "{weights:?}");
}
