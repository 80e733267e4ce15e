//! The dashboard's API over an in-process registry, on loopback: what the pages read, the
//! event stream, and the write actions with their token.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code: failures panic.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use srpc_dashboard::{Dashboard, Options};
use srpc_registry::{Registry, Url};

const DEADLINE: Duration = Duration::from_secs(10);

struct Served {
    base: String,
    registry: Arc<dyn Registry>,
    http: reqwest::Client,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn serve(name: &str, options: Options) -> Served {
    let registry: Arc<dyn Registry> = Arc::new(srpc_registry_inprocess::open(name));
    let dashboard = Dashboard::start(registry.clone(), options).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = dashboard.nested("/ui");
    let server = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    Served {
        base: format!("http://{addr}/ui"),
        registry,
        http: reqwest::Client::builder().no_proxy().build().unwrap(),
        server,
    }
}

impl Served {
    async fn get(&self, path: &str) -> Value {
        let response = self
            .http
            .get(format!("{}/{path}", self.base))
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
        response.json().await.unwrap()
    }

    async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
        let mut request = self.http.post(format!("{}/{path}", self.base)).json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Polls `path` until `done` holds: the dashboard follows the registry a moment later.
    async fn wait_for(&self, path: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            let value = self.get(path).await;
            if done(&value) {
                return value;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{path} never got there: {value}"
            );
            tokio::task::yield_now().await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn url(s: &str) -> Url {
    s.parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_are_counted_searched_and_filtered() {
    let served = serve(
        "dashboard-services",
        Options::new("inprocess://dashboard-services"),
    )
    .await;
    for u in [
        "dubbo://10.0.0.1:20880/com.acme.Echo?application=shop&version=1.0&region=eu",
        "tri://10.0.0.2:50051/com.acme.Echo?application=shop&version=1.0",
        "consumer://10.0.0.9/com.acme.Echo?category=consumers&application=web&version=1.0",
        "dubbo://10.0.0.3:20880/com.acme.Billing?application=billing",
    ] {
        served.registry.register(&url(u)).await.unwrap();
    }
    let all = served.wait_for("api/services", |v| v["total"] == 2).await;
    let echo = &all["rows"][1];
    assert_eq!(echo["key"], "com.acme.Echo:1.0");
    assert_eq!(
        (echo["providers"].as_u64(), echo["consumers"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(echo["protocols"], json!(["dubbo", "tri"]));
    assert_eq!(echo["applications"], json!(["shop", "web"]));
    assert_eq!(all["protocols"], json!(["dubbo", "tri"]));

    // Free text over addresses, applications and any parameter.
    for (q, expect) in [
        ("10.0.0.3", "com.acme.Billing"),
        ("region=eu", "com.acme.Echo:1.0"),
        ("WEB", "com.acme.Echo:1.0"),
    ] {
        let found = served.get(&format!("api/services?q={q}")).await;
        assert_eq!(found["matched"], 1, "{q}: {found}");
        assert_eq!(found["rows"][0]["key"], expect, "{q}");
    }
    let flood = served
        .http
        .get(format!(
            "{}/api/services?q={}",
            served.base,
            "a+".repeat(17)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(
        flood.status().as_u16(),
        400,
        "a search of 17 words is refused"
    );
    let tri = served.get("api/services?protocol=tri").await;
    assert_eq!(tri["rows"][0]["key"], "com.acme.Echo:1.0");
    assert_eq!(tri["matched"], 1);
    let used = served.get("api/services?category=consumers").await;
    assert_eq!(used["matched"], 1);
    let connected = served.get("api/services?category=connected").await;
    assert_eq!(connected["rows"][0]["key"], "com.acme.Echo:1.0");
    assert_eq!(connected["matched"], 1);
    let unused = served.get("api/services?category=unused").await;
    assert_eq!(unused["rows"][0]["key"], "com.acme.Billing");
    assert_eq!(unused["matched"], 1);
    let by_count = served.get("api/services?sort=providers").await;
    assert_eq!(by_count["rows"][0]["key"], "com.acme.Echo:1.0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_is_served_with_a_policy_that_runs_no_inline_script() {
    let served = serve(
        "dashboard-page",
        Options::new("etcd://root:s3cret@127.0.0.1:2379?token=abc"),
    )
    .await;
    let redirect = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(served.base.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(redirect.status().as_u16(), 308);
    let page = served
        .http
        .get(format!("{}/", served.base))
        .send()
        .await
        .unwrap();
    let policy = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(policy.contains("script-src 'self'") && !policy.contains("unsafe-inline"));
    let html = page.text().await.unwrap();
    assert!(html.contains("<script src=\"app.js\" defer></script>"));
    assert!(!html.contains("<script>"), "no inline script");
    let script = served
        .http
        .get(format!("{}/app.js", served.base))
        .send()
        .await
        .unwrap();
    assert!(script.text().await.unwrap().contains("createTextNode"));

    // A `<script>` from the registry travels as data, and the registry's secrets never do.
    served
        .registry
        .register(
            &Url::builder("dubbo")
                .host("10.0.0.1")
                .port(1)
                .path("com.acme.X")
                .param("note", "<script>alert(1)</script>")
                .build()
                .unwrap(),
        )
        .await
        .unwrap();
    let service = served
        .wait_for("api/service?key=com.acme.X", |v| {
            v["providers"].as_array().is_some_and(|p| !p.is_empty())
        })
        .await;
    let params = service["providers"][0]["params"].to_string();
    assert!(params.contains("<script>alert(1)</script>"), "{params}");
    let registry = served.get("api/registry").await;
    let shown = registry["registry"].as_str().unwrap();
    assert!(
        !shown.contains("s3cret") && !shown.contains("abc"),
        "{shown}"
    );
    assert_eq!(registry["writes"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_stream_says_when_the_registry_changed() {
    let served = serve(
        "dashboard-events",
        Options::new("inprocess://dashboard-events"),
    )
    .await;
    let mut events = served
        .http
        .get(format!("{}/api/events", served.base))
        .send()
        .await
        .unwrap();
    assert_eq!(events.headers()["content-type"], "text/event-stream");
    let mut text = String::new();
    let read_until = async |text: &mut String, events: &mut reqwest::Response, count: usize| {
        while text.matches("event: changed").count() < count {
            let chunk = tokio::time::timeout(DEADLINE, events.chunk())
                .await
                .expect("no event within the deadline")
                .unwrap()
                .expect("the stream ended");
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
    };
    read_until(&mut text, &mut events, 1).await;
    assert!(text.contains("\"connected\":true"), "{text}");
    served
        .registry
        .register(&url("dubbo://10.0.0.1:1/com.acme.Live"))
        .await
        .unwrap();
    read_until(&mut text, &mut events, 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_need_write_mode_and_the_token() {
    let provider = "dubbo://127.0.0.1:1/com.acme.W?version=1.0";
    let read_only = serve("dashboard-ro", Options::new("inprocess://dashboard-ro")).await;
    read_only.registry.register(&url(provider)).await.unwrap();
    let (status, answer) = read_only
        .post(
            "api/override",
            Some("t0ken"),
            json!({"action": "disable", "url": provider}),
        )
        .await;
    assert_eq!(status, 403, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("--write"));

    let served = serve(
        "dashboard-rw",
        Options::new("inprocess://dashboard-rw").with_write_token("t0ken"),
    )
    .await;
    served.registry.register(&url(provider)).await.unwrap();
    served
        .wait_for("api/service?key=com.acme.W:1.0", |v| {
            v["providers"].as_array().is_some_and(|p| p.len() == 1)
        })
        .await;
    for token in [None, Some("wrong")] {
        let (status, _) = served
            .post(
                "api/override",
                token,
                json!({"action": "disable", "url": provider}),
            )
            .await;
        assert_eq!(status, 401, "{token:?}");
    }
    let unknown = "dubbo://127.0.0.1:2/com.acme.W?version=1.0";
    let (status, _) = served
        .post(
            "api/override",
            Some("t0ken"),
            json!({"action": "disable", "url": unknown}),
        )
        .await;
    assert_eq!(status, 404);
    assert!(
        served.get("api/registry").await["configurators"] == 0,
        "nothing was written"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disable_weight_and_enable_are_rules_the_xclient_honours() {
    let served = serve(
        "dashboard-rules",
        Options::new("inprocess://dashboard-rules").with_write_token("t0ken"),
    )
    .await;
    let (a, b) = (
        "srpc://127.0.0.1:7001/com.acme.R?version=1.0",
        "srpc://127.0.0.1:7002/com.acme.R?version=1.0",
    );
    served.registry.register(&url(a)).await.unwrap();
    served.registry.register(&url(b)).await.unwrap();
    let sub = served
        .registry
        .subscribe(&url(
            "consumer://127.0.0.1/com.acme.R?version=1.0&category=providers,configurators",
        ))
        .await
        .unwrap();
    let x = srpc_xclient::XClient::new(sub.into(), srpc_xclient::Options::default());
    x.wait_for_endpoints(|e| e.list().len() == 2, DEADLINE)
        .await
        .unwrap();
    served
        .wait_for("api/service?key=com.acme.R:1.0", |v| {
            v["providers"].as_array().is_some_and(|p| p.len() == 2)
        })
        .await;

    let (status, answer) = served
        .post(
            "api/override",
            Some("t0ken"),
            json!({"action": "disable", "url": b}),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    // The rule Dubbo Admin writes, which Java Dubbo's consumers read.
    assert_eq!(
        answer["done"],
        "override://127.0.0.1:7002/com.acme.R?category=configurators&disabled=true&dynamic=false\
         &enabled=true&version=1.0"
    );
    let now = x
        .wait_for_endpoints(|e| e.list().len() == 1, DEADLINE)
        .await
        .unwrap();
    assert_eq!(now.list()[0].addr(), "127.0.0.1:7001");
    let page = served
        .wait_for("api/service?key=com.acme.R:1.0", |v| {
            v["providers"][1]["enabled"] == false
        })
        .await;
    assert_eq!(page["providers"][1]["overridden"], true);

    let (status, _) = served
        .post(
            "api/override",
            Some("t0ken"),
            json!({"action": "weight", "url": a, "weight": 300}),
        )
        .await;
    assert_eq!(status, 200);
    x.wait_for_endpoints(|e| e.list().iter().any(|e| e.weight() == 300), DEADLINE)
        .await
        .unwrap();
    // A new weight replaces the rule, it does not pile another on.
    let (status, _) = served
        .post(
            "api/override",
            Some("t0ken"),
            json!({"action": "weight", "url": a, "weight": 50}),
        )
        .await;
    assert_eq!(status, 200);
    x.wait_for_endpoints(|e| e.list().iter().any(|e| e.weight() == 50), DEADLINE)
        .await
        .unwrap();
    served
        .wait_for("api/registry", |v| v["configurators"] == 2)
        .await;

    let (status, answer) = served
        .post(
            "api/override",
            Some("t0ken"),
            json!({"action": "enable", "url": b}),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    x.wait_for_endpoints(|e| e.list().len() == 2, DEADLINE)
        .await
        .unwrap();
    served
        .wait_for("api/registry", |v| v["configurators"] == 1)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_provider_that_no_longer_answers_is_unregistered() {
    let served = serve(
        "dashboard-unregister",
        Options::new("inprocess://dashboard-unregister").with_write_token("t0ken"),
    )
    .await;
    let alive = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_port = dead.local_addr().unwrap().port();
    drop(dead);
    let live_url = format!(
        "dubbo://127.0.0.1:{}/com.acme.U",
        alive.local_addr().unwrap().port()
    );
    let dead_url = format!("dubbo://127.0.0.1:{dead_port}/com.acme.U");
    served.registry.register(&url(&live_url)).await.unwrap();
    served.registry.register(&url(&dead_url)).await.unwrap();
    served
        .wait_for("api/service?key=com.acme.U", |v| {
            v["providers"].as_array().is_some_and(|p| p.len() == 2)
        })
        .await;
    let (status, answer) = served
        .post("api/unregister", Some("t0ken"), json!({"url": live_url}))
        .await;
    assert_eq!(status, 409, "{answer}");
    let (status, answer) = served
        .post("api/unregister", Some("t0ken"), json!({"url": dead_url}))
        .await;
    assert_eq!(status, 200, "{answer}");
    let left = served
        .wait_for("api/service?key=com.acme.U", |v| {
            v["providers"].as_array().is_some_and(|p| p.len() == 1)
        })
        .await;
    assert_eq!(left["providers"][0]["url"], live_url);
}

/// Over the srpc HTTP registry, the registry page shows its own figures from `/metrics`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_registry_page_shows_its_metrics() {
    use srpc_registry_http::{HttpRegistryServer, ServerConfig};
    let server = HttpRegistryServer::bind("127.0.0.1:0", ServerConfig::new())
        .await
        .unwrap();
    let addr = server.local_addr();
    let client: Arc<dyn Registry> = Arc::new(
        srpc_registry_http::connect(&url(&format!("http://{addr}?ttl=3s")))
            .await
            .unwrap(),
    );
    client
        .register(&url("dubbo://10.0.0.1:1/com.acme.M"))
        .await
        .unwrap();
    let dashboard = Dashboard::start(
        client.clone(),
        Options::new(&format!("http://{addr}")).with_metrics(format!("http://{addr}/metrics")),
    )
    .await
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = dashboard.router();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let registry: Value = http
        .get(format!("{base}/api/registry"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let metrics = &registry["metrics"];
    assert_eq!(metrics["instances"], 1, "{registry}");
    assert!(metrics["heartbeats"].is_u64(), "{registry}");
    assert!(
        metrics["resident_bytes"].as_u64().unwrap() > 1_000_000,
        "{registry}"
    );
    task.abort();
    let _ = client.close().await;
    server.shutdown().await.unwrap();
}
