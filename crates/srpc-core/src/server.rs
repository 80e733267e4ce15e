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
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};
use tracing::{debug, info, warn};

use crate::codec::Codec;
use crate::error::RemoteCode;
use crate::frame::{
    self, ACCEPTED, BAD_CODEC, BAD_VERSION, DEFAULT_MAX_FRAME, Frame, MAGIC, VERSION,
};

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
type Handler = Arc<dyn Fn(Codec, Vec<u8>) -> BoxFuture<'static, Reply> + Send + Sync>;

/// A set of handlers, ready to serve.
#[derive(Clone)]
pub struct Server {
    handlers: HashMap<String, Handler>,
    max_frame: u32,
}

/// A server accepting connections; [`RunningServer::shutdown`] stops it gracefully.
#[derive(Debug)]
pub struct RunningServer {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Default for Server {
    /// The same as [`Server::new`]: the default maximum frame, not a maximum of zero.
    fn default() -> Server {
        Server::new()
    }
}

impl Server {
    /// A server with no handlers and the default maximum frame (16 MiB).
    pub fn new() -> Server {
        Server {
            handlers: HashMap::new(),
            max_frame: DEFAULT_MAX_FRAME,
        }
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
    pub fn handle<Req, Resp, F, Fut>(mut self, method: &str, handler: F) -> Server
    where
        Req: DeserializeOwned + Send + 'static,
        Resp: Serialize + Send + 'static,
        F: Fn(Req) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Resp, HandlerError>> + Send + 'static,
    {
        let handler = Arc::new(handler);
        let erased: Handler = Arc::new(move |codec: Codec, body: Vec<u8>| {
            let handler = handler.clone();
            Box::pin(async move {
                let request: Req = codec
                    .decode(&body)
                    .map_err(|e| (RemoteCode::BadRequest, e.to_string()))?;
                let reply = handler(request)
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
        let (stop, stopped) = watch::channel(false);
        let server = Arc::new(self);
        let task = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            let mut stopping = stopped.clone();
            loop {
                tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok((stream, peer)) => {
                            let _ = stream.set_nodelay(true);
                            connections.spawn(server.clone().connection(stream, peer, stopped.clone()));
                        }
                        Err(error) => warn!(%error, "accept failed"),
                    },
                    _ = stopping.wait_for(|s| *s) => break,
                }
            }
            drop(listener);
            // Every connection finishes its calls in flight, then closes.
            while connections.join_next().await.is_some() {}
        });
        info!(%addr, "srpc server listening");
        RunningServer { addr, stop, task }
    }

    async fn connection(
        self: Arc<Self>,
        stream: TcpStream,
        peer: SocketAddr,
        mut stopping: watch::Receiver<bool>,
    ) {
        let (mut reader, mut writer) = stream.into_split();
        // The preface names the codec; it is answered before any frame is buffered.
        let mut preface = [0u8; 8];
        if reader.read_exact(&mut preface).await.is_err() {
            return;
        }
        let status = if &preface[..4] != MAGIC || preface[4] != VERSION {
            BAD_VERSION
        } else if Codec::from_wire(preface[5]).is_none() {
            BAD_CODEC
        } else {
            ACCEPTED
        };
        let answer = [
            MAGIC[0], MAGIC[1], MAGIC[2], MAGIC[3], VERSION, preface[5], status, 0,
        ];
        if writer.write_all(&answer).await.is_err() || status != ACCEPTED {
            warn!(%peer, status, "refused connection preface");
            return;
        }
        let Some(codec) = Codec::from_wire(preface[5]) else {
            return;
        };

        let mut reader = tokio::io::BufReader::with_capacity(64 * 1024, reader);
        let (tx, mut rx) = mpsc::channel::<Vec<u8>>(1024);
        let write = tokio::spawn(async move {
            if let Err(error) = frame::write_loop(writer, &mut rx).await {
                debug!(%error, "write failed");
            }
        });
        let mut calls = JoinSet::new();
        loop {
            let next = tokio::select! {
                next = frame::read_frame(&mut reader, self.max_frame) => next,
                _ = stopping.wait_for(|s| *s) => break,
            };
            match next {
                Ok(Some(Frame::Request {
                    seq,
                    timeout_ms,
                    method,
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
                    let mut call = AssertUnwindSafe(handler(codec, body)).catch_unwind();
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
                        calls.spawn(async move {
                            let outcome = if timeout_ms == 0 {
                                call.await
                            } else {
                                let deadline = Duration::from_millis(u64::from(timeout_ms));
                                tokio::time::timeout(deadline, call)
                                    .await
                                    .unwrap_or_else(|_| {
                                        Ok(Err((
                                            RemoteCode::DeadlineExceeded,
                                            format!("{method} ran past its {deadline:?} deadline"),
                                        )))
                                    })
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
        let _ = write.await;
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
    /// and send its reply, then closes the connections.
    pub async fn shutdown(self) {
        self.stop.send_replace(true);
        let _ = self.task.await;
    }

    /// Stops at once, dropping calls in flight (a crash, for tests).
    pub fn abort(self) {
        self.task.abort();
    }
}
