//! [`Server`]: async handlers by `"Service.Method"` name, many concurrent calls per
//! connection, per-call deadlines, and graceful shutdown.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};
use tracing::{debug, info, warn};

use crate::codec::Codec;
use crate::error::{RemoteCode, shorten};
use crate::frame::{
    self, ACCEPTED, BAD_CODEC, BAD_VERSION, BUSY, DEFAULT_MAX_FRAME, Frame, MAGIC, VERSION,
};
use crate::metadata::CallContext;

/// What a handler returns on failure: sent to the caller as a `handler` error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandlerError(pub String);

impl fmt::Display for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for HandlerError {}

impl From<String> for HandlerError {
    fn from(message: String) -> HandlerError {
        HandlerError(message)
    }
}

impl From<&str> for HandlerError {
    fn from(message: &str) -> HandlerError {
        HandlerError(message.to_owned())
    }
}

/// A handler's outcome: a response frame without its sequence number and length (see
/// [`frame::response_head`]), or an error for the caller.
type Reply = Result<Vec<u8>, (RemoteCode, String)>;
type Handler = Arc<dyn Fn(Codec, Vec<u8>, CallContext) -> BoxFuture<'static, Reply> + Send + Sync>;

/// The default cap on calls in flight on one connection ([`Server::with_max_calls`]).
pub const DEFAULT_MAX_CALLS_PER_CONNECTION: usize = 1024;
/// The default cap on open connections ([`Server::with_max_connections`]).
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;
/// The default time a new connection has to send its preface ([`Server::with_preface_timeout`]).
pub const DEFAULT_PREFACE_TIMEOUT: Duration = Duration::from_secs(10);
/// The default time a connection with no call in flight may stay silent
/// ([`Server::with_idle_timeout`]).
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(600);
/// The default time [`RunningServer::shutdown`] lets calls in flight finish
/// ([`Server::with_shutdown_deadline`]).
pub const DEFAULT_SHUTDOWN_DEADLINE: Duration = Duration::from_secs(10);

/// A set of handlers and the limits they are served with, ready to serve.
#[derive(Clone)]
pub struct Server {
    handlers: HashMap<String, Handler>,
    max_frame: u32,
    max_calls: usize,
    max_connections: usize,
    preface_timeout: Duration,
    idle_timeout: Duration,
    shutdown_deadline: Duration,
    /// TLS for every connection, when set.
    #[cfg(feature = "tls")]
    tls: Option<tokio_rustls::TlsAcceptor>,
    /// The certificate, read again when its files change, when given as files.
    #[cfg(feature = "tls")]
    reloading: Option<Arc<srpc_tls::ReloadingCert>>,
}

/// A server accepting connections; [`RunningServer::shutdown`] stops it gracefully.
#[derive(Debug)]
pub struct RunningServer {
    addr: SocketAddr,
    /// `None` while serving; the shutdown deadline once stopping.
    stop: watch::Sender<Option<Duration>>,
    deadline: Duration,
    task: JoinHandle<()>,
    /// The certificate given as files, and the task that watches them.
    #[cfg(feature = "tls")]
    reloading: Option<(Arc<srpc_tls::ReloadingCert>, AbortOnDrop)>,
}

impl Default for Server {
    /// The same as [`Server::new`]: the default maximum frame, not a maximum of zero.
    fn default() -> Server {
        Server::new()
    }
}

impl Server {
    /// A server with no handlers and the default limits: 16 MiB frames, 1,024 calls in
    /// flight per connection, 4,096 connections, a 10 s preface timeout, a 10 min idle
    /// timeout and a 10 s shutdown deadline.
    pub fn new() -> Server {
        Server {
            handlers: HashMap::new(),
            max_frame: DEFAULT_MAX_FRAME,
            max_calls: DEFAULT_MAX_CALLS_PER_CONNECTION,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            preface_timeout: DEFAULT_PREFACE_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            shutdown_deadline: DEFAULT_SHUTDOWN_DEADLINE,
            #[cfg(feature = "tls")]
            tls: None,
            #[cfg(feature = "tls")]
            reloading: None,
        }
    }

