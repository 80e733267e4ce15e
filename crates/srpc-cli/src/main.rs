//! The `srpc` command-line tool: the URL toolbox, and `list`, `watch` and `register` against
//! any registry srpc can connect to.
//!
//! Exit status: 0 on success (and for `url match` when the URLs match), 1 when `url match`
//! says they do not or a registry operation failed, 2 for invalid input or usage.
//! Logs go to stderr; `RUST_LOG=debug` shows what the backends do.

mod demo;

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use futures_util::StreamExt;
use serde::Serialize;
use srpc::registry::{Change, Registry};
use srpc::url::{self, Url};

/// srpc: service registration, discovery and load balancing that speaks Dubbo's formats.
#[derive(Debug, Parser)]
#[command(name = "srpc", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Work with Dubbo URLs, the records every registry holds.
    #[command(subcommand)]
    Url(UrlCommand),
    /// Print the providers of a service, one full URL per line, sorted.
    List {
        /// The registry, e.g. `multicast://224.5.6.7:1234?interface=127.0.0.1`.
        registry: String,
        /// The service key: `[group/]interface[:version]`; `*` works for group and version.
        service: String,
        /// Wait up to this long for at least one provider (e.g. `2s`, `500ms`).
        #[arg(long, value_parser = parse_duration, default_value = "0s")]
        wait: Duration,
    },
    /// Print `+ <url>` and `- <url>` as the providers of a service change, until interrupted.
    Watch {
        /// The registry URL.
        registry: String,
        /// The service key: `[group/]interface[:version]`.
        service: String,
    },
    /// Run the load-balancing demo: two srpc servers offering Foo.Sum and Foo.Sleep register
    /// with a registry; an XClient calls and broadcasts to them.
    Demo {
        /// The registry to use; by default an embedded HTTP registry on a free loopback port.
        #[arg(long)]
        registry: Option<String>,
    },
    /// Run a registry server.
    #[cfg(feature = "http")]
    #[command(subcommand)]
    Registry(RegistryCommand),
    /// Register a URL and keep it registered until SIGINT/SIGTERM or `--for` has passed, then
    /// unregister it and exit.
    Register {
        /// The registry URL.
        registry: String,
        /// The URL to register, e.g. `dubbo://127.0.0.1:20880/com.acme.Echo?version=1.0`.
        url: String,
        /// Stay registered this long (e.g. `30s`); without it, until interrupted.
        #[arg(long = "for", value_parser = parse_duration)]
        duration: Option<Duration>,
        /// Also accept TCP connections on the URL's host:port while registered, so that
        /// liveness probes (multicast `clean`) see a stand-in provider alive.
        #[arg(long)]
        listen: bool,
    },
}

