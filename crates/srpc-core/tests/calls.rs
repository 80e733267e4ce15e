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
    let bad_frames: [&[u8]; 3] = [
        &[0, 0, 0, 3, 9, 9, 9],                   // unknown kind, cut short
        &[0, 1, 0, 1],                            // 65537 bytes: over this server's 64 KiB limit
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
    s.shutdown().await;
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
    s.shutdown().await;
}