    /// Serves every connection over TLS with the certificate and key files of `tls` (and
    /// client certificates required when it names a client CA); the files are read now (an
    /// error names the one at fault) and again when they change or on
    /// [`RunningServer::reload_tls`]. New connections get the new certificate; open ones
    /// keep theirs.
    #[cfg(feature = "tls")]
    pub fn with_tls_files(mut self, tls: &srpc_tls::ServerTls) -> std::io::Result<Server> {
        let (config, reloading) = srpc_tls::server_config(tls, false)?;
        self.tls = Some(tokio_rustls::TlsAcceptor::from(config));
        self.reloading = Some(reloading);
        Ok(self)
    }

    /// Serves every connection over TLS with `config` (mutual TLS when it verifies client
    /// certificates). The handshake must end within the preface timeout. A client that
    /// speaks plain srpc to it gets its connection closed at once.
    #[cfg(feature = "tls")]
    #[must_use]
    pub fn with_tls(mut self, config: Arc<rustls::ServerConfig>) -> Server {
        self.tls = Some(tokio_rustls::TlsAcceptor::from(config));
        self
    }

    /// At most `calls` calls run at once per connection (at least 1). A connection at the cap
    /// is not read until one of its calls finishes: the client's frames wait in its socket
    /// (TCP's flow control), not in this server's memory.
    #[must_use]
    pub fn with_max_calls(mut self, calls: usize) -> Server {
        self.max_calls = calls.max(1);
        self
    }

    /// At most `connections` connections are open at once (at least 1). Past the cap a new
    /// connection is answered with the `busy` preface status and closed at once.
    #[must_use]
    pub fn with_max_connections(mut self, connections: usize) -> Server {
        self.max_connections = connections.max(1);
        self
    }

    /// A connection that has not sent its 8-byte preface within `timeout` is closed.
    #[must_use]
    pub fn with_preface_timeout(mut self, timeout: Duration) -> Server {
        self.preface_timeout = timeout;
        self
    }

    /// A connection with no call in flight that sends nothing for `timeout` is closed (the
    /// srpc client then opens a new one for its next call).
    #[must_use]
    pub fn with_idle_timeout(mut self, timeout: Duration) -> Server {
        self.idle_timeout = timeout;
        self
    }

    /// How long [`RunningServer::shutdown`] lets calls in flight finish before it cancels
    /// them and closes their connections.
    #[must_use]
    pub fn with_shutdown_deadline(mut self, deadline: Duration) -> Server {
        self.shutdown_deadline = deadline;
        self
    }

    /// Frames longer than `bytes` close the connection that sent them.
    #[must_use]
    pub fn with_max_frame(mut self, bytes: u32) -> Server {
        self.max_frame = bytes;
        self
    }

    /// Registers an async handler under `method` (`"Service.Method"`). Arguments and replies
    /// are whatever serde types the handler takes; the connection's codec encodes them.
    ///
    /// A handler's future is polled once on the connection's reader, and gets a task of its
    /// own only if it is not done then. This makes the common quick handler cheap. Do not
    /// block in a handler: put CPU-heavy or blocking work in `tokio::task::spawn_blocking`.
    #[must_use]
    pub fn handle<Req, Resp, F, Fut>(self, method: &str, handler: F) -> Server
    where
        Req: DeserializeOwned + Send + 'static,
        Resp: Serialize + Send + 'static,
        F: Fn(Req) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Resp, HandlerError>> + Send + 'static,
    {
        self.handle_with_context(method, move |_context: CallContext, request: Req| {
            handler(request)
        })
    }

