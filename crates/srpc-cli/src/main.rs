//! The `srpc` command-line tool: the URL toolbox, and `list`, `watch` and `register` against
//! any registry srpc can connect to.
//!
//! Exit status: 0 on success (and for `url match` when the URLs match), 1 when `url match`
//! says they do not or a registry operation failed, 2 for invalid input or usage.
//! Logs go to stderr; `RUST_LOG=debug` shows what the backends do.

mod call;
mod dashboard;
mod demo;
mod registry_cmds;
mod shutdown;
mod terminal;

use crate::registry_cmds::Format;
#[cfg(feature = "http")]
use crate::shutdown::Shutdown;

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use serde::Serialize;
use srpc::url::{self, Url};

/// srpc: service registration, discovery and load balancing that speaks Dubbo's formats.
#[derive(Debug, Parser)]
#[command(name = "srpc", version, about, long_about = None)]
struct Cli {
    /// More logs: -v for info, -vv for debug (RUST_LOG, when set, wins).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Only errors in the logs.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Work with Dubbo URLs, the records every registry holds.
    #[command(subcommand)]
    Url(UrlCommand),
    /// Print the providers of a service, one full URL per line, sorted. Exit status: 0 when
    /// it printed providers, 3 when none matched, 1 when the registry failed, 2 on bad input.
    #[command(override_usage = "srpc list [OPTIONS] [REGISTRY] <SERVICE>")]
    List {
        /// `[REGISTRY] SERVICE`. The registry (e.g. `zookeeper://127.0.0.1:2181`) may be
        /// left out when SRPC_REGISTRY is set; the service key is
        /// `[group/]interface[:version]`, and `*` works for group and version.
        #[arg(num_args = 1..=2, required = true, value_names = ["REGISTRY", "SERVICE"])]
        args: Vec<String>,
        /// Wait up to this long for at least one provider (e.g. `2s`, `500ms`).
        #[arg(long, value_parser = parse_duration, default_value = "0s")]
        wait: Duration,
        /// Every provider of the interface, whatever its group, version or `enabled`.
        #[arg(long)]
        all: bool,
        /// `text` (one URL per line) or `json` (one array; see docs/cli.md).
        #[arg(short, long, value_enum, default_value = "text")]
        output: Format,
    },
    /// Print `+ <url>` and `- <url>` as the providers of a service change, until interrupted.
    #[command(override_usage = "srpc watch [OPTIONS] [REGISTRY] <SERVICE>")]
    Watch {
        /// `[REGISTRY] SERVICE`, as for `list`.
        #[arg(num_args = 1..=2, required = true, value_names = ["REGISTRY", "SERVICE"])]
        args: Vec<String>,
        /// `text` (`+`/`-` lines) or `json` (one object per line, with connection events).
        #[arg(short, long, value_enum, default_value = "text")]
        output: Format,
    },
    /// Print every service key with its provider and consumer counts, sorted. Exit status 3
    /// when the registry holds none.
    Services {
        /// The registry; SRPC_REGISTRY when left out.
        registry: Option<String>,
        /// Wait up to this long for at least one service (registries without a server, such
        /// as multicast and mDNS, answer over time).
        #[arg(long, value_parser = parse_duration, default_value = "0s")]
        wait: Duration,
        /// `text` or `json` (one array; see docs/cli.md).
        #[arg(short, long, value_enum, default_value = "text")]
        output: Format,
    },
    /// Run the load-balancing demo: two srpc servers offering Foo.Sum and Foo.Sleep register
    /// with a registry; an XClient calls and broadcasts to them.
    Demo {
        /// The registry to use; by default an embedded HTTP registry on a free loopback port.
        #[arg(long)]
        registry: Option<String>,
        /// Keep the registry and both servers running, print their addresses and commands
        /// to try (`list`, `watch`, `call`), until Ctrl-C.
        #[arg(long)]
        serve: bool,
        /// Servers and calls over TLS, with a throwaway CA and certificate made for this run
        /// (the providers register with `tls=true`).
        #[cfg(feature = "tls")]
        #[arg(long, conflicts_with = "serve")]
        tls: bool,
    },
    /// Serve a web dashboard of a registry: services, providers and consumers, live
    /// (docs/dashboard.md). Read-only unless `--write`.
    Dashboard {
        /// The registry; SRPC_REGISTRY when left out.
        registry: Option<String>,
        /// Where to listen; loopback by default.
        #[arg(long, default_value = "127.0.0.1:8081")]
        addr: std::net::SocketAddr,
        /// Allow disabling, enabling and weighing providers (override rules) and unregistering
        /// dead ones, with a token: SRPC_DASHBOARD_TOKEN, or a random one printed at start.
        #[arg(long)]
        write: bool,
    },
    /// Run a registry server.
    #[cfg(feature = "http")]
    #[command(subcommand)]
    Registry(RegistryCommand),
    /// Remove a registration another process left behind (a crashed provider's), where the
    /// backend allows it: a ZooKeeper node, an etcd key, an HTTP registry instance, a Consul
    /// service on this agent, a multicast `unregister` or an mDNS goodbye.
    #[command(override_usage = "srpc unregister [OPTIONS] [REGISTRY] <URL>")]
    Unregister {
        /// `[REGISTRY] URL`: the registry (SRPC_REGISTRY when left out) and the URL exactly
        /// as registered (`srpc list` prints it).
        #[arg(num_args = 1..=2, required = true, value_names = ["REGISTRY", "URL"])]
        args: Vec<String>,
        /// Remove it even though something accepts TCP connections at its address (a live
        /// provider registers again at once).
        #[arg(long)]
        force: bool,
        /// How long to watch, after removing it, whether a live provider registers it again
        /// (exit 1 then).
        #[arg(long, value_parser = parse_duration, default_value = "3s", value_name = "DURATION")]
        grace: Duration,
    },
    /// Discover a service's providers and call one (or all) with the JSON codec, printing
    /// the JSON reply. Exit status: 0 answered, 1 the call failed, 3 no provider.
    #[command(override_usage = "srpc call [OPTIONS] [REGISTRY] <Service.Method> <JSON>")]
    Call {
        /// `[REGISTRY] Service.Method JSON`: e.g. `http://127.0.0.1:9999 Foo.Sum '[1, 2]'`.
        /// JSON may be `-` (read stdin) or `@FILE` (read the file), for large requests.
        #[arg(num_args = 2..=3, required = true, value_names = ["REGISTRY", "METHOD", "JSON"])]
        args: Vec<String>,
        /// Call metadata, `key=value` (repeat for more): read by the handler's CallContext;
        /// sent as HTTP headers to jsonrpc providers.
        #[arg(short = 'H', long = "header", value_name = "KEY=VALUE")]
        headers: Vec<String>,
        /// `text` (the reply's JSON, errors on stderr) or `json` (the reply, or an error
        /// object `{"error": {…}}`, on stdout; see docs/cli.md).
        #[arg(short, long, value_enum, default_value = "text")]
        output: Format,
        /// The service key to discover (`[group/]interface[:version]`); by default what
        /// precedes the method's last `.`.
        #[arg(long)]
        service: Option<String>,
        /// How a provider is picked.
        #[arg(long, value_enum, default_value = "random")]
        selector: call::Pick,
        /// Deadline of the call (e.g. `2s`).
        #[arg(long, value_parser = parse_duration, default_value = "10s")]
        timeout: Duration,
        /// How long to wait for a provider to be discovered.
        #[arg(long, value_parser = parse_duration, default_value = "5s")]
        wait: Duration,
        /// Call every provider; print a JSON array of their replies.
        #[arg(long)]
        broadcast: bool,
        /// TLS to providers whose URL says `tls=true`.
        #[cfg(feature = "tls")]
        #[command(flatten)]
        tls: call::TlsArgs,
    },
    /// Describe an interface: its providers of every version and group by protocol, version
    /// and group, and the union of their `methods`. Exit 3 when it has none.
    #[command(override_usage = "srpc describe [OPTIONS] [REGISTRY] <INTERFACE>")]
    Describe {
        /// `[REGISTRY] INTERFACE` (`com.acme.Echo`; a group or version given is ignored).
        #[arg(num_args = 1..=2, required = true, value_names = ["REGISTRY", "INTERFACE"])]
        args: Vec<String>,
        /// Wait up to this long for a provider (registries without a server answer over
        /// time).
        #[arg(long, value_parser = parse_duration, default_value = "0s")]
        wait: Duration,
        /// `text` or `json` (one object; see docs/cli.md).
        #[arg(short, long, value_enum, default_value = "text")]
        output: Format,
    },
    /// Print a shell completion script: `srpc completions bash > /etc/bash_completion.d/srpc`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Register a URL and keep it registered until SIGINT/SIGTERM or `--for` has passed, then
    /// unregister it and exit.
    #[command(override_usage = "srpc register [OPTIONS] [REGISTRY] <URL>")]
    Register {
        /// `[REGISTRY] URL`: the registry (SRPC_REGISTRY when left out) and the URL to
        /// register, e.g. `dubbo://127.0.0.1:20880/com.acme.Echo?version=1.0`.
        #[arg(num_args = 1..=2, required = true, value_names = ["REGISTRY", "URL"])]
        args: Vec<String>,
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
        /// Where to listen: `127.0.0.1:9999`, `localhost:9999`, or `:9999` (loopback);
        /// `0.0.0.0:9999` for every interface. Loopback unless you say otherwise.
        #[arg(long, value_parser = parse_listen_addr, default_value = "127.0.0.1:9999")]
        addr: std::net::SocketAddr,
        /// The longest TTL granted: clients asking for more get this (and heartbeat at a
        /// third of it), and so do compatibility-endpoint entries. At least 1s.
        #[arg(long, value_parser = parse_ttl, default_value = "5m")]
        ttl: Duration,
        /// Require `Authorization: Bearer <TOKEN>` on every write.
        #[arg(long, env = "SRPC_REGISTRY_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// Require `Authorization: Bearer <TOKEN>` (this one or the write token) on every
        /// listing too. Unset, reads are open; /healthz and /metrics always are.
        #[arg(long, env = "SRPC_REGISTRY_READ_TOKEN", hide_env_values = true)]
        read_token: Option<String>,
        /// Where the registry keeps its state across restarts, so that a restart does not
        /// tell consumers live providers are gone. Default:
        /// `$XDG_STATE_HOME/srpc/registry-<host>-<port>.json`, or `~/.local/state/srpc/…`.
        #[arg(long, value_name = "PATH", conflicts_with = "no_state_file")]
        state_file: Option<std::path::PathBuf>,
        /// Keep the state in memory only: after a restart, listings say `warming` for
        /// --warm-up and clients keep what they had meanwhile.
        #[arg(long)]
        no_state_file: bool,
        /// How long listings say `warming` after a start that restored no state [default:
        /// a third of --ttl plus 2s; 0s: none].
        #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
        warm_up: Option<Duration>,
        /// Serve HTTPS with this certificate chain (PEM); needs --tls-key. Read again when
        /// the file changes or on SIGHUP.
        #[arg(long, value_name = "FILE", requires = "tls_key")]
        tls_cert: Option<std::path::PathBuf>,
        /// The private key of --tls-cert (PEM).
        #[arg(long, value_name = "FILE", requires = "tls_cert")]
        tls_key: Option<std::path::PathBuf>,
        /// Require client certificates from the CAs in this PEM bundle.
        #[arg(long, value_name = "FILE", requires = "tls_cert")]
        tls_client_ca: Option<std::path::PathBuf>,
        /// Do not run the dashboard at /ui. It is a client of this server that keeps its own
        /// copy of every instance: with 100 000 the server's RSS is some 110 MiB without it
        /// and 245 MiB with it. Browse from elsewhere with `srpc dashboard http://…`.
        #[arg(long)]
        no_dashboard: bool,
        #[command(flatten)]
        limits: Box<LimitArgs>,
    },
}

