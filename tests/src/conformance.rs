//! The contract tests of the `Registry` trait (`shared/DESIGN.md`, "The Registry contract").
//!
//! Every test gets a fresh pair of handles from the factory: a provider side and a consumer
//! side that share one registry but nothing else. Tests never sleep: they wait on the
//! subscription for the expected state, with the factory's deadline. To show that something
//! was *not* delivered, a test registers a matching "barrier" URL after it and waits for the
//! barrier: backends deliver one writer's changes in order.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::future::join_all;
use srpc::url::is_match;
use srpc_registry::{Error, Registry, Snapshot, Subscription, Url};

use crate::proxy::TcpProxy;

/// Makes registry handles for the suite.
#[async_trait]
pub trait Factory: Send + Sync {
    /// Two independent handles on one registry (a fresh namespace for this test where the
    /// backend has namespaces): the provider side and the consumer side.
    async fn pair(&self) -> (Arc<dyn Registry>, Arc<dyn Registry>);

    /// How long a change may take to reach the other handle.
    fn deadline(&self) -> Duration {
        Duration::from_secs(10)
    }

    /// The longest full URL this backend accepts (the multicast wire limits datagrams).
    fn max_url_len(&self) -> usize {
        usize::MAX
    }

    /// Handles whose connection to the registry a test can cut, for the outage contract
    /// ([`outage_suite!`](crate::outage_suite)); `None` (the default) says the backend cannot
    /// be cut (no server: inprocess, multicast).
    async fn outage(&self) -> Option<Outage> {
        None
    }
}

/// A registry reached through a [`TcpProxy`] that the test cuts, and a handle that stays
/// connected, made by [`Factory::outage`].
pub struct Outage {
    /// The registry URL the cut handles were made from (through `proxy`).
    pub cut_url: String,
    /// Provider side, reaching the registry through `proxy`.
    pub provider: Arc<dyn Registry>,
    /// Consumer side, reaching the registry through `proxy`.
    pub consumer: Arc<dyn Registry>,
    /// A third handle on the same registry that is never cut: it changes the registry during
    /// the cut, and sees what the registry really holds.
    pub bystander: Arc<dyn Registry>,
    /// The proxy between the cut handles and the registry.
    pub proxy: TcpProxy,
    /// How long the registry keeps the registrations of a handle it cannot reach (session
    /// timeout, TTL); the test waits until they are gone.
    pub lost_after: Duration,
    /// The longest wait between two attempts of the cut handles (their retry policy's cap):
    /// lost registrations must be back within it after the cut heals.
    pub retry_period: Duration,
}

impl Outage {
    /// The usual outage setup: a cuttable proxy in front of `server`, provider and consumer
    /// through it, a bystander straight to `server`, all opened from
    /// `<scheme>://<address>?<params>`.
    pub async fn through_proxy(
        scheme: &str,
        server: std::net::SocketAddr,
        params: &str,
        lost_after: Duration,
        retry_period: Duration,
    ) -> Outage {
        let proxy = TcpProxy::start(server).await.expect("a proxy on loopback");
        let cut_url = format!("{scheme}://{}?{params}", proxy.addr());
        let direct = format!("{scheme}://{server}?{params}");
        let connect = |url: String| async move {
            srpc::registry::connect(&url)
                .await
                .unwrap_or_else(|e| panic!("cannot open {url}: {e}"))
        };
        Outage {
            provider: connect(cut_url.clone()).await,
            consumer: connect(cut_url.clone()).await,
            bystander: connect(direct).await,
            cut_url,
            proxy,
            lost_after,
            retry_period,
        }
    }
}

/// What may come on top of a retry period on a loaded 2-core machine: connecting, the
/// server's answer, the scheduler.
const SCHEDULING_SLACK: Duration = Duration::from_secs(3);