    /// [`Server::handle`] for a handler that also wants to know about its call: the
    /// caller's address, the deadline, the metadata ([`CallContext`]).
    ///
    /// ```
    /// use srpc_core::{CallContext, HandlerError, Server};
    ///
    /// let server = Server::new().handle_with_context(
    ///     "Echo.Whoami",
    ///     |call: CallContext, (): ()| async move {
    ///         let tenant = call.metadata.get("tenant").unwrap_or("none").to_owned();
    ///         Ok::<_, HandlerError>(format!("{} for tenant {tenant}", call.peer))
    ///     },
    /// );
    /// ```
    #[must_use]
    pub fn handle_with_context<Req, Resp, F, Fut>(mut self, method: &str, handler: F) -> Server
    where
        Req: DeserializeOwned + Send + 'static,
        Resp: Serialize + Send + 'static,
        F: Fn(CallContext, Req) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Resp, HandlerError>> + Send + 'static,
    {
        let handler = Arc::new(handler);
        let erased: Handler = Arc::new(move |codec: Codec, body: Vec<u8>, context: CallContext| {
            let handler = handler.clone();
            Box::pin(async move {
                // The decode error quotes the argument: 200 bytes of it at most.
                let request: Req = codec
                    .decode(&body)
                    .map_err(|e| (RemoteCode::BadRequest, shorten(&e.to_string(), 200)))?;
                let reply = handler(context, request)
                    .await
                    .map_err(|e| (RemoteCode::Handler, e.0))?;
                // The reply is encoded straight into its response frame.
                codec
                    .encode_into(&reply, frame::response_head(64))
                    .map_err(|e| (RemoteCode::Internal, e.to_string()))
            })
        });
        self.handlers.insert(method.to_owned(), erased);
        self
    }

    /// The registered method names.
    pub fn methods(&self) -> impl Iterator<Item = &str> {
        self.handlers.keys().map(String::as_str)
    }

    /// Binds `addr` and serves in the background.
    pub async fn bind(
        self,
        addr: impl tokio::net::ToSocketAddrs,
    ) -> std::io::Result<RunningServer> {
        let listener = TcpListener::bind(addr).await?;
        Ok(self.serve(listener))
    }

    /// Serves connections accepted from `listener` in the background.
    pub fn serve(self, listener: TcpListener) -> RunningServer {
        let addr = listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        let (stop, stopped) = watch::channel(None);
        let deadline = self.shutdown_deadline;
        #[cfg(feature = "tls")]
        let reloading = self.reloading.clone().map(|cert| {
            let watching = AbortOnDrop(tokio::spawn(cert.clone().watch()));
            (cert, watching)
        });
        let server = Arc::new(self);
        let task = tokio::spawn(server.accept_loop(listener, addr, stopped));
        info!(%addr, "srpc server listening");
        RunningServer {
            addr,
            stop,
            deadline,
            task,
            #[cfg(feature = "tls")]
            reloading,
        }
    }

