//! `srpc demo`: registration, discovery and load balancing end to end, in one process.

use std::io::{self, Write};
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use srpc::registry::Url;
use srpc::rpc::{HandlerError, RunningServer, Server};
use srpc::xclient::{Discovery, Options, Selector, XClient};

/// The deadline of every demo call; `Foo.Sleep` of 2 s or more runs past it.
const DEADLINE: Duration = Duration::from_secs(2);

/// Runs the demo against `registry` (or an embedded HTTP registry) and prints one line per
/// result.
pub(crate) async fn run(registry: Option<&str>) -> Result<(), String> {
    let (embedded, registry_url) = match registry {
        Some(url) => (None, url.to_owned()),
        None => {
            let (embedded, url) = Embedded::start().await?;
            (Some(embedded), url)
        }
    };
    say(&format!("registry: {registry_url}"));

    // Two providers, each with its own registry handle, registering and (for http) heartbeating.
    let mut servers = Vec::new();
    let mut providers = Vec::new();
    for _ in 0..2 {
        let server = foo_server().await?;
        let registry = srpc::registry::connect(&registry_url)
            .await
            .map_err(|e| e.to_string())?;
        let url = Url::parse(&format!(
            "srpc://{}/Foo?interface=Foo&methods=Sleep,Sum&side=provider",
            server.local_addr()
        ))
        .map_err(|e| e.to_string())?;
        registry
            .register(&url)
            .await
            .map_err(|e| format!("register {url}: {e}"))?;
        say(&format!("server {} registered", server.local_addr()));
        servers.push(server);
        providers.push(registry);
    }

    let consumer = srpc::registry::connect(&registry_url)
        .await
        .map_err(|e| e.to_string())?;
    let query = Url::parse("consumer://127.0.0.1/Foo?interface=Foo&side=consumer")
        .map_err(|e| e.to_string())?;
    let subscription = consumer
        .subscribe(&query)
        .await
        .map_err(|e| e.to_string())?;
    let xclient = Arc::new(XClient::new(
        Discovery::subscription(subscription),
        Options::default()
            .with_selector(Selector::Random)
            .with_timeout(DEADLINE),
    ));
    if !xclient
        .wait_for_endpoints(|e| e.list().len() == 2, Duration::from_secs(10))
        .await
    {
        return Err("the consumer did not discover both servers within 10 s".into());
    }

    let calls = (1..=5i64).map(|i| {
        let xclient = xclient.clone();
        async move {
            match xclient.call::<_, i64>("Foo.Sum", &(i, i * i)).await {
                Ok(sum) => say(&format!("call Foo.Sum success: {i} + {} = {sum}", i * i)),
                Err(e) => say(&format!("call Foo.Sum error: {e}")),
            }
        }
    });
    join_all(calls).await;

    let broadcasts = (1..=5i64).map(|i| {
        let xclient = xclient.clone();
        async move {
            match xclient.broadcast::<_, i64>("Foo.Sum", &(i, i * i)).await {
                Ok(sums) => say(&format!(
                    "broadcast Foo.Sum success: {i} + {} = {}",
                    i * i,
                    sums[0]
                )),
                Err(e) => say(&format!("broadcast Foo.Sum error: {e}")),
            }
        }
    });
    join_all(broadcasts).await;

    // Sleeps of 0..4 s against a 2 s deadline: the longer ones time out.
    let sleeps = (0..5u64).map(|secs| {
        let xclient = xclient.clone();
        async move {
            match xclient.broadcast::<_, u64>("Foo.Sleep", &secs).await {
                Ok(_) => say(&format!("broadcast Foo.Sleep success: slept {secs} s")),
                Err(e) => say(&format!("broadcast Foo.Sleep error: {e}")),
            }
        }
    });
    join_all(sleeps).await;

    for registry in providers {
        registry.close().await.map_err(|e| e.to_string())?;
    }
    consumer.close().await.map_err(|e| e.to_string())?;
    for server in servers {
        server.shutdown().await;
    }
    if let Some(embedded) = embedded {
        embedded.stop().await?;
    }
    Ok(())
}

/// The registry of a demo run without `--registry`: an HTTP registry server on a free
/// loopback port, or with the `http` feature off, an in-process hub.
struct Embedded {
    #[cfg(feature = "http")]
    server: srpc::http::HttpRegistryServer,
}

impl Embedded {
    #[cfg(feature = "http")]
    async fn start() -> Result<(Embedded, String), String> {
        use srpc::http::{HttpRegistryServer, ServerConfig};
        let server = HttpRegistryServer::bind(ServerConfig::new(([127, 0, 0, 1], 0).into()))
            .await
            .map_err(|e| format!("cannot start the embedded registry: {e}"))?;
        let url = format!("http://{}?ttl=5s", server.local_addr());
        Ok((Embedded { server }, url))
    }

    #[cfg(not(feature = "http"))]
    async fn start() -> Result<(Embedded, String), String> {
        if srpc::registry::enabled_schemes().any(|s| s == "inprocess") {
            Ok((Embedded {}, "inprocess://srpc-demo".to_owned()))
        } else {
            Err(
                "this build has no embedded registry (features http and inprocess are off): \
                 pass --registry <url>"
                    .to_owned(),
            )
        }
    }

    async fn stop(self) -> Result<(), String> {
        #[cfg(feature = "http")]
        self.server.shutdown().await.map_err(|e| e.to_string())?;
        Ok(())
    }
}

async fn foo_server() -> Result<RunningServer, String> {
    Server::new()
        .handle("Foo.Sum", |(a, b): (i64, i64)| async move {
            Ok::<_, HandlerError>(a + b)
        })
        .handle("Foo.Sleep", |secs: u64| async move {
            tokio::time::sleep(Duration::from_secs(secs)).await;
            Ok::<_, HandlerError>(secs)
        })
        .bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("cannot start an srpc server: {e}"))
}

fn say(line: &str) {
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
}
