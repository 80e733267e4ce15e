//! The HTTP registry: the conformance suite against a server started in the test, expiry of
//! instances whose heartbeats stop, restarts (with a state file, and warming up without one), one holder
//! heartbeat per handle, and the fallback to per-registration heartbeats on an older server.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code: failures panic.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use srpc_registry::{Registry, Url};
use srpc_registry_http::{HttpRegistryServer, ServerConfig};
use srpc_tests::conformance::{Factory, Outage};

async fn server() -> HttpRegistryServer {
    HttpRegistryServer::bind("127.0.0.1:0", ServerConfig::new())
        .await
        .unwrap()
}

struct Http;

#[async_trait]
impl Factory for Http {
    async fn pair(&self) -> (Arc<dyn Registry>, Arc<dyn Registry>) {
        // A server per pair; dropping the handle leaves it serving until the test ends.
        let url = format!("http://{}?ttl=5s&wait=5s", server().await.local_addr());
        let provider = srpc::registry::connect(&url).await.unwrap();
        let consumer = srpc::registry::connect(&url).await.unwrap();
        (provider, consumer)
    }

    async fn outage(&self) -> Option<Outage> {
        // A TTL of 1.5 s: the server drops what it cannot hear from soon after the cut;
        // heartbeats retry at most every third of the TTL.
        let params = "ttl=1500ms&wait=5s&retry.max.period=1s";
        let server = server().await.local_addr();
        let (lost_after, retry_period) = (Duration::from_millis(1500), Duration::from_millis(500));
        Some(Outage::through_proxy("http", server, params, lost_after, retry_period).await)
    }
}

srpc_tests::conformance_suite!(Http);
srpc_tests::outage_suite!(Http);

const DEADLINE: Duration = Duration::from_secs(10);

fn echo(port: u16) -> Url {
    Url::parse(&format!(
        "dubbo://127.0.0.1:{port}/com.acme.Http?side=provider"
    ))
    .unwrap()
}

