//! The registry commands as an operator scripts them: JSON output, exit codes, hints when
//! nothing matched, `services`, `SRPC_REGISTRY`, log levels. Over `srpc registry serve` on
//! loopback; every child process is stopped by its PID.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // Test code: failures panic.

mod support;

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;
use srpc_tests::servers::free_port;
use support::{DEADLINE, Running};

fn srpc() -> Command {
    Command::new(env!("CARGO_BIN_EXE_srpc"))
}

fn run(args: &[&str]) -> Output {
    srpc()
        .args(args)
        .env_remove("SRPC_REGISTRY")
        .output()
        .unwrap()
}

/// `srpc registry serve` on `port`, up once a `list` gets an answer.
fn serve(port: u16) -> Running {
    let addr = format!("127.0.0.1:{port}");
    serve_with(
        &["--addr", &addr, "--ttl", "30s"],
        &format!("http://{addr}"),
    )
}

/// `srpc registry serve <flags>`, up once a `list` on `registry` gets an answer (3: none).
fn serve_with(flags: &[&str], registry: &str) -> Running {
    let mut command = srpc();
    // Each test's servers keep their state in memory (one test looks at the state file).
    let flags: Vec<&str> = if flags.iter().any(|f| f.starts_with("--state-file")) {
        flags.to_vec()
    } else {
        [flags, &["--no-state-file"]].concat()
    };
    command.args(["registry", "serve"]).args(&flags);
    let server = Running::spawn(command);
    let deadline = Instant::now() + DEADLINE;
    while run(&["list", registry, "com.acme.Up"]).status.code() != Some(3) {
        assert!(
            Instant::now() < deadline,
            "the registry server did not come up at {registry}"
        );
    }
    server
}

