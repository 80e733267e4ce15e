//! The dashboard in a real browser: headless Chromium driven by Selenium, over the HTTP
//! registry and over ZooKeeper. Table contents, search and filters, live changes within a
//! deadline, the banner when the registry is lost, a `<script>` from the registry shown as
//! text, writes refused without the token, and the layout at 1280×800 and at a phone's
//! width. The whole binary runs in a private network namespace holding only loopback, so
//! the browser reaches nothing else.
//!
//! Screenshots go to `target/dashboard-screenshots/`, or to `SRPC_SCREENSHOTS` when set
//! (`SRPC_SCREENSHOTS=docs/images` refreshes the ones docs/dashboard.md shows).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code: failures panic.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use srpc::registry::{Registry, Url};
use srpc_dashboard::{Dashboard, Options};
use srpc_tests::browser::Browser;

/// How long a change may take to show in the page.
const LIVE: Duration = Duration::from_secs(5);
const DEADLINE: Duration = Duration::from_secs(20);

/// Rows of every table's body.
const ROWS: &str = "return document.querySelectorAll('main table tbody tr').length;";
/// Rows of the first table's body (a service page's providers).
const FIRST_ROWS: &str =
    "const t = document.querySelector('main table'); return t ? t.tBodies[0].rows.length : 0;";

fn screenshots() -> PathBuf {
    match std::env::var_os("SRPC_SCREENSHOTS") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../target/dashboard-screenshots"
        )),
    }
}

fn url(s: &str) -> Url {
    s.parse().unwrap()
}

/// A provider whose parameters try to run script in the page.
fn hostile() -> Url {
    Url::builder("dubbo")
        .host("10.0.0.7")
        .port(20880)
        .path("com.acme.Hostile")
        .param("note", "<script>window.__xss = 1</script>")
        .param("img", "<img src=x onerror=\"window.__xss = 2\">")
        .build()
        .unwrap()
}

/// Serves `dashboard` at `/ui/` on a loopback port; its base URL.
async fn serve(dashboard: &Dashboard) -> (String, srpc_tests::Served) {
    let served = srpc_tests::serve_on_loopback(dashboard.nested("/ui")).await;
    (format!("http://{}/ui/", served.addr), served)
}