/// `srpc registry serve`'s limits (docs/http-registry.md, "Limits").
#[cfg(feature = "http")]
#[derive(Debug, clap::Args)]
struct LimitArgs {
    /// Instances in total [default: 100000].
    #[arg(long, value_name = "N")]
    max_instances: Option<usize>,
    /// Instances of one service key [default: 10000].
    #[arg(long, value_name = "N")]
    max_instances_per_service: Option<usize>,
    /// Instances one client handle holds [default: 10000].
    #[arg(long, value_name = "N")]
    max_instances_per_holder: Option<usize>,
    /// The longest instance URL, in bytes [default: 8192].
    #[arg(long, value_name = "BYTES")]
    max_url_len: Option<usize>,
    /// Connections open at once; more wait until one closes [default: 4096].
    #[arg(long, value_name = "N")]
    max_connections: Option<usize>,
    /// How long a client may take to send a request's headers, and how long an idle
    /// connection stays open [default: 30s].
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    header_timeout: Option<Duration>,
    /// How long shutdown waits for requests in flight [default: 5s].
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    shutdown_grace: Option<Duration>,
    /// The longest answer of GET /srpc/registry, in bytes [default: 8192].
    #[arg(long, value_name = "BYTES")]
    max_compat_header: Option<usize>,
    /// How many bytes a second large listings (256 KiB and more) are written at, all of
    /// them together, so that readers of everything cannot take the CPU heartbeats need
    /// [default: 134217728, 128 MiB].
    #[arg(long, value_name = "BYTES")]
    max_listing_rate: Option<usize>,
}

