//! The `srpc` command-line tool: the URL toolbox for reading what registries hold.
//!
//! Exit status: 0 on success (and for `url match` when the URLs match), 1 when `url match`
//! says they do not, 2 for invalid input or usage.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use serde::Serialize;
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
    match run(cli.command) {
        Ok(outcome) => {
            let mut stdout = io::stdout().lock();
            // A closed pipe (`srpc … | head`) is not worth an error message.
            let _ = writeln!(stdout, "{}", outcome.output).and_then(|()| stdout.flush());
            ExitCode::from(outcome.status)
        }
        Err(message) => {
            let _ = writeln!(io::stderr().lock(), "srpc: {message}");
            ExitCode::from(2)
        }
    }
}

fn run(command: Command) -> Result<Outcome, String> {
    match command {
        Command::Url(command) => run_url(command),
    }
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