/// Enters the private namespace; panics when the browser is missing.
fn prerequisites() {
    srpc_tests::netns::private();
    assert!(
        Browser::is_installed(),
        "chromium, chromium-driver and selenium are missing: run `cargo xtask deps`"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium: cargo xtask integration"]
async fn the_pages_over_the_http_registry() {
    prerequisites();
    let server =
        srpc::http::HttpRegistryServer::bind("127.0.0.1:0", srpc::http::ServerConfig::new())
            .await
            .unwrap();
    let registry_url = format!("http://{}?ttl=5s&token=s3cret-read", server.local_addr());
    let publisher: Arc<dyn Registry> =
        srpc::registry::connect(&format!("http://{}?ttl=5s", server.local_addr()))
            .await
            .unwrap();
    for u in [
        "dubbo://10.0.0.1:20880/com.acme.Echo?application=shop&version=1.0&region=eu&weight=100",
        "tri://10.0.0.2:50051/com.acme.Echo?application=shop&version=1.0",
        "consumer://10.0.0.9/com.acme.Echo?category=consumers&application=web&version=1.0",
        "dubbo://10.0.0.3:20880/com.acme.Billing?application=billing",
    ] {
        publisher.register(&url(u)).await.unwrap();
    }
    publisher.register(&hostile()).await.unwrap();
    let watcher = srpc::registry::connect(&format!("http://{}?ttl=5s", server.local_addr()))
        .await
        .unwrap();
    let dashboard = Dashboard::start(
        watcher.clone(),
        Options::new(&registry_url).with_write_token("t0ken"),
    )
    .await
    .unwrap();
    let (base, _task) = serve(&dashboard).await;
    let shots = screenshots();

    let mut browser = Browser::start();
    browser.size(1280, 800);
    browser.open(&base);
    browser.wait(ROWS, json!(3), DEADLINE);
    assert!(browser.text("main table").contains("com.acme.Echo"));
    browser.wait(
        "return document.getElementById('status').textContent;",
        json!("registry connected"),
        DEADLINE,
    );
    browser.screenshot(&shots.join("dashboard-services.png"));

    // Search over parameters, then a filter; the address keeps them.
    browser.act("type", "#q", Some("region=eu"));
    browser.wait(ROWS, json!(1), LIVE);
    assert!(browser.text("main table tbody").contains("com.acme.Echo"));
    browser.act("type", "#q", Some(""));
    browser.wait(ROWS, json!(3), LIVE);
    browser.act("select", "#f-protocol", Some("tri"));
    browser.wait(ROWS, json!(1), LIVE);
    assert!(
        browser
            .js("return location.hash;")
            .as_str()
            .unwrap()
            .contains("protocol=tri")
    );
    browser.act("select", "#f-protocol", Some(""));
    browser.wait(ROWS, json!(3), LIVE);

    // Live: a provider that arrives and one that leaves, without a reload.
    browser.js("window.__same_page = 1; return null;");
    let newcomer = url("dubbo://10.0.0.4:20880/com.acme.Arrived?application=late");
    publisher.register(&newcomer).await.unwrap();
    browser.wait(ROWS, json!(4), LIVE);
    publisher.unregister(&newcomer).await.unwrap();
    browser.wait(ROWS, json!(3), LIVE);
    assert_eq!(
        browser.js("return window.__same_page;"),
        json!(1),
        "the page reloaded"
    );

    // The service page: providers and consumers; the hostile values are text.
    browser.open(&format!("{base}#/service/com.acme.Echo%3A1.0"));
    browser.wait(
        "return document.querySelectorAll('main table').length;",
        json!(2),
        DEADLINE,
    );
    let providers = browser.text("main table");
    assert!(
        providers.contains("10.0.0.1:20880") && providers.contains("tri"),
        "{providers}"
    );
    browser.screenshot(&shots.join("dashboard-service.png"));
    browser.open(&format!("{base}#/service/com.acme.Hostile"));
    browser.wait(ROWS, json!(1), DEADLINE);
    let shown = browser.text("main table");
    assert!(
        shown.contains("<script>window.__xss = 1</script>"),
        "{shown}"
    );
    assert!(shown.contains("<img src=x onerror="), "{shown}");
    assert_eq!(
        browser.js("return window.__xss === undefined;"),
        json!(true)
    );
    assert_eq!(
        browser.js("return document.querySelectorAll('script').length;"),
        json!(1),
        "only app.js"
    );

    // Writes: refused without the token, done with it.
    let provider =
        "dubbo://10.0.0.1:20880/com.acme.Echo?application=shop&region=eu&version=1.0&weight=100";
    let status = browser.js(&format!(
        "return fetch('api/override', {{method: 'POST', headers: {{'Content-Type': 'application/json'}}, \
         body: JSON.stringify({{action: 'disable', url: {}}})}}).then(r => r.status);",
        json!(provider)
    ));
    assert_eq!(status, json!(401));
    browser.open(&format!("{base}#/service/com.acme.Echo%3A1.0"));
    browser.wait(FIRST_ROWS, json!(2), DEADLINE);
    browser.js("sessionStorage.setItem('srpc-token', 't0ken'); return null;");
    browser.act(
        "click",
        "main table tbody tr:first-child .actions button",
        None,
    );
    browser.wait(
        "return document.querySelector('main table tbody tr:first-child').className;",
        json!("off"),
        LIVE,
    );

    // The registry page, with its secret masked.
    browser.open(&format!("{base}#/registry"));
    browser.wait(
        "return document.querySelectorAll('dl.facts dt').length > 0;",
        json!(true),
        DEADLINE,
    );
    let facts = browser.text("dl.facts");
    assert!(
        facts.contains("token=***") && !facts.contains("s3cret-read"),
        "{facts}"
    );
    browser.screenshot(&shots.join("dashboard-registry.png"));

    // A phone's width: no sideways scrolling of the page itself.
    browser.size(390, 844);
    browser.open(&base);
    browser.wait(ROWS, json!(3), DEADLINE);
    assert_eq!(
        browser.js("return document.documentElement.scrollWidth <= window.innerWidth;"),
        json!(true)
    );
    browser.screenshot(&shots.join("dashboard-phone.png"));
    browser.size(1280, 800);

    // The registry goes away: the page says so.
    browser.open(&base);
    browser.wait(ROWS, json!(3), DEADLINE);
    server.shutdown().await.unwrap();
    browser.wait(
        "const b = document.getElementById('banner'); return !b.hidden && b.textContent.includes('registry connection is lost');",
        json!(true),
        DEADLINE,
    );
    assert_eq!(browser.js(ROWS), json!(3), "the last entries known stay");
    browser.screenshot(&shots.join("dashboard-disconnected.png"));
    drop(browser);
    drop(dashboard);
    let _ = watcher.close().await;
    let _ = publisher.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium and ZooKeeper: cargo xtask integration"]
async fn the_services_page_over_zookeeper() {
    prerequisites();
    // Inside the namespace: a ZooKeeper of its own.
    let zookeeper = srpc_tests::servers::ZooKeeper::start().unwrap();
    let registry_url = format!("zookeeper://{}", zookeeper.address());
    let publisher = srpc::registry::connect(&registry_url).await.unwrap();
    publisher
        .register(&url(
            "dubbo://10.0.0.1:20880/com.acme.Zk?application=shop&version=2.0",
        ))
        .await
        .unwrap();
    let watcher = srpc::registry::connect(&registry_url).await.unwrap();
    let dashboard = Dashboard::start(watcher.clone(), Options::new(&registry_url))
        .await
        .unwrap();
    let (base, _task) = serve(&dashboard).await;
    let mut browser = Browser::start();
    browser.open(&base);
    browser.wait(ROWS, json!(1), DEADLINE);
    assert!(browser.text("main table tbody").contains("com.acme.Zk"));
    let later = url("dubbo://10.0.0.2:20880/com.acme.ZkLater?application=late");
    publisher.register(&later).await.unwrap();
    browser.wait(ROWS, json!(2), LIVE);
    // Read-only: no action buttons, and writes are refused.
    browser.open(&format!("{base}#/service/com.acme.Zk%3A2.0"));
    browser.wait(ROWS, json!(1), DEADLINE);
    assert_eq!(
        browser.js("return document.querySelectorAll('.actions').length;"),
        json!(0)
    );
    drop(browser);
    drop(dashboard);
    let _ = watcher.close().await;
    let _ = publisher.close().await;
}
