//! `srpc demo`: registration, discovery and load balancing end to end, in one process.

use std::io::{self, Write};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures_util::future::join_all;
use srpc::registry::Url;
use srpc::rpc::{HandlerError, RunningServer, Server};
use srpc::xclient::{Discovery, Options, Selector, XClient};

/// The deadline of every demo call; `Foo.Sleep` of 2 s or more runs past it.
const DEADLINE: Duration = Duration::from_secs(2);

/// Runs the demo against `registry` (or an embedded HTTP registry) and prints one line per
/// result.
pub(crate) async fn run(registry: Option<&str>, serve: bool, tls: bool) -> Result<(), String> {
    let shutdown = crate::shutdown::Shutdown::listen();
    let tls = if tls { Some(DemoTls::make()?) } else { None };
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
        let server = foo_server(tls.as_ref()).await?;
        let registry = srpc::registry::connect(&registry_url)
            .await
            .map_err(|e| e.to_string())?;
        let url = Url::parse(&format!(
            "srpc://{}/Foo?interface=Foo&methods=Sleep,Sum&side=provider{}",
            server.local_addr(),
            if tls.is_some() { "&tls=true" } else { "" }
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

    if serve {
        // Keep everything up for the user to try the commands on.
        let base = registry_url
            .split_once('?')
            .map_or(registry_url.as_str(), |(base, _)| base);
        say("");
        say("the registry and both servers run until Ctrl-C; try, from another terminal:");
        say(&format!("  srpc list '{base}' Foo"));
        say(&format!("  srpc watch '{base}' Foo"));
        say(&format!("  srpc call '{base}' Foo.Sum '[1, 2]'"));
        say(&format!(
            "  srpc call '{base}' Foo.Sum '[1, 2]' --broadcast"
        ));
        say(&format!("  srpc services '{base}'"));
        match embedded.as_ref().and_then(Embedded::dashboard) {
            Some(page) => say(&format!("and open the dashboard: {page}")),
            None => say(&format!("  srpc dashboard '{base}'")),
        }
        shutdown.wait(None).await;
        say("stopping");
        for registry in providers {
            registry.close().await.map_err(|e| e.to_string())?;
        }
        for server in servers {
            server.shutdown().await.map_err(|e| e.to_string())?;
        }
        if let Some(embedded) = embedded {
            embedded.stop().await?;
        }
        return Ok(());
    }
    drop(shutdown);

    let consumer = srpc::registry::connect(&registry_url)
        .await
        .map_err(|e| e.to_string())?;
    let query = Url::parse("consumer://127.0.0.1/Foo?interface=Foo&side=consumer")
        .map_err(|e| e.to_string())?;
    let subscription = consumer
        .subscribe(&query)
        .await
        .map_err(|e| e.to_string())?;
    #[allow(unused_mut)] // Without the `tls` feature nothing changes it.
    let mut options = Options::default()
        .with_selector(Selector::Random)
        .with_timeout(DEADLINE);
    #[cfg(feature = "tls")]
    if let Some(tls) = &tls {
        say(
            "TLS: a CA made for this run signed both servers' certificate; every call goes over TLS",
        );
        options = options.with_client(tls.client()?);
    }
    let xclient = Arc::new(XClient::new(Discovery::subscription(subscription), options));
    xclient
        .wait_for_endpoints(|e| e.list().len() == 2, Duration::from_secs(10))
        .await
        .map_err(|e| format!("the consumer did not discover both servers: {e}"))?;

    let calls = (1..=5i64).map(|i| {
        let xclient = xclient.clone();
        async move {
            match xclient.call::<_, SumReply>("Foo.Sum", &(i, i * i)).await {
                Ok(reply) => say(&format!(
                    "call Foo.Sum success: {i} + {} = {} (answered by {})",
                    i * i,
                    reply.sum,
                    reply.server
                )),
                Err(e) => say(&format!("call Foo.Sum error: {e}")),
            }
        }
    });
    join_all(calls).await;

    let broadcasts = (1..=5i64).map(|i| {
        let xclient = xclient.clone();
        async move {
            match xclient
                .broadcast::<_, SumReply>("Foo.Sum", &(i, i * i))
                .await
            {
                Ok(replies) => {
                    let mut servers: Vec<&str> =
                        replies.iter().map(|r| r.server.as_str()).collect();
                    servers.sort_unstable();
                    say(&format!(
                        "broadcast Foo.Sum success: {i} + {} = {} (answered by {})",
                        i * i,
                        replies.first().map_or(0, |r| r.sum),
                        servers.join(" and ")
                    ))
                }
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
        server.shutdown().await.map_err(|e| e.to_string())?;
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
    /// The dashboard at `/ui` and its client of the registry.
    #[cfg(feature = "http")]
    ui: crate::dashboard::UiSlot,
    #[cfg(feature = "http")]
    ui_registry: Option<std::sync::Arc<dyn srpc::registry::Registry>>,
}

impl Embedded {
    #[cfg(feature = "http")]
    async fn start() -> Result<(Embedded, String), String> {
        use srpc::http::{HttpRegistryServer, ServerConfig};
        let ui = crate::dashboard::UiSlot::new();
        let server = HttpRegistryServer::bind_with("127.0.0.1:0", ServerConfig::new(), ui.router())
            .await
            .map_err(|e| format!("cannot start the embedded registry: {e}"))?;
        let url = format!("http://{}?ttl=5s", server.local_addr());
        let ui_registry = ui.mount(server.local_addr(), None).await;
        Ok((
            Embedded {
                server,
                ui,
                ui_registry,
            },
            url,
        ))
    }

    /// The dashboard's address, when it runs.
    fn dashboard(&self) -> Option<String> {
        #[cfg(feature = "http")]
        if self.ui_registry.is_some() {
            return Some(format!("http://{}/ui/", self.server.local_addr()));
        }
        None
    }

    #[cfg(not(feature = "http"))]
    async fn start() -> Result<(Embedded, String), String> {
        let inprocess = srpc::registry::schemes()
            .find(|s| s.kind == srpc::registry::RegistryKind::InProcess && s.is_enabled());
        if let Some(inprocess) = inprocess {
            Ok((Embedded {}, format!("{}://srpc-demo", inprocess.scheme)))
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
        {
            self.ui.clear();
            if let Some(registry) = self.ui_registry {
                let _ = registry.close().await;
            }
            self.server.shutdown().await.map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

/// The reply of `Foo.Sum`: the sum, and which server computed it (so load balancing shows).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct SumReply {
    sum: i64,
    server: String,
}

/// A throwaway CA and a certificate it signed for 127.0.0.1 and localhost, in memory only.
struct DemoTls {
    #[cfg(feature = "tls")]
    ca: String,
    #[cfg(feature = "tls")]
    server: std::sync::Arc<srpc::rpc::rustls::ServerConfig>,
}

impl DemoTls {
    #[cfg(feature = "tls")]
    fn make() -> Result<DemoTls, String> {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
        let err = |e: rcgen::Error| format!("cannot make the demo's certificates: {e}");
        let ca_key = KeyPair::generate().map_err(err)?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "srpc demo CA");
        let ca = params.self_signed(&ca_key).map_err(err)?;
        let key = KeyPair::generate().map_err(err)?;
        let params = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .map_err(err)?;
        let cert = params.signed_by(&key, &ca, &ca_key).map_err(err)?;
        let server = srpc::rpc::server_config_from_pem(
            cert.pem().as_bytes(),
            key.serialize_pem().as_bytes(),
        )
        .map_err(|e| e.to_string())?;
        Ok(DemoTls {
            ca: ca.pem(),
            server,
        })
    }

    #[cfg(not(feature = "tls"))]
    fn make() -> Result<DemoTls, String> {
        Err("this build of srpc has no TLS (the `tls` feature)".into())
    }

    /// Client settings trusting the demo's CA.
    #[cfg(feature = "tls")]
    fn client(&self) -> Result<srpc::rpc::ClientOptions, String> {
        use srpc::registry::{Pem, TlsConfig};
        let config = TlsConfig::enabled()
            .with_ca(Pem::Bytes(self.ca.clone().into_bytes()))
            .client_config()
            .map_err(|e| e.to_string())?;
        Ok(srpc::rpc::ClientOptions::default().with_tls(config, None))
    }
}

async fn foo_server(tls: Option<&DemoTls>) -> Result<RunningServer, String> {
    // The handler names its server, whose address is known only once it is bound.
    let me: Arc<OnceLock<String>> = Arc::default();
    let name = me.clone();
    #[allow(unused_mut)] // Without the `tls` feature nothing changes it.
    let mut server = Server::new();
    #[cfg(feature = "tls")]
    if let Some(tls) = tls {
        server = server.with_tls(tls.server.clone());
    }
    #[cfg(not(feature = "tls"))]
    let _ = tls;
    let server = server
        .handle("Foo.Sum", move |(a, b): (i64, i64)| {
            let server = name.get().cloned().unwrap_or_default();
            async move { Ok::<_, HandlerError>(SumReply { sum: a + b, server }) }
        })
        .handle("Foo.Sleep", |secs: u64| async move {
            tokio::time::sleep(Duration::from_secs(secs)).await;
            Ok::<_, HandlerError>(secs)
        })
        .bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("cannot start an srpc server: {e}"))?;
    let _ = me.set(server.local_addr().to_string());
    Ok(server)
}

fn say(line: &str) {
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
}