/// Starting without the registry (issue 15): with `check=false`, a handle made while the
/// registry is unreachable starts anyway; its subscription says `connected = false`, its
/// registration waits; once the registry answers, the subscription is connected and holds
/// both what another handle registered meanwhile and the waiting registration.
pub async fn starts_while_the_registry_is_unreachable(f: &impl Factory) {
    let o = f
        .outage()
        .await
        .expect("a backend that runs the outage contract gives a cuttable setup");
    let svc = iface("late");
    let q = query(&svc, "");
    let (waiting, meanwhile) = (provider(&svc, 20110, ""), provider(&svc, 20111, ""));
    o.proxy.cut();
    let separator = if o.cut_url.contains('?') { '&' } else { '?' };
    let url = format!("{}{separator}check=false", o.cut_url);
    let late = tokio::time::timeout(f.deadline(), srpc::registry::connect(&url))
        .await
        .expect("connect with check=false returns while the registry is unreachable")
        .expect("connect with check=false succeeds while the registry is unreachable");
    let mut sub = late.subscribe(&q).await.unwrap();
    assert!(
        !sub.snapshot().is_connected(),
        "no registry yet: not connected"
    );
    late.register(&waiting).await.unwrap();
    o.bystander.register(&meanwhile).await.unwrap();
    o.proxy.restore();
    wait(
        &mut sub,
        f.deadline(),
        "connected, with both providers",
        |s| s.is_connected() && s.contains(&waiting) && s.contains(&meanwhile),
    )
    .await;
    let _ = late.close().await;
    let _ = o.bystander.unregister(&meanwhile).await;
}

/// The local cache file (issue 15): a handle with `file=` saves its subscriptions' live
/// providers; a handle started from the same file with `check=false` while the registry is
/// unreachable starts from them (`connected = false`), and switches to the live list once the
/// registry answers, never showing a cached provider as connected. A damaged file costs its
/// entries, not the start.
pub async fn starts_from_the_cache_file_while_the_registry_is_unreachable(f: &impl Factory) {
    let o = f
        .outage()
        .await
        .expect("a backend that runs the outage contract gives a cuttable setup");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let file = dir.path().join("registry.cache");
    let svc = iface("cached");
    let q = query(&svc, "");
    let (stays, leaves, comes) = (
        provider(&svc, 20120, ""),
        provider(&svc, 20121, ""),
        provider(&svc, 20122, ""),
    );
    o.bystander.register(&stays).await.unwrap();
    o.bystander.register(&leaves).await.unwrap();
    let with = |extra: &str| {
        let separator = if o.cut_url.contains('?') { '&' } else { '?' };
        format!("{}{separator}file={}{extra}", o.cut_url, file.display())
    };

    // A first consumer saves what it sees.
    let first = srpc::registry::connect(&with("")).await.unwrap();
    let mut sub = first.subscribe(&q).await.unwrap();
    wait(&mut sub, f.deadline(), "both providers, connected", |s| {
        s.is_connected() && s.contains(&stays) && s.contains(&leaves)
    })
    .await;
    let saved = |text: &str| {
        [&stays, &leaves]
            .iter()
            .all(|u| text.contains(&format!("127.0.0.1\\:{}/", u.port())))
    };
    wait_for_file(&file, f.deadline(), saved).await;
    drop(sub);
    first.close().await.unwrap();

    // The registry changes while it is unreachable.
    o.proxy.cut();
    o.bystander.unregister(&leaves).await.unwrap();
    o.bystander.register(&comes).await.unwrap();
    let late = tokio::time::timeout(f.deadline(), srpc::registry::connect(&with("&check=false")))
        .await
        .expect("connect with check=false returns while the registry is unreachable")
        .expect("connect with check=false succeeds while the registry is unreachable");
    let mut sub = late.subscribe(&q).await.unwrap();
    let mut history = sub.history();
    let first_snapshot = sub.snapshot();
    assert!(
        !first_snapshot.is_connected()
            && ports(first_snapshot.providers()) == [stays.port(), leaves.port()],
        "starts from the cached providers, not connected: {first_snapshot:?}"
    );
    o.proxy.restore();
    wait(&mut sub, f.deadline(), "the live list, connected", |s| {
        s.is_connected() && ports(s.providers()) == [stays.port(), comes.port()]
    })
    .await;
    while let Ok(snapshot) = history.try_recv() {
        assert!(
            !(snapshot.is_connected() && snapshot.contains(&leaves)),
            "a cached provider the registry no longer has was shown as connected: {snapshot:?}"
        );
    }
    let _ = late.close().await;

    // A damaged file: cut halfway through an entry, then garbage.
    let mut damaged = std::fs::read(&file).expect("the cache file");
    damaged.truncate(damaged.len() * 2 / 3);
    damaged.extend_from_slice(b"\n\xff\xfe\\u12=\x00\n");
    std::fs::write(&file, &damaged).expect("writing the damaged file");
    o.proxy.cut();
    let again = tokio::time::timeout(f.deadline(), srpc::registry::connect(&with("&check=false")))
        .await
        .expect("connect returns with a damaged cache file")
        .expect("connect succeeds with a damaged cache file");
    let mut sub = again.subscribe(&q).await.unwrap();
    assert!(!sub.snapshot().is_connected());
    o.proxy.restore();
    wait(&mut sub, f.deadline(), "the live list, connected", |s| {
        s.is_connected() && ports(s.providers()) == [stays.port(), comes.port()]
    })
    .await;
    let _ = again.close().await;
    for u in [&stays, &comes] {
        let _ = o.bystander.unregister(u).await;
    }
}

