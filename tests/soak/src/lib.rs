//! The srpc HTTP registry server as a process of its own ([`HttpRegistryProcess`]), for the
//! soak (`src/bin/srpc-soak.rs`) and the benchmarks, and the loopback helpers the test
//! servers of `srpc-tests` share with it: a free port, a readiness wait, a raw HTTP/1.1
//! request.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)] // Test code: failures panic.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a server may take to start serving.
pub const START_DEADLINE: Duration = Duration::from_secs(60);

/// A free TCP port on loopback (nothing listens on it when this returns).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free TCP port on loopback")
}

/// Kills the child, if any is left, by its PID, and reaps it.
pub fn kill(child: &mut Option<Child>) {
    if let Some(mut child) = child.take() {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Polls `ready` until it holds or [`START_DEADLINE`] passes; the error quotes the server's
/// log (`server.log` in `dir`).
pub fn wait_ready(what: &str, dir: Option<&Path>, ready: impl Fn() -> bool) -> io::Result<()> {
    let deadline = Instant::now() + START_DEADLINE;
    loop {
        if ready() {
            return Ok(());
        }
        if Instant::now() > deadline {
            let log = dir
                .and_then(|dir| std::fs::read_to_string(dir.join("server.log")).ok())
                .unwrap_or_else(|| "(on standard error)".to_owned());
            return Err(io::Error::other(format!(
                "{what} did not start within {START_DEADLINE:?}; log:\n{log}"
            )));
        }
        // Polling a server that is still starting: there is nothing to wait on but time.
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A plain HTTP/1.1 GET on loopback; the body.
pub fn http_get(port: u16, path: &str) -> io::Result<String> {
    http(
        port,
        &format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"),
    )
}

/// Sends a whole HTTP/1.1 `request` (with `Connection: close`) to loopback `port`; the body
/// of the answer. Reads wait at most 2 s.
pub fn http(port: u16, request: &str) -> io::Result<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.write_all(request.as_bytes())?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    Ok(answer
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default())
}

/// An srpc HTTP registry server (`srpc registry serve`) as a process of its own, on a free
/// loopback port; its standard error is this process's. Stopped by PID when dropped.
#[derive(Debug)]
pub struct HttpRegistryProcess {
    child: Option<Child>,
    port: u16,
}

impl HttpRegistryProcess {
    /// Runs `binary -q registry serve --addr 127.0.0.1:<free port> --no-state-file <args>`
    /// and returns once it answers `/healthz`.
    pub fn start(binary: &Path, args: &[&str]) -> io::Result<HttpRegistryProcess> {
        let port = free_port();
        let child = Command::new(binary)
            .args([
                "-q",
                "registry",
                "serve",
                "--addr",
                &format!("127.0.0.1:{port}"),
                "--no-state-file",
            ])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| io::Error::other(format!("cannot start {}: {e}", binary.display())))?;
        let server = HttpRegistryProcess {
            child: Some(child),
            port,
        };
        wait_ready(&format!("srpc registry on port {port}"), None, || {
            http_get(port, "/healthz").is_ok_and(|body| body.starts_with("ok"))
        })?;
        Ok(server)
    }

    /// `127.0.0.1:<port>`.
    pub fn addr(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The server's PID.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

impl Drop for HttpRegistryProcess {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}

/// The value of `srpc_registry_<name>` in the HTTP registry's `/metrics` at `base`; panics
/// when it is missing.
pub async fn http_metric(http: &reqwest::Client, base: &str, name: &str) -> u64 {
    let text = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let line = format!("srpc_registry_{name} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&line))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /metrics"))
}