    async fn accept_loop(
        self: Arc<Self>,
        listener: TcpListener,
        addr: SocketAddr,
        stopped: watch::Receiver<Option<Duration>>,
    ) {
        let mut connections = JoinSet::new();
        let mut stopping = stopped.clone();
        let mut full = false;
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        // Reap closed connections so the count is of open ones.
                        while connections.try_join_next().is_some() {}
                        if connections.len() >= self.max_connections {
                            if !full {
                                warn!(%addr, limit = self.max_connections,
                                    "connection limit reached; refusing new connections");
                                full = true;
                            }
                            refuse_busy(&stream, peer);
                            continue;
                        }
                        if full {
                            info!(%addr, "below the connection limit again");
                            full = false;
                        }
                        let _ = stream.set_nodelay(true);
                        connections.spawn(self.clone().accepted(stream, peer, stopped.clone()));
                    }
                    Err(error) => {
                        // Out of file descriptors or buffers here: nothing the peer did.
                        // Pause, or the loop would spin on the same error.
                        warn!(%addr, %error, "accept failed (a local error); pausing 100 ms");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                () = async { let _ = stopping.wait_for(Option::is_some).await; } => break,
            }
        }
        let asked = *stopping.borrow();
        let deadline = asked.unwrap_or(self.shutdown_deadline);
        drop(listener);
        // Every connection finishes its calls in flight, then closes; past the deadline the
        // calls still running are cancelled and their connections closed.
        let drained = tokio::time::timeout(deadline, async {
            while connections.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            warn!(%addr, connections = connections.len(), ?deadline,
                "shutdown deadline passed; cancelling calls still running and closing");
            connections.shutdown().await;
        }
    }

    /// A connection just accepted: its TLS handshake first when the server has TLS.
    async fn accepted(
        self: Arc<Self>,
        stream: TcpStream,
        peer: SocketAddr,
        stopping: watch::Receiver<Option<Duration>>,
    ) {
        #[cfg(feature = "tls")]
        if let Some(acceptor) = self.tls.clone() {
            let mut stopping = stopping;
            let handshake = tokio::select! {
                done = tokio::time::timeout(self.preface_timeout, acceptor.accept(stream)) => done,
                _ = stopping.wait_for(Option::is_some) => return,
            };
            let stream = match handshake {
                Ok(Ok(stream)) => stream,
                Ok(Err(error)) => {
                    debug!(%peer, %error, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    debug!(%peer, "no TLS handshake in time; closing");
                    return;
                }
            };
            let (reader, writer) = tokio::io::split(stream);
            return self.connection(reader, writer, peer, stopping).await;
        }
        let (reader, writer) = stream.into_split();
        self.connection(reader, writer, peer, stopping).await;
    }

    async fn connection<R, W>(
        self: Arc<Self>,
        mut reader: R,
        mut writer: W,
        peer: SocketAddr,
        mut stopping: watch::Receiver<Option<Duration>>,
    ) where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        // The preface names the codec; it is answered before any frame is buffered.
        let mut preface = [0u8; 8];
        let read = tokio::select! {
            read = tokio::time::timeout(self.preface_timeout, reader.read_exact(&mut preface)) => read,
            _ = stopping.wait_for(Option::is_some) => return,
        };
        match read {
            Ok(Ok(_)) => {}
            Ok(Err(_)) => return,
            Err(_) => {
                debug!(%peer, timeout = ?self.preface_timeout, "no preface in time; closing");
                return;
            }
        }
        let status = if &preface[..4] != MAGIC || preface[4] != VERSION {
            BAD_VERSION
        } else if Codec::from_wire(preface[5]).is_none() {
            BAD_CODEC
        } else {
            ACCEPTED
        };
        // Byte 6 of the client's preface offers features (0 from older clients); the
        // answer's byte 7 says which this server takes.
        let features = preface[6] & frame::FEATURES;
        let answer = [
            MAGIC[0], MAGIC[1], MAGIC[2], MAGIC[3], VERSION, preface[5], status, features,
        ];
        let answered = tokio::time::timeout(self.preface_timeout, writer.write_all(&answer)).await;
        if !matches!(answered, Ok(Ok(()))) || status != ACCEPTED {
            warn!(%peer, status, "refused connection preface");
            return;
        }
        let Some(codec) = Codec::from_wire(preface[5]) else {
            return;
        };

        let mut reader = tokio::io::BufReader::with_capacity(64 * 1024, reader);
        let (tx, mut rx) = mpsc::channel::<Vec<u8>>(1024);
        // Aborted if this connection is cancelled (shutdown deadline): a writer blocked on a
        // peer that does not read must not outlive it.
        let mut write = AbortOnDrop(tokio::spawn(async move {
            if let Err(error) = frame::write_loop(writer, &mut rx).await {
                debug!(%error, "write failed");
            }
        }));
        let mut calls = JoinSet::new();
        // Calls running in tasks, and a wake-up when the last ends: the idle timer runs only
        // while there are none. (Only this reader starts calls, so while it waits for a
        // frame the count can only fall.)
        let running = Arc::new(Running::default());
        'frames: loop {
            // At the cap, read nothing more until a call finishes: backpressure to the peer.
            while calls.len() >= self.max_calls {
                tokio::select! {
                    _ = calls.join_next() => {}
                    _ = stopping.wait_for(Option::is_some) => break 'frames,
                }
            }
            let next = tokio::select! {
                next = frame::read_frame_or_skip(&mut reader, self.max_frame) => next,
                _ = stopping.wait_for(Option::is_some) => break,
                () = running.idle_for(self.idle_timeout) => {
                    debug!(%peer, timeout = ?self.idle_timeout, "idle connection closed");
                    break;
                }
            };
            let next = match next {
                Ok(Some(Err(skipped)))
                    if matches!(skipped.kind, frame::REQUEST | frame::REQUEST_META)
                        && skipped.seq != 0 =>
                {
                    // Read past: only this call fails, the connection carries on.
                    let frame = Frame::Error {
                        seq: skipped.seq,
                        code: RemoteCode::BadRequest,
                        message: format!(
                            "the request is {} bytes, over this server's maximum frame of {} bytes",
                            skipped.len, self.max_frame
                        ),
                    };
                    debug!(%peer, len = skipped.len, "request over the maximum frame refused");
                    let _ = tx.send(frame.encode()).await;
                    continue;
                }
                Ok(Some(Err(skipped))) => Err(crate::error::Error::Protocol(format!(
                    "frame of {} bytes exceeds the maximum of {}",
                    skipped.len, self.max_frame
                ))),
                Ok(Some(Ok(frame))) => Ok(Some(frame)),
                Ok(None) => Ok(None),
                Err(error) => Err(error),
            };
            match next {
                Ok(Some(Frame::Request {
                    seq,
                    timeout_ms,
                    method,
                    metadata,
                    body,
                })) => {
                    let Some(handler) = self.handlers.get(&method).cloned() else {
                        let frame = Frame::Error {
                            seq,
                            code: RemoteCode::NotFound,
                            message: format!("no handler for {method:?}"),
                        };
                        let _ = tx.send(frame.encode()).await;
                        continue;
                    };
                    // A panicking handler answers `internal` instead of leaving its caller
                    // waiting for the deadline.
                    // One deadline: the handler's view of it and its enforcement below.
                    let deadline = (timeout_ms > 0).then(|| {
                        tokio::time::Instant::now() + Duration::from_millis(u64::from(timeout_ms))
                    });
                    let context = CallContext {
                        deadline,
                        peer,
                        metadata,
                    };
                    let mut call = AssertUnwindSafe(handler(codec, body, context)).catch_unwind();
                    // Most handlers answer without waiting: poll once here, and give a task
                    // (and a deadline timer) only to those that are not done. That saves a
                    // task, a timer and a wake-up per quick call. Futures re-register their
                    // waker on every poll, so moving a once polled future into a task is
                    // sound.
                    let answered = {
                        let mut cx =
                            std::task::Context::from_waker(futures_util::task::noop_waker_ref());
                        match call.poll_unpin(&mut cx) {
                            std::task::Poll::Ready(outcome) => Some(reply_frame(seq, outcome)),
                            std::task::Poll::Pending => None,
                        }
                    };
                    if let Some(frame) = answered {
                        let _ = tx.send(frame).await;
                    } else {
                        let tx = tx.clone();
                        let running = running.clone().enter();
                        calls.spawn(async move {
                            let _running = running;
                            let outcome = match deadline {
                                None => call.await,
                                Some(deadline) => tokio::time::timeout_at(deadline, call)
                                    .await
                                    .unwrap_or_else(|_| {
                                        let allowed = Duration::from_millis(u64::from(timeout_ms));
                                        Ok(Err((
                                            RemoteCode::DeadlineExceeded,
                                            format!("{method} ran past its {allowed:?} deadline"),
                                        )))
                                    }),
                            };
                            let _ = tx.send(reply_frame(seq, outcome)).await;
                        });
                    }
                }
                Ok(Some(other)) => {
                    self.refuse(
                        &tx,
                        peer,
                        format!("unexpected frame from a client: {other:?}"),
                    )
                    .await;
                    break;
                }
                Ok(None) => break,
                Err(error) => {
                    self.refuse(&tx, peer, error.to_string()).await;
                    break;
                }
            }
            // Reap finished calls so the set does not grow with a long-lived connection.
            while calls.try_join_next().is_some() {}
        }
        while calls.join_next().await.is_some() {}
        drop(tx);
        let _ = (&mut write.0).await;
        debug!(%peer, "connection closed");
    }

    /// Tells the client why its connection is being closed (sequence 0), best effort.
    async fn refuse(&self, tx: &mpsc::Sender<Vec<u8>>, peer: SocketAddr, message: String) {
        warn!(%peer, %message, "closing connection");
        let frame = Frame::Error {
            seq: 0,
            code: RemoteCode::Other(7),
            message,
        };
        let _ = tx.send(frame.encode()).await;
    }
}