/// Waits until the file's text satisfies `pred`, for at most `deadline`.
async fn wait_for_file(
    path: &std::path::Path,
    deadline: Duration,
    mut pred: impl FnMut(&str) -> bool,
) {
    let started = tokio::time::Instant::now();
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if pred(&text) {
            return;
        }
        assert!(
            started.elapsed() < deadline,
            "{} did not reach the expected content within {deadline:?}: {text:?}",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The outage contract: while the connection is cut, subscriptions keep their last providers
/// with `connected = false` and no empty snapshot is ever published; changes made by another
/// handle during the cut are seen after it heals; registrations the registry dropped during
/// the cut are back within one retry period after it heals.
pub async fn outage_keeps_the_last_providers_and_recovers(f: &impl Factory) {
    let o = f
        .outage()
        .await
        .expect("a backend that runs the outage contract gives a cuttable setup");
    let svc = iface("outage");
    let q = query(&svc, "");
    let (a, b, c) = (
        provider(&svc, 20100, ""),
        provider(&svc, 20101, ""),
        provider(&svc, 20102, ""),
    );
    o.bystander.register(&b).await.unwrap();
    o.provider.register(&a).await.unwrap();
    let mut sub = o.consumer.subscribe(&q).await.unwrap();
    let mut truth = o.bystander.subscribe(&q).await.unwrap();
    wait(&mut sub, f.deadline(), "both providers, connected", |s| {
        s.is_connected() && s.contains(&a) && s.contains(&b)
    })
    .await;
    // Every snapshot from here on, not only what a coalescing watch would show.
    let mut history = sub.history();

    o.proxy.cut();
    let s = wait(&mut sub, f.deadline(), "the cut is noticed", |s| {
        !s.is_connected()
    })
    .await;
    assert!(
        s.contains(&a) && s.contains(&b),
        "the last providers stay while cut: {s:?}"
    );
    o.bystander.register(&c).await.unwrap();
    wait(
        &mut truth,
        f.deadline() + o.lost_after,
        "the registry drops the unreachable provider",
        |s| !s.contains(&a) && s.contains(&c),
    )
    .await;
    let s = sub.snapshot();
    assert!(
        !s.is_connected() && s.contains(&a) && s.contains(&b),
        "still cut, still the last providers: {s:?}"
    );

    o.proxy.restore();
    let healed = tokio::time::Instant::now();
    wait(
        &mut truth,
        o.retry_period + SCHEDULING_SLACK,
        "the lost registration is back within one retry period",
        |s| s.contains(&a),
    )
    .await;
    let back_after = healed.elapsed();
    let s = wait(
        &mut sub,
        f.deadline() + o.retry_period,
        "the consumer sees everything, connected",
        |s| s.is_connected() && s.contains(&a) && s.contains(&b) && s.contains(&c),
    )
    .await;
    assert_eq!(s.len(), 3, "{s:?}");

    let mut published = 0;
    while let Ok(snapshot) = history.try_recv() {
        published += 1;
        assert!(
            !snapshot.is_empty() && snapshot.contains(&b),
            "snapshot {} lost providers that never left: {snapshot:?}",
            snapshot.revision()
        );
    }
    assert!(published >= 2, "the cut and the heal were published");
    for handle in [&o.provider, &o.consumer, &o.bystander] {
        handle.close().await.unwrap();
    }
    eprintln!("outage: lost registration back {back_after:?} after the cut healed");
}

fn url(s: &str) -> Url {
    Url::parse(s).unwrap_or_else(|e| panic!("test url {s:?}: {e}"))
}

/// A provider URL of `iface` on `port`, with extra parameters `extra` (`k=v&…`).
fn provider(iface: &str, port: u16, extra: &str) -> Url {
    let sep = if extra.is_empty() { "" } else { "&" };
    url(&format!(
        "dubbo://127.0.0.1:{port}/{iface}?interface={iface}&side=provider{sep}{extra}"
    ))
}

/// A subscription query for `iface`, with extra parameters.
fn query(iface: &str, extra: &str) -> Url {
    let sep = if extra.is_empty() { "" } else { "&" };
    url(&format!(
        "consumer://127.0.0.1/{iface}?interface={iface}&side=consumer{sep}{extra}"
    ))
}

fn iface(test: &str) -> String {
    format!("org.srpc.conformance.{test}.Service")
}

async fn wait(
    sub: &mut Subscription,
    deadline: Duration,
    what: &str,
    pred: impl FnMut(&Snapshot) -> bool,
) -> Arc<Snapshot> {
    sub.wait_for(pred, deadline)
        .await
        .unwrap_or_else(|e| panic!("waiting until {what}: {e}"))
}

fn ports(urls: &[Url]) -> Vec<u16> {
    let mut ports: Vec<u16> = urls.iter().map(Url::port).collect();
    ports.sort_unstable();
    ports
}

/// A registration made before subscribing is in the subscription.
pub async fn register_then_subscribe_sees_it(f: &impl Factory) {
    let (p, c) = f.pair().await;
    let svc = iface("register_then_subscribe");
    let u = provider(&svc, 20001, "");
    p.register(&u).await.unwrap();
    let mut sub = c.subscribe(&query(&svc, "")).await.unwrap();
    let snapshot = wait(&mut sub, f.deadline(), "the provider is seen", |s| {
        s.contains(&u)
    })
    .await;
    assert_eq!(snapshot.providers(), [u]);
}

/// A registration made after subscribing is notified.
pub async fn subscribe_then_register_is_notified(f: &impl Factory) {
    let (p, c) = f.pair().await;
    let svc = iface("subscribe_then_register");
    let mut sub = c.subscribe(&query(&svc, "")).await.unwrap();
    assert!(
        sub.snapshot().is_empty(),
        "nothing registered yet: {:?}",
        sub.snapshot()
    );
    let u = provider(&svc, 20002, "");
    p.register(&u).await.unwrap();
    let snapshot = wait(&mut sub, f.deadline(), "the provider is notified", |s| {
        s.contains(&u)
    })
    .await;
    assert!(snapshot.is_connected());
    assert_eq!(snapshot.providers().len(), 1);
}

/// Unregistering is notified, and only the unregistered URL goes.
pub async fn unregister_is_notified(f: &impl Factory) {
    let (p, c) = f.pair().await;
    let svc = iface("unregister");
    let (a, b) = (provider(&svc, 20003, ""), provider(&svc, 20004, ""));
    p.register(&a).await.unwrap();
    p.register(&b).await.unwrap();
    let mut sub = c.subscribe(&query(&svc, "")).await.unwrap();
    wait(&mut sub, f.deadline(), "both providers are seen", |s| {
        s.len() == 2
    })
    .await;
    p.unregister(&a).await.unwrap();
    let snapshot = wait(&mut sub, f.deadline(), "the first provider is gone", |s| {
        !s.contains(&a)
    })
    .await;
    assert_eq!(snapshot.providers(), [b]);
}

/// URLs that differ only in parameters are different registrations.
pub async fn urls_differing_only_in_params_coexist(f: &impl Factory) {
    let (p, c) = f.pair().await;
    let svc = iface("params_coexist");
    let a = provider(&svc, 20005, "weight=10");
    let b = provider(&svc, 20005, "weight=20");
    p.register(&a).await.unwrap();
    p.register(&b).await.unwrap();
    let mut sub = c.subscribe(&query(&svc, "")).await.unwrap();
    let snapshot = wait(&mut sub, f.deadline(), "both variants are seen", |s| {
        s.len() == 2
    })
    .await;
    assert!(snapshot.contains(&a) && snapshot.contains(&b));
    p.unregister(&a).await.unwrap();
    let snapshot = wait(&mut sub, f.deadline(), "one variant is left", |s| {
        s.len() == 1
    })
    .await;
    assert_eq!(snapshot.providers(), [b]);
}

/// `subscribe` returns with the current state already in the first snapshot.
pub async fn first_snapshot_is_ready_when_subscribe_returns(f: &impl Factory) {
    let (p, c) = f.pair().await;
    let svc = iface("first_snapshot");
    let u = provider(&svc, 20006, "");
    p.register(&u).await.unwrap();
    // Wait until the registry holds it (eventually consistent backends), without subscribing.
    let deadline = tokio::time::Instant::now() + f.deadline();
    while !c.lookup(&query(&svc, "")).await.unwrap().contains(&u) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "lookup never saw {u}"
        );
        tokio::task::yield_now().await;
    }
    let sub = c.subscribe(&query(&svc, "")).await.unwrap();
    let snapshot = sub.snapshot();
    assert!(
        snapshot.contains(&u),
        "first snapshot lacks the provider: {snapshot:?}"
    );
    assert!(snapshot.is_connected());
}

