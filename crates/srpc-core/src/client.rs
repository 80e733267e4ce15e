//! [`Client`]: one TCP connection carrying many concurrent calls, matched by sequence number.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::task::AbortHandle;
use tracing::debug;

use crate::codec::Codec;
use crate::error::{Error, Result};
use crate::frame::{self, ACCEPTED, BUSY, DEFAULT_MAX_FRAME, Frame, MAGIC, VERSION, preface};
use crate::metadata::Metadata;

/// TLS settings of a client connection.
#[cfg(feature = "tls")]
#[derive(Clone)]
pub struct ClientTls {
    /// The rustls configuration (roots, client certificate).
    pub config: std::sync::Arc<rustls::ClientConfig>,
    /// The name the server's certificate must carry; the host of the address when `None`.
    pub server_name: Option<String>,
}

#[cfg(feature = "tls")]
impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "tls")]
impl PartialEq for ClientTls {
    fn eq(&self, other: &ClientTls) -> bool {
        Arc::ptr_eq(&self.config, &other.config) && self.server_name == other.server_name
    }
}

#[cfg(feature = "tls")]
impl Eq for ClientTls {}

/// Connection settings.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientOptions {
    /// Codec named in the preface (default JSON).
    pub codec: Codec,
    /// How long opening the connection and exchanging prefaces may take (default 3 s).
    pub connect_timeout: Duration,
    /// Largest frame, both ways (default 16 MiB, [`DEFAULT_MAX_FRAME`], the server's default
    /// too): a reply over it closes the connection, and a call over it is refused with
    /// [`Error::TooLarge`] before anything is written.
    pub max_frame: u32,
    /// TLS, when the server speaks it (default none: plain TCP).
    #[cfg(feature = "tls")]
    pub tls: Option<ClientTls>,
}

impl Default for ClientOptions {
    fn default() -> ClientOptions {
        ClientOptions {
            codec: Codec::Json,
            connect_timeout: Duration::from_secs(3),
            max_frame: DEFAULT_MAX_FRAME,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }
}

impl ClientOptions {
    /// With another codec.
    #[must_use]
    pub fn with_codec(mut self, codec: Codec) -> ClientOptions {
        self.codec = codec;
        self
    }

    /// With another maximum frame (both ways). Keep it at or under the server's.
    #[must_use]
    pub fn with_max_frame(mut self, bytes: u32) -> ClientOptions {
        self.max_frame = bytes;
        self
    }

    /// Over TLS with `config`, checking the server's certificate against `server_name` (the
    /// address's host when `None`).
    #[cfg(feature = "tls")]
    #[must_use]
    pub fn with_tls(
        mut self,
        config: std::sync::Arc<rustls::ClientConfig>,
        server_name: Option<String>,
    ) -> ClientOptions {
        self.tls = Some(ClientTls {
            config,
            server_name,
        });
        self
    }

    /// With another connect timeout.
    #[must_use]
    pub fn with_connect_timeout(mut self, timeout: Duration) -> ClientOptions {
        self.connect_timeout = timeout;
        self
    }
}

/// A connection to one srpc server. Cheap to clone; every clone shares the connection. The
/// connection closes when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    addr: String,
    codec: Codec,
    /// The preface features the server takes (`frame::FEATURE_…`).
    features: u8,
    max_frame: u32,
    tx: mpsc::Sender<Vec<u8>>,
    /// Calls waiting for their reply, shared with the reader task.
    pending: Arc<Pending>,
    next_seq: AtomicU64,
    in_flight: AtomicUsize,
    /// Set by the I/O tasks when the connection ends.
    closed: Arc<AtomicBool>,
    tasks: [AbortHandle; 2],
}

/// Calls waiting for their reply, by sequence number.
type Waiting = HashMap<u64, oneshot::Sender<Result<Vec<u8>>>, BuildSeqHasher>;
type Pending = Mutex<Waiting>;

