//! The server's HTTP protocol, spoken with raw HTTP/1.1 over a TCP stream, as any client in
//! any language would.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code: failures panic.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use srpc_registry_http::{HttpRegistryServer, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A parsed HTTP response.
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

async fn raw(addr: SocketAddr, request: &str) -> Reply {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes).await.unwrap();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Reply {
        status,
        headers,
        body: body.to_owned(),
    }
}

async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[&str],
    body: &str,
) -> Reply {
    let mut text = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for h in headers {
        text.push_str(h);
        text.push_str("\r\n");
    }
    if !body.is_empty() || method == "POST" {
        text.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    text.push_str("\r\n");
    text.push_str(body);
    raw(addr, &text).await
}

/// A JSON `POST` without extra headers.
async fn post(addr: SocketAddr, path: &str, body: &str) -> Reply {
    request(addr, "POST", path, &[], body).await
}

async fn server(config: ServerConfig) -> HttpRegistryServer {
    HttpRegistryServer::bind("127.0.0.1:0", config)
        .await
        .unwrap()
}

fn loopback() -> ServerConfig {
    ServerConfig::new()
}

#[tokio::test]
async fn compat_endpoint_registers_lists_sorted_and_checks_methods() {
    let s = server(loopback()).await;
    let addr = s.local_addr();
    for server in [
        "tcp@127.0.0.1:9002",
        "tcp@127.0.0.1:9001",
        "tcp@127.0.0.1:9002",
    ] {
        let r = request(
            addr,
            "POST",
            "/srpc/registry",
            &[&format!("Srpc-servers: {server}")],
            "",
        )
        .await;
        assert_eq!(r.status, 200);
    }
    let r = request(addr, "GET", "/srpc/registry", &[], "").await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("Srpc-servers"),
        Some("tcp@127.0.0.1:9001,tcp@127.0.0.1:9002")
    );

    let r = request(addr, "POST", "/srpc/registry", &[], "").await;
    assert_eq!(r.status, 400, "a POST without the header");
    assert!(r.body.contains("Srpc-servers"), "{}", r.body);
    for method in ["PUT", "DELETE", "PATCH"] {
        let r = request(addr, method, "/srpc/registry", &[], "").await;
        assert_eq!(r.status, 405, "{method}");
    }
    s.shutdown().await.unwrap();
}

#[tokio::test]
async fn compat_entries_expire_after_the_ttl() {
    let s = server(loopback().with_ttl(Duration::from_secs(1))).await;
    let addr = s.local_addr();
    request(
        addr,
        "POST",
        "/srpc/registry",
        &["Srpc-servers: tcp@127.0.0.1:9003"],
        "",
    )
    .await;
    let registered = Instant::now();
    // The endpoint has no long-poll: poll it, at a modest pace, until a deadline.
    let mut poll = tokio::time::interval(Duration::from_millis(50));
    loop {
        poll.tick().await;
        let r = request(addr, "GET", "/srpc/registry", &[], "").await;
        if r.header("Srpc-servers") == Some("") {
            break;
        }
        assert!(
            registered.elapsed() < Duration::from_secs(3),
            "still listed: {:?}",
            r.headers
        );
    }
    assert!(
        registered.elapsed() >= Duration::from_secs(1),
        "gone before its TTL"
    );
}