/// Group (single, `*`, comma list), version (`*`, exact) and classifier select providers.
pub async fn group_version_and_classifier_filter(f: &impl Factory) {
    let (p, c) = f.pair().await;
    let svc = iface("filters");
    let all = [
        provider(&svc, 20010, "group=a&version=1"),
        provider(&svc, 20011, "group=b&version=1"),
        provider(&svc, 20012, "group=a&version=2"),
        provider(&svc, 20013, "version=1"),
        provider(&svc, 20014, "group=a&version=1&classifier=k"),
        provider(&svc, 20015, "group=c&version=1"),
    ];
    let cases: [(&str, &[u16]); 6] = [
        ("group=a&version=1", &[20010, 20014]),
        ("group=a&version=1&classifier=k", &[20014]),
        ("group=a&version=*", &[20010, 20012, 20014]),
        ("group=a,b&version=1", &[20010, 20011, 20014]),
        ("group=*&version=1", &[20010, 20011, 20013, 20014, 20015]),
        ("version=1", &[20013]),
    ];
    let mut subs = Vec::new();
    for (filter, _) in &cases {
        subs.push(c.subscribe(&query(&svc, filter)).await.unwrap());
    }
    for u in &all {
        p.register(u).await.unwrap();
    }
    // The last registration matches `group=*&version=1`-style queries only; wait for each
    // query's full expected set, then check nothing else slipped in.
    for ((filter, expected), sub) in cases.iter().zip(subs.iter_mut()) {
        let want = expected.len();
        let snapshot = wait(sub, f.deadline(), filter, |s| s.len() >= want).await;
        assert_eq!(ports(snapshot.providers()), *expected, "query {filter}");
    }
    // Barriers registered last prove that nothing non-matching arrives late: once a query
    // has the barriers it selects, it must hold exactly its expected set plus those.
    let barriers = [
        provider(&svc, 20018, "group=a&version=1&classifier=k"),
        provider(&svc, 20019, "version=1"),
    ];
    for barrier in &barriers {
        p.register(barrier).await.unwrap();
    }
    for ((filter, expected), sub) in cases.iter().zip(subs.iter_mut()) {
        let selected: Vec<&Url> = barriers
            .iter()
            .filter(|b| is_match(sub.query(), b))
            .collect();
        assert!(
            !selected.is_empty(),
            "every query selects a barrier: {filter}"
        );
        let snapshot = wait(sub, f.deadline(), "the barriers arrive", |s| {
            selected.iter().all(|b| s.contains(b))
        })
        .await;
        let mut want = expected.to_vec();
        want.extend(selected.iter().map(|b| b.port()));
        want.sort_unstable();
        assert_eq!(
            ports(snapshot.providers()),
            want,
            "query {filter} after the barriers"
        );
    }
}

