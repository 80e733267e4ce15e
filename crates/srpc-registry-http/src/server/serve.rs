//! The accept loop: HTTP/1.1 connections with the [`Limits`] on them — at most `connections`
//! open (more wait in the listen backlog), a header-read timeout that also closes idle
//! keep-alive connections, and a shutdown that waits at most `shutdown_grace` for requests
//! in flight before it closes what is left.
//!
//! `accept` failing for want of file descriptors or memory is this process's trouble, not a
//! peer's: it is logged and retried after a pause, and no connection is blamed for it.

use std::io;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use super::Limits;
use super::bare_errors::JsonErrors;

/// File descriptors kept for everything but client connections (the listener, logs, the
/// state file, outgoing connections of an embedding program).
const RESERVED_FDS: u64 = 64;

/// Serves `app` on `listener` until `stop` turns true, then shuts down gracefully; over TLS
/// when `tls` is given (each handshake in its connection's task, within the header timeout,
/// so a slow one holds nobody else up).
pub(super) async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
    tls: Option<tokio_rustls::TlsAcceptor>,
) -> io::Result<()> {
    let most = connection_cap(limits.connections);
    let permits = std::sync::Arc::new(Semaphore::new(most));
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    let mut pause = Duration::from_millis(50);
    loop {
        // Finished connections' tasks are collected as they pile up, not once at the end.
        while connections.try_join_next().is_some() {}
        // A permit first: past the cap, connections wait in the kernel's backlog instead of
        // costing a descriptor each.
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break, // Closed: never, the semaphore lives here.
            },
            _ = stop.wait_for(|stopping| *stopping) => break,
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.wait_for(|stopping| *stopping) => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => {
                pause = Duration::from_millis(50);
                accepted
            }
            Err(error) if is_the_peers(&error) => {
                debug!(backend = "http", %error, "a connection failed while it was accepted");
                continue;
            }
            Err(error) => {
                warn!(
                    backend = "http",
                    %error,
                    open = most.saturating_sub(permits.available_permits() + 1),
                    retry_in = ?pause,
                    "cannot accept connections: a limit of this process (file descriptors, \
                     memory), not a client's doing; raise `ulimit -n` or lower max-connections"
                );
                drop(permit);
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = stop.wait_for(|stopping| *stopping) => break,
                }
                pause = (pause * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        match &tls {
            None => {
                let connection = builder.serve_connection(
                    TokioIo::new(JsonErrors::new(stream)),
                    TowerToHyperService::new(app.clone()),
                );
                let connection = graceful.watch(connection);
                connections.spawn(async move {
                    if let Err(error) = connection.await {
                        debug!(backend = "http", %peer, %error, "connection ended with an error");
                    }
                    drop(permit);
                });
            }
            Some(acceptor) => {
                let handshake = acceptor.accept(stream);
                let (builder, app, watcher) = (builder.clone(), app.clone(), graceful.watcher());
                let within = limits.header_timeout;
                connections.spawn(async move {
                    let stream = match tokio::time::timeout(within, handshake).await {
                        Ok(Ok(stream)) => stream,
                        Ok(Err(error)) => {
                            debug!(backend = "http", %peer, %error, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            debug!(backend = "http", %peer, "TLS handshake timed out");
                            return;
                        }
                    };
                    let connection = builder.serve_connection(
                        TokioIo::new(JsonErrors::new(stream)),
                        TowerToHyperService::new(app),
                    );
                    if let Err(error) = watcher.watch(connection).await {
                        debug!(backend = "http", %peer, %error, "connection ended with an error");
                    }
                    drop(permit);
                });
            }
        }
    }
    drop(listener);
    let open = connections.len();
    if open > 0 {
        info!(backend = "http", open, grace = ?limits.shutdown_grace, "waiting for requests in flight");
    }
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(limits.shutdown_grace) => {
            warn!(
                backend = "http",
                open = connections.len(),
                grace = ?limits.shutdown_grace,
                "closing the connections still open after the shutdown grace"
            );
        }
    }
    connections.shutdown().await;
    Ok(())
}

/// Errors of one connection that failed between the peer's SYN and our `accept` (reset,
/// aborted): the next one is accepted at once.
fn is_the_peers(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    )
}

/// Raises this process's soft limit of open files to its hard limit, as a server that is
/// to hold many connections should (Go's runtime does the same at start). For binaries:
/// `srpc registry serve` calls it before binding; a library embedding the server should leave
/// the choice to its program. Returns the limit now in force, when the system tells it.
pub fn raise_open_files_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        use rustix::process::{Resource, getrlimit, setrlimit};
        let limit = getrlimit(Resource::Nofile);
        if let (Some(soft), Some(hard)) = (limit.current, limit.maximum) {
            if soft < hard {
                let raised = rustix::process::Rlimit {
                    current: Some(hard),
                    maximum: Some(hard),
                };
                match setrlimit(Resource::Nofile, raised) {
                    Ok(()) => {
                        debug!(
                            backend = "http",
                            from = soft,
                            to = hard,
                            "raised the open files limit"
                        );
                        return Some(hard);
                    }
                    Err(error) => {
                        debug!(backend = "http", %error, soft, "cannot raise the open files limit");
                    }
                }
            }
        }
        limit.current
    }
    #[cfg(not(unix))]
    None
}

/// `connections`, or fewer when this process may not open that many descriptors (its soft
/// `RLIMIT_NOFILE`, less a reserve): a cap the kernel would enforce with `EMFILE` instead.
fn connection_cap(connections: usize) -> usize {
    #[cfg(unix)]
    {
        use rustix::process::{Resource, getrlimit};
        if let Some(soft) = getrlimit(Resource::Nofile).current {
            let room =
                usize::try_from(soft.saturating_sub(RESERVED_FDS).max(1)).unwrap_or(usize::MAX);
            if room < connections {
                warn!(
                    backend = "http",
                    max_connections = connections,
                    file_limit = soft,
                    serving_at_most = room,
                    "max-connections is above what this process may open; raise `ulimit -n`"
                );
                return room;
            }
        }
    }
    connections
}