#[cfg(feature = "http")]
impl LimitArgs {
    fn apply(&self, mut limits: srpc::http::Limits) -> srpc::http::Limits {
        let set = |value: Option<usize>, field: &mut usize| {
            if let Some(value) = value {
                *field = value;
            }
        };
        set(self.max_instances, &mut limits.instances);
        set(
            self.max_instances_per_service,
            &mut limits.instances_per_service,
        );
        set(
            self.max_instances_per_holder,
            &mut limits.instances_per_holder,
        );
        set(self.max_url_len, &mut limits.url_len);
        set(self.max_connections, &mut limits.connections);
        set(self.max_compat_header, &mut limits.compat_header);
        set(self.max_listing_rate, &mut limits.listing_rate);
        if let Some(timeout) = self.header_timeout {
            limits.header_timeout = timeout;
        }
        if let Some(grace) = self.shutdown_grace {
            limits.shutdown_grace = grace;
        }
        limits
    }
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
    params: BTreeMap<&'a str, &'a str>,
}

/// What a command produced: text for stdout and the exit status.
struct Outcome {
    output: String,
    status: u8,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose, cli.quiet);
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
    /// The registry answered, and nothing matched: exit 3.
    NotFound(String),
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
        Err(Failure::NotFound(message)) => {
            let _ = writeln!(io::stderr().lock(), "srpc: {message}");
            Ok(Outcome {
                output: String::new(),
                status: 3,
            })
        }
    }
}