/// `interface=*` selects providers of every interface.
pub async fn interface_wildcard_sees_every_interface(f: &impl Factory) {
    let (p, c) = f.pair().await;
    let a = provider(&iface("wildcard_a"), 20020, "");
    let b = provider(&iface("wildcard_b"), 20021, "");
    let mut sub = c
        .subscribe(&url(
            "consumer://127.0.0.1/*?interface=*&group=*&version=*&classifier=*",
        ))
        .await
        .unwrap();
    p.register(&a).await.unwrap();
    p.register(&b).await.unwrap();
    wait(&mut sub, f.deadline(), "both interfaces are seen", |s| {
        s.contains(&a) && s.contains(&b)
    })
    .await;
}

/// Category lists select several categories; `-x` excludes one; `consumers` is its own.
pub async fn category_lists_and_exclusion(f: &impl Factory) {
    let (p, c) = f.pair().await;
    let svc = iface("categories");
    let prov = provider(&svc, 20030, "");
    let router = url(&format!(
        "route://0.0.0.0/{svc}?category=routers&dynamic=false&name=r1&rule=x"
    ));
    let config = url(&format!(
        "override://0.0.0.0/{svc}?category=configurators&dynamic=false&timeout=100"
    ));
    let consumer = url(&format!(
        "consumer://127.0.0.1/{svc}?category=consumers&side=consumer&check=false"
    ));
    let mut three = c
        .subscribe(&query(&svc, "category=providers,configurators,routers"))
        .await
        .unwrap();
    let mut not_consumers = c
        .subscribe(&query(&svc, "category=-consumers"))
        .await
        .unwrap();
    let mut only_consumers = c
        .subscribe(&query(&svc, "category=consumers"))
        .await
        .unwrap();
    let mut only_providers = c.subscribe(&query(&svc, "")).await.unwrap();
    for u in [&consumer, &router, &config, &prov] {
        p.register(u).await.unwrap();
    }
    for sub in [&mut three, &mut not_consumers] {
        let s = wait(sub, f.deadline(), "three categories", |s| s.len() == 3).await;
        assert_eq!(s.providers(), std::slice::from_ref(&prov));
        assert_eq!(s.category("routers"), std::slice::from_ref(&router));
        assert_eq!(s.category("configurators"), std::slice::from_ref(&config));
        assert!(s.category("consumers").is_empty());
    }
    let s = wait(&mut only_consumers, f.deadline(), "the consumer", |s| {
        s.len() == 1
    })
    .await;
    assert_eq!(s.category("consumers"), std::slice::from_ref(&consumer));
    let s = wait(&mut only_providers, f.deadline(), "the provider", |s| {
        s.contains(&prov)
    })
    .await;
    assert_eq!(s.len(), 1, "a plain query selects providers only: {s:?}");
    for u in [&router, &config] {
        p.unregister(u).await.unwrap();
    }
}

