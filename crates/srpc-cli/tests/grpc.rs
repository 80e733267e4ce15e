//! A tonic server registered by srpc under Dubbo's Triple URL is found with
//! `srpc list -o json` and called by a Python grpcio client (a third-party peer).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code: failures panic.

#[allow(dead_code)] // This file uses part of the shared helpers.
mod support;

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;
use srpc_tests::grpc::{PythonStubs, SERVICE, TonicEcho};
use srpc_tests::servers::free_port;
use srpc_tonic::triple_url;
use support::{DEADLINE, Running};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_srpc"))
        .args(args)
        .env_remove("SRPC_REGISTRY")
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tonic_server_registered_by_srpc_is_called_by_grpcio() {
    let registry = format!("http://127.0.0.1:{}", free_port());
    let mut command = Command::new(env!("CARGO_BIN_EXE_srpc"));
    command.args([
        "registry",
        "serve",
        "--addr",
        registry.trim_start_matches("http://"),
        "--no-state-file",
    ]);
    let _server = Running::spawn(command);
    let handle = {
        let deadline = Instant::now() + DEADLINE;
        loop {
            match srpc::registry::connect(&registry).await {
                Ok(handle) if run(&["list", &registry, "com.acme.Up"]).status.code() == Some(3) => {
                    break handle;
                }
                _ => assert!(Instant::now() < deadline, "no registry at {registry}"),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };

    let echo = TonicEcho::start("tonic").await;
    let url = triple_url(SERVICE, ["Say"])
        .application("tonic-echo")
        .build(echo.addr)
        .unwrap();
    handle.register(&url).await.unwrap();

    let out = tokio::task::spawn_blocking({
        let registry = registry.clone();
        move || run(&["list", &registry, SERVICE, "-o", "json"])
    })
    .await
    .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    let found = &list.as_array().unwrap()[0];
    assert_eq!(found["protocol"], "tri");
    assert_eq!(found["path"], SERVICE);
    assert_eq!(found["params"]["interface"], SERVICE);
    assert_eq!(found["params"]["side"], "provider");
    let addr = format!(
        "{}:{}",
        found["host"].as_str().unwrap(),
        found["port"].as_u64().unwrap()
    );

    let stubs = PythonStubs::generate();
    let reply = tokio::task::spawn_blocking(move || stubs.call(&addr, "hello"))
        .await
        .unwrap();
    assert_eq!(reply, "reply hello tonic");

    handle.unregister(&url).await.unwrap();
    handle.close().await.unwrap();
    echo.stop().await;
}