/// Hashes the pending map's keys: sequence numbers are distinct counters, so one multiply
/// spreads them over the buckets (SipHash's resistance to chosen keys buys nothing here).
type BuildSeqHasher = std::hash::BuildHasherDefault<SeqHasher>;

#[derive(Default)]
struct SeqHasher(u64);

impl std::hash::Hasher for SeqHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.write_u64(self.0.rotate_left(8) ^ u64::from(byte));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

impl Client {
    /// Opens a connection to `addr` (`host:port`) and exchanges prefaces (after the TLS
    /// handshake, with [`ClientOptions::tls`]).
    pub async fn connect(addr: &str, options: ClientOptions) -> Result<Client> {
        let connecting = async {
            let stream = TcpStream::connect(addr)
                .await
                .map_err(|source| Error::Connect {
                    addr: addr.to_owned(),
                    source,
                })?;
            let _ = stream.set_nodelay(true);
            #[cfg(feature = "tls")]
            if let Some(tls) = &options.tls {
                let host = match &tls.server_name {
                    Some(name) => name.clone(),
                    None => host_of(addr).to_owned(),
                };
                let name = rustls::pki_types::ServerName::try_from(host.clone()).map_err(|_| {
                    Error::Protocol(format!(
                        "{host:?} is not a name a TLS certificate can carry"
                    ))
                })?;
                let mut stream = tokio_rustls::TlsConnector::from(tls.config.clone())
                    .connect(name, stream)
                    .await
                    .map_err(|e| closed(addr, &format!("TLS handshake failed: {e}")))?;
                let features = exchange_prefaces(&mut stream, addr, options.codec).await?;
                let (reader, writer) = tokio::io::split(stream);
                return Ok(Client::start(
                    reader,
                    writer,
                    addr.to_owned(),
                    &options,
                    features,
                ));
            }
            let mut stream = stream;
            let features = exchange_prefaces(&mut stream, addr, options.codec).await?;
            let (reader, writer) = stream.into_split();
            Ok(Client::start(
                reader,
                writer,
                addr.to_owned(),
                &options,
                features,
            ))
        };
        tokio::time::timeout(options.connect_timeout, connecting)
            .await
            .map_err(|_| Error::ConnectTimeout {
                addr: addr.to_owned(),
                after: options.connect_timeout,
            })?
    }

    fn start<R, W>(
        reader: R,
        writer: W,
        addr: String,
        options: &ClientOptions,
        features: u8,
    ) -> Client
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let mut reader = tokio::io::BufReader::with_capacity(64 * 1024, reader);
        let (tx, mut rx) = mpsc::channel::<Vec<u8>>(1024);
        let pending: Arc<Pending> = Arc::default();
        let closed_flag = Arc::new(AtomicBool::new(false));

        let write_closed = closed_flag.clone();
        let write_pending = pending.clone();
        let write_addr = addr.clone();
        let write = tokio::spawn(async move {
            if let Err(error) = frame::write_loop(writer, &mut rx).await {
                write_closed.store(true, Ordering::Release);
                fail_all(
                    &write_pending,
                    &write_addr,
                    &format!("write failed: {error}"),
                );
            }
        });