/// `enabled=false` providers are hidden unless the query says `enabled=*`.
pub async fn disabled_providers_hidden_unless_enabled_wildcard(f: &impl Factory) {
    let (p, c) = f.pair().await;
    let svc = iface("enabled");
    let disabled = provider(&svc, 20040, "enabled=false");
    let enabled = provider(&svc, 20041, "");
    let mut normal = c.subscribe(&query(&svc, "")).await.unwrap();
    let mut everything = c.subscribe(&query(&svc, "enabled=*")).await.unwrap();
    p.register(&disabled).await.unwrap();
    p.register(&enabled).await.unwrap();
    let s = wait(&mut everything, f.deadline(), "both with enabled=*", |s| {
        s.len() == 2
    })
    .await;
    assert!(s.contains(&disabled));
    let s = wait(&mut normal, f.deadline(), "the enabled one", |s| {
        s.contains(&enabled)
    })
    .await;
    assert_eq!(s.providers(), [enabled]);
}

/// A consumer's own registration (`category=consumers`) is in category `consumers`.
pub async fn consumer_urls_land_in_consumers(f: &impl Factory) {
    let (p, c) = f.pair().await;
    let svc = iface("consumers");
    let consumer = url(&format!(
        "consumer://127.0.0.1/{svc}?application=app&category=consumers&check=false&interface={svc}&side=consumer"
    ));
    p.register(&consumer).await.unwrap();
    let mut sub = c
        .subscribe(&query(&svc, "category=consumers"))
        .await
        .unwrap();
    let s = wait(&mut sub, f.deadline(), "the consumer", |s| s.len() == 1).await;
    assert_eq!(s.category("consumers"), [consumer]);
    assert!(s.providers().is_empty());
}

