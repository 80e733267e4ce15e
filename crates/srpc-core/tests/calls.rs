//! srpc-core over real TCP on loopback.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code: failures panic.

use std::time::Duration;

use futures_util::future::join_all;
use serde::{Deserialize, Serialize};
use srpc_core::{
    Client, ClientOptions, Codec, Error, HandlerError, RemoteCode, RunningServer, Server,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Args {
    a: i64,
    b: i64,
    note: String,
}

const SECOND: Duration = Duration::from_secs(1);

async fn server() -> RunningServer {
    Server::new()
        .with_max_frame(64 * 1024)
        .handle("Foo.Sum", |args: Args| async move {
            Ok::<_, HandlerError>(args.a + args.b)
        })
        .handle("Foo.Echo", |text: String| async move {
            Ok::<_, HandlerError>(text)
        })
        .handle("Foo.Sleep", |ms: u64| async move {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok::<_, HandlerError>(ms)
        })
        .handle("Foo.Fail", |_: ()| async move {
            Err::<(), _>(HandlerError::from("division by zero"))
        })
        .handle("Foo.Panic", |_: ()| async move {
            if true {
                panic!("a bug in a handler");
            }
            Ok::<(), HandlerError>(())
        })
        .bind("127.0.0.1:0")
        .await
        .unwrap()
}

async fn client(server: &RunningServer, codec: Codec) -> Client {
    Client::connect(
        &server.local_addr().to_string(),
        ClientOptions::default().with_codec(codec),
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_calls_share_one_connection_and_get_their_own_replies() {
    let s = server().await;
    for codec in [Codec::Json, Codec::Binary] {
        let c = client(&s, codec).await;
        // Later calls finish first: replies must still reach their own callers.
        let calls = (0..100u64).map(|i| {
            let c = c.clone();
            async move {
                let slept: u64 = c.call("Foo.Sleep", &(100 - i), 5 * SECOND).await.unwrap();
                (100 - i, slept)
            }
        });
        for (asked, got) in join_all(calls).await {
            assert_eq!(asked, got);
        }
        let sum: i64 = c
            .call(
                "Foo.Sum",
                &Args {
                    a: 40,
                    b: 2,
                    note: "é中".into(),
                },
                SECOND,
            )
            .await
            .unwrap();
        assert_eq!(sum, 42);
        assert_eq!(c.in_flight(), 0);
    }
}

#[tokio::test]
async fn errors_are_typed_and_only_transport_errors_are_retryable() {
    let s = server().await;
    let c = client(&s, Codec::Json).await;
    let err = c.call::<_, ()>("Foo.Fail", &(), SECOND).await.unwrap_err();
    assert!(
        matches!(&err, Error::Remote { code: RemoteCode::Handler, message, .. } if message == "division by zero"),
        "{err}"
    );
    assert!(err.is_handler_error() && !err.is_retryable());
    let err = c.call::<_, ()>("Foo.Nope", &(), SECOND).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Remote {
                code: RemoteCode::NotFound,
                ..
            }
        ),
        "{err}"
    );
    let err = c
        .call::<_, i64>("Foo.Sum", &"not args", SECOND)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Remote {
                code: RemoteCode::BadRequest,
                ..
            }
        ),
        "{err}"
    );
    let err = Client::connect("127.0.0.1:1", ClientOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Connect { .. }) && err.is_retryable(),
        "{err}"
    );
    let started = std::time::Instant::now();
    let err = c
        .call::<_, ()>("Foo.Panic", &(), 10 * SECOND)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Remote {
                code: RemoteCode::Internal,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        started.elapsed() < 5 * SECOND,
        "a panicking handler answers at once"
    );
    // The connection still works after all of that.
    let echo: String = c.call("Foo.Echo", "still here", SECOND).await.unwrap();
    assert_eq!(echo, "still here");
}

#[tokio::test]
async fn deadlines_end_calls_on_both_sides() {
    let s = server().await;
    let c = client(&s, Codec::Binary).await;
    let err = c
        .call::<_, u64>("Foo.Sleep", &5_000u64, Duration::from_millis(100))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Timeout { .. }) && !err.is_retryable(),
        "{err}"
    );
    assert_eq!(c.in_flight(), 0, "a timed-out call leaves nothing pending");
    let ok: u64 = c.call("Foo.Sleep", &10u64, SECOND).await.unwrap();
    assert_eq!(ok, 10);
}

/// A raw connection that has passed the preface.
async fn raw(s: &RunningServer) -> TcpStream {
    let mut stream = TcpStream::connect(s.local_addr()).await.unwrap();
    stream
        .write_all(&srpc_core::frame::preface(Codec::Json))
        .await
        .unwrap();
    let mut answer = [0u8; 8];
    stream.read_exact(&mut answer).await.unwrap();
    assert_eq!(answer[6], srpc_core::frame::ACCEPTED);
    stream
}