        let read_closed = closed_flag.clone();
        let read_pending = pending.clone();
        let read_addr = addr.clone();
        let max = options.max_frame;
        let read = tokio::spawn(async move {
            let reason = loop {
                match frame::read_frame_or_skip(&mut reader, max).await {
                    Ok(Some(Ok(Frame::Response { seq, body }))) => {
                        deliver(&read_pending, seq, Ok(body))
                    }
                    Ok(Some(Ok(Frame::Error {
                        seq: 0, message, ..
                    }))) => break format!("server closed the connection: {message}"),
                    Ok(Some(Ok(Frame::Error { seq, code, message }))) => deliver(
                        &read_pending,
                        seq,
                        Err(Error::Remote {
                            method: String::new(),
                            code,
                            message,
                        }),
                    ),
                    // A reply over the limit fails its own call only.
                    Ok(Some(Err(skipped)))
                        if skipped.seq != 0
                            && !matches!(skipped.kind, frame::REQUEST | frame::REQUEST_META) =>
                    {
                        deliver(
                            &read_pending,
                            skipped.seq,
                            Err(Error::ReplyTooLarge {
                                method: String::new(),
                                size: skipped.len,
                                limit: max,
                            }),
                        )
                    }
                    Ok(Some(Err(skipped))) => {
                        break format!(
                            "server sent a frame of {} bytes, over the maximum of {max}",
                            skipped.len
                        );
                    }
                    Ok(Some(Ok(Frame::Request { .. }))) => {
                        break "server sent a request".to_owned();
                    }
                    Ok(None) => break "server closed the connection".to_owned(),
                    Err(error) => break error.to_string(),
                }
            };
            read_closed.store(true, Ordering::Release);
            fail_all(&read_pending, &read_addr, &reason);
            debug!(addr = %read_addr, %reason, "connection ended");
        });

        Client {
            inner: Arc::new(Inner {
                addr,
                codec: options.codec,
                features,
                max_frame: options.max_frame,
                tx,
                pending,
                next_seq: AtomicU64::new(1),
                in_flight: AtomicUsize::new(0),
                closed: closed_flag,
                tasks: [write.abort_handle(), read.abort_handle()],
            }),
        }
    }

    /// The address this client is connected to.
    pub fn addr(&self) -> &str {
        &self.inner.addr
    }

    /// The codec of the connection.
    pub fn codec(&self) -> Codec {
        self.inner.codec
    }

    /// Calls in flight on this connection now.
    pub fn in_flight(&self) -> usize {
        self.inner.in_flight.load(Ordering::Relaxed)
    }

    /// Whether the connection has ended (a new one must be opened).
    pub fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::Acquire) || self.inner.tx.is_closed()
    }

    /// Calls `method` with `request`, waiting at most `deadline` (also sent to the server,
    /// which stops the handler when it passes).
    pub async fn call<Req, Resp>(
        &self,
        method: &str,
        request: &Req,
        deadline: Duration,
    ) -> Result<Resp>
    where
        Req: Serialize + ?Sized,
        Resp: DeserializeOwned,
    {
        self.call_with_metadata(method, request, deadline, &Metadata::new())
            .await
    }

    /// Whether the server takes call metadata (servers older than it do not).
    pub fn takes_metadata(&self) -> bool {
        self.inner.features & frame::FEATURE_METADATA != 0
    }

    /// [`Client::call`] with metadata, which the handler reads from its
    /// [`CallContext`](crate::CallContext). A server older than metadata cannot take it:
    /// such a call fails with [`Error::Unsupported`] before anything is sent (retryable:
    /// another endpoint may be newer). Empty metadata goes to any server.
    pub async fn call_with_metadata<Req, Resp>(
        &self,
        method: &str,
        request: &Req,
        deadline: Duration,
        metadata: &Metadata,
    ) -> Result<Resp>
    where
        Req: Serialize + ?Sized,
        Resp: DeserializeOwned,
    {
        let inner = &self.inner;
        if !metadata.is_empty() && !self.takes_metadata() {
            return Err(Error::Unsupported {
                addr: inner.addr.clone(),
                what: "call metadata (it runs an older srpc)",
            });
        }
        if method.len() > usize::from(u16::MAX) {
            return Err(Error::Codec(format!(
                "the method name is {} bytes; the protocol allows at most {}",
                method.len(),
                u16::MAX
            )));
        }
        let seq = inner.next_seq.fetch_add(1, Ordering::Relaxed);
        let timeout_ms = u32::try_from(deadline.as_millis())
            .unwrap_or(u32::MAX)
            .max(1);
        // The frame is built in one buffer: header, then the argument encoded after it.
        let head = frame::request_head_with(seq, timeout_ms, method, metadata, 64);
        let mut frame = inner.codec.encode_into(request, head)?;
        // A frame over the limit would make the server close the connection every other call
        // shares: refuse it here, before a byte is written.
        let size = frame.len().saturating_sub(4);
        if size > inner.max_frame as usize {
            return Err(Error::TooLarge {
                method: method.to_owned(),
                size,
                limit: inner.max_frame,
            });
        }
        frame::set_length(&mut frame);
        let (reply_tx, reply_rx) = oneshot::channel();
        inner.pending().insert(seq, reply_tx);
        inner.in_flight.fetch_add(1, Ordering::Relaxed);
        let _in_flight = InFlight(&inner.in_flight);
        if inner.tx.send(frame).await.is_err() {
            inner.pending().remove(&seq);
            return Err(closed(&inner.addr, "connection is closed"));
        }
        let reply = match tokio::time::timeout(deadline, reply_rx).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(_)) => Err(closed(&inner.addr, "connection ended before the reply")),
            Err(_) => {
                inner.pending().remove(&seq);
                return Err(Error::Timeout {
                    method: method.to_owned(),
                    after: deadline,
                });
            }
        };
        match reply {
            Ok(bytes) => inner.codec.decode(&bytes),
            Err(Error::Remote { code, message, .. }) => Err(Error::Remote {
                method: method.to_owned(),
                code,
                message,
            }),
            Err(Error::ReplyTooLarge { size, limit, .. }) => Err(Error::ReplyTooLarge {
                method: method.to_owned(),
                size,
                limit,
            }),
            Err(other) => Err(other),
        }
    }
}

struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Inner {
    fn pending(&self) -> MutexGuard<'_, Waiting> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

fn deliver(pending: &Pending, seq: u64, reply: Result<Vec<u8>>) {
    let sender = pending
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&seq);
    if let Some(sender) = sender {
        let _ = sender.send(reply);
    }
}

fn fail_all(pending: &Pending, addr: &str, reason: &str) {
    let waiting: Vec<_> = pending
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .drain()
        .collect();
    for (_, sender) in waiting {
        let _ = sender.send(Err(closed(addr, reason)));
    }
}

/// The host of `host:port` (`[v6]:port` too), for the TLS server name.
#[cfg(feature = "tls")]
fn host_of(addr: &str) -> &str {
    let host = addr.rsplit_once(':').map_or(addr, |(host, _)| host);
    host.trim_start_matches('[').trim_end_matches(']')
}

/// Sends the preface and reads the server's answer.
/// Sends the preface and reads the answer: the features the server takes.
async fn exchange_prefaces<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    addr: &str,
    codec: Codec,
) -> Result<u8> {
    stream
        .write_all(&preface(codec))
        .await
        .map_err(|e| closed(addr, &e.to_string()))?;
    let mut answer = [0u8; 8];
    stream.read_exact(&mut answer).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            closed(
                addr,
                "closed the connection without answering the srpc preface (a TLS endpoint \
                 asked for plain srpc? give the client TLS settings)",
            )
        } else {
            closed(addr, &format!("no preface answer: {e}"))
        }
    })?;
    if &answer[..4] != MAGIC || answer[4] != VERSION {
        return Err(Error::Protocol(format!(
            "{addr} is not an srpc server (answer {answer:?})"
        )));
    }
    match answer[6] {
        // Byte 7: the features the server takes (0 from servers older than features).
        ACCEPTED => Ok(answer[7] & frame::FEATURES),
        BUSY => Err(Error::Protocol(format!(
            "{addr} is at its connection limit and refused the connection"
        ))),
        status => Err(Error::Protocol(format!(
            "{addr} refused the preface (status {status})"
        ))),
    }
}

fn closed(addr: &str, reason: &str) -> Error {
    Error::Closed {
        addr: addr.to_owned(),
        reason: reason.to_owned(),
    }
}