/// `lookup` returns what the subscription's snapshot holds.
pub async fn lookup_equals_the_snapshot(f: &impl Factory) {
    let (p, c) = f.pair().await;
    let svc = iface("lookup");
    let q = query(&svc, "category=providers,routers");
    let mut sub = c.subscribe(&q).await.unwrap();
    let urls = [
        provider(&svc, 20050, ""),
        provider(&svc, 20051, "group=g"),
        provider(&svc, 20052, ""),
        url(&format!(
            "route://0.0.0.0/{svc}?category=routers&dynamic=false&name=l"
        )),
    ];
    for u in &urls {
        p.register(u).await.unwrap();
    }
    let s = wait(&mut sub, f.deadline(), "three entries", |s| s.len() == 3).await;
    let mut from_snapshot: Vec<Url> = s.urls().cloned().collect();
    from_snapshot.sort_by_key(Url::to_full_string);
    let looked_up = c.lookup(&q).await.unwrap();
    assert_eq!(looked_up, from_snapshot);
    p.unregister(&urls[3]).await.unwrap();
}

/// `close` removes dynamic registrations and keeps `dynamic=false` ones.
pub async fn close_removes_dynamic_and_keeps_persistent(f: &impl Factory) {
    let (p, c) = f.pair().await;
    let svc = iface("close");
    let dynamic = provider(&svc, 20060, "");
    let persistent = provider(&svc, 20061, "dynamic=false");
    p.register(&dynamic).await.unwrap();
    p.register(&persistent).await.unwrap();
    let mut sub = c.subscribe(&query(&svc, "")).await.unwrap();
    wait(&mut sub, f.deadline(), "both", |s| s.len() == 2).await;
    p.close().await.unwrap();
    let s = wait(&mut sub, f.deadline(), "the dynamic one is gone", |s| {
        !s.contains(&dynamic)
    })
    .await;
    assert_eq!(s.providers(), std::slice::from_ref(&persistent));
    assert!(matches!(p.register(&dynamic).await, Err(Error::Closed)));
    // Clean up the persistent registration through the other handle.
    c.unregister(&persistent).await.unwrap();
    wait(
        &mut sub,
        f.deadline(),
        "the persistent one is removed",
        Snapshot::is_empty,
    )
    .await;
}

/// Dropping the last handle of a subscription ends its updates.
pub async fn dropping_a_subscription_stops_its_updates(f: &impl Factory) {
    let (p, c) = f.pair().await;
    let svc = iface("drop_subscription");
    let sub = c.subscribe(&query(&svc, "")).await.unwrap();
    let mut rx = sub.watch();
    let mut keeper = c.subscribe(&query(&svc, "")).await.unwrap();
    drop(sub);
    let u = provider(&svc, 20070, "");
    p.register(&u).await.unwrap();
    wait(
        &mut keeper,
        f.deadline(),
        "another subscription still sees updates",
        |s| s.contains(&u),
    )
    .await;
    assert!(
        rx.changed().await.is_err(),
        "the dropped subscription's channel is closed"
    );
    assert!(
        !rx.borrow().contains(&u),
        "the dropped subscription got an update"
    );
}

