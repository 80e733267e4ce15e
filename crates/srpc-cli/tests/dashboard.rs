//! `srpc dashboard` and the registry server's `/ui`: served on loopback, secrets masked,
//! writes off unless `--write` and then only with the token. Every child process is stopped
//! by its PID.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code: failures panic.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use srpc_tests::servers::free_port;
use support::{DEADLINE, Running};

fn srpc() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_srpc"));
    command
        .env_remove("SRPC_REGISTRY")
        .env_remove("SRPC_DASHBOARD_TOKEN");
    command
}

/// `srpc registry serve` on loopback `port` with no state file, and `extra` arguments.
fn serve(port: u16, extra: &[&str]) -> Running {
    let mut command = srpc();
    command.args([
        "registry",
        "serve",
        "--addr",
        &format!("127.0.0.1:{port}"),
        "--no-state-file",
    ]);
    command.args(extra);
    Running::spawn_reading_stderr(command)
}

/// Waits for the line of stderr that contains `text`.
fn line_with(running: &Running, text: &str) -> String {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = running
            .line_within(left)
            .unwrap_or_else(|| panic!("no line with {text:?} in time"));
        if line.contains(text) {
            return line;
        }
    }
}

fn http() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// Polls `url` until its JSON satisfies `done`.
async fn wait_json(url: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Ok(response) = http().get(url).send().await {
            if let Ok(value) = response.json::<Value>().await {
                if done(&value) {
                    return value;
                }
            }
        }
        assert!(Instant::now() < deadline, "{url} never answered as awaited");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_registry_server_serves_the_dashboard_at_ui() {
    let port = free_port();
    let server = serve(port, &["--read-token", "r3ad"]);
    let line = line_with(&server, "dashboard at");
    assert!(
        line.contains(&format!("http://127.0.0.1:{port}/ui/")),
        "{line}"
    );

    let page = http()
        .get(format!("http://127.0.0.1:{port}/ui/"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("app.js"));
    let registry = wait_json(&format!("http://127.0.0.1:{port}/ui/api/registry"), |v| {
        v["connected"] == true
    })
    .await;
    let shown = registry["registry"].as_str().unwrap();
    assert!(!shown.contains("r3ad"), "the read token is masked: {shown}");
    assert_eq!(registry["writes"], false);
    // The registry's own API is unchanged beside it, and still wants its read token.
    let denied = http()
        .get(format!("http://127.0.0.1:{port}/v1/instances"))
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn srpc_dashboard_writes_only_with_write_and_its_token() {
    let port = free_port();
    let server = serve(port, &[]);
    line_with(&server, "registry listening");
    let registry = format!("http://127.0.0.1:{port}");
    let provider = "dubbo://127.0.0.1:1/com.acme.D?version=1.0";

    let read_only_port = free_port();
    let mut command = srpc();
    command.args([
        "dashboard",
        &registry,
        "--addr",
        &format!("127.0.0.1:{read_only_port}"),
    ]);
    let read_only = Running::spawn_reading_stderr(command);
    line_with(&read_only, "dashboard of");

    let write_port = free_port();
    let mut command = srpc();
    command
        .args([
            "dashboard",
            &registry,
            "--addr",
            &format!("127.0.0.1:{write_port}"),
            "--write",
        ])
        .env("SRPC_DASHBOARD_TOKEN", "t0ken");
    let writer = Running::spawn_reading_stderr(command);
    let line = line_with(&writer, "write actions on");
    assert!(
        !line.contains("t0ken"),
        "a token from the environment is not printed: {line}"
    );

    let mut register = srpc();
    register.args(["register", &registry, provider]);
    let _provider = Running::spawn(register);
    let service = format!("http://127.0.0.1:{write_port}/api/service?key=com.acme.D:1.0");
    wait_json(&service, |v| {
        v["providers"].as_array().is_some_and(|p| p.len() == 1)
    })
    .await;

    let disable = json!({"action": "disable", "url": provider});
    let post = |port: u16, token: Option<&str>| {
        let mut request = http()
            .post(format!("http://127.0.0.1:{port}/api/override"))
            .json(&disable);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    assert_eq!(
        post(read_only_port, Some("t0ken")).await.unwrap().status(),
        403
    );
    assert_eq!(post(write_port, None).await.unwrap().status(), 401);
    assert_eq!(post(write_port, Some("nope")).await.unwrap().status(), 401);
    let done = post(write_port, Some("t0ken")).await.unwrap();
    assert_eq!(done.status(), 200);
    wait_json(&service, |v| v["providers"][0]["enabled"] == false).await;
    // The other dashboard sees the rule too: it is in the registry.
    wait_json(
        &format!("http://127.0.0.1:{read_only_port}/api/service?key=com.acme.D:1.0"),
        |v| v["providers"][0]["enabled"] == false,
    )
    .await;
}

/// The server's `srpc_registry_watchers` gauge.
async fn watchers(port: u16) -> u64 {
    srpc_tests::http_metric(&http(), &format!("http://127.0.0.1:{port}"), "watchers").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_dashboard_leaves_ui_off_and_nothing_watching() {
    // The server without a dashboard starts first: it has had at least as long as the
    // other to start one.
    let bare_port = free_port();
    let bare = serve(bare_port, &["--no-dashboard"]);
    line_with(&bare, "registry listening");
    let usual_port = free_port();
    let usual = serve(usual_port, &[]);
    line_with(&usual, "dashboard at");
    // The usual server's dashboard is a client watching it: a watcher shows.
    let deadline = Instant::now() + DEADLINE;
    while watchers(usual_port).await == 0 {
        assert!(Instant::now() < deadline, "the dashboard never watched");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(watchers(bare_port).await, 0, "nothing watches");

    let ui = http()
        .get(format!("http://127.0.0.1:{bare_port}/ui/"))
        .send()
        .await
        .unwrap();
    assert_eq!(ui.status(), 503);
    let said = ui.text().await.unwrap();
    assert!(said.contains("--no-dashboard"), "{said}");
    // The registry itself answers as ever.
    let listing = http()
        .get(format!("http://127.0.0.1:{bare_port}/v1/instances"))
        .send()
        .await
        .unwrap();
    assert_eq!(listing.status(), 200);
    drop(usual);
    drop(bare);
}