#[cfg(feature = "http")]
#[derive(Debug, Subcommand)]
enum RegistryCommand {
    /// Serve the srpc HTTP registry until SIGINT/SIGTERM, then shut down gracefully.
    Serve {
        /// Where to listen. Loopback unless you say otherwise.
        #[arg(long, default_value = "127.0.0.1:9999")]
        addr: std::net::SocketAddr,
        /// Lifetime of entries without a heartbeat: compatibility-endpoint addresses, and
        /// instances that ask for no TTL of their own.
        #[arg(long, value_parser = parse_duration, default_value = "5m")]
        ttl: Duration,
        /// Require `Authorization: Bearer <TOKEN>` on every write.
        #[arg(long, env = "SRPC_REGISTRY_TOKEN", hide_env_values = true)]
        token: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum UrlCommand {
    /// Print the parts of a URL (decoded or encoded form) as one JSON object.
    Parse {
        /// A URL such as `dubbo://10.0.0.5:20880/com.acme.Echo?version=1.0`, or its encoded
        /// form as a ZooKeeper child name (`dubbo%3A%2F%2F…`).
        url: String,
    },
    /// Print a URL as Java's `toFullString()` writes it (sorted parameters).
    Format {
        /// The URL, decoded or encoded.
        url: String,
    },
    /// Encode text as Java's `URLEncoder` does (how ZooKeeper node names are made).
    Encode {
        /// The text to encode.
        text: String,
    },
    /// Decode text as Java's `URLDecoder` does.
    Decode {
        /// The text to decode.
        text: String,
    },
    /// Print a URL's service key, `[group/]interface[:version]`.
    Key {
        /// The URL, decoded or encoded.
        url: String,
    },
    /// Does the consumer (subscription) URL select the provider URL? Prints `true` (exit 0)
    /// or `false` (exit 1).
    Match {
        /// The consumer or subscription URL.
        consumer: String,
        /// The provider (registered) URL.
        provider: String,
    },
}

/// The JSON shape of `srpc url parse`; absent parts are `null`.
#[derive(Debug, Serialize)]
struct UrlParts<'a> {
    protocol: Option<&'a str>,
    username: Option<&'a str>,
    password: Option<&'a str>,
    host: Option<&'a str>,
    port: Option<u16>,
    path: Option<&'a str>,
    params: &'a BTreeMap<String, String>,
}

/// What a command produced: text for stdout and the exit status.
struct Outcome {
    output: String,
    status: u8,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    match run(cli.command) {
        Ok(outcome) => {
            if !outcome.output.is_empty() {
                let mut stdout = io::stdout().lock();
                // A closed pipe (`srpc … | head`) is not worth an error message.
                let _ = writeln!(stdout, "{}", outcome.output).and_then(|()| stdout.flush());
            }
            ExitCode::from(outcome.status)
        }
        Err(message) => {
            let _ = writeln!(io::stderr().lock(), "srpc: {message}");
            ExitCode::from(2)
        }
    }
}

/// What went wrong, and which exit status says so.
enum Failure {
    /// Bad input or usage: exit 2.
    Invalid(String),
    /// The registry failed: exit 1.
    Registry(String),
}

fn run(command: Command) -> Result<Outcome, String> {
    let registry_command = match command {
        Command::Url(command) => return run_url(command),
        other => other,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    match runtime.block_on(run_registry(registry_command)) {
        Ok(()) => Ok(Outcome {
            output: String::new(),
            status: 0,
        }),
        Err(Failure::Invalid(message)) => Err(message),
        Err(Failure::Registry(message)) => {
            let _ = writeln!(io::stderr().lock(), "srpc: {message}");
            Ok(Outcome {
                output: String::new(),
                status: 1,
            })
        }
    }
}

async fn run_registry(command: Command) -> Result<(), Failure> {
    match command {
        Command::Url(_) => Ok(()),
        Command::Demo { registry } => demo::run(registry.as_deref())
            .await
            .map_err(Failure::Registry),
        #[cfg(feature = "http")]
        Command::Registry(RegistryCommand::Serve { addr, ttl, token }) => {
            use srpc::http::{HttpRegistryServer, ServerConfig};
            let shutdown = Shutdown::listen();
            let mut config = ServerConfig::new(addr).with_ttl(ttl);
            if let Some(token) = token {
                config = config.with_token(token);
            }
            let server = HttpRegistryServer::bind(config)
                .await
                .map_err(|e| Failure::Registry(format!("cannot listen on {addr}: {e}")))?;
            let _ = writeln!(
                io::stderr().lock(),
                "srpc: registry listening on http://{}",
                server.local_addr()
            );
            shutdown.wait(None).await;
            let _ = writeln!(io::stderr().lock(), "srpc: shutting down");
            server
                .shutdown()
                .await
                .map_err(|e| Failure::Registry(format!("shutdown: {e}")))
        }
        Command::List {
            registry,
            service,
            wait,
        } => {
            let query = service_query(&service)?;
            let registry = connect(&registry).await?;
            let mut sub = registry.subscribe(&query).await.map_err(registry_failure)?;
            if !wait.is_zero() {
                // Not finding one in time is an answer too: print what there is.
                let _ = sub.wait_for(|s| !s.providers().is_empty(), wait).await;
            }
            let snapshot = sub.snapshot();
            let mut lines: Vec<String> = snapshot
                .providers()
                .iter()
                .map(Url::to_full_string)
                .collect();
            lines.sort();
            let mut out = io::stdout().lock();
            for line in lines {
                let _ = writeln!(out, "{line}");
            }
            let _ = out.flush();
            drop(sub);
            registry.close().await.map_err(registry_failure)
        }
        Command::Watch { registry, service } => {
            let shutdown = Shutdown::listen();
            let query = service_query(&service)?;
            let registry = connect(&registry).await?;
            let sub = registry.subscribe(&query).await.map_err(registry_failure)?;
            let mut changes = Box::pin(sub.changes());
            let shutdown = shutdown.wait(None);
            tokio::pin!(shutdown);
            loop {
                tokio::select! {
                    change = changes.next() => {
                        let line = match change {
                            Some(Change::Insert(url)) => format!("+ {url}"),
                            Some(Change::Remove(url)) => format!("- {url}"),
                            Some(_) => continue,
                            None => break,
                        };
                        let mut out = io::stdout().lock();
                        if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
                            break; // The reader went away.
                        }
                    }
                    () = &mut shutdown => break,
                }
            }
            drop(changes);
            registry.close().await.map_err(registry_failure)
        }
        Command::Register {
            registry,
            url,
            duration,
            listen,
        } => {
            let shutdown = Shutdown::listen();
            let url = Url::parse(&url).map_err(|e| Failure::Invalid(e.to_string()))?;
            let listener = if listen {
                let host = url.host().trim_start_matches('[').trim_end_matches(']');
                let listener = tokio::net::TcpListener::bind((host, url.port()))
                    .await
                    .map_err(|e| {
                        Failure::Registry(format!("cannot listen on {}: {e}", url.address()))
                    })?;
                Some(tokio::spawn(async move {
                    // Accept and drop: the connection itself is the liveness answer.
                    while listener.accept().await.is_ok() {}
                }))
            } else {
                None
            };
            let registry = connect(&registry).await?;
            registry.register(&url).await.map_err(registry_failure)?;
            let _ = writeln!(io::stderr().lock(), "srpc: registered {url}");
            shutdown.wait(duration).await;
            let closed = registry.close().await.map_err(registry_failure);
            if let Some(listener) = listener {
                listener.abort();
            }
            closed
        }
    }
}

async fn connect(registry: &str) -> Result<std::sync::Arc<dyn Registry>, Failure> {
    srpc::registry::connect(registry)
        .await
        .map_err(|e| match e {
            srpc::registry::Error::Url(_)
            | srpc::registry::Error::InvalidInput { .. }
            | srpc::registry::Error::Unsupported { .. } => Failure::Invalid(e.to_string()),
            other => Failure::Registry(other.to_string()),
        })
}

fn registry_failure(e: srpc::registry::Error) -> Failure {
    match e {
        srpc::registry::Error::Url(_) | srpc::registry::Error::InvalidInput { .. } => {
            Failure::Invalid(e.to_string())
        }
        other => Failure::Registry(other.to_string()),
    }
}

/// The subscription query for a service key `[group/]interface[:version]`.
fn service_query(service: &str) -> Result<Url, Failure> {
    let (group, rest) = match service.split_once('/') {
        Some((group, rest)) => (Some(group), rest),
        None => (None, service),
    };
    let (interface, version) = match rest.split_once(':') {
        Some((interface, version)) => (interface, Some(version)),
        None => (rest, None),
    };
    if interface.is_empty() || group == Some("") || version == Some("") {
        return Err(Failure::Invalid(format!(
            "invalid service key {service:?}: expected [group/]interface[:version]"
        )));
    }
    let mut builder = Url::builder("consumer")
        .host("127.0.0.1")
        .path(interface)
        .param("interface", interface)
        .param("category", "providers")
        .param("side", "consumer");
    if let Some(group) = group {
        builder = builder.param("group", group);
    }
    if let Some(version) = version {
        builder = builder.param("version", version);
    }
    builder
        .build()
        .map_err(|e| Failure::Invalid(format!("invalid service key {service:?}: {e}")))
}

/// Resolves on SIGINT or SIGTERM, or after `limit`.
/// SIGINT and SIGTERM, listened to from the moment it is made: a signal that comes while a
/// command is still starting (registering, connecting) ends it cleanly later instead of
/// killing the process before its handler exists.
struct Shutdown {
    #[cfg(unix)]
    interrupt: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    terminate: Option<tokio::signal::unix::Signal>,
}

impl Shutdown {
    /// Installs the handlers now.
    fn listen() -> Shutdown {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Shutdown {
                interrupt: signal(SignalKind::interrupt()).ok(),
                terminate: signal(SignalKind::terminate()).ok(),
            }
        }
        #[cfg(not(unix))]
        Shutdown {}
    }