/// 200 registrations made concurrently are all seen.
pub async fn concurrent_registrations_are_all_seen(f: &impl Factory) {
    let (p, c) = f.pair().await;
    let svc = iface("concurrent");
    let mut sub = c.subscribe(&query(&svc, "")).await.unwrap();
    // Each registration on its own task, so they really run at once on a multi-threaded runtime.
    let tasks = (0..200).map(|i| {
        let p = p.clone();
        let u = provider(&svc, 21000 + i, "");
        tokio::spawn(async move { p.register(&u).await })
    });
    for result in join_all(tasks).await {
        result.expect("task").unwrap();
    }
    let s = wait(&mut sub, f.deadline(), "200 providers", |s| s.len() == 200).await;
    assert_eq!(ports(s.providers()), (21000..21200).collect::<Vec<u16>>());
    assert_eq!(c.lookup(&query(&svc, "")).await.unwrap().len(), 200);
}

/// A 4 KiB URL and non-ASCII parameter values come back unchanged.
pub async fn large_and_non_ascii_urls_round_trip(f: &impl Factory) {
    let (p, c) = f.pair().await;
    let svc = iface("large_non_ascii");
    let mut sub = c.subscribe(&query(&svc, "")).await.unwrap();
    let unicode = provider(&svc, 20080, "owner=José Müller&region=東京&note=é,ü;ok");
    // `;` splits parameters, so the value above parses as `note=é,ü` plus a flag `ok`.
    let unicode = Url::parse(&unicode.to_full_string()).unwrap();
    let base = provider(&svc, 20081, "").to_full_string().len();
    let target = f.max_url_len().min(4096);
    let filler = "m".repeat(target - base - "&methods=".len());
    let large = provider(&svc, 20081, &format!("methods={filler}"));
    assert_eq!(large.to_full_string().len(), target);
    p.register(&unicode).await.unwrap();
    p.register(&large).await.unwrap();
    let s = wait(&mut sub, f.deadline(), "both", |s| s.len() == 2).await;
    let got_unicode = s.providers().iter().find(|u| u.port() == 20080).unwrap();
    assert_eq!(got_unicode.param("region"), Some("東京"));
    assert_eq!(got_unicode.param("owner"), Some("José Müller"));
    assert_eq!(got_unicode.to_full_string(), unicode.to_full_string());
    let got_large = s.providers().iter().find(|u| u.port() == 20081).unwrap();
    assert_eq!(got_large.to_full_string(), large.to_full_string());
    if f.max_url_len() < 4096 {
        let too_large = provider(&svc, 20082, &format!("methods={}", "m".repeat(4096)));
        let err = p.register(&too_large).await.unwrap_err();
        assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
    }
}

/// Invalid registrations and queries are refused with an error and change nothing.
pub async fn invalid_input_is_an_error(f: &impl Factory) {
    let (p, c) = f.pair().await;
    let svc = iface("invalid");
    let mut sub = c.subscribe(&query(&svc, "")).await.unwrap();
    let bad = [
        url(&format!("empty://127.0.0.1/{svc}?category=providers")),
        url("dubbo://127.0.0.1:20090"),
        url(&format!("dubbo:///{svc}")),
        provider(&svc, 20091, "").with_param("a", "b&c"),
        // One rule for every backend: a `dynamic` that is not a boolean is refused.
        provider(&svc, 20092, "dynamic=maybe"),
    ];
    for u in &bad {
        let err = p.register(u).await.expect_err(&u.to_full_string());
        assert!(
            matches!(err, Error::InvalidInput { .. } | Error::Url(_)),
            "{u}: {err}"
        );
    }
    assert!(c.subscribe(&url("consumer://127.0.0.1")).await.is_err());
    assert!(
        c.lookup(&url("consumer://127.0.0.1?category=providers"))
            .await
            .is_err()
    );
    let barrier = provider(&svc, 20099, "");
    p.register(&barrier).await.unwrap();
    let s = wait(&mut sub, f.deadline(), "the barrier", |s| {
        s.contains(&barrier)
    })
    .await;
    assert_eq!(s.len(), 1, "nothing invalid was registered: {s:?}");
}