async fn run_registry(command: Command) -> Result<(), Failure> {
    match command {
        Command::Url(_) => Ok(()),
        Command::Demo {
            registry,
            serve,
            #[cfg(feature = "tls")]
            tls,
        } => {
            #[cfg(not(feature = "tls"))]
            let tls = false;
            demo::run(registry.as_deref(), serve, tls)
                .await
                .map_err(Failure::Registry)
        }
        #[cfg(feature = "http")]
        Command::Registry(RegistryCommand::Serve {
            addr,
            ttl,
            token,
            read_token,
            state_file,
            no_state_file,
            warm_up,
            tls_cert,
            tls_key,
            tls_client_ca,
            no_dashboard,
            limits,
        }) => {
            use srpc::http::{HttpRegistryServer, Limits, ServerConfig, ServerTls};
            let shutdown = Shutdown::listen();
            // The dashboard at /ui reads the registry as a client of it, with a token that
            // reads.
            let ui_token = read_token.clone().or_else(|| token.clone());
            let mut config = ServerConfig::new()
                .with_ttl(ttl)
                .with_limits(limits.apply(Limits::default()));
            if let Some(token) = token {
                config = config.with_token(token);
            }
            if let Some(token) = read_token {
                config = config.with_read_token(token);
            }
            if let Some(warm_up) = warm_up {
                config = config.with_warm_up(warm_up);
            }
            if let (Some(cert), Some(key)) = (tls_cert, tls_key) {
                let mut tls = ServerTls::new(cert, key);
                if let Some(ca) = tls_client_ca {
                    tls = tls.with_client_ca(ca);
                }
                config = config.with_tls(tls);
            }
            let scheme = if config.tls.is_some() {
                "https"
            } else {
                "http"
            };
            match state_file
                .or_else(|| (!no_state_file).then(|| default_state_file(addr)).flatten())
            {
                Some(path) => config = config.with_state_file(path),
                None if !no_state_file => {
                    let _ = writeln!(
                        io::stderr().lock(),
                        "srpc: no state file (port 0, or no $XDG_STATE_HOME or $HOME): a restart warms up instead"
                    );
                }
                None => {}
            }
            // What could never work is refused before listening, as invalid input.
            config.validate().map_err(Failure::Invalid)?;
            // A registry holds a connection per watching client: as many as the system allows.
            srpc::http::raise_open_files_limit();
            let tls_on = config.tls.is_some();
            let ui = dashboard::UiSlot::new();
            let server = HttpRegistryServer::bind_with(addr, config, ui.router())
                .await
                .map_err(|e| {
                    if e.kind() == io::ErrorKind::InvalidInput {
                        // A TLS file that is missing or broken: the operator's input.
                        Failure::Invalid(e.to_string())
                    } else {
                        Failure::Registry(format!("cannot listen on {addr}: {e}"))
                    }
                })?;
            let _ = writeln!(
                io::stderr().lock(),
                "srpc: registry listening on {scheme}://{}",
                server.local_addr()
            );
            let ui_registry = if no_dashboard {
                ui.off(dashboard::OFF_BY_FLAG);
                None
            } else if tls_on {
                ui.off(dashboard::OFF_OVER_TLS);
                None
            } else {
                ui.mount(server.local_addr(), ui_token.as_deref()).await
            };
            if ui_registry.is_some() {
                let _ = writeln!(
                    io::stderr().lock(),
                    "srpc: dashboard at http://{}/ui/ (read-only; `srpc dashboard --write` acts)",
                    server.local_addr()
                );
            }
            // SIGHUP reads the certificate and key again (they are also read when the files
            // change).
            #[cfg(unix)]
            let reload = {
                let server = &server;
                async move {
                    use tokio::signal::unix::{SignalKind, signal};
                    let Ok(mut hangup) = signal(SignalKind::hangup()) else {
                        return std::future::pending().await;
                    };
                    while hangup.recv().await.is_some() {
                        match server.reload_tls() {
                            Ok(()) => {
                                let _ = writeln!(
                                    io::stderr().lock(),
                                    "srpc: SIGHUP: TLS certificate reloaded"
                                );
                            }
                            Err(e) => {
                                let _ = writeln!(
                                    io::stderr().lock(),
                                    "srpc: SIGHUP: {e}; the certificate in use stays"
                                );
                            }
                        }
                    }
                    std::future::pending::<()>().await;
                }
            };
            #[cfg(not(unix))]
            let reload = std::future::pending::<()>();
            tokio::select! {
                () = shutdown.wait(None) => {}
                () = reload => {}
            }
            let _ = writeln!(io::stderr().lock(), "srpc: shutting down");
            ui.clear();
            if let Some(registry) = ui_registry {
                let _ = registry.close().await;
            }
            server
                .shutdown()
                .await
                .map_err(|e| Failure::Registry(format!("shutdown: {e}")))
        }
        Command::List {
            args,
            wait,
            all,
            output,
        } => registry_cmds::list(&args, wait, all, output).await,
        Command::Watch { args, output } => registry_cmds::watch(&args, output).await,
        Command::Services {
            registry,
            wait,
            output,
        } => registry_cmds::services(registry, wait, output).await,
        Command::Dashboard {
            registry,
            addr,
            write,
        } => dashboard::dashboard(registry, addr, write).await,
        Command::Register {
            args,
            duration,
            listen,
        } => registry_cmds::register(&args, duration, listen).await,
        Command::Unregister { args, force, grace } => {
            registry_cmds::unregister(&args, force, grace).await
        }
        Command::Call {
            args,
            headers,
            output,
            service,
            selector,
            timeout,
            wait,
            broadcast,
            #[cfg(feature = "tls")]
            tls,
        } => {
            #[cfg(feature = "tls")]
            let client = tls.client_options()?;
            #[cfg(not(feature = "tls"))]
            let client = srpc::rpc::ClientOptions::default();
            call::call(call::CallArgs {
                client,
                args: &args,
                headers: &headers,
                output,
                service: service.as_deref(),
                pick: selector,
                timeout,
                wait,
                broadcast,
            })
            .await
        }
        Command::Describe { args, wait, output } => call::describe(&args, wait, output).await,
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let mut command = Cli::command();
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut command, "srpc", &mut script);
            // A reader that stops early (`| head`) is not an error.
            match io::Write::write_all(&mut io::stdout().lock(), &script) {
                Err(e) if e.kind() != io::ErrorKind::BrokenPipe => {
                    Err(Failure::Registry(format!("cannot write the script: {e}")))
                }
                _ => Ok(()),
            }
        }
    }
}