#[tokio::test]
async fn malformed_and_oversized_frames_close_only_their_connection() {
    let s = server().await;
    let healthy = client(&s, Codec::Json).await;
    // A response from a client, over this server's 64 KiB limit.
    let oversized_response = srpc_core::frame::Frame::Response {
        seq: 1,
        body: vec![0; 65_536],
    }
    .encode();
    let bad_frames: [&[u8]; 3] = [
        &[0, 0, 0, 3, 9, 9, 9],                   // unknown kind, cut short
        &oversized_response,                      // read past, then refused: not a request
        &[0, 0, 0, 9, 2, 0, 0, 0, 0, 0, 0, 0, 1], // a client must not send responses
    ];
    for bytes in bad_frames {
        let mut stream = raw(&s).await;
        stream.write_all(bytes).await.unwrap();
        let mut rest = Vec::new();
        stream.read_to_end(&mut rest).await.unwrap();
        // The server says why (an error frame with sequence 0), then closes.
        let frame = srpc_core::frame::Frame::decode(&rest[4..]).unwrap();
        assert!(
            matches!(frame, srpc_core::frame::Frame::Error { seq: 0, .. }),
            "{frame:?}"
        );
        let sum: i64 = healthy
            .call(
                "Foo.Sum",
                &Args {
                    a: 1,
                    b: 1,
                    note: String::new(),
                },
                SECOND,
            )
            .await
            .unwrap();
        assert_eq!(sum, 2, "the server and other connections are unharmed");
    }
    // A bad preface is refused.
    let mut stream = TcpStream::connect(s.local_addr()).await.unwrap();
    stream.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    assert_eq!(answer[6], srpc_core::frame::BAD_VERSION);
    let err = Client::connect(&s.local_addr().to_string(), ClientOptions::default()).await;
    assert!(err.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_finishes_calls_in_flight() {
    let (started_tx, mut started) = tokio::sync::mpsc::channel::<()>(1);
    let s = Server::new()
        .handle("Foo.Slow", move |ms: u64| {
            let started_tx = started_tx.clone();
            async move {
                let _ = started_tx.send(()).await;
                tokio::time::sleep(Duration::from_millis(ms)).await;
                Ok::<_, HandlerError>(ms)
            }
        })
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let addr = s.local_addr().to_string();
    let c = client(&s, Codec::Json).await;
    let call = {
        let c = c.clone();
        tokio::spawn(async move { c.call::<_, u64>("Foo.Slow", &300u64, 5 * SECOND).await })
    };
    // The handler is running before the server is asked to stop.
    started.recv().await.unwrap();
    s.shutdown().await.unwrap();
    assert_eq!(
        call.await.unwrap().unwrap(),
        300,
        "the call in flight completed"
    );
    assert!(
        Client::connect(&addr, ClientOptions::default())
            .await
            .is_err(),
        "no new connections"
    );
}

#[tokio::test]
async fn a_default_server_accepts_ordinary_frames() {
    // `Server::default()` once set the maximum frame to 0, refusing every call.
    let s = Server::default()
        .handle("Foo.Echo", |text: String| async move {
            Ok::<_, HandlerError>(text)
        })
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let c = client(&s, Codec::Json).await;
    let echoed: String = c.call("Foo.Echo", &"hello", 5 * SECOND).await.unwrap();
    assert_eq!(echoed, "hello");
    s.shutdown().await.unwrap();
}

/// Waits until `done` holds, polling every 10 ms, for at most 10 s.
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + 10 * SECOND;
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_call_is_refused_before_sending_and_spares_the_connection() {
    // A default server and client: 16 MiB frames. A 17 MiB argument was once written, the
    // server closed the connection, and a call in flight on it failed with "Broken pipe".
    let s = server().await;
    let c = client(&s, Codec::Json).await;
    let slow = {
        let c = c.clone();
        tokio::spawn(async move { c.call::<_, u64>("Foo.Sleep", &300u64, 5 * SECOND).await })
    };
    let c_small = Client::connect(
        &s.local_addr().to_string(),
        ClientOptions::default().with_max_frame(64 * 1024),
    )
    .await
    .unwrap();
    let huge = "x".repeat(17 * 1024 * 1024);
    for (client, limit) in [(&c, 16 * 1024 * 1024), (&c_small, 64 * 1024)] {
        let err = client
            .call::<_, String>("Foo.Echo", &huge, 5 * SECOND)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::TooLarge { .. }), "{err:?}");
        assert!(!err.is_retryable(), "another endpoint would refuse it too");
        let text = err.to_string();
        assert!(
            text.contains(&format!("maximum frame of {limit} bytes"))
                && text.contains(&format!("{} bytes", huge.len() + 2 + 23)),
            "{text}"
        );
    }
    assert_eq!(
        slow.await.unwrap().unwrap(),
        300,
        "the call in flight is unharmed"
    );
    assert!(!c.is_closed());
    let echoed: String = c.call("Foo.Echo", &"still here", SECOND).await.unwrap();
    assert_eq!(echoed, "still here");
}