#[tokio::test]
async fn json_api_register_list_heartbeat_deregister() {
    let s = server(loopback()).await;
    let addr = s.local_addr();
    let url = "dubbo://127.0.0.1:20950/com.acme.Echo?group=g&version=1.0";
    let r = post(
        addr,
        "/v1/register",
        &format!(r#"{{"url":"{url}","ttl_ms":30000}}"#),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body,
        r#"{"service":"g/com.acme.Echo:1.0","ttl_ms":30000}"#
    );

    let r = request(addr, "GET", "/v1/services/g%2Fcom.acme.Echo%3A1.0", &[], "").await;
    assert_eq!(r.status, 200);
    let revision = r.header("Srpc-Index").unwrap().to_owned();
    assert_eq!(
        r.body,
        format!(
            r#"{{"service":"g/com.acme.Echo:1.0","revision":{revision},"instances":["{url}"]}}"#
        )
    );
    let r = request(addr, "GET", "/v1/services", &[], "").await;
    assert!(
        r.body
            .contains(r#"{"service":"g/com.acme.Echo:1.0","instances":1"#),
        "{}",
        r.body
    );

    let r = post(addr, "/v1/heartbeat", &format!(r#"{{"url":"{url}"}}"#)).await;
    assert_eq!(r.status, 200);
    let r = post(addr, "/v1/deregister", &format!(r#"{{"url":"{url}"}}"#)).await;
    assert_eq!(r.status, 204);
    let r = post(addr, "/v1/heartbeat", &format!(r#"{{"url":"{url}"}}"#)).await;
    assert_eq!(
        r.status, 404,
        "a forgotten instance: the client must register again"
    );
    assert!(
        r.body.starts_with(r#"{"error":"unknown instance"#),
        "{}",
        r.body
    );
}

#[tokio::test]
async fn long_poll_returns_when_the_revision_passes_the_index_or_at_the_wait() {
    let s = server(loopback()).await;
    let addr = s.local_addr();
    let r = request(addr, "GET", "/v1/services/com.acme.Watched", &[], "").await;
    let index: u64 = r.header("Srpc-Index").unwrap().parse().unwrap();

    // Nothing changes: answered at the wait, with the same index.
    let started = Instant::now();
    let r = request(
        addr,
        "GET",
        &format!("/v1/services/com.acme.Watched?index={index}&wait=300ms"),
        &[],
        "",
    )
    .await;
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(r.header("Srpc-Index").unwrap(), index.to_string());

    // A registration wakes the watcher early.
    let poll = tokio::spawn(async move {
        request(
            addr,
            "GET",
            &format!("/v1/services/com.acme.Watched?index={index}&wait=30s"),
            &[],
            "",
        )
        .await
    });
    let url = "dubbo://127.0.0.1:20951/com.acme.Watched";
    // The watcher counts as waiting before the registration is made.
    loop {
        let m = request(addr, "GET", "/metrics", &[], "").await;
        if m.body.contains("srpc_registry_watchers 1") {
            break;
        }
        tokio::task::yield_now().await;
    }
    post(addr, "/v1/register", &format!(r#"{{"url":"{url}"}}"#)).await;
    let r = tokio::time::timeout(Duration::from_secs(5), poll)
        .await
        .unwrap()
        .unwrap();
    assert!(r.header("Srpc-Index").unwrap().parse::<u64>().unwrap() > index);
    assert!(r.body.contains(url));
    // An index from another life of the server (larger than now) answers at once.
    let started = Instant::now();
    request(
        addr,
        "GET",
        "/v1/services/com.acme.Watched?index=999999&wait=30s",
        &[],
        "",
    )
    .await;
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn bad_requests_are_refused_with_json_errors_and_change_nothing() {
    let s = server(loopback()).await;
    let addr = s.local_addr();
    let cases = [
        ("not json", "invalid JSON body"),
        (r#"{"nope":1}"#, "invalid JSON body"),
        (r#"{"url":"dubbo://h:99999/x"}"#, "invalid port"),
        (r#"{"url":"dubbo://fe80::1/x"}"#, "bare IPv6"),
        (r#"{"url":"empty://h/a.B"}"#, "empty:// is a marker"),
        (r#"{"url":"dubbo://h:1"}"#, "service interface"),
        (r#"{"url":"dubbo://h:1/a.B","ttl_ms":10}"#, "below"),
    ];
    for (body, needle) in cases {
        let r = post(addr, "/v1/register", body).await;
        assert_eq!(r.status, 400, "{body}");
        assert_eq!(r.header("content-type"), Some("application/json"), "{body}");
        assert!(
            r.body.starts_with(r#"{"error":""#) && r.body.contains(needle),
            "{body}: {}",
            r.body
        );
    }
    let big = format!(r#"{{"url":"dubbo://h:1/a.B?m={}"}}"#, "x".repeat(70 * 1024));
    let r = post(addr, "/v1/register", &big).await;
    assert_eq!(r.status, 413, "bodies over 64 KiB");
    let r = request(addr, "GET", "/v1/instances", &[], "").await;
    assert!(
        r.body.ends_with(r#""instances":[]}"#),
        "nothing was written: {}",
        r.body
    );
}

#[tokio::test]
async fn writes_need_the_token_when_one_is_set() {
    let s = server(loopback().with_token("s3cret")).await;
    let addr = s.local_addr();
    let body = r#"{"url":"dubbo://127.0.0.1:20952/com.acme.Echo"}"#;
    let r = post(addr, "/v1/register", body).await;
    assert_eq!(r.status, 401);
    let r = request(
        addr,
        "POST",
        "/v1/register",
        &["Authorization: Bearer wrong"],
        body,
    )
    .await;
    assert_eq!(r.status, 401);
    let r = request(
        addr,
        "POST",
        "/srpc/registry",
        &["Srpc-servers: tcp@127.0.0.1:1"],
        "",
    )
    .await;
    assert_eq!(r.status, 401, "the compatibility endpoint writes too");
    let r = request(
        addr,
        "POST",
        "/v1/register",
        &["Authorization: Bearer s3cret"],
        body,
    )
    .await;
    assert_eq!(r.status, 200);
    let r = request(addr, "GET", "/v1/instances", &[], "").await;
    assert_eq!(r.status, 200, "reads are open");
    assert!(r.body.contains("20952"));
    // The scheme is case-insensitive.
    for scheme in ["bearer", "BEARER", "BeArEr"] {
        let r = request(
            addr,
            "POST",
            "/v1/heartbeat",
            &[&format!("Authorization: {scheme} s3cret")],
            body,
        )
        .await;
        assert_eq!(r.status, 200, "{scheme}");
    }
}

/// The server's TTL is the longest it grants: asking for more gets it, and the answer says
/// what was granted. A TTL under a second is refused at start.
#[tokio::test]
async fn the_server_ttl_caps_what_clients_ask_for() {
    let s = server(loopback().with_ttl(Duration::from_secs(5))).await;
    let addr = s.local_addr();
    let r = post(
        addr,
        "/v1/register",
        r#"{"url":"dubbo://127.0.0.1:20953/com.acme.Echo","ttl_ms":30000}"#,
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(r.body.contains(r#""ttl_ms":5000"#), "{}", r.body);
    let r = post(
        addr,
        "/v1/register",
        r#"{"url":"dubbo://127.0.0.1:20954/com.acme.Echo","ttl_ms":2000}"#,
    )
    .await;
    assert!(
        r.body.contains(r#""ttl_ms":2000"#),
        "less is granted: {}",
        r.body
    );
    let r = post(
        addr,
        "/v1/heartbeat",
        r#"{"url":"dubbo://127.0.0.1:20953/com.acme.Echo"}"#,
    )
    .await;
    assert!(r.body.contains(r#""ttl_ms":5000"#), "{}", r.body);
    let zero = HttpRegistryServer::bind("127.0.0.1:0", loopback().with_ttl(Duration::ZERO)).await;
    let err = zero.expect_err("a zero TTL is refused");
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{err}");
}

/// Two clients registering the same URL each hold their own lease: one leaving (or one
/// stopping its heartbeats) does not remove what the other still holds.
#[tokio::test]
async fn each_holder_of_a_url_has_its_own_lease() {
    let s = server(loopback()).await;
    let addr = s.local_addr();
    let url = "dubbo://127.0.0.1:20955/com.acme.Shared";
    let listed = || async move {
        request(addr, "GET", "/v1/services/com.acme.Shared", &[], "")
            .await
            .body
            .contains("20955")
    };
    for holder in ["a", "b"] {
        let r = post(
            addr,
            "/v1/register",
            &format!(r#"{{"url":"{url}","holder":"{holder}","ttl_ms":60000}}"#),
        )
        .await;
        assert_eq!(r.status, 200);
    }
    let heartbeat = |holder: &'static str| async move {
        post(
            addr,
            "/v1/heartbeat",
            &format!(r#"{{"url":"{url}","holder":"{holder}"}}"#),
        )
        .await
        .status
    };
    assert_eq!(heartbeat("a").await, 200);
    assert_eq!(heartbeat("c").await, 404, "a holder that never registered");
    let r = post(
        addr,
        "/v1/deregister",
        &format!(r#"{{"url":"{url}","holder":"a"}}"#),
    )
    .await;
    assert_eq!(r.status, 204);
    assert!(listed().await, "b still holds it");
    assert_eq!(heartbeat("a").await, 404, "a's lease is gone");
    assert_eq!(heartbeat("b").await, 200);
    post(
        addr,
        "/v1/deregister",
        &format!(r#"{{"url":"{url}","holder":"b"}}"#),
    )
    .await;
    assert!(!listed().await, "gone with its last holder");
    // `*` takes it back from every holder; nobody may register as `*`.
    for holder in ["a", "b"] {
        let body = format!(r#"{{"url":"{url}","holder":"{holder}"}}"#);
        post(addr, "/v1/register", &body).await;
    }
    let body = format!(r#"{{"url":"{url}","holder":"*"}}"#);
    post(addr, "/v1/deregister", &body).await;
    assert!(!listed().await, "`*` removes every lease");
    let r = post(addr, "/v1/register", &body).await;
    assert_eq!(r.status, 400, "{}", r.body);
}

/// `POST /v1/holders/heartbeat` renews every lease of one holder, across services, and says
/// how many: what a client compares with what it registered.
#[tokio::test]
async fn one_holder_heartbeat_renews_every_lease_of_its_holder() {
    let s = server(loopback()).await;
    let addr = s.local_addr();
    let mine = [
        "dubbo://127.0.0.1:20961/com.acme.A",
        "dubbo://127.0.0.1:20962/com.acme.A",
        "dubbo://127.0.0.1:20963/com.acme.B",
    ];
    let theirs = "dubbo://127.0.0.1:20964/com.acme.B";
    for (url, holder) in mine.iter().map(|u| (u, "h")).chain([(&theirs, "other")]) {
        let body = format!(r#"{{"url":"{url}","holder":"{holder}","ttl_ms":1200}}"#);
        assert_eq!(post(addr, "/v1/register", &body).await.status, 200);
    }
    let beat = |holder: &'static str| async move {
        let r = post(
            addr,
            "/v1/holders/heartbeat",
            &format!(r#"{{"holder":"{holder}"}}"#),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.body);
        let answer: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        (
            answer["renewed"].as_u64().unwrap(),
            answer["ttl_ms"].as_u64().unwrap(),
        )
    };
    let listing = || async move { request(addr, "GET", "/v1/instances", &[], "").await.body };
    // Heartbeat "h" only, as its client would, until "other"'s lease runs out.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        assert_eq!(beat("h").await, (3, 1200));
        if !listing().await.contains("20964") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the unrenewed lease never expired"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let listed = listing().await;
    for port in ["20961", "20962", "20963"] {
        assert!(
            listed.contains(port),
            "{port} renewed by its holder: {listed}"
        );
    }
    assert_eq!(beat("other").await, (0, 0), "its only lease expired");
    assert_eq!(beat("nobody").await, (0, 0));
    let body = format!(r#"{{"url":"{}","holder":"h"}}"#, mine[0]);
    assert_eq!(post(addr, "/v1/deregister", &body).await.status, 204);
    assert_eq!(beat("h").await.0, 2, "a deregistered lease is not renewed");
    let r = post(addr, "/v1/holders/heartbeat", r#"{"holder":"*"}"#).await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = post(addr, "/v1/holders/heartbeat", r#"{"holder":7}"#).await;
    assert_eq!(r.status, 400, "{}", r.body);
}

#[tokio::test]
async fn health_and_metrics() {
    let s = server(loopback()).await;
    let addr = s.local_addr();
    assert_eq!(request(addr, "GET", "/healthz", &[], "").await.body, "ok\n");
    post(
        addr,
        "/v1/register",
        r#"{"url":"dubbo://127.0.0.1:20953/com.acme.M"}"#,
    )
    .await;
    post(
        addr,
        "/v1/heartbeat",
        r#"{"url":"dubbo://127.0.0.1:20953/com.acme.M"}"#,
    )
    .await;
    let m = request(addr, "GET", "/metrics", &[], "").await;
    assert_eq!(m.header("content-type"), Some("text/plain; version=0.0.4"));
    for line in [
        "# TYPE srpc_registry_services gauge",
        "srpc_registry_services 1",
        "srpc_registry_instances 1",
        "srpc_registry_registrations_total 1",
        "srpc_registry_heartbeats_total 1",
        "srpc_registry_expirations_total 0",
        "srpc_registry_watchers 0",
    ] {
        assert!(
            m.body.lines().any(|l| l == line),
            "missing {line:?} in\n{}",
            m.body
        );
    }
}

#[tokio::test]
async fn shutdown_answers_parked_long_polls_at_once() {
    let s = server(loopback()).await;
    let addr = s.local_addr();
    let poll = tokio::spawn(async move {
        request(addr, "GET", "/v1/instances?index=0&wait=60s", &[], "").await
    });
    loop {
        let m = request(addr, "GET", "/metrics", &[], "").await;
        if m.body.contains("srpc_registry_watchers 1") {
            break;
        }
        tokio::task::yield_now().await;
    }
    let started = Instant::now();
    s.shutdown().await.unwrap();
    let r = poll.await.unwrap();
    assert_eq!(r.status, 200);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "shutdown waited for the long-poll"
    );
}

#[tokio::test]
async fn lookups_of_unknown_services_leave_nothing_behind() {
    let s = server(loopback()).await;
    let addr = s.local_addr();
    for i in 0..50 {
        let r = request(addr, "GET", &format!("/v1/services/nobody.{i}"), &[], "").await;
        assert_eq!(r.status, 200);
        assert!(r.body.ends_with(r#""instances":[]}"#));
    }
    // The sweep drops the empty, unwatched entries; the listing never showed them anyway.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut poll = tokio::time::interval(Duration::from_millis(50));
    loop {
        poll.tick().await;
        let m = request(addr, "GET", "/metrics", &[], "").await;
        if m.body
            .lines()
            .any(|l| l == "srpc_registry_service_entries 0")
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "entries of unknown services stayed:\n{}",
            m.body
        );
    }
}

#[tokio::test]
async fn every_route_enforces_the_body_limit_and_every_error_is_json() {
    let s = server(loopback()).await;
    let addr = s.local_addr();
    let json = |r: &Reply| {
        r.header("content-type") == Some("application/json") && r.body.starts_with(r#"{"error":""#)
    };

    // The compatibility endpoint does not read its body, and still refuses a large one.
    let big = "x".repeat(200 * 1024);
    let r = request(
        addr,
        "POST",
        "/srpc/registry",
        &["Srpc-servers: tcp@127.0.0.1:9003"],
        &big,
    )
    .await;
    assert_eq!(r.status, 413, "a 200 KB body to /srpc/registry");
    assert!(json(&r), "{r:?}");
    let r = request(addr, "GET", "/srpc/registry", &[], "").await;
    assert_eq!(r.header("Srpc-servers"), Some(""), "nothing was registered");

    let big = format!(r#"{{"url":"dubbo://h:1/a.B?m={}"}}"#, "x".repeat(70 * 1024));
    let r = post(addr, "/v1/register", &big).await;
    assert_eq!(r.status, 413);
    assert!(json(&r), "{r:?}");

    let r = request(addr, "GET", "/v1/instances?index=abc", &[], "").await;
    assert_eq!(r.status, 400, "a non-numeric index");
    assert!(json(&r) && r.body.contains("index"), "{r:?}");

    let r = request(addr, "GET", "/v2/nothing", &[], "").await;
    assert_eq!(r.status, 404, "an unknown route");
    assert!(json(&r) && r.body.contains("/v2/nothing"), "{r:?}");

    let r = request(addr, "DELETE", "/v1/register", &[], "").await;
    assert_eq!(r.status, 405);
    assert!(json(&r) && r.body.contains("DELETE"), "{r:?}");
    s.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_sweep_of_an_embedded_app_stops_when_the_router_is_dropped() {
    let tasks = || {
        tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks()
    };
    let before = tasks();
    let router = srpc_registry_http::app(loopback()).unwrap();
    assert_eq!(tasks(), before + 1, "the app sweeps expired instances");
    drop(router);
    let deadline = Instant::now() + Duration::from_secs(5);
    while tasks() > before {
        assert!(
            Instant::now() < deadline,
            "the sweep task outlived its router"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A registration as the client backend sends it.
fn registration(port: u16, service: &str, holder: &str) -> String {
    format!(r#"{{"url":"dubbo://127.0.0.1:{port}/{service}?timestamp=1","holder":"{holder}"}}"#)
}

/// Each count limit refuses the registration that would cross it with a JSON error naming
/// the limit, keeps what was registered, and leaves the server answering; a refresh of what
/// is already there is never refused.
#[tokio::test]
async fn each_limit_refuses_with_its_name_and_loses_nothing() {
    let mut limits = srpc_registry_http::Limits::default();
    limits.instances = 4;
    limits.instances_per_service = 2;
    limits.instances_per_holder = 3;
    limits.url_len = 200;
    let s = server(loopback().with_limits(limits)).await;
    let addr = s.local_addr();
    let ok = |r: &Reply| assert_eq!(r.status, 200, "{}", r.body);
    ok(&post(addr, "/v1/register", &registration(1, "a.A", "h1")).await);
    ok(&post(addr, "/v1/register", &registration(2, "a.A", "h1")).await);
    let refused = [
        (
            registration(3, "a.A", "h2"),
            429,
            "limit max-instances-per-service (2)",
        ),
        (registration(3, "b.B", "h1"), 200, ""),
        (
            registration(4, "c.C", "h1"),
            429,
            "limit max-instances-per-holder (3)",
        ),
        (registration(4, "c.C", "h2"), 200, ""),
        (registration(5, "d.D", "h3"), 429, "limit max-instances (4)"),
        (
            format!(
                r#"{{"url":"dubbo://127.0.0.1:6/e.E?pad={}","holder":"h3"}}"#,
                "x".repeat(200)
            ),
            413,
            "limit max-url-len (200)",
        ),
    ];
    for (body, status, needle) in refused {
        let r = post(addr, "/v1/register", &body).await;
        assert_eq!(r.status, status, "{body}: {}", r.body);
        assert!(r.body.contains(needle), "{body}: {}", r.body);
        if status != 200 {
            assert_eq!(r.header("content-type"), Some("application/json"));
            assert!(r.body.contains("nothing was changed"), "{}", r.body);
        }
    }
    // A refresh of a held instance (another timestamp) is not a new one.
    let refresh = r#"{"url":"dubbo://127.0.0.1:1/a.A?timestamp=2","holder":"h1"}"#;
    ok(&post(addr, "/v1/register", refresh).await);
    let listing = request(addr, "GET", "/v1/instances", &[], "").await;
    ok(&listing);
    for port in [":1/", ":2/", ":3/", ":4/"] {
        assert!(listing.body.contains(port), "{port} kept: {}", listing.body);
    }
    assert!(!listing.body.contains(":5/") && !listing.body.contains(":6/"));
    // Room again once one goes.
    let gone = r#"{"url":"dubbo://127.0.0.1:4/c.C?timestamp=1","holder":"h2"}"#;
    assert_eq!(post(addr, "/v1/deregister", gone).await.status, 204);
    ok(&post(addr, "/v1/register", &registration(5, "d.D", "h3")).await);
}

/// The compatibility endpoint's answer is one header: a registration that would make it
/// longer than `max-compat-header` is refused, and the answer stays readable.
#[tokio::test]
async fn the_compat_header_stays_within_its_limit() {
    let mut limits = srpc_registry_http::Limits::default();
    limits.compat_header = 64;
    let s = server(loopback().with_limits(limits)).await;
    let addr = s.local_addr();
    let register = |n: usize| {
        let header = format!("Srpc-servers: tcp@127.0.0.1:{}", 10_000 + n);
        async move { request(addr, "POST", "/srpc/registry", &[&header], "").await }
    };
    let mut accepted = 0;
    loop {
        let r = register(accepted).await;
        if r.status != 200 {
            assert_eq!(r.status, 429, "{}", r.body);
            assert!(
                r.body.contains("limit max-compat-header (64)"),
                "{}",
                r.body
            );
            break;
        }
        accepted += 1;
        assert!(accepted < 10, "64 bytes hold at most 3 such addresses");
    }
    assert_eq!(accepted, 3);
    // Refreshing one already there is never refused.
    assert_eq!(register(0).await.status, 200);
    let r = request(addr, "GET", "/srpc/registry", &[], "").await;
    let answer = r.header("srpc-servers").unwrap();
    assert!(answer.len() <= 64, "{answer}");
    assert_eq!(answer.split(',').count(), 3);
}

/// With a read token, listings need it (or the write token); health and metrics stay open.
#[tokio::test]
async fn reads_need_a_token_when_a_read_token_is_set() {
    let config = loopback().with_token("w").with_read_token("r");
    let s = server(config).await;
    let addr = s.local_addr();
    let body = registration(7, "a.A", "h");
    let r = request(
        addr,
        "POST",
        "/v1/register",
        &["Authorization: Bearer r"],
        &body,
    )
    .await;
    assert_eq!(r.status, 401, "the read token does not write");
    let r = request(
        addr,
        "POST",
        "/v1/register",
        &["Authorization: Bearer w"],
        &body,
    )
    .await;
    assert_eq!(r.status, 200);
    for path in [
        "/v1/instances",
        "/v1/services",
        "/v1/services/a.A",
        "/srpc/registry",
    ] {
        let r = request(addr, "GET", path, &[], "").await;
        assert_eq!(r.status, 401, "{path}");
        assert!(r.body.contains("protects reads"), "{path}: {}", r.body);
        for token in ["r", "w"] {
            let auth = format!("Authorization: Bearer {token}");
            let r = request(addr, "GET", path, &[&auth], "").await;
            assert_eq!(r.status, 200, "{path} with {token}: {}", r.body);
        }
    }
    for path in ["/healthz", "/metrics"] {
        assert_eq!(
            request(addr, "GET", path, &[], "").await.status,
            200,
            "{path}"
        );
    }
}

/// What could never work is refused when the server starts, not on the first request.
#[tokio::test]
async fn a_config_that_cannot_work_is_refused_at_bind() {
    let forever = Duration::from_secs(300_000_000_000 * 365 * 86_400);
    for (config, needle) in [
        (loopback().with_ttl(forever), "above the most"),
        (loopback().with_token(""), "token is empty"),
        (loopback().with_read_token(""), "read token is empty"),
    ] {
        let err = HttpRegistryServer::bind("127.0.0.1:0", config)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
        assert!(err.to_string().contains(needle), "{needle}: {err}");
    }
}

fn limited(set: impl FnOnce(&mut srpc_registry_http::Limits)) -> ServerConfig {
    let mut limits = srpc_registry_http::Limits::default();
    set(&mut limits);
    loopback().with_limits(limits)
}

/// Reads until the server closes the connection; panics if it has not within 5 s.
async fn closed_by_the_server(stream: &mut TcpStream) {
    let mut sink = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut sink))
        .await
        .expect("the server closes the connection")
        .ok();
}

/// A client that sends half a request line, or stays idle after a request, is cut off after
/// `header-timeout`, and the server goes on answering others.
#[tokio::test]
async fn slow_and_idle_connections_are_closed_after_the_header_timeout() {
    let s = server(limited(|l| l.header_timeout = Duration::from_millis(300))).await;
    let addr = s.local_addr();
    let mut half = TcpStream::connect(addr).await.unwrap();
    half.write_all(b"GET /v1/insta").await.unwrap();
    closed_by_the_server(&mut half).await;
    let mut idle = TcpStream::connect(addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    closed_by_the_server(&mut idle).await;
    assert_eq!(request(addr, "GET", "/healthz", &[], "").await.status, 200);
}

/// Past `max-connections`, a new connection waits (in the listen backlog) until one closes,
/// and is then served.
#[tokio::test]
async fn connections_past_the_cap_wait_for_one_to_close() {
    let s = server(limited(|l| l.connections = 2)).await;
    let addr = s.local_addr();
    let first = TcpStream::connect(addr).await.unwrap();
    let _second = TcpStream::connect(addr).await.unwrap();
    let mut third = tokio::spawn(async move { request(addr, "GET", "/healthz", &[], "").await });
    // Not served while two connections are open (a bounded look, not a synchronisation).
    if let Ok(served) = tokio::time::timeout(Duration::from_millis(300), &mut third).await {
        panic!("served past the cap: {served:?}");
    }
    drop(first);
    let reply = tokio::time::timeout(Duration::from_secs(5), third)
        .await
        .expect("served once a connection closed")
        .unwrap();
    assert_eq!(reply.status, 200);
}

/// A client that keeps a request half sent cannot hold shutdown up for longer than
/// `shutdown-grace`.
#[tokio::test]
async fn shutdown_waits_at_most_the_grace_for_what_is_in_flight() {
    let config = limited(|l| {
        l.header_timeout = Duration::from_secs(600);
        l.shutdown_grace = Duration::from_millis(300);
    });
    let s = server(config).await;
    let mut half = TcpStream::connect(s.local_addr()).await.unwrap();
    half.write_all(b"POST /v1/register HTTP/1.1\r\nHost: x\r\nContent-Le")
        .await
        .unwrap();
    // The connection is served (its request started) before shutdown begins.
    let health = request(s.local_addr(), "GET", "/healthz", &[], "").await;
    assert_eq!(health.status, 200);
    tokio::time::timeout(Duration::from_secs(5), s.shutdown())
        .await
        .expect("shutdown ends within its grace, not when the client lets it")
        .unwrap();
    closed_by_the_server(&mut half).await;
}

/// The requests hyper refuses before the router sees them — a malformed request line, a bad
/// header or `Content-Length`, a URI or headers too long — are answered as JSON too, and the
/// server goes on serving.
#[tokio::test]
async fn requests_the_parser_refuses_are_answered_as_json() {
    let s = server(loopback()).await;
    let addr = s.local_addr();
    let long_uri = format!(
        "GET /v1/services/{} HTTP/1.1\r\nHost: x\r\n\r\n",
        "a".repeat(70_000)
    );
    let long_header = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "b".repeat(500_000)
    );
    for (request, status) in [
        ("NOT A REQUEST LINE\r\n\r\n".to_owned(), 400),
        (
            "GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n".to_owned(),
            400,
        ),
        (
            "POST /v1/register HTTP/1.1\r\nHost: x\r\nContent-Length: ten\r\n\r\n".to_owned(),
            400,
        ),
        (long_uri, 414),
        (long_header, 431),
    ] {
        let r = raw(addr, &request).await;
        let shown = &request[..request.len().min(40)];
        assert_eq!(r.status, status, "{shown:?}: {r:?}");
        assert_eq!(
            r.header("content-type"),
            Some("application/json"),
            "{shown:?}"
        );
        let body: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        assert!(body["error"].is_string(), "{shown:?}: {}", r.body);
    }
    assert_eq!(request(addr, "GET", "/healthz", &[], "").await.status, 200);
}

/// What a server with a state file holds is there again when it starts anew on that file,
/// and its holders' heartbeats renew it without registering again.
#[tokio::test]
async fn the_state_file_brings_instances_back_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state").join("registry.json");
    let first = server(loopback().with_state_file(&path)).await;
    let addr = first.local_addr();
    for (port, holder) in [(1, "h1"), (2, "h2")] {
        let r = post(addr, "/v1/register", &registration(port, "a.A", holder)).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    first.shutdown().await.unwrap();
    let written = std::fs::read_to_string(&path).unwrap();
    assert!(written.contains("\"version\":1"), "{written}");

    let second = server(loopback().with_state_file(&path)).await;
    let addr = second.local_addr();
    let listing = request(addr, "GET", "/v1/services/a.A", &[], "").await;
    assert_eq!(listing.status, 200);
    assert!(
        listing.body.contains(":1/") && listing.body.contains(":2/"),
        "{}",
        listing.body
    );
    assert!(
        !listing.body.contains("warming"),
        "a restored state is authoritative"
    );
    let renewed = post(addr, "/v1/holders/heartbeat", r#"{"holder":"h1"}"#).await;
    assert!(renewed.body.contains("\"renewed\":1"), "{}", renewed.body);
    // A long-poll of everything from the restored revision waits: nothing changed.
    let all = request(addr, "GET", "/v1/instances", &[], "").await;
    let index = all.header("srpc-index").unwrap().to_owned();
    let started = Instant::now();
    let waited = request(
        addr,
        "GET",
        &format!("/v1/instances?index={index}&wait=500ms"),
        &[],
        "",
    )
    .await;
    assert_eq!(waited.status, 200);
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "answered at once from the restored revision {index}: a client would spin"
    );
    second.shutdown().await.unwrap();
}

/// A state file the server did not write is refused at start with an error naming it,
/// rather than started over (and overwritten) empty.
#[tokio::test]
async fn a_state_file_that_does_not_parse_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.json");
    std::fs::write(&path, "not json").unwrap();
    let err = HttpRegistryServer::bind("127.0.0.1:0", loopback().with_state_file(&path))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
    assert!(err.to_string().contains("registry.json"), "{err}");
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "not json",
        "left as it was"
    );
}

/// Without a state file, a watcher whose index is ahead of the server's revision shows a
/// restart: listings say `warming` until the warm-up ends, then a long-poll is answered with
/// an authoritative listing. A first start with new clients never warms up.
#[tokio::test]
async fn listings_say_warming_after_a_restart_until_the_warm_up_ends() {
    let s = server(loopback().with_warm_up(Duration::from_millis(1500))).await;
    let addr = s.local_addr();
    let fresh = request(addr, "GET", "/v1/instances", &[], "").await;
    assert!(!fresh.body.contains("warming"), "{}", fresh.body);
    let r = post(addr, "/v1/register", &registration(1, "a.A", "h")).await;
    assert_eq!(r.status, 200);
    // A watcher from before the restart knew revision 1000.
    let stale = request(addr, "GET", "/v1/services/a.A?index=1000&wait=1s", &[], "").await;
    assert_eq!(stale.status, 200);
    assert!(stale.body.contains("\"warming\":true"), "{}", stale.body);
    let index = stale.header("srpc-index").unwrap().to_owned();
    let metrics = request(addr, "GET", "/metrics", &[], "").await;
    assert!(
        metrics.body.contains("srpc_registry_warming 1"),
        "{}",
        metrics.body
    );
    // The next long-poll returns when the warm-up ends, with the authoritative listing.
    let path = format!("/v1/services/a.A?index={index}&wait=10s");
    let started = Instant::now();
    let over = request(addr, "GET", &path, &[], "").await;
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    assert!(!over.body.contains("warming"), "{}", over.body);
    assert!(over.body.contains(":1/"), "{}", over.body);
}

/// A large listing is written at `max-listing-rate`, and writes are answered while it is
/// still on its way: readers of everything never hold up registrations and heartbeats.
#[tokio::test]
async fn large_listings_are_paced_and_writes_pass_them() {
    const RATE: usize = 128 * 1024;
    let s = server(limited(|l| l.listing_rate = RATE)).await;
    let addr = s.local_addr();
    let ok = |r: &Reply| assert!(r.status / 100 == 2, "{}: {}", r.status, r.body);
    let pad = "p".repeat(1000);
    for port in 1..=400u16 {
        let body = format!(
            r#"{{"url":"dubbo://127.0.0.1:{port}/big.Listing?pad={pad}","holder":"bulk"}}"#
        );
        ok(&post(addr, "/v1/register", &body).await);
    }
    let started = Instant::now();
    let listing = tokio::spawn(request(addr, "GET", "/v1/instances", &[], ""));
    // Writes go through while the listing is being written.
    for port in 1..=5u16 {
        ok(&post(addr, "/v1/register", &registration(port, "small.S", "h")).await);
        let heartbeat = post(addr, "/v1/holders/heartbeat", r#"{"holder":"h"}"#).await;
        ok(&heartbeat);
    }
    assert!(!listing.is_finished(), "the listing is still being written");
    let listing = listing.await.unwrap();
    ok(&listing);
    let took = started.elapsed();
    let body: serde_json::Value = serde_json::from_str(&listing.body).unwrap();
    let instances = body["instances"].as_array().unwrap();
    assert!(instances.len() >= 400, "{}", instances.len());
    // The first second's worth goes at once, the rest at the rate.
    let size = listing.body.len();
    assert!(size > 400 * 1000);
    let least = Duration::from_secs_f64((size - RATE) as f64 / RATE as f64);
    assert!(took >= least.mul_f64(0.9), "{size} bytes in {took:?}");
}
