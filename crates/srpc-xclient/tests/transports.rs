//! Protocol-aware selection: an XClient picks only endpoints it has a transport for, says
//! what it found when it has none, and runs added transports under the same fail modes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code: failures panic.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use srpc_core::{HandlerError, Server};
use srpc_registry::Url;
use srpc_xclient::{
    Call, Connection, Discovery, Error, FailMode, Options, Selector, Transport, XClient,
};

/// `echo://` endpoints answer with the endpoint's port; port 1 refuses connections.
#[derive(Debug, Default)]
struct Echo {
    connects: AtomicUsize,
    calls: Arc<AtomicUsize>,
}

#[async_trait]
impl Transport for Echo {
    fn protocols(&self) -> &[&str] {
        &["echo"]
    }

    async fn connect(&self, endpoint: &Url) -> srpc_core::Result<Arc<dyn Connection>> {
        self.connects.fetch_add(1, Ordering::SeqCst);
        if endpoint.port() == 1 {
            return Err(srpc_core::Error::Connect {
                addr: endpoint.address(),
                source: std::io::ErrorKind::ConnectionRefused.into(),
            });
        }
        Ok(Arc::new(EchoConnection {
            port: endpoint.port(),
            calls: self.calls.clone(),
        }))
    }
}

#[derive(Debug)]
struct EchoConnection {
    port: u16,
    calls: Arc<AtomicUsize>,
}

#[async_trait]
impl Connection for EchoConnection {
    async fn call(&self, call: Call<'_>) -> srpc_core::Result<Vec<u8>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let request: serde_json::Value = serde_json::from_slice(&call.request).unwrap();
        Ok(serde_json::to_vec(&(self.port, call.method, request)).unwrap())
    }
}

async fn srpc_server() -> srpc_core::RunningServer {
    Server::new()
        .handle("Svc.Who", |(): ()| async move {
            Ok::<_, HandlerError>("srpc".to_owned())
        })
        .bind("127.0.0.1:0")
        .await
        .unwrap()
}

fn xclient(urls: &[String], options: Options) -> XClient {
    let (discovery, _list) = Discovery::servers(urls.iter().map(String::as_str)).unwrap();
    XClient::new(discovery, options)
}

#[tokio::test]
async fn a_mixed_estate_is_called_only_through_endpoints_of_known_protocols() {
    let server = srpc_server().await;
    let urls = vec![
        format!("srpc://{}/Svc", server.local_addr()),
        "dubbo://127.0.0.1:20880/Svc?interface=Svc".to_owned(),
        "dubbo://127.0.0.1:20881/Svc?interface=Svc".to_owned(),
        "tri://127.0.0.1:50051/Svc?interface=Svc".to_owned(),
    ];
    let x = xclient(
        &urls,
        Options::default().with_selector(Selector::RoundRobin),
    );
    assert_eq!(x.endpoints().list().len(), 1, "only the srpc endpoint");
    assert_eq!(
        x.endpoints().uncallable(),
        [("dubbo".to_owned(), 2), ("tri".to_owned(), 1)]
    );
    for _ in 0..20 {
        let who: String = x.call("Svc.Who", &()).await.unwrap();
        assert_eq!(who, "srpc");
    }
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn only_uncallable_providers_give_an_error_that_names_them() {
    let urls = vec![
        "dubbo://127.0.0.1:20880/com.acme.Echo?interface=com.acme.Echo".to_owned(),
        "dubbo://127.0.0.1:20881/com.acme.Echo?interface=com.acme.Echo".to_owned(),
        "dubbo://127.0.0.1:20882/com.acme.Echo?interface=com.acme.Echo".to_owned(),
    ];
    let x = xclient(
        &urls,
        Options::default().with_transport(Arc::new(Echo::default())),
    );
    let error = x
        .call::<_, String>("com.acme.Echo.echo", &())
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Uncallable { .. }), "{error:?}");
    assert!(
        error.to_string().starts_with(
            "3 providers of com.acme.Echo, all `dubbo://`: this XClient calls srpc, echo"
        ),
        "{error}"
    );
    assert_eq!(error.attempts(), 0);
    assert!(matches!(
        x.broadcast::<_, String>("com.acme.Echo.echo", &()).await,
        Err(Error::Uncallable { .. })
    ));
    assert!(matches!(
        x.fork::<_, String>("com.acme.Echo.echo", &()).await,
        Err(Error::Uncallable { .. })
    ));
}

#[tokio::test]
async fn rpcx_records_are_rpcx_not_srpc() {
    // rpcx's `tcp@host:port`, with a real srpc server behind it: still never called as srpc.
    let server = srpc_server().await;
    let x = xclient(
        &[format!("tcp@{}", server.local_addr())],
        Options::default(),
    );
    let error = x.call::<_, String>("Svc.Who", &()).await.unwrap_err();
    let text = error.to_string();
    assert!(
        text.starts_with("1 provider, rpcx (`tcp@`): this XClient calls srpc"),
        "{text}"
    );
    assert!(text.contains("no transport for rpcx's protocol"), "{text}");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_added_transport_shares_selection_fail_modes_and_connections() {
    let echo = Arc::new(Echo::default());
    let urls = vec![
        "echo://127.0.0.1:1/Svc".to_owned(),
        "echo://127.0.0.1:7001/Svc".to_owned(),
        "echo://127.0.0.1:7002/Svc".to_owned(),
        "dubbo://127.0.0.1:20880/Svc".to_owned(),
    ];
    let x = xclient(
        &urls,
        Options::default()
            .without_srpc()
            .with_transport(echo.clone())
            .with_selector(Selector::RoundRobin)
            .with_fail_mode(FailMode::Failover, 2),
    );
    assert_eq!(x.endpoints().list().len(), 3);
    assert_eq!(x.endpoints().uncallable(), [("dubbo".to_owned(), 1)]);
    let mut ports = std::collections::BTreeSet::new();
    for _ in 0..30 {
        let (port, method, args): (u16, String, (i32, String)) =
            x.call("Svc.Say", &(7, "seven")).await.unwrap();
        assert_eq!(
            (method.as_str(), args),
            ("Svc.Say", (7, "seven".to_owned()))
        );
        ports.insert(port);
    }
    assert_eq!(
        ports.into_iter().collect::<Vec<_>>(),
        [7001, 7002],
        "round-robin over the live ones; failover past the refusing one"
    );
    assert_eq!(echo.calls.load(Ordering::SeqCst), 30);
    // One connection per live endpoint, kept; the refusing one is retried when picked.
    let opened: usize = x
        .endpoints()
        .list()
        .iter()
        .filter(|e| e.url().port() != 1)
        .map(|e| e.connections_opened())
        .sum();
    assert_eq!(opened, 2);
    let error = x
        .broadcast::<_, (u16, String, ())>("Svc.Ping", &())
        .await
        .unwrap_err();
    assert!(error.to_string().contains("127.0.0.1:1"), "{error}");
    let (port, _, ()): (u16, String, ()) = x.fork("Svc.Ping", &()).await.unwrap();
    assert!(port == 7001 || port == 7002);
}