/// How many of a connection's calls run in tasks, and a wake-up when none do.
#[derive(Default)]
struct Running {
    count: std::sync::atomic::AtomicUsize,
    none: tokio::sync::Notify,
}

/// One call counted in [`Running`] until it ends or is cancelled.
struct RunningCall(Arc<Running>);

impl Running {
    fn enter(self: Arc<Self>) -> RunningCall {
        self.count.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        RunningCall(self)
    }

    /// Returns once no call has run for `timeout`, provided none starts meanwhile.
    async fn idle_for(&self, timeout: Duration) {
        loop {
            // Made before the check, so a wake-up between the two is not lost.
            let woken = self.none.notified();
            if self.count.load(std::sync::atomic::Ordering::Acquire) == 0 {
                break;
            }
            woken.await;
        }
        tokio::time::sleep(timeout).await;
    }
}

impl Drop for RunningCall {
    fn drop(&mut self) {
        if self
            .0
            .count
            .fetch_sub(1, std::sync::atomic::Ordering::AcqRel)
            == 1
        {
            self.0.none.notify_waiters();
        }
    }
}

/// Aborts its task when dropped.
#[derive(Debug)]
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Answers a connection over the cap with the `busy` preface status, without waiting for
/// anything (the socket's buffer is empty), and closes it.
fn refuse_busy(stream: &TcpStream, peer: SocketAddr) {
    let answer = [MAGIC[0], MAGIC[1], MAGIC[2], MAGIC[3], VERSION, 0, BUSY, 0];
    if let Err(error) = stream.try_write(&answer) {
        debug!(%peer, %error, "could not tell a refused connection why");
    }
    debug!(%peer, "connection refused: at the connection limit");
}

