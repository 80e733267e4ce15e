//! What a handler learns about its call (peer, deadline, metadata), and metadata between
//! peers of different ages: old clients and old servers keep working with new ones.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code: failures panic.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use srpc_core::frame::{self, Frame};
use srpc_core::{
    CallContext, Client, ClientOptions, Codec, Error, HandlerError, Metadata, RunningServer, Server,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the `Ctx.Show` handler saw.
#[derive(Debug, Serialize, Deserialize)]
struct Seen {
    peer: String,
    /// Milliseconds from the handler's start to its deadline; `None` without one.
    left_ms: Option<u64>,
    metadata: Vec<(String, String)>,
}

async fn server() -> RunningServer {
    Server::new()
        .handle_with_context("Ctx.Show", |call: CallContext, (): ()| async move {
            Ok::<_, HandlerError>(Seen {
                peer: call.peer.to_string(),
                left_ms: call.deadline.map(|d| {
                    d.saturating_duration_since(tokio::time::Instant::now())
                        .as_millis() as u64
                }),
                metadata: call
                    .metadata
                    .iter()
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect(),
            })
        })
        .bind("127.0.0.1:0")
        .await
        .unwrap()
}

#[tokio::test]
async fn a_handler_sees_its_peer_deadline_and_metadata() {
    let server = server().await;
    let addr = server.local_addr().to_string();
    let client = Client::connect(&addr, ClientOptions::default())
        .await
        .unwrap();
    assert!(client.takes_metadata());
    let metadata = Metadata::new()
        .with("Trace-Id", "t-123")
        .unwrap()
        .with("tenant", "acme")
        .unwrap();
    let seen: Seen = client
        .call_with_metadata("Ctx.Show", &(), Duration::from_secs(30), &metadata)
        .await
        .unwrap();
    assert_eq!(
        seen.metadata,
        [
            ("trace-id".to_owned(), "t-123".to_owned()),
            ("tenant".to_owned(), "acme".to_owned())
        ]
    );
    let left = seen.left_ms.unwrap();
    assert!(left > 20_000 && left <= 30_000, "{left} ms left of 30 s");
    // The peer is this client's end of the connection: another connection, another port.
    let other = Client::connect(&addr, ClientOptions::default().with_codec(Codec::Binary))
        .await
        .unwrap();
    let seen_other: Seen = other
        .call("Ctx.Show", &(), Duration::from_secs(5))
        .await
        .unwrap();
    assert!(seen.peer.starts_with("127.0.0.1:"), "{}", seen.peer);
    assert_ne!(seen.peer, seen_other.peer);
    assert!(seen_other.metadata.is_empty());
    server.shutdown().await.unwrap();
}

/// A client as old as the protocol before metadata: its preface offers no feature, and its
/// requests are plain kind-1 frames, one without a deadline.
#[tokio::test]
async fn an_old_client_is_served_and_offered_nothing() {
    let server = server().await;
    let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
    stream
        .write_all(&[b'S', b'R', b'P', b'C', 1, 0, 0, 0])
        .await
        .unwrap();
    let mut answer = [0u8; 8];
    stream.read_exact(&mut answer).await.unwrap();
    assert_eq!(answer[6], frame::ACCEPTED);
    assert_eq!(answer[7], 0, "no feature for a client that offered none");
    let request = Frame::Request {
        seq: 1,
        timeout_ms: 0,
        method: "Ctx.Show".into(),
        metadata: Metadata::new(),
        body: b"null".to_vec(),
    }
    .encode();
    assert_eq!(request[4], frame::REQUEST);
    stream.write_all(&request).await.unwrap();
    let reply = frame::read_frame(&mut stream, 1 << 20)
        .await
        .unwrap()
        .unwrap();
    let Frame::Response { seq: 1, body } = reply else {
        panic!("{reply:?}");
    };
    let seen: Seen = serde_json::from_slice(&body).unwrap();
    assert_eq!(seen.left_ms, None, "a call without a deadline has none");
    assert!(seen.metadata.is_empty());
    server.shutdown().await.unwrap();
}

/// A server as old as the protocol before metadata: it answers the preface with no
/// feature. Calls without metadata reach it as plain requests; a call with metadata fails
/// before a byte of it is sent.
#[tokio::test]
async fn an_old_server_gets_plain_requests_and_no_metadata() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let old = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut preface = [0u8; 8];
        stream.read_exact(&mut preface).await.unwrap();
        assert_eq!(
            preface[6],
            frame::FEATURE_METADATA,
            "a new client offers it"
        );
        // Byte 7 zero, as every server before features.
        stream
            .write_all(&[b'S', b'R', b'P', b'C', 1, preface[5], frame::ACCEPTED, 0])
            .await
            .unwrap();
        let mut kinds = Vec::new();
        while let Ok(Some(frame)) = frame::read_frame(&mut stream, 1 << 20).await {
            let Frame::Request { seq, metadata, .. } = frame else {
                panic!("{frame:?}");
            };
            kinds.push(metadata.is_empty());
            let reply = Frame::Response {
                seq,
                body: b"\"old\"".to_vec(),
            };
            stream.write_all(&reply.encode()).await.unwrap();
        }
        kinds
    });
    let client = Client::connect(&addr, ClientOptions::default())
        .await
        .unwrap();
    assert!(!client.takes_metadata());
    let reply: String = client
        .call("Old.Call", &(), Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(reply, "old");
    let error = client
        .call_with_metadata::<_, String>(
            "Old.Call",
            &(),
            Duration::from_secs(5),
            &Metadata::new().with("tenant", "acme").unwrap(),
        )
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Unsupported { .. }), "{error:?}");
    assert!(error.is_retryable(), "another endpoint may take metadata");
    assert!(error.to_string().contains("call metadata"), "{error}");
    drop(client);
    let kinds = old.await.unwrap();
    assert_eq!(kinds, [true], "only the plain call reached the old server");
}