#[tokio::test]
async fn an_oversized_request_fails_alone_and_its_connection_carries_on() {
    // A client with a larger limit than this server's 64 KiB: the server reads past the
    // request, answers it with an error, and reads the next call.
    let s = server().await;
    let mut stream = raw(&s).await;
    let big = srpc_core::frame::Frame::Request {
        seq: 5,
        timeout_ms: 1000,
        method: "Foo.Echo".into(),
        metadata: Default::default(),
        body: format!("\"{}\"", "x".repeat(100_000)).into_bytes(),
    };
    let small = srpc_core::frame::Frame::Request {
        seq: 6,
        timeout_ms: 1000,
        method: "Foo.Echo".into(),
        metadata: Default::default(),
        body: b"\"hi\"".to_vec(),
    };
    stream
        .write_all(&[big.encode(), small.encode()].concat())
        .await
        .unwrap();
    let mut answers = Vec::new();
    while answers.len() < 2 {
        let mut len = [0u8; 4];
        stream.read_exact(&mut len).await.unwrap();
        let mut bytes = vec![0u8; u32::from_be_bytes(len) as usize];
        stream.read_exact(&mut bytes).await.unwrap();
        answers.push(srpc_core::frame::Frame::decode(&bytes).unwrap());
    }
    match &answers[0] {
        srpc_core::frame::Frame::Error {
            seq: 5,
            code,
            message,
        } => {
            assert_eq!(*code, RemoteCode::BadRequest);
            assert!(message.contains("maximum frame of 65536"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        answers[1],
        srpc_core::frame::Frame::Response {
            seq: 6,
            body: b"\"hi\"".to_vec()
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_over_the_clients_limit_fails_its_call_only() {
    let s = Server::new()
        .handle("Foo.Big", |n: usize| async move {
            Ok::<_, HandlerError>("x".repeat(n))
        })
        .handle("Foo.Sleep", |ms: u64| async move {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok::<_, HandlerError>(ms)
        })
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let c = Client::connect(
        &s.local_addr().to_string(),
        ClientOptions::default().with_max_frame(1024),
    )
    .await
    .unwrap();
    let slow = {
        let c = c.clone();
        tokio::spawn(async move { c.call::<_, u64>("Foo.Sleep", &300u64, 5 * SECOND).await })
    };
    let err = c
        .call::<_, String>("Foo.Big", &5000usize, 5 * SECOND)
        .await
        .unwrap_err();
    match &err {
        Error::ReplyTooLarge {
            method,
            size,
            limit,
        } => {
            assert_eq!((method.as_str(), *limit), ("Foo.Big", 1024));
            assert!(*size > 5000, "{size}");
        }
        other => panic!("{other:?}"),
    }
    assert!(!err.is_retryable(), "another endpoint would send it too");
    assert_eq!(
        slow.await.unwrap().unwrap(),
        300,
        "the call in flight is unharmed"
    );
    assert!(!c.is_closed());
    let small: String = c.call("Foo.Big", &3usize, SECOND).await.unwrap();
    assert_eq!(small, "xxx");
    s.shutdown().await.unwrap();
}

/// A server whose `Foo.Hold` handlers wait for a permit, counting how many run at once.
struct Holding {
    server: RunningServer,
    permits: std::sync::Arc<tokio::sync::Semaphore>,
    running: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    most: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

async fn holding(configure: impl FnOnce(Server) -> Server) -> Holding {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let permits = Arc::new(tokio::sync::Semaphore::new(0));
    let running = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let (p, r, m) = (permits.clone(), running.clone(), most.clone());
    let server = configure(Server::new())
        .handle("Foo.Hold", move |n: u64| {
            let (p, r, m) = (p.clone(), r.clone(), m.clone());
            async move {
                /// Counts the handler out when it ends, or when it is cancelled.
                struct Running(Arc<AtomicUsize>);
                impl Drop for Running {
                    fn drop(&mut self) {
                        self.0.fetch_sub(1, Ordering::SeqCst);
                    }
                }
                let now = r.fetch_add(1, Ordering::SeqCst) + 1;
                let _running = Running(r);
                m.fetch_max(now, Ordering::SeqCst);
                if let Ok(permit) = p.acquire().await {
                    permit.forget();
                }
                Ok::<_, HandlerError>(n)
            }
        })
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    Holding {
        server,
        permits,
        running,
        most,
    }
}

fn hold_frame(seq: u64) -> Vec<u8> {
    srpc_core::frame::Frame::Request {
        seq,
        timeout_ms: 0, // no deadline: the call runs until its handler ends
        method: "Foo.Hold".into(),
        metadata: Default::default(),
        body: seq.to_string().into_bytes(),
    }
    .encode()
}

// Paused time: a virtual sleep returns only once every task is idle, so "the server has read
// all it is going to read" is a state, not a guess.
#[tokio::test(start_paused = true)]
async fn calls_in_flight_per_connection_are_capped_and_the_rest_wait_unread() {
    use std::sync::atomic::Ordering;
    let h = holding(|s| s.with_max_calls(4)).await;
    let mut stream = raw(&h.server).await;
    let frames: Vec<u8> = (1..=100).flat_map(hold_frame).collect();
    stream.write_all(&frames).await.unwrap();
    tokio::time::sleep(SECOND).await;
    assert_eq!(
        h.running.load(Ordering::SeqCst),
        4,
        "only the cap's worth of calls run; the other 96 stay unread"
    );
    h.permits.add_permits(100);
    let mut answers = vec![0u8; 0];
    let mut seen = 0;
    let mut buf = [0u8; 4096];
    while seen < 100 {
        let n = stream.read(&mut buf).await.unwrap();
        assert!(n > 0, "connection closed after {seen} answers");
        answers.extend_from_slice(&buf[..n]);
        while answers.len() >= 4 {
            let len = u32::from_be_bytes(answers[..4].try_into().unwrap()) as usize;
            if answers.len() < 4 + len {
                break;
            }
            let frame = srpc_core::frame::Frame::decode(&answers[4..4 + len]).unwrap();
            assert!(
                matches!(frame, srpc_core::frame::Frame::Response { .. }),
                "{frame:?}"
            );
            answers.drain(..4 + len);
            seen += 1;
        }
    }
    assert_eq!(
        h.most.load(Ordering::SeqCst),
        4,
        "never more than the cap at once"
    );
}

#[tokio::test]
async fn a_connection_that_never_sends_its_preface_is_closed() {
    let s = Server::new()
        .with_preface_timeout(Duration::from_millis(200))
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let mut silent = TcpStream::connect(s.local_addr()).await.unwrap();
    let mut rest = Vec::new();
    let read = tokio::time::timeout(10 * SECOND, silent.read_to_end(&mut rest)).await;
    assert!(
        matches!(read, Ok(Ok(0))),
        "closed without an answer: {read:?}"
    );
    s.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_idle_connection_is_closed_and_a_busy_one_is_not() {
    let s = Server::new()
        .with_idle_timeout(Duration::from_millis(300))
        .handle("Foo.Sleep", |ms: u64| async move {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok::<_, HandlerError>(ms)
        })
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let c = client(&s, Codec::Json).await;
    // A call longer than the idle timeout: the connection is not idle while it runs.
    let slept: u64 = c.call("Foo.Sleep", &900u64, 5 * SECOND).await.unwrap();
    assert_eq!(slept, 900);
    until("the idle connection is closed", || c.is_closed()).await;
    s.shutdown().await.unwrap();
}

#[tokio::test]
async fn connections_over_the_cap_are_refused_with_a_clear_error() {
    let s = Server::new()
        .with_max_connections(2)
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let addr = s.local_addr().to_string();
    let first = Client::connect(&addr, ClientOptions::default())
        .await
        .unwrap();
    let _second = Client::connect(&addr, ClientOptions::default())
        .await
        .unwrap();
    let err = Client::connect(&addr, ClientOptions::default())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("connection limit"), "{err}");
    assert!(err.is_retryable(), "another endpoint may have room");
    drop(first);
    let deadline = tokio::time::Instant::now() + 10 * SECOND;
    while Client::connect(&addr, ClientOptions::default())
        .await
        .is_err()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "a closed connection frees its place"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    s.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_cancels_calls_that_outlive_its_deadline() {
    use std::sync::atomic::Ordering;
    let h = holding(|s| s).await;
    // A call without a deadline, on a connection whose peer never reads its answers.
    let mut stream = raw(&h.server).await;
    stream.write_all(&hold_frame(1)).await.unwrap();
    until("the call runs", || h.running.load(Ordering::SeqCst) == 1).await;
    let stopped = tokio::time::timeout(
        10 * SECOND,
        h.server.shutdown_within(Duration::from_millis(200)),
    )
    .await;
    assert!(
        matches!(stopped, Ok(Ok(()))),
        "shutdown waited past its deadline, or failed: {stopped:?}"
    );
    let mut rest = Vec::new();
    let read = tokio::time::timeout(10 * SECOND, stream.read_to_end(&mut rest)).await;
    assert!(
        matches!(read, Ok(Ok(_))),
        "the connection was closed: {read:?}"
    );
    until("the handler was cancelled", || {
        h.running.load(Ordering::SeqCst) == 0
    })
    .await;
}
