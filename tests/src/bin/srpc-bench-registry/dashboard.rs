//! `dashboard` (in a private network namespace): how soon headless Chromium draws the
//! dashboard's services page of 10 000 providers (2 000 services; the page draws the first
//! 300 rows at once), against the same rows sent as a static HTML table by a server in the
//! same process (the anchor), loads taking turns, both timed from navigation to the frame
//! after the rows are in the document; and the heap the dashboard holds.

use std::sync::Arc;
use std::time::Duration;

use axum::response::Html;
use serde_json::{Value, json};
use srpc::registry::{Registry, Url};
use srpc_dashboard::{Dashboard, Options};
use srpc_tests::browser::Browser;

use crate::ALLOCATOR;

const PROVIDERS: usize = 10_000;
/// Five providers per service: 2 000 rows.
const PER_SERVICE: usize = 5;
const LOADS: usize = 7;

/// Milliseconds from navigation to the first frame drawn with the rows.
fn first_frame(browser: &mut Browser) -> f64 {
    browser.wait(
        "return typeof window.srpcFirstRender === 'number';",
        json!(true),
        Duration::from_secs(30),
    );
    browser
        .js("return window.srpcFirstRender;")
        .as_f64()
        .unwrap()
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

pub(crate) async fn dashboard() {
    srpc_tests::netns::private();
    let registry: Arc<dyn Registry> = Arc::new(srpc_registry_inprocess::open("bench-dashboard"));
    for n in 0..PROVIDERS {
        let service = n / PER_SERVICE;
        let url: Url = format!(
            "dubbo://10.{}.{}.{}:20880/com.acme.bench.Service{service}?application=app{}&version=1.0&weight=100&methods=a,b,c&side=provider",
            n / 65_536,
            (n / 256) % 256,
            n % 256,
            service % 50
        )
        .parse()
        .unwrap();
        registry.register(&url).await.unwrap();
    }
    let heap_before = ALLOCATOR.allocated();
    let dashboard = Dashboard::start(
        registry.clone(),
        Options::new("inprocess://bench-dashboard"),
    )
    .await
    .unwrap();
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let server = srpc_tests::serve_on_loopback(dashboard.router()).await;
    let base = format!("http://{}", server.addr);
    let services: Value = loop {
        let value: Value = http
            .get(format!("{base}/api/services"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if value["total"] == PROVIDERS / PER_SERVICE {
            break value;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let heap = ALLOCATOR.allocated().saturating_sub(heap_before);
    let rows: Vec<&Value> = services["rows"].as_array().unwrap().iter().collect();
    let mut table = String::from(
        "<!doctype html><html><head><meta charset=utf-8><title>static</title></head><body><table><tbody>",
    );
    // The rows the page draws first (300), as static HTML.
    for row in rows.iter().take(300) {
        table.push_str(&format!(
            "<tr><td><a href=#>{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>0</td><td>dubbo</td><td>{}</td></tr>",
            row["interface"].as_str().unwrap(),
            row["group"].as_str().unwrap(),
            row["version"].as_str().unwrap(),
            row["providers"],
            row["consumers"],
            row["applications"][0].as_str().unwrap_or_default()
        ));
    }
    // Measured as the page's: navigation to the frame after the rows are in the document.
    table.push_str(
        "</tbody></table><script>requestAnimationFrame(() => requestAnimationFrame(() => \
         { window.srpcFirstRender = performance.now(); }));</script></body></html>",
    );
    // The anchor: the same rows, drawn by the server as one static table.
    let anchor = srpc_tests::serve_on_loopback(axum::Router::new().route(
        "/",
        axum::routing::get(move || {
            let table = table.clone();
            async move { Html(table) }
        }),
    ))
    .await;
    let anchor_addr = anchor.addr;

    let mut browser = Browser::start();
    browser.size(1280, 800);
    // The page draws its first 300 rows at once (the rest on request).
    let expect = json!(rows.len().min(300));
    let mut page = Vec::new();
    let mut plain = Vec::new();
    for _ in 0..LOADS {
        browser.open(&format!("{base}/"));
        browser.wait(
            "return document.querySelectorAll('main table tbody tr').length;",
            expect.clone(),
            Duration::from_secs(30),
        );
        page.push(first_frame(&mut browser));
        browser.open(&format!("http://{anchor_addr}/"));
        plain.push(first_frame(&mut browser));
    }
    let spread = |v: &[f64]| {
        let min = v.iter().copied().fold(f64::INFINITY, f64::min);
        let max = v.iter().copied().fold(0.0, f64::max);
        format!("{min:.0}–{max:.0} ms")
    };
    let (page_spread, plain_spread) = (spread(&page), spread(&plain));
    let (page_median, plain_median) = (median(&mut page), median(&mut plain));
    println!(
        "dashboard  first render, {PROVIDERS} providers in {} services: {page_median:.0} ms median ({page_spread}) \
         against a static table {plain_median:.0} ms ({plain_spread}): ratio {:.2}; goal ≤ 1000 ms",
        rows.len(),
        page_median / plain_median.max(1.0)
    );
    println!(
        "dashboard  heap held for {PROVIDERS} providers: {:.1} MiB ({:.0} bytes per provider)",
        heap as f64 / 1_048_576.0,
        heap as f64 / PROVIDERS as f64
    );
    drop(browser);
    drop(server);
    drop(anchor);
}