fn register(registry: &str, url: &str) -> Running {
    let mut command = srpc();
    command
        .args(["register", registry, url])
        .env_remove("SRPC_REGISTRY");
    let running = Running::spawn(command);
    // Registered once a list by the exact URL's service sees it.
    let key = srpc().args(["url", "key", url]).output().unwrap();
    let key = String::from_utf8(key.stdout).unwrap().trim().to_owned();
    let deadline = Instant::now() + DEADLINE;
    loop {
        let out = run(&["list", registry, &key, "--all"]);
        if String::from_utf8_lossy(&out.stdout).contains(url.split('?').next().unwrap()) {
            break;
        }
        assert!(Instant::now() < deadline, "{url} was not registered");
    }
    running
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn list_json_exit_codes_and_why_nothing_matched() {
    let port = free_port();
    let server = serve(port);
    let registry = format!("http://127.0.0.1:{port}");
    let v1 = "dubbo://127.0.0.1:20980/com.acme.Ops?version=1.0&weight=10";
    let v2 = "dubbo://127.0.0.1:20981/com.acme.Ops?version=2.0";
    let off = "dubbo://127.0.0.1:20982/com.acme.Ops?version=1.0&enabled=false";
    let providers: Vec<Running> = [v1, v2, off]
        .iter()
        .map(|u| register(&registry, u))
        .collect();

    // Found: exit 0, one JSON array with the parts.
    let out = run(&["list", &registry, "com.acme.Ops:1.0", "-o", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 1, "{list:?}");
    let p = &list[0];
    assert_eq!(p["url"], v1);
    assert_eq!(p["protocol"], "dubbo");
    assert_eq!(p["host"], "127.0.0.1");
    assert_eq!(p["port"], 20980);
    assert_eq!(p["path"], "com.acme.Ops");
    assert_eq!(p["category"], "providers");
    assert_eq!(p["params"]["weight"], "10");

    // Nothing matched: exit 3, and stderr says what the interface does have.
    let out = run(&["list", &registry, "com.acme.Ops:3.0"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(out.stdout.is_empty());
    let why = stderr(&out);
    assert!(why.contains("no provider of com.acme.Ops:3.0"), "{why}");
    assert!(why.contains("3 provider(s)"), "{why}");
    assert!(
        why.contains("com.acme.Ops:1.0") && why.contains("com.acme.Ops:2.0"),
        "{why}"
    );
    assert!(why.contains("1 disabled"), "{why}");
    assert!(why.contains("--all"), "{why}");
    assert_eq!(why.lines().count(), 1, "said once: {why}");
    let out = run(&["list", &registry, "com.acme.Nobody", "-o", "json"]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "[]");

    // --all: every provider of the interface, whatever its version or `enabled`.
    let out = run(&["list", &registry, "com.acme.Ops:3.0", "--all"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let lines: Vec<&str> = std::str::from_utf8(&out.stdout).unwrap().lines().collect();
    assert_eq!(lines.len(), 3, "{lines:?}");

    // A registry that cannot be reached: exit 1. Bad input: exit 2.
    let closed = format!("http://127.0.0.1:{}?timeout=1s", free_port());
    let out = run(&["list", &closed, "com.acme.Ops"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(run(&["list", &registry, "g/"]).status.code(), Some(2));

    for p in providers {
        assert_eq!(p.signal("-TERM"), Some(0));
    }
    assert_eq!(server.signal("-TERM"), Some(0));
}

#[test]
fn services_counts_providers_and_consumers() {
    let port = free_port();
    let server = serve(port);
    let registry = format!("http://127.0.0.1:{port}");
    let out = run(&["services", &registry]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "an empty registry: {}",
        stderr(&out)
    );
    let running: Vec<Running> = [
        "dubbo://127.0.0.1:20983/com.acme.B",
        "dubbo://127.0.0.1:20984/com.acme.B",
        "dubbo://127.0.0.1:20985/com.acme.A?group=g&version=1",
        "consumer://127.0.0.1/com.acme.B?category=consumers&side=consumer",
    ]
    .iter()
    .map(|u| {
        let mut command = srpc();
        command.args(["register", &registry, u]);
        Running::spawn(command)
    })
    .collect();
    let deadline = Instant::now() + DEADLINE;
    let rows = loop {
        let out = run(&["services", &registry, "-o", "json"]);
        let rows: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        if rows.as_array().is_some_and(|r| r.len() == 2)
            && rows[0]["consumers"] == 1
            && rows[0]["providers"] == 2
        {
            assert_eq!(out.status.code(), Some(0));
            break rows;
        }
        assert!(Instant::now() < deadline, "services: {rows}");
    };
    assert_eq!(rows[0]["service"], "com.acme.B", "sorted by key");
    assert_eq!(rows[1]["service"], "g/com.acme.A:1");
    assert_eq!(rows[1]["providers"], 1);
    assert_eq!(rows[1]["consumers"], 0);
    let text = run(&["services", &registry]);
    let text = String::from_utf8(text.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2);
    assert!(lines[0].starts_with("com.acme.B ") && lines[0].ends_with("providers=2 consumers=1"));
    assert!(
        lines[1].starts_with("g/com.acme.A:1") && lines[1].ends_with("providers=1 consumers=0")
    );
    for r in running {
        assert_eq!(r.signal("-TERM"), Some(0));
    }
    assert_eq!(server.signal("-TERM"), Some(0));
}

#[test]
fn watch_json_reports_changes_and_the_registry_going_and_coming_back() {
    let port = free_port();
    let server = serve(port);
    let registry = format!("http://127.0.0.1:{port}?wait=1s&timeout=1s&retry.max.period=500ms");
    let mut command = srpc();
    command.args(["watch", &registry, "com.acme.Watched", "-o", "json"]);
    let watch = Running::spawn(command);
    let url = "dubbo://127.0.0.1:20986/com.acme.Watched";
    // Heartbeats every second, so the restarted server has it again soon.
    let provider = register(&format!("http://127.0.0.1:{port}?ttl=3s"), url);
    let event = |line: String| -> Value { serde_json::from_str(&line).unwrap() };
    let add = event(watch.next_line());
    assert_eq!(add["event"], "add");
    assert_eq!(add["url"], url);
    let time = add["time"].as_str().unwrap();
    assert!(humantime::parse_rfc3339(time).is_ok(), "RFC 3339: {time}");
    // The registry goes away: the watcher says so, and keeps the provider.
    assert_eq!(server.signal("-KILL"), None);
    let lost = event(watch.next_line());
    assert_eq!(lost["event"], "disconnected", "{lost}");
    assert!(lost.get("url").is_none());
    // It comes back on the same port, empty: the watcher reconnects (and may see the
    // provider gone until its next heartbeat registers it again).
    let server = serve(port);
    let (mut connected, mut present) = (false, true);
    while !(connected && present) {
        let e = event(watch.next_line());
        match e["event"].as_str().unwrap() {
            "connected" => connected = true,
            "add" => present = true,
            "remove" => present = false,
            other => panic!("unexpected {other}: {e}"),
        }
    }
    assert_eq!(provider.signal("-TERM"), Some(0));
    let remove = event(watch.next_line());
    assert_eq!(remove["event"], "remove");
    assert_eq!(remove["url"], url);
    assert_eq!(watch.signal("-TERM"), Some(0));
    assert_eq!(server.signal("-TERM"), Some(0));
}

#[test]
fn the_registry_comes_from_srpc_registry_when_left_out() {
    let port = free_port();
    let server = serve(port);
    let registry = format!("http://127.0.0.1:{port}");
    let url = "dubbo://127.0.0.1:20987/com.acme.Env";
    let mut command = srpc();
    command
        .args(["register", url])
        .env("SRPC_REGISTRY", &registry);
    let provider = Running::spawn(command);
    let deadline = Instant::now() + DEADLINE;
    loop {
        let out = srpc()
            .args(["list", "com.acme.Env"])
            .env("SRPC_REGISTRY", &registry)
            .output()
            .unwrap();
        if out.status.code() == Some(0) {
            assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), url);
            break;
        }
        assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
        assert!(
            Instant::now() < deadline,
            "never listed through SRPC_REGISTRY"
        );
    }
    // The two-argument form still works, and wins over the variable.
    let out = srpc()
        .args(["list", &registry, "com.acme.Env"])
        .env("SRPC_REGISTRY", "gopher://nowhere")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // Neither: a clear error, exit 2.
    let out = run(&["list", "com.acme.Env"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("SRPC_REGISTRY"), "{}", stderr(&out));
    assert_eq!(provider.signal("-TERM"), Some(0));
    assert_eq!(server.signal("-TERM"), Some(0));
}

#[test]
fn verbosity_flags_set_the_log_level_and_logs_carry_no_colour_off_a_terminal() {
    let registry = format!(
        "multicast://239.255.77.81:{}?interface=127.0.0.1&timeout=100",
        free_port()
    );
    // The multicast backend logs joining its group at info level.
    let quiet = run(&["list", &registry, "com.acme.Log"]);
    assert!(
        !stderr(&quiet).contains("joined multicast group"),
        "{}",
        stderr(&quiet)
    );
    let verbose = run(&["-v", "list", &registry, "com.acme.Log"]);
    assert!(
        stderr(&verbose).contains("joined multicast group"),
        "{}",
        stderr(&verbose)
    );
    assert!(
        !stderr(&verbose).contains('\u{1b}'),
        "no escape codes when stderr is a pipe"
    );
    let q = run(&["-q", "list", &registry, "com.acme.Log"]);
    assert_eq!(q.status.code(), Some(3));
    let rust_log = srpc()
        .args(["-q", "list", &registry, "com.acme.Log"])
        .env("RUST_LOG", "info")
        .env_remove("SRPC_REGISTRY")
        .output()
        .unwrap();
    assert!(
        stderr(&rust_log).contains("joined multicast group"),
        "RUST_LOG wins over -q"
    );
}

#[test]
fn errors_say_what_happened_and_what_to_do() {
    // Nothing listens: refused at once, the address named, and for http the way to start one.
    let port = free_port();
    let out = run(&["list", &format!("http://127.0.0.1:{port}"), "a.B"]);
    assert_eq!(out.status.code(), Some(1));
    let text = stderr(&out);
    assert!(text.contains("Connection refused"), "{text}");
    assert!(
        text.contains(&format!("srpc registry serve --addr 127.0.0.1:{port}")),
        "{text}"
    );
    assert_eq!(
        text.matches("not connected").count(),
        1,
        "said once: {text}"
    );

    // ZooKeeper on a refused port fails at once, not after its 30 s session timeout.
    let started = Instant::now();
    let out = run(&[
        "list",
        &format!("zookeeper://127.0.0.1:{port}?session=30000&timeout=30s"),
        "a.B",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("refused"), "{}", stderr(&out));
    assert!(
        started.elapsed() < std::time::Duration::from_secs(15),
        "took {:?}",
        started.elapsed()
    );

    // No scheme: a suggestion. An unknown one: the schemes this build knows.
    let out = run(&["list", "127.0.0.1:9999", "a.B"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("did you mean http://127.0.0.1:9999?"),
        "{}",
        stderr(&out)
    );
    let out = run(&["list", "gopher://h:1", "a.B"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("this build knows") && stderr(&out).contains("zookeeper"));

    // A typo in a registry parameter: a warning naming the nearest known one.
    let registry = format!(
        "multicast://239.255.77.82:{}?interface=127.0.0.1&timeout=100&sesion=1000",
        free_port()
    );
    let out = run(&["list", &registry, "a.B"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        stderr(&out).contains(
            "unknown registry URL parameter \"sesion\", ignored: did you mean \"session\"?"
        ),
        "{}",
        stderr(&out)
    );

    // A bare IPv6 host is named whole.
    let out = run(&["url", "parse", "dubbo://fe80::1/x"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("bare IPv6 host \"fe80::1\""),
        "{}",
        stderr(&out)
    );

    // A long input is cut in the message, and said once.
    let long = format!("dubbo://h:x/a.B?methods={}", "m".repeat(3000));
    let out = run(&["url", "parse", &long]);
    assert_eq!(out.status.code(), Some(2));
    let text = stderr(&out);
    assert!(text.contains(&format!("({} bytes)", long.len())), "{text}");
    assert!(text.len() < 400, "{} bytes of message", text.len());
}

#[test]
fn register_with_check_false_says_registered_only_when_it_is() {
    let port = free_port();
    let registry = format!("http://127.0.0.1:{port}?check=false&retry.max.period=200ms");
    let url = "dubbo://127.0.0.1:20988/com.acme.Later";
    let mut command = srpc();
    command
        .args(["-q", "register", &registry, url])
        .env_remove("SRPC_REGISTRY");
    let provider = Running::spawn_reading_stderr(command);
    assert_eq!(
        provider.next_line(),
        "srpc: not registered yet (check=false): retrying in the background"
    );
    // The registry starts: the retry registers it, and only then does it say so.
    let server = serve(port);
    assert_eq!(provider.next_line(), format!("srpc: registered {url}"));
    let out = run(&[
        "list",
        &format!("http://127.0.0.1:{port}"),
        "com.acme.Later",
    ]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), url);
    drop(provider);
    assert_eq!(server.signal("-TERM"), Some(0));
}

/// A server's `--ttl` is the longest it grants: clients that ask for 30 s heartbeat at a
/// third of what was granted, so they stay; a SIGKILLed provider is gone within that TTL.
/// Two providers of one URL hold their own leases: killing one leaves the other's.
#[test]
fn the_server_ttl_bounds_how_long_a_dead_provider_stays() {
    let port = free_port();
    let registry = format!("http://localhost:{port}");
    let server = serve_with(&["--addr", &format!(":{port}"), "--ttl", "2s"], &registry);
    let url = "dubbo://127.0.0.1:20989/com.acme.Leased";
    let listed = || {
        String::from_utf8_lossy(&run(&["list", &registry, "com.acme.Leased"]).stdout).contains(url)
    };
    let first = register(&registry, url);
    let second = register(&registry, url);
    assert_eq!(first.signal("-KILL"), None);
    // Twice the TTL later it is still there: the second provider heartbeats (at a third of
    // the 2 s granted, though it asked for 30 s).
    let until = Instant::now() + std::time::Duration::from_secs(4);
    while Instant::now() < until {
        assert!(listed(), "dropped while a holder still heartbeats");
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    let killed = Instant::now();
    assert_eq!(second.signal("-KILL"), None);
    while listed() {
        assert!(
            killed.elapsed() < std::time::Duration::from_secs(6),
            "a dead provider outlived the server's 2 s TTL"
        );
    }
    assert_eq!(server.signal("-TERM"), Some(0));
}

#[test]
fn the_token_can_come_from_the_environment() {
    let port = free_port();
    let registry = format!("http://127.0.0.1:{port}");
    let addr = format!("127.0.0.1:{port}");
    let server = serve_with(&["--addr", &addr, "--token", "s3cret"], &registry);
    let url = "dubbo://127.0.0.1:20991/com.acme.Token";
    let refused = run(&["register", &registry, url, "--for", "10ms"]);
    assert_ne!(refused.status.code(), Some(0), "no token, no write");
    assert!(stderr(&refused).contains("401"), "{}", stderr(&refused));
    let out = srpc()
        .args(["register", &registry, url, "--for", "10ms"])
        .env("SRPC_REGISTRY_TOKEN", "s3cret")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(server.signal("-TERM"), Some(0));
}

/// A provider killed without unregistering leaves its instance until the TTL runs out;
/// `srpc unregister` removes it now, and says so.
#[test]
fn unregister_removes_what_a_dead_provider_left() {
    let port = free_port();
    let server = serve(port);
    let registry = format!("http://127.0.0.1:{port}");
    let url = "dubbo://127.0.0.1:20992/com.acme.Stale";
    let provider = register(&format!("{registry}?ttl=60s"), url);
    assert_eq!(provider.signal("-KILL"), None);
    let out = run(&["unregister", &registry, url]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("unregistered {url}")),
        "{}",
        stderr(&out)
    );
    let out = run(&["list", &registry, "com.acme.Stale"]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "gone at once, not after the 60 s TTL"
    );
    // Where it cannot work, a clear error.
    let out = run(&["unregister", "inprocess://x", url]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("inside one process"),
        "{}",
        stderr(&out)
    );
    assert_eq!(server.signal("-TERM"), Some(0));
}

#[test]
fn completions_for_each_shell() {
    for (shell, needle) in [
        ("bash", "_srpc()"),
        ("zsh", "#compdef srpc"),
        ("fish", "complete -c srpc"),
    ] {
        let out = run(&["completions", shell]);
        assert_eq!(out.status.code(), Some(0), "{shell}");
        let script = String::from_utf8(out.stdout).unwrap();
        assert!(
            script.contains(needle),
            "{shell}: {}",
            &script[..200.min(script.len())]
        );
        assert!(
            script.contains("unregister") && script.contains("services"),
            "{shell}"
        );
    }
}

/// On multicast, consumers probe providers: registering where nothing listens is warned
/// about; with --listen (or a real provider) it is not.
#[test]
fn a_stand_in_where_nothing_listens_is_warned_about() {
    let registry = format!(
        "multicast://239.255.77.83:{}?interface=127.0.0.1&timeout=100",
        free_port()
    );
    let nothing = format!("dubbo://127.0.0.1:{}/com.acme.StandIn", free_port());
    let out = run(&["register", &registry, &nothing, "--for", "10ms"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("nothing accepts TCP connections"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("--listen"), "{}", stderr(&out));
    let out = run(&["register", &registry, &nothing, "--for", "10ms", "--listen"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        !stderr(&out).contains("nothing accepts"),
        "{}",
        stderr(&out)
    );
}

/// `srpc demo --serve`, once it has printed what to try: the process, the registry URL and
/// the two servers' addresses.
fn demo_serve() -> (Running, String, Vec<String>) {
    let mut command = srpc();
    command
        .args(["demo", "--serve"])
        .env_remove("SRPC_REGISTRY");
    let demo = Running::spawn(command);
    let mut registry = String::new();
    let mut servers = Vec::new();
    loop {
        let line = demo.next_line();
        if let Some(url) = line.strip_prefix("registry: ") {
            registry = url.split('?').next().unwrap().to_owned();
        } else if let Some(addr) = line
            .strip_prefix("server ")
            .and_then(|l| l.strip_suffix(" registered"))
        {
            servers.push(addr.to_owned());
        } else if line.contains("srpc call") {
            assert!(line.contains(&registry), "{line}");
            break;
        }
    }
    (demo, registry, servers)
}

/// `srpc call` reads large requests from stdin or a file, refuses one over a frame at once,
/// cuts a provider's error that quotes a 100 KB argument, answers in JSON with `-o json`,
/// and hints at other versions when none matches; `srpc describe` sums an interface up.
#[test]
fn call_reads_stdin_and_files_and_describe_sums_up() {
    use std::io::Write as _;
    let (demo, registry, _servers) = demo_serve();
    let dir = tempfile::tempdir().unwrap();

    // stdin and @file.
    let mut child = srpc()
        .args(["call", &registry, "Foo.Sum", "-"])
        .env_remove("SRPC_REGISTRY")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"[40, 2]").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let reply: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(reply["sum"], 42);
    let file = dir.path().join("request.json");
    std::fs::write(&file, "[2, 5]").unwrap();
    let at_file = format!("@{}", file.display());
    let out = run(&["call", &registry, "Foo.Sum", &at_file]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let reply: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(reply["sum"], 7);

    // 20 MB: refused before anything is sent, saying why (not "Argument list too long").
    let big = dir.path().join("big.json");
    let mut writer = std::io::BufWriter::new(std::fs::File::create(&big).unwrap());
    writer.write_all(b"[\"").unwrap();
    for _ in 0..20 {
        writer.write_all(&[b'x'; 1 << 20]).unwrap();
    }
    writer.write_all(b"\"]").unwrap();
    drop(writer);
    let out = run(&["call", &registry, "Foo.Sum", &format!("@{}", big.display())]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("over 16 MiB"), "{}", stderr(&out));

    // A provider's decode error quotes the argument: 100 KB of it would fill the screen.
    let quoting = dir.path().join("quoting.json");
    std::fs::write(&quoting, format!("\"{}\"", "y".repeat(100_000))).unwrap();
    let out = run(&[
        "call",
        &registry,
        "Foo.Sum",
        &format!("@{}", quoting.display()),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let why = stderr(&out);
    assert!(
        why.contains("bad-request") && why.contains("bytes)…"),
        "{why}"
    );
    assert!(why.len() < 800, "{} bytes of error", why.len());

    // -o json: the reply, and errors as an object on stdout.
    let out = run(&["call", &registry, "Foo.Sum", "[1, 1]", "-o", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        serde_json::from_slice::<Value>(&out.stdout).unwrap()["sum"],
        2
    );
    let out = run(&[
        "call",
        &registry,
        "Foo.Nope",
        "[]",
        "--service",
        "Foo",
        "-o",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let error: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(error["error"]["kind"], "failed");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not-found"),
        "{error}"
    );

    // Providers only of another version: the hint says which.
    let _v2 = register(&registry, "dubbo://127.0.0.1:20894/com.acme.V?version=2.0");
    let out = run(&["call", &registry, "com.acme.V.m", "[]", "--wait", "300ms"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("other groups or versions (com.acme.V:2.0)"),
        "{}",
        stderr(&out)
    );

    // describe: protocols, versions, groups, methods.
    let out = run(&["describe", &registry, "Foo", "-o", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let description: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(description["providers"], 2, "{description}");
    assert_eq!(description["protocols"]["srpc"], 2, "{description}");
    let methods = description["methods"].as_array().unwrap();
    assert!(methods.contains(&Value::from("Sum")), "{description}");
    let out = run(&["describe", &registry, "com.acme.V"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("versions: 2.0 (1)") && text.contains("protocols: dubbo (1)"),
        "{text}"
    );
    let out = run(&["describe", &registry, "com.acme.Nobody"]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(demo.signal("-TERM"), Some(0));
}

/// `demo --serve` keeps a registry and two servers up and prints what to try; `call` then
/// reaches them: one provider per call, or all with `--broadcast`.
#[test]
fn demo_serve_then_call_one_or_all() {
    let (demo, registry, mut servers) = demo_serve();
    assert_eq!(servers.len(), 2);
    let out = run(&["call", &registry, "Foo.Sum", "[1, 2]"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let reply: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(reply["sum"], 3);
    assert!(
        servers.contains(&reply["server"].as_str().unwrap().to_owned()),
        "{reply}"
    );
    let out = run(&["call", &registry, "Foo.Sum", "[2, 5]", "--broadcast"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let replies: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut answered: Vec<String> = replies
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            assert_eq!(r["sum"], 7);
            r["server"].as_str().unwrap().to_owned()
        })
        .collect();
    answered.sort();
    servers.sort();
    assert_eq!(answered, servers, "every provider answered");
    // No provider of the service: 3. A request that is not JSON: 2. An unknown method: 1.
    let out = run(&["call", &registry, "Bar.Sum", "[1]", "--wait", "200ms"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let out = run(&["call", &registry, "Foo.Sum", "{not json"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let out = run(&["call", &registry, "Foo.Nope", "[]", "--service", "Foo"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("Foo.Nope"), "{}", stderr(&out));

    // A mixed estate: `dubbo://` and `tri://` providers of Foo beside the demo's srpc ones.
    // `call` still reaches only srpc servers; for a service with only those, it says so.
    let others: Vec<Running> = [
        "dubbo://127.0.0.1:20891/Foo?interface=Foo",
        "tri://127.0.0.1:50091/Foo?interface=Foo",
        "dubbo://127.0.0.1:20892/com.acme.Echo?interface=com.acme.Echo",
        "dubbo://127.0.0.1:20893/com.acme.Echo?interface=com.acme.Echo",
    ]
    .iter()
    .map(|u| register(&registry, u))
    .collect();
    for _ in 0..10 {
        let out = run(&["call", &registry, "Foo.Sum", "[1, 2]"]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let reply: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(
            servers.contains(&reply["server"].as_str().unwrap().to_owned()),
            "{reply}"
        );
    }
    let started = Instant::now();
    let out = run(&[
        "call",
        &registry,
        "com.acme.Echo.echo",
        "[\"hi\"]",
        "--wait",
        "60s",
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out)
            .contains("2 providers of com.acme.Echo, all `dubbo://`: this XClient calls srpc"),
        "{}",
        stderr(&out)
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "found but uncallable ends the wait (--wait 60s)"
    );
    drop(others);
    assert_eq!(demo.signal("-TERM"), Some(0));
}

/// `srpc call` reaches a `jsonrpc://` provider (a Python JSON-RPC 2.0 server over HTTP, as
/// Dubbo's jsonrpc protocol exports a service) found in the registry.
#[test]
fn call_reaches_a_jsonrpc_provider() {
    let registry = format!("http://127.0.0.1:{}", free_port());
    let _server = serve(registry.rsplit(':').next().unwrap().parse().unwrap());
    let mut command = std::process::Command::new("python3");
    command.args([
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/python/jsonrpc_peer.py"
        ),
        "py",
        "com.acme.Calc",
    ]);
    let peer = Running::spawn(command);
    let line = peer.next_line();
    let port = line.trim().strip_prefix("listening ").unwrap().to_owned();
    let _provider = register(
        &registry,
        &format!("jsonrpc://127.0.0.1:{port}/com.acme.Calc?interface=com.acme.Calc&methods=add"),
    );
    let out = run(&["call", &registry, "com.acme.Calc.add", "[40, 2]"]);
    // Metadata goes as HTTP headers to a jsonrpc provider.
    let header = run(&[
        "call",
        &registry,
        "com.acme.Calc.header",
        "[\"tenant\"]",
        "-H",
        "tenant=acme",
    ]);
    drop(peer);
    assert_eq!(header.status.code(), Some(0), "{}", stderr(&header));
    assert_eq!(String::from_utf8_lossy(&header.stdout).trim(), "\"acme\"");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "42");
}

/// On multicast, `srpc unregister` sends Java's `unregister` datagram: a watcher drops the
/// provider at once (its probes, every 60 s here, would take far longer).
#[test]
fn unregister_on_multicast_sends_the_datagram() {
    let registry = format!(
        "multicast://239.255.77.84:{}?interface=127.0.0.1&timeout=300",
        free_port()
    );
    let url = "dubbo://127.0.0.1:20993/com.acme.McStale";
    let mut command = srpc();
    command.args([
        "watch",
        &format!("{registry}&session=60000"),
        "com.acme.McStale",
    ]);
    let watch = Running::spawn(command);
    let mut command = srpc();
    command.args(["register", &registry, url, "--listen"]);
    let provider = Running::spawn(command);
    assert_eq!(watch.next_line(), format!("+ {url}"));
    assert_eq!(provider.signal("-KILL"), None);
    let out = run(&["unregister", &registry, url]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("sent the retraction"),
        "{}",
        stderr(&out)
    );
    assert_eq!(watch.next_line(), format!("- {url}"));
    assert_eq!(watch.signal("-TERM"), Some(0));
}

/// `srpc registry serve` raises its soft limit of open files to the hard limit, so that a
/// low `ulimit -n` does not cap the watchers it can hold below what the system allows.
#[test]
fn registry_serve_raises_its_open_files_limit() {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    // A soft limit of 256 under whatever hard limit this machine has.
    let mut command = Command::new("sh");
    command.args([
        "-c",
        "ulimit -Sn 256 && exec \"$0\" registry serve --no-state-file --addr \"$1\"",
        env!("CARGO_BIN_EXE_srpc"),
        &addr,
    ]);
    let server = Running::spawn(command);
    let registry = format!("http://{addr}");
    let deadline = Instant::now() + DEADLINE;
    while run(&["list", &registry, "com.acme.Up"]).status.code() != Some(3) {
        assert!(
            Instant::now() < deadline,
            "the registry server did not come up"
        );
    }
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", server.pid())).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let numbers: Vec<&str> = line.split_whitespace().skip(3).take(2).collect();
    assert_eq!(numbers[0], numbers[1], "soft = hard: {line}");
    assert_ne!(numbers[0], "256", "{line}");
}

/// `srpc registry serve` keeps its state in `$XDG_STATE_HOME/srpc/registry-<host>-<port>.json`
/// by default: killed and started again, it lists what was registered at once (no warm-up).
#[test]
fn registry_serve_keeps_its_state_across_a_restart() {
    let state = tempfile::tempdir().unwrap();
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let registry = format!("http://{addr}");
    let start = || {
        let mut command = srpc();
        command
            .args(["registry", "serve", "--addr", &addr])
            .env("XDG_STATE_HOME", state.path());
        let server = Running::spawn(command);
        let deadline = Instant::now() + DEADLINE;
        while run(&["list", &registry, "com.acme.Up"]).status.code() != Some(3) {
            assert!(
                Instant::now() < deadline,
                "the registry server did not come up"
            );
        }
        server
    };
    let server = start();
    let url = "dubbo://127.0.0.1:20977/com.acme.Kept?side=provider";
    let provider = register(&registry, url);
    assert_eq!(server.signal("-TERM"), Some(0));
    let file = state
        .path()
        .join("srpc")
        .join(format!("registry-127.0.0.1-{port}.json"));
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("com.acme.Kept"), "{text}");
    let _server = start();
    let out = run(&["list", &registry, "com.acme.Kept"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains(":20977/"));
    drop(provider);
}

/// `srpc unregister` tells the truth about a live provider: it refuses while something
/// accepts connections at the provider's address, and with `--force` it says the provider
/// registered again (exit 1), instead of "unregistered".
#[test]
fn unregister_of_a_live_provider_says_so() {
    let port = free_port();
    let server = serve(port);
    let registry = format!("http://127.0.0.1:{port}");
    let provider_port = free_port();
    let url = format!("dubbo://127.0.0.1:{provider_port}/com.acme.Alive");
    let mut command = srpc();
    command
        .args(["register", &registry, &url, "--listen"])
        .env_remove("SRPC_REGISTRY");
    let provider = Running::spawn(command);
    let deadline = Instant::now() + DEADLINE;
    while !String::from_utf8_lossy(&run(&["list", &registry, "com.acme.Alive"]).stdout)
        .contains(&url)
    {
        assert!(Instant::now() < deadline, "{url} was not registered");
    }
    let refused = run(&["unregister", &registry, &url]);
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("looks alive"),
        "{}",
        stderr(&refused)
    );
    assert!(stderr(&refused).contains("--force"), "{}", stderr(&refused));
    let forced = run(&["unregister", &registry, &url, "--force"]);
    assert_eq!(forced.status.code(), Some(1), "{}", stderr(&forced));
    assert!(
        stderr(&forced).contains("still registered: the provider at"),
        "{}",
        stderr(&forced)
    );
    let listed = run(&["list", &registry, "com.acme.Alive"]);
    assert!(String::from_utf8_lossy(&listed.stdout).contains(&url));
    assert_eq!(provider.signal("-TERM"), Some(0));
    assert_eq!(server.signal("-TERM"), Some(0));
}

/// Under a low open-files limit, idle connections past what the process may hold wait in the
/// listen backlog instead of making `accept` fail, are closed after `--header-timeout`, and a
/// new client is served.
#[test]
fn registry_serve_keeps_serving_past_its_file_limit() {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let registry = format!("http://{addr}");
    let mut command = Command::new("sh");
    command.args([
        "-c",
        "ulimit -n 128 && exec \"$0\" registry serve --no-state-file --header-timeout 2s --addr \"$1\"",
        env!("CARGO_BIN_EXE_srpc"),
        &addr,
    ]);
    let server = Running::spawn(command);
    let deadline = Instant::now() + DEADLINE;
    while run(&["list", &registry, "com.acme.Up"]).status.code() != Some(3) {
        assert!(
            Instant::now() < deadline,
            "the registry server did not come up"
        );
    }
    // More idle connections than the process may hold descriptors.
    let idle: Vec<std::net::TcpStream> = (0..200)
        .map(|_| std::net::TcpStream::connect(&addr).unwrap())
        .collect();
    let deadline = Instant::now() + DEADLINE;
    loop {
        let out = run(&["list", &registry, "com.acme.Up"]);
        if out.status.code() == Some(3) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not served past the file limit: {}",
            stderr(&out)
        );
    }
    drop(idle);
    assert_eq!(server.signal("-TERM"), Some(0));
}

/// Issue 28: a flood of announced providers that never answer, at a consumer short of file
/// descriptors, never drops the live provider. The prober runs at most `probe.concurrency`
/// probes (16 here, under `ulimit -n 40`, where the watcher itself needs about a dozen), the
/// live provider first in every round; a probe that fails for lack of a descriptor counts
/// against nobody. Every fake is dropped after two misses, the live one never.
#[test]
fn a_flood_of_unanswering_providers_never_drops_a_live_one() {
    let fakes = 60;
    let registry = format!(
        "multicast://239.255.77.86:{}?interface=127.0.0.1&timeout=100&session=1000&probe.concurrency=16",
        free_port()
    );
    let address = format!("127.0.0.1:{}", free_port());
    let live = format!("dubbo://{address}/com.acme.Flood");
    let mut command = srpc();
    command
        .args(["-q", "register", &registry, &live, "--listen"])
        .env_remove("SRPC_REGISTRY");
    let _provider = Running::spawn(command);
    let mut command = Command::new("sh");
    command
        .args([
            "-c",
            "ulimit -n 40 && exec \"$0\" \"$@\"",
            env!("CARGO_BIN_EXE_srpc"),
            "watch",
            &registry,
            "com.acme.Flood",
        ])
        .env_remove("SRPC_REGISTRY");
    let watcher = Running::spawn(command);
    let first = watcher.next_line();
    assert!(
        first.starts_with("+ ") && first.contains(&address),
        "{first}"
    );

    // The fakes, announced by a handle of this test: all at a port that never accepts.
    let unanswering = srpc_tests::Unanswering::start().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let _announcer = runtime.block_on(async {
        let handle = srpc::registry::connect(&registry).await.unwrap();
        for i in 0..fakes {
            let fake = format!(
                "dubbo://127.0.0.1:{}/com.acme.Flood?fake={i}",
                unanswering.port()
            );
            handle.register(&fake.parse().unwrap()).await.unwrap();
        }
        handle
    });

    // Two rotations of 60 at 16 a round, a round a second: the last fake goes within ten
    // seconds or so; the deadline leaves room for a loaded machine.
    let (mut added, mut dropped) = (0, 0);
    let until = Instant::now() + std::time::Duration::from_secs(90);
    while dropped < fakes {
        let left = until.saturating_duration_since(Instant::now());
        let line = watcher
            .line_within(left)
            .unwrap_or_else(|| panic!("{dropped} of {fakes} fakes dropped in time"));
        assert!(
            !(line.starts_with("- ") && line.contains(&address)),
            "the live provider was dropped: {line}"
        );
        if line.starts_with("+ ") && line.contains("fake=") {
            added += 1;
        } else if line.starts_with("- ") && line.contains("fake=") {
            dropped += 1;
        }
    }
    assert_eq!(added, fakes, "every fake was seen before it was dropped");
}

/// Issue 28: registry data is escaped in text output. A parameter value holding a newline,
/// a fake provider line and ESC prints as one line with `\n` and `\u{1b}`, in `list` and
/// `watch` alike; `-o json` keeps the value exact.
#[test]
fn text_output_escapes_control_characters_in_registry_data() {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let registry = format!("http://{addr}");
    let url = "dubbo://127.0.0.1:20990/com.acme.Esc?x=a\n+ dubbo://evil:1/com.acme.Esc\u{1b}[31m";
    // srpc refuses to write such data (see `register_refuses_what_could_never_work`): it
    // comes from another writer, here the server's state file.
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let saved = serde_json::json!({
        "version": 1,
        "instances": [{ "url": url, "holders": { "other-writer": 60_000 } }],
    });
    std::fs::write(&state, saved.to_string()).unwrap();
    let state_flag = format!("--state-file={}", state.display());
    let server = serve_with(&["--addr", &addr, &state_flag], &registry);
    let shown =
        "dubbo://127.0.0.1:20990/com.acme.Esc?x=a\\n+ dubbo://evil:1/com.acme.Esc\\u{1b}[31m";
    let out = run(&["list", &registry, "com.acme.Esc"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), format!("{shown}\n"));
    let mut command = srpc();
    command
        .args(["watch", &registry, "com.acme.Esc"])
        .env_remove("SRPC_REGISTRY");
    let watcher = Running::spawn(command);
    assert_eq!(watcher.next_line(), format!("+ {shown}"));
    let out = run(&["list", &registry, "com.acme.Esc", "-o", "json"]);
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed[0]["url"], url, "{listed}");
    drop(watcher);
    assert_eq!(server.signal("-TERM"), Some(0));
}

/// A connection that never sends its preface no longer keeps `demo --serve` alive after
/// SIGINT (it once did, for as long as the connection stayed open).
#[test]
fn demo_serve_stops_promptly_despite_a_silent_connection() {
    let mut command = srpc();
    command
        .args(["demo", "--serve"])
        .env_remove("SRPC_REGISTRY");
    let mut demo = Running::spawn(command);
    let server = loop {
        let line = demo.next_line();
        if let Some(addr) = line
            .strip_prefix("server ")
            .and_then(|l| l.strip_suffix(" registered"))
        {
            break addr.to_owned();
        }
    };
    let _silent = std::net::TcpStream::connect(&server).unwrap();
    demo.send("-INT");
    assert_eq!(
        demo.exit_within(support::DEADLINE),
        Some(Some(0)),
        "demo --serve did not stop after SIGINT"
    );
}

/// During a clean shutdown a second SIGTERM ends the process at once (status 130): here
/// `registry serve` would otherwise wait a minute for a request still arriving.
#[test]
fn a_second_signal_exits_at_once() {
    use std::io::Write;
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let registry = format!("http://{addr}");
    let mut server = serve_with(
        &[
            "--addr",
            &addr,
            "--shutdown-grace",
            "60s",
            "--header-timeout",
            "60s",
        ],
        &registry,
    );
    // A request whose headers never end: in flight until the header timeout.
    let mut slow = std::net::TcpStream::connect(&addr).unwrap();
    slow.write_all(b"GET /v1/services HTTP/1.1\r\nHost: srpc\r\n")
        .unwrap();
    let _ = run(&["list", &registry, "com.acme.Up"]); // the server has accepted both
    server.send("-TERM");
    assert_eq!(
        server.exit_within(std::time::Duration::from_secs(2)),
        None,
        "the first signal starts a clean shutdown that waits for the request"
    );
    server.send("-TERM");
    assert_eq!(
        server.exit_within(support::DEADLINE),
        Some(Some(130)),
        "the second signal ends it at once"
    );
}

/// `register` refuses provider URLs that could never be called or that would fool whoever
/// prints them, naming the part and why; Dubbo's consumers and routes keep their forms.
#[test]
fn register_refuses_what_could_never_work() {
    let registry = "inprocess://refusals";
    let refused = [
        ("dubbo://127.0.0.1/com.acme.Echo", "needs a port"),
        ("dubbo://127.0.0.1:0/com.acme.Echo", "needs a port"),
        ("dubbo://0.0.0.0:20880/com.acme.Echo", "unspecified address"),
        ("dubbo://[::]:20880/com.acme.Echo", "unspecified address"),
        (
            "dubbo://127.0.0.1:20880/com.acme.Echo?interface=a\x07b",
            "control character",
        ),
        (
            "dubbo://127.0.0.1:20880/com.acme.Echo?x=a\x1b[2J",
            "control character",
        ),
        ("dubbo://127.0.0.1:20880/../../etc/passwd", "interface"),
        ("dubbo://127.0.0.1:20880/com.acme.Echo?a=b;c", "`;`"),
    ];
    for (url, why) in refused {
        let out = run(&["register", registry, url, "--for", "1ms"]);
        assert_eq!(out.status.code(), Some(2), "{url}: {}", stderr(&out));
        assert!(stderr(&out).contains(why), "{url}: {}", stderr(&out));
    }
    for url in [
        "consumer://127.0.0.1/com.acme.Echo?category=consumers",
        "route://0.0.0.0/com.acme.Echo?category=routers&rule=x",
    ] {
        let out = run(&["register", registry, url, "--for", "1ms"]);
        assert_eq!(out.status.code(), Some(0), "{url}: {}", stderr(&out));
    }
}

/// `unregister` takes any URL, as another tool may have written it: what it says of the URL
/// has its control characters escaped, as `list` shows registry data.
#[test]
fn unregister_escapes_the_url_it_names() {
    let port = free_port();
    let server = serve(port);
    let registry = format!("http://127.0.0.1:{port}");
    let url = "consumer://127.0.0.1/com.acme.Echo?category=consumers&x=a\x1b[2J";
    let out = run(&["unregister", &registry, url, "--force"]);
    assert!(
        stderr(&out).contains("consumer://127.0.0.1/com.acme.Echo?")
            && stderr(&out).contains("x=a\\u{1b}[2J")
            && !stderr(&out).contains('\x1b'),
        "{:?}",
        stderr(&out)
    );
    assert_eq!(server.signal("-TERM"), Some(0));
}

/// `srpc completions bash | head -3` once panicked on the closed pipe. Here the reading end
/// is closed before the command starts, so every write meets it.
#[test]
fn completions_stop_quietly_when_the_reader_does() {
    let (reader, writer) = rustix::pipe::pipe().unwrap();
    drop(reader);
    let out = srpc()
        .args(["completions", "bash"])
        .stdout(std::process::Stdio::from(writer))
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
}

/// `registry serve --tls-cert … --tls-key …` serves HTTPS: `https://` clients with the CA get
/// in, plain HTTP does not, and a broken certificate file is refused at start (exit 2,
/// named).
#[test]
fn registry_serve_over_https() {
    let pki = srpc_tests::tls::TestPki::generate();
    let server_id = pki.server();
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let cert = server_id.cert.display().to_string();
    let key = server_id.key.display().to_string();
    let https = format!("https://{addr}?cacert={}", pki.ca().display());
    let server = serve_with(
        &["--addr", &addr, "--tls-cert", &cert, "--tls-key", &key],
        &https,
    );
    let out = run(&["list", &https, "com.acme.Up", "--wait", "1s"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let out = run(&[
        "list",
        &format!("http://{addr}"),
        "com.acme.Up",
        "--wait",
        "1s",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(server.signal("-TERM"), Some(0));

    let junk = pki.dir().join("junk.pem");
    std::fs::write(&junk, "junk").unwrap();
    let junk = junk.display().to_string();
    let out = run(&[
        "registry",
        "serve",
        "--no-state-file",
        "--addr",
        &format!("127.0.0.1:{}", free_port()),
        "--tls-cert",
        &junk,
        "--tls-key",
        &key,
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains(&junk), "{}", stderr(&out));
}

/// `srpc call --cacert …` calls providers that register with `tls=true` over TLS; without
/// TLS settings the call says what is missing.
#[test]
fn call_over_tls() {
    let pki = srpc_tests::tls::TestPki::generate();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let port = free_port();
    let registry_url = format!("http://127.0.0.1:{port}");
    let registry = serve(port);
    let (server, handle) = runtime.block_on(async {
        let id = pki.server();
        let server = srpc::rpc::Server::new()
            .with_tls_files(&srpc::rpc::ServerTls::new(id.cert, id.key))
            .unwrap()
            .handle("Foo.Sum", |(a, b): (i64, i64)| async move {
                Ok::<_, srpc::rpc::HandlerError>(a + b)
            })
            .bind("127.0.0.1:0")
            .await
            .unwrap();
        let handle = srpc::registry::connect(&registry_url).await.unwrap();
        let url: srpc::registry::Url =
            format!("srpc://{}/Foo?tls=true&side=provider", server.local_addr())
                .parse()
                .unwrap();
        handle.register(&url).await.unwrap();
        (server, handle)
    });
    let ca = pki.ca().display().to_string();
    let out = run(&["call", &registry_url, "Foo.Sum", "[40, 2]", "--cacert", &ca]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "42");
    let out = run(&["call", &registry_url, "Foo.Sum", "[40, 2]"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("asks for TLS"), "{}", stderr(&out));
    runtime.block_on(async {
        handle.close().await.unwrap();
        server.shutdown().await.unwrap();
    });
    assert_eq!(registry.signal("-TERM"), Some(0));
}
