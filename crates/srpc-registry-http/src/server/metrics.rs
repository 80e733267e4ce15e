//! `/metrics` in the Prometheus text format.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::book::Shared;

/// Prometheus text format.
pub(super) async fn metrics(State(state): State<Arc<Shared>>) -> Response {
    let book = state.book();
    let services = book
        .services
        .values()
        .filter(|s| !s.instances.is_empty())
        .count();
    let instances: usize = book.services.values().map(|s| s.instances.len()).sum();
    let servers = book.servers.len();
    let entries = book.services.len();
    drop(book);
    let mut text = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
        let _ = writeln!(
            text,
            "# HELP srpc_registry_{name} {help}\n# TYPE srpc_registry_{name} {kind}\nsrpc_registry_{name} {value}"
        );
    };
    metric(
        "services",
        "gauge",
        "Services with at least one live instance.",
        services as u64,
    );
    metric(
        "instances",
        "gauge",
        "Live instances of the JSON API.",
        instances as u64,
    );
    metric(
        "service_entries",
        "gauge",
        "Service entries kept (with instances or watchers).",
        entries as u64,
    );
    metric(
        "compat_servers",
        "gauge",
        "Live addresses of the /srpc/registry endpoint.",
        servers as u64,
    );
    metric(
        "registrations_total",
        "counter",
        "Accepted registrations.",
        state.registrations.load(Ordering::Relaxed),
    );
    metric(
        "heartbeats_total",
        "counter",
        "Accepted heartbeats (both APIs).",
        state.heartbeats.load(Ordering::Relaxed),
    );
    metric(
        "expirations_total",
        "counter",
        "Instances removed for missing heartbeats.",
        state.expirations.load(Ordering::Relaxed),
    );
    metric(
        "warming",
        "gauge",
        "1 while listings may lack instances registered before a restart.",
        u64::from(state.is_warming()),
    );
    metric(
        "watchers",
        "gauge",
        "Long-polls waiting now.",
        state.watchers.load(Ordering::Relaxed),
    );
    if let Some(bytes) = resident_bytes() {
        let _ = writeln!(
            text,
            "# HELP process_resident_memory_bytes Resident memory size in bytes.\n\
             # TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes {bytes}"
        );
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// This process's resident memory (`VmRSS` of `/proc/self/status`), where Linux says it.
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}
