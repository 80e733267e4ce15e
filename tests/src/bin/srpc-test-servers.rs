//! Starts the real servers the integration tests share, prints their addresses as
//! `NAME=value` lines, and stops them (by PID) when standard input closes.
//! `cargo xtask integration` runs it; `cargo xtask servers` runs it for manual work.

#![allow(clippy::print_stdout)] // This binary's output is its interface.

use std::io::Read;
use std::process::ExitCode;

use srpc_tests::servers::{Etcd, EtcdVersion, ZooKeeper};

fn main() -> ExitCode {
    if !ZooKeeper::is_installed() {
        eprintln!("srpc-test-servers: ZooKeeper is not installed (apt-get install zookeeper)");
        return ExitCode::FAILURE;
    }
    let zookeeper = match ZooKeeper::start() {
        Ok(server) => server,
        Err(error) => {
            eprintln!("srpc-test-servers: {error}");
            return ExitCode::FAILURE;
        }
    };
    println!("SRPC_ZOOKEEPER={}", zookeeper.address());
    let mut etcds = Vec::new();
    for (version, name) in [
        (EtcdVersion::V3_4, "SRPC_ETCD"),
        (EtcdVersion::V3_5, "SRPC_ETCD_35"),
    ] {
        match Etcd::start(version) {
            Ok(server) => {
                println!("{name}={}", server.address());
                etcds.push(server);
            }
            Err(error) => {
                eprintln!("srpc-test-servers: etcd {}: {error}", version.label());
                return ExitCode::FAILURE;
            }
        }
    }
    println!("ready");
    // Serve until whoever started us closes our standard input.
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    drop(etcds);
    drop(zookeeper);
    ExitCode::SUCCESS
}