/// `host:port`, `localhost:port` or `:port` (loopback).
#[cfg(feature = "http")]
fn parse_listen_addr(text: &str) -> Result<std::net::SocketAddr, String> {
    use std::net::ToSocketAddrs;
    let text = text.trim();
    let spelled = match text.strip_prefix(':') {
        Some(port) => format!("127.0.0.1:{port}"),
        None => text.to_owned(),
    };
    if let Ok(addr) = spelled.parse() {
        return Ok(addr);
    }
    let mut found = spelled.to_socket_addrs().map_err(|e| {
        format!(
            "invalid address {text:?} ({e}); write e.g. 127.0.0.1:9999, localhost:9999 or :9999"
        )
    })?;
    found
        .next()
        .ok_or_else(|| format!("{text:?} resolves to no address"))
}

/// A server TTL: a duration of at least one second.
/// `$XDG_STATE_HOME/srpc/registry-<host>-<port>.json` (or `~/.local/state/srpc/…`); none
/// for port 0, whose next start would listen elsewhere.
#[cfg(feature = "http")]
fn default_state_file(addr: std::net::SocketAddr) -> Option<std::path::PathBuf> {
    if addr.port() == 0 {
        return None;
    }
    let base = std::env::var_os("XDG_STATE_HOME")
        .filter(|d| !d.is_empty())
        .map(std::path::PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|d| !d.is_empty())
                .map(|home| std::path::PathBuf::from(home).join(".local/state"))
        })?;
    let host = addr.ip().to_string().replace(':', "_");
    Some(
        base.join("srpc")
            .join(format!("registry-{host}-{}.json", addr.port())),
    )
}

#[cfg(feature = "http")]
fn parse_ttl(text: &str) -> Result<Duration, String> {
    let ttl = parse_duration(text)?;
    if ttl < srpc::http::MIN_TTL {
        return Err(format!(
            "a TTL of {} would expire every instance at once; the least is {}",
            humantime::format_duration(ttl),
            humantime::format_duration(srpc::http::MIN_TTL)
        ));
    }
    Ok(ttl)
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text)
        .map_err(|e| format!("invalid duration {text:?} ({e}); write e.g. 500ms, 2s, 1m"))
}

/// Logs to stderr: `RUST_LOG` when set, else `warn`, `-v` info, `-vv` debug, `-q` error.
/// Colours only when stderr is a terminal and `NO_COLOR` is not set (no-color.org).
fn init_logging(verbose: u8, quiet: bool) {
    use std::io::IsTerminal;
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, _) => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let colour =
        io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
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
                params: url.params().collect(),
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
