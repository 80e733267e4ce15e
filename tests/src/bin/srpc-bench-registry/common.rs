//! What the sections share: percentiles, handles, provider URLs, CPU clocks, servers.

use std::sync::Arc;
use std::time::Duration;

use srpc_registry::{Registry, Url};

/// Latency percentiles of one series.
pub(crate) struct Series {
    pub(crate) p50: Duration,
    /// Beside the p99: on these VMs about 1 % of samples on either side (srpc's and the raw
    /// client's alike) take 3-6 ms, stalls of the machine or the server, so the p99 of a few
    /// hundred samples lands either before or after that cliff; the p95 is the stable tail.
    pub(crate) p95: Duration,
    pub(crate) p99: Duration,
}

impl Series {
    pub(crate) fn of(mut samples: Vec<Duration>) -> Series {
        samples.sort_unstable();
        let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
        Series {
            p50: at(0.50),
            p95: at(0.95),
            p99: at(0.99),
        }
    }
}

pub(crate) fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

pub(crate) fn samples() -> usize {
    std::env::var("SRPC_BENCH_SAMPLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(500)
}

pub(crate) async fn pair(url: &str) -> (Arc<dyn Registry>, Arc<dyn Registry>) {
    (
        srpc::registry::connect(url).await.unwrap(),
        srpc::registry::connect(url).await.unwrap(),
    )
}

/// CPU time (user and system, every thread) a process has used so far, from
/// `/proc/<pid>/stat` (in clock ticks of 10 ms: Linux's `USER_HZ` is 100).
pub(crate) fn process_cpu(pid: u32) -> Duration {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The command name (field 2) is in parentheses and may hold spaces: count from its end.
    let after = &text[text.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 of the line, utime and stime, are the 12th and 13th after the name.
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10)
}

/// Nanoseconds the calling thread has run on a CPU (the scheduler's own account).
pub(crate) fn thread_cpu() -> Duration {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap();
    let ns: u64 = text.split_whitespace().next().unwrap().parse().unwrap();
    Duration::from_nanos(ns)
}

/// The `i`-th provider URL of a bench service.
pub(crate) fn provider(interface: &str, i: usize) -> Url {
    format!(
        "dubbo://10.{}.{}.{}:20880/{interface}?weight=100&side=provider",
        i / 65536,
        (i / 256) % 256,
        i % 256
    )
    .parse()
    .unwrap()
}

pub(crate) fn scheme(registry_url: &str) -> &str {
    registry_url.split("://").next().unwrap_or(registry_url)
}

/// An srpc HTTP registry on a free loopback port, in this process.
/// Its limits are raised above the largest section (100 000 providers of one service).
pub(crate) async fn http_server() -> srpc::http::HttpRegistryServer {
    let mut limits = srpc::http::Limits::default();
    limits.instances = 1_000_000;
    limits.instances_per_service = 1_000_000;
    limits.instances_per_holder = 1_000_000;
    let config = srpc::http::ServerConfig::new().with_limits(limits);
    srpc::http::HttpRegistryServer::bind("127.0.0.1:0", config)
        .await
        .unwrap()
}

pub(crate) fn free_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