    /// Waits for a signal, or for `limit` to pass.
    async fn wait(self, limit: Option<Duration>) {
        let limit = async {
            match limit {
                Some(limit) => tokio::time::sleep(limit).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = self.signalled() => {}
            () = limit => {}
        }
    }

    #[cfg(unix)]
    async fn signalled(mut self) {
        async fn recv(signal: Option<&mut tokio::signal::unix::Signal>) {
            match signal {
                Some(signal) => {
                    signal.recv().await;
                }
                None => std::future::pending().await,
            }
        }
        tokio::select! {
            () = recv(self.interrupt.as_mut()) => {}
            () = recv(self.terminate.as_mut()) => {}
        }
    }

    #[cfg(not(unix))]
    async fn signalled(self) {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text)
        .map_err(|e| format!("invalid duration {text:?} ({e}); write e.g. 500ms, 2s, 1m"))
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr)
        .try_init();
}

fn run_url(command: UrlCommand) -> Result<Outcome, String> {
    let ok = |output: String| Outcome { output, status: 0 };
    match command {
        UrlCommand::Parse { url } => {
            let url = parse(&url)?;
            let parts = UrlParts {
                protocol: non_empty(url.protocol()),
                username: non_empty(url.username()),
                password: non_empty(url.password()),
                host: non_empty(url.host()),
                port: (url.port() > 0).then_some(url.port()),
                path: non_empty(url.path()),
                params: url.params(),
            };
            serde_json::to_string(&parts)
                .map(ok)
                .map_err(|e| format!("cannot write JSON: {e}"))
        }
        UrlCommand::Format { url } => Ok(ok(parse(&url)?.to_full_string())),
        UrlCommand::Encode { text } => Ok(ok(url::encode(&text))),
        UrlCommand::Decode { text } => url::decode(&text).map(ok).map_err(|e| e.to_string()),
        UrlCommand::Key { url } => Ok(ok(parse(&url)?.service_key())),
        UrlCommand::Match { consumer, provider } => {
            let matched = url::is_match(&parse(&consumer)?, &parse(&provider)?);
            Ok(Outcome {
                output: matched.to_string(),
                status: if matched { 0 } else { 1 },
            })
        }
    }
}

fn parse(text: &str) -> Result<Url, String> {
    Url::parse(text).map_err(|e| e.to_string())
}

fn non_empty(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}