fn query() -> Url {
    Url::parse("consumer://127.0.0.1/com.acme.Http").unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_whose_heartbeats_stop_is_gone_within_ttl_plus_a_second() {
    let s = server().await;
    let ttl = Duration::from_secs(2);
    let url = format!("http://{}?ttl=2s&wait=5s", s.local_addr());
    let provider = srpc::registry::connect(&url).await.unwrap();
    let consumer = srpc::registry::connect(&url).await.unwrap();
    let mut sub = consumer.subscribe(&query()).await.unwrap();
    provider.register(&echo(20960)).await.unwrap();
    sub.wait_for(|s| s.len() == 1, DEADLINE).await.unwrap();
    // Heartbeats keep it alive well past its TTL: it must not disappear for 2 × TTL.
    let vanished = sub.clone().wait_for(|s| s.is_empty(), ttl * 2).await;
    assert!(vanished.is_err(), "expired although heartbeats went on");
    // …then the provider dies without deregistering: its heartbeats stop.
    drop(provider);
    let died = Instant::now();
    sub.wait_for(|s| s.is_empty(), DEADLINE).await.unwrap();
    assert!(
        died.elapsed() <= ttl + Duration::from_secs(1),
        "gone after {:?}",
        died.elapsed()
    );
}

/// A registry restarted while a provider heartbeats and another died meanwhile: no snapshot
/// that says connected lacks the live provider, and the dead one is gone within its TTL (with
/// a state file) or when the warm-up ends (without one, within the server's TTL).
async fn restart(config: impl Fn() -> ServerConfig, dead_gone_within: Duration) {
    let first = HttpRegistryServer::bind("127.0.0.1:0", config())
        .await
        .unwrap();
    let addr: SocketAddr = first.local_addr();
    let url = format!("http://{addr}?ttl=1500ms&wait=5s");
    let provider = srpc::registry::connect(&url).await.unwrap();
    let victim = srpc::registry::connect(&url).await.unwrap();
    let consumer = srpc::registry::connect(&url).await.unwrap();
    let mut sub = consumer.subscribe(&query()).await.unwrap();
    let mut history = sub.history();
    provider.register(&echo(20961)).await.unwrap();
    victim.register(&echo(20962)).await.unwrap();
    sub.wait_for(|s| s.len() == 2 && s.is_connected(), DEADLINE)
        .await
        .unwrap();

    first.shutdown().await.unwrap();
    let s = sub.wait_for(|s| !s.is_connected(), DEADLINE).await.unwrap();
    assert_eq!(
        s.len(),
        2,
        "the last known providers stay while the registry is down"
    );
    // The victim dies while the registry is down: its heartbeats stop.
    drop(victim);

    let second = HttpRegistryServer::bind(addr, config()).await.unwrap();
    let restarted = Instant::now();
    let s = sub
        .wait_for(
            |s| s.is_connected() && s.len() == 1,
            dead_gone_within + DEADLINE,
        )
        .await
        .unwrap();
    assert_eq!(s.providers()[0], echo(20961), "the live one stayed");
    let gone = restarted.elapsed();
    assert!(
        gone <= dead_gone_within + Duration::from_secs(1),
        "the dead one went {gone:?} after the restart"
    );
    while let Ok(snapshot) = history.try_recv() {
        if snapshot.is_connected() {
            assert!(
                snapshot.providers().contains(&echo(20961)),
                "a connected snapshot lacked the live provider: {snapshot:?}"
            );
        }
    }
    drop(provider);
    second.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_with_a_state_file_loses_no_live_provider() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("registry.json");
    restart(
        || ServerConfig::new().with_state_file(&state),
        // The victim's lease runs its TTL (1.5 s) from the restart, then the sweep.
        Duration::from_millis(1500),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_without_a_state_file_warms_up_and_loses_no_live_provider() {
    // TTL 3 s: a warm-up of 1 s + 2 s, after which the dead one is gone.
    restart(
        || ServerConfig::new().with_ttl(Duration::from_secs(3)),
        Duration::from_secs(3),
    )
    .await;
}

/// `srpc_registry_heartbeats_total` from the server's metrics.
async fn heartbeats_total(addr: SocketAddr) -> u64 {
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    srpc_tests::http_metric(&http, &format!("http://{addr}"), "heartbeats_total").await
}

/// A handle renews all its registrations with one holder heartbeat per period (a third of
/// the TTL), not one heartbeat per registration.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_heartbeat_per_period_renews_every_registration_of_a_handle() {
    let s = server().await;
    let addr = s.local_addr();
    let url = format!("http://{addr}?ttl=1500ms&wait=5s");
    let period = Duration::from_millis(500);
    let provider = srpc::registry::connect(&url).await.unwrap();
    let registered = Instant::now();
    for port in 20971..20976 {
        provider.register(&echo(port)).await.unwrap();
    }
    let until = |count: u64| async move {
        let deadline = Instant::now() + DEADLINE;
        while heartbeats_total(addr).await < count {
            assert!(Instant::now() < deadline, "fewer than {count} heartbeats");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    until(3).await;
    // Five heartbeats a period would have made three in the first period.
    let elapsed = registered.elapsed();
    assert!(
        elapsed >= 2 * period,
        "three heartbeats after {elapsed:?}: one per registration, not one per handle"
    );
    // Twice the TTL later, all five are still there.
    until(7).await;
    let consumer = srpc::registry::connect(&url).await.unwrap();
    assert_eq!(consumer.lookup(&query()).await.unwrap().len(), 5);
}

/// A server that predates holder heartbeats: the real one behind a front that answers `404`
/// on `/v1/holders/heartbeat`, as any unknown route, and passes everything else through.
async fn older_server(real: SocketAddr) -> SocketAddr {
    use http_body_util::{BodyExt, Full};
    use hyper::body::{Bytes, Incoming};
    use hyper::{Request, Response};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let front = listener.local_addr().unwrap();
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let forward = move |request: Request<Incoming>| {
        let http = http.clone();
        async move {
            let path = request.uri().path_and_query().unwrap().to_string();
            if request.uri().path() == "/v1/holders/heartbeat" {
                let body = format!(r#"{{"error":"no route POST {path}"}}"#);
                let mut answer = Response::new(Full::new(Bytes::from(body)));
                *answer.status_mut() = hyper::StatusCode::NOT_FOUND;
                return Ok::<_, std::convert::Infallible>(answer);
            }
            let method = request.method().as_str().parse().unwrap();
            let body = request.into_body().collect().await.unwrap().to_bytes();
            let reply = http
                .request(method, format!("http://{real}{path}"))
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            let status = reply.status().as_u16();
            let mut answer = Response::new(Full::new(reply.bytes().await.unwrap()));
            *answer.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
            Ok(answer)
        }
    };
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let service = hyper::service::service_fn(forward.clone());
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service),
            );
        }
    });
    front
}

