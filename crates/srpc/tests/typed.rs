//! `#[srpc::service]`: a typed server and typed clients (over an XClient and over one
//! connection), on both codecs, and typed and untyped peers calling each other.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code: failures panic.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use srpc::rpc::{Client, ClientOptions, Codec, HandlerError, Server};
use srpc::typed::Connection;
use srpc::xclient::{Discovery, Options, XClient};

/// A point, sent as a struct.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Point {
    x: i64,
    y: i64,
}

/// A calculator: no argument, one, two, and an error that is a `String`.
#[srpc::service(name = "com.acme.Calc")]
pub trait Calc {
    /// Answers "pong".
    async fn ping(&self) -> Result<String, HandlerError>;
    /// The opposite point.
    async fn negate(&self, p: Point) -> Result<Point, HandlerError>;
    /// The sum.
    async fn add(&self, a: i64, b: i64) -> Result<i64, HandlerError>;
    /// The quotient, or an error for a zero divisor.
    async fn divide(&self, a: i64, b: i64) -> Result<i64, String>;
}

struct Impl;

impl Calc for Impl {
    async fn ping(&self) -> Result<String, HandlerError> {
        Ok("pong".into())
    }
    async fn negate(&self, p: Point) -> Result<Point, HandlerError> {
        Ok(Point { x: -p.x, y: -p.y })
    }
    async fn add(&self, a: i64, b: i64) -> Result<i64, HandlerError> {
        Ok(a + b)
    }
    async fn divide(&self, a: i64, b: i64) -> Result<i64, String> {
        a.checked_div(b)
            .ok_or_else(|| "division by zero".to_owned())
    }
}

async fn exercise<C: srpc::typed::Caller>(client: &CalcClient<C>)
where
    C::Error: std::fmt::Display,
{
    assert_eq!(client.ping().await.unwrap(), "pong");
    assert_eq!(
        client.negate(Point { x: 1, y: -2 }).await.unwrap(),
        Point { x: -1, y: 2 }
    );
    assert_eq!(client.add(40, 2).await.unwrap(), 42);
    assert_eq!(client.divide(9, 3).await.unwrap(), 3);
    let error = client.divide(1, 0).await.unwrap_err().to_string();
    assert!(error.contains("division by zero"), "{error}");
}

#[tokio::test]
async fn typed_round_trips_on_both_codecs_over_an_xclient_and_a_connection() {
    let server = serve_calc(Server::new(), Impl)
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let addr = server.local_addr().to_string();
    assert_eq!(CalcClient::<XClient>::SERVICE, "com.acme.Calc");
    assert_eq!(
        CalcClient::<XClient>::METHODS,
        ["add", "divide", "negate", "ping"]
    );
    for codec in [Codec::Json, Codec::Binary] {
        let options = ClientOptions::default().with_codec(codec);
        let (discovery, _list) = Discovery::servers([addr.as_str()]).unwrap();
        let over_xclient = CalcClient::new(XClient::new(
            discovery,
            Options::default().with_client(options.clone()),
        ));
        exercise(&over_xclient).await;
        let connection = Connection::new(
            Client::connect(&addr, options).await.unwrap(),
            Duration::from_secs(5),
        );
        exercise(&CalcClient::new(connection)).await;
    }
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn typed_and_untyped_peers_call_each_other() {
    // An untyped server with the same names and argument shapes, called by the typed client.
    let untyped = Server::new()
        .handle("com.acme.Calc.add", |(a, b): (i64, i64)| async move {
            Ok::<_, HandlerError>(a * 1000 + b)
        })
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let client = CalcClient::new(Connection::new(
        Client::connect(&untyped.local_addr().to_string(), ClientOptions::default())
            .await
            .unwrap(),
        Duration::from_secs(5),
    ));
    assert_eq!(client.add(1, 2).await.unwrap(), 1002);
    untyped.shutdown().await.unwrap();

    // An untyped client of the typed server.
    let typed = serve_calc(Server::new(), Impl)
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let client = Client::connect(&typed.local_addr().to_string(), ClientOptions::default())
        .await
        .unwrap();
    let sum: i64 = client
        .call("com.acme.Calc.add", &(2, 3), Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(sum, 5);
    let p: Point = client
        .call(
            "com.acme.Calc.negate",
            &Point { x: 5, y: 6 },
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    assert_eq!(p, Point { x: -5, y: -6 });
    typed.shutdown().await.unwrap();
}
