//! Starts the servers the integration tests share — ZooKeeper, etcd 3.4 and 3.5, and srpc's
//! fake Consul agent — on loopback, prints their addresses as `NAME=value` lines and then
//! `ready`, and stops them (by PID) when told to.
//!
//! ```text
//! srpc-test-servers [--default-ports] [--until-signal]
//! ```
//!
//! - `--default-ports`: ZooKeeper on 2181, etcd 3.4 on 2379 (peer 2380), the fake Consul
//!   agent on 8500 — where the usual tools look; an error if one is taken. Otherwise every
//!   server gets a free port.
//! - `--until-signal`: run until SIGINT or SIGTERM (for `cargo xtask servers`, also in the
//!   background). Otherwise run until standard input closes (for `cargo xtask integration`,
//!   which holds a pipe to it).

#![allow(clippy::print_stdout)] // This binary's output is its interface.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::process::ExitCode;

use srpc_tests::consul::FakeConsul;
use srpc_tests::servers::{Etcd, EtcdVersion, ZooKeeper};

const USAGE: &str = "usage: srpc-test-servers [--default-ports] [--until-signal]";

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let mut default_ports = false;
    let mut until_signal = false;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--default-ports" => default_ports = true,
            "--until-signal" => until_signal = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            other => {
                eprintln!("srpc-test-servers: unknown argument {other:?}\n{USAGE}");
                return ExitCode::FAILURE;
            }
        }
    }
    // Installed, then started in order; each stops (by PID) when dropped, so an error half
    // way stops those already running.
    match start(default_ports).await {
        Ok(servers) => {
            println!("ready");
            let _ = std::io::stdout().flush();
            if until_signal {
                eprintln!(
                    "srpc-test-servers: running as PID {}; Ctrl-C or `kill {}` stops them",
                    std::process::id(),
                    std::process::id()
                );
                wait_for_signal().await;
            } else {
                // Serve until whoever started us closes our standard input.
                let _ = tokio::task::spawn_blocking(|| {
                    let mut sink = Vec::new();
                    std::io::stdin().read_to_end(&mut sink)
                })
                .await;
            }
            drop(servers);
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("srpc-test-servers: {error}");
            ExitCode::FAILURE
        }
    }
}

/// What runs, kept until the end.
struct Running {
    _zookeeper: ZooKeeper,
    _etcds: Vec<Etcd>,
    _consul: FakeConsul,
}

async fn start(default_ports: bool) -> Result<Running, String> {
    if !ZooKeeper::is_installed() {
        return Err(
            "ZooKeeper is not installed: `cargo xtask deps` installs it (apt-get install zookeeper)"
                .into(),
        );
    }
    let zookeeper = ZooKeeper::start_on(default_ports.then_some(2181))
        .map_err(|e| format!("ZooKeeper: {e}"))?;
    println!("SRPC_ZOOKEEPER={}", zookeeper.address());
    let mut etcds = Vec::new();
    for (version, name, ports) in [
        (EtcdVersion::V3_4, "SRPC_ETCD", Some((2379, 2380))),
        (EtcdVersion::V3_5, "SRPC_ETCD_35", None),
    ] {
        let server = Etcd::start_on(version, ports.filter(|_| default_ports))
            .map_err(|e| format!("etcd {}: {e}", version.label()))?;
        println!("{name}={}", server.address());
        etcds.push(server);
    }
    let consul_addr = SocketAddr::from(([127, 0, 0, 1], if default_ports { 8500 } else { 0 }));
    let consul = FakeConsul::start_on(consul_addr)
        .await
        .map_err(|e| e.to_string())?;
    // Not CONSUL_HTTP_ADDR: the tests read that as "a real agent is there".
    println!("SRPC_FAKE_CONSUL={}", consul.addr());
    Ok(Running {
        _zookeeper: zookeeper,
        _etcds: etcds,
        _consul: consul,
    })
}

/// Returns on SIGINT or SIGTERM; at once if they cannot be caught (the servers would
/// otherwise outlive this process).
async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut interrupt), Ok(mut terminate)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        eprintln!("srpc-test-servers: cannot catch SIGINT/SIGTERM; stopping the servers");
        return;
    };
    tokio::select! {
        _ = interrupt.recv() => {}
        _ = terminate.recv() => {}
    }
    eprintln!("srpc-test-servers: stopping the servers");
}