/// The frame answering call `seq`, from what its handler's future gave (or its panic).
fn reply_frame(seq: u64, outcome: std::thread::Result<Reply>) -> Vec<u8> {
    let reply =
        outcome.unwrap_or_else(|_| Err((RemoteCode::Internal, "the handler panicked".to_owned())));
    match reply {
        Ok(mut response) => {
            frame::set_response_seq(&mut response, seq);
            frame::set_length(&mut response);
            response
        }
        Err((code, message)) => Frame::Error { seq, code, message }.encode(),
    }
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut methods: Vec<&str> = self.methods().collect();
        methods.sort_unstable();
        f.debug_struct("Server").field("methods", &methods).finish()
    }
}

impl RunningServer {
    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting connections and reading new calls, lets every call in flight finish
    /// and send its reply, then closes the connections. Calls still running after the
    /// shutdown deadline ([`Server::with_shutdown_deadline`], 10 s by default) are cancelled
    /// and their connections closed.
    ///
    /// Fails only if the server's task itself failed (it panicked); as
    /// `HttpRegistryServer::shutdown` does, shutdown returns a `Result`.
    pub async fn shutdown(self) -> std::io::Result<()> {
        let deadline = self.deadline;
        self.shutdown_within(deadline).await
    }

    /// Reads the TLS certificate and key files again (what SIGHUP does to `srpc demo
    /// --serve`). On an error the certificate in use stays. Without files, nothing to do.
    #[cfg(feature = "tls")]
    pub fn reload_tls(&self) -> std::io::Result<()> {
        match &self.reloading {
            Some((cert, _)) => cert.reload(),
            None => Ok(()),
        }
    }

    /// [`RunningServer::shutdown`] with another deadline.
    pub async fn shutdown_within(self, deadline: Duration) -> std::io::Result<()> {
        self.stop.send_replace(Some(deadline));
        self.task
            .await
            .map_err(|e| std::io::Error::other(format!("the srpc server's task failed: {e}")))
    }

    /// Stops at once, dropping calls in flight (a crash, for tests).
    pub fn abort(self) {
        self.task.abort();
    }
}