/// Against a server without holder heartbeats, a handle heartbeats each registration, and
/// they all stay without being registered again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn against_an_older_server_each_registration_is_heartbeated() {
    let s = server().await;
    let real = s.local_addr();
    let front = older_server(real).await;
    let provider = srpc::registry::connect(&format!("http://{front}?ttl=1500ms&wait=5s"))
        .await
        .unwrap();
    for port in 20981..20984 {
        provider.register(&echo(port)).await.unwrap();
    }
    // Three heartbeats a period, for two TTLs: the instances outlive their first leases.
    let deadline = Instant::now() + DEADLINE;
    while heartbeats_total(real).await < 18 {
        assert!(
            Instant::now() < deadline,
            "per-registration heartbeats did not come"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let consumer = srpc::registry::connect(&format!("http://{real}"))
        .await
        .unwrap();
    assert_eq!(consumer.lookup(&query()).await.unwrap().len(), 3);
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    assert_eq!(
        srpc_tests::http_metric(&http, &format!("http://{real}"), "registrations_total").await,
        3,
        "registered again although nothing was lost"
    );
}

#[test]
fn dropping_a_handle_stops_every_task() {
    // The server runs in a runtime of its own: only the handle's tasks are counted.
    let servers = tokio::runtime::Runtime::new().unwrap();
    let server = servers.block_on(server());
    srpc_tests::dropping_a_handle_stops_every_task(
        &format!("http://{}?ttl=5s&wait=5s", server.local_addr()),
        Duration::from_secs(10),
    );
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handle_from_a_builder_works() {
    let server = server().await;
    let config = srpc::registry::HttpConfig::builder()
        .server(&server.local_addr().to_string())
        .ttl(Duration::from_secs(5))
        .wait(Duration::from_secs(5))
        .build()
        .unwrap();
    srpc_tests::a_handle_from_a_builder_works(srpc::registry::open(config).await.unwrap()).await;
}

/// Issue 27: a live provider's instance deregistered for every holder (as `srpc unregister`
/// does) is registered again by its handle within the bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_deregistered_by_someone_else_is_registered_again() {
    let s = server().await;
    let base = format!("http://{}", s.local_addr());
    let url = format!("{base}?ttl=30s&wait=5s");
    let provider = srpc::registry::connect(&url).await.unwrap();
    let reader = srpc::registry::connect(&url).await.unwrap();
    let instance = echo(20984);
    srpc_tests::a_deleted_registration_comes_back(&provider, &reader, &instance, || async {
        let answer = reqwest::Client::builder()
            .no_proxy()
            .build()
            .unwrap()
            .post(format!("{base}/v1/deregister"))
            .json(&serde_json::json!({"url": instance.to_full_string(), "holder": "*"}))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 204);
    })
    .await;
}
