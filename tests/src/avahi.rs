//! [`Avahi`]: a private D-Bus system bus and an avahi-daemon on `lo` only, for interop
//! tests that run in a private network namespace ([`crate::netns`]). Both are stopped by
//! PID when dropped. avahi's tools (`avahi-publish-service`, `avahi-browse`) reach the daemon
//! through that bus ([`Avahi::command`]).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The daemon's PID file, fixed at build time by Debian's avahi.
const PID_FILE: &str = "/run/avahi-daemon/pid";

/// A running avahi-daemon and its bus.
pub struct Avahi {
    dir: PathBuf,
    dbus: Child,
    daemon: Child,
}

fn stop(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

fn wait_for(what: &str, deadline: Duration, mut ready: impl FnMut() -> bool) {
    let until = Instant::now() + deadline;
    while !ready() {
        assert!(
            Instant::now() < until,
            "{what} not ready within {deadline:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Avahi {
    /// Whether avahi-daemon, its tools and dbus-daemon are installed (`cargo xtask
    /// integration` installs them).
    pub fn is_installed() -> bool {
        [
            "/usr/sbin/avahi-daemon",
            "/usr/bin/avahi-browse",
            "/usr/bin/dbus-daemon",
        ]
        .iter()
        .all(|p| Path::new(p).exists())
    }

    /// Starts the bus, then the daemon, and waits until the daemon answers on the bus.
    pub fn start() -> Avahi {
        crate::netns::check_private().unwrap_or_else(|reason| panic!("{reason}"));
        let dir = std::env::temp_dir().join(format!("srpc-avahi-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let bus = dir.join("bus");
        let _ = std::fs::remove_file(&bus);
        std::fs::write(
            dir.join("bus.conf"),
            format!(
                r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
"#,
                bus.display()
            ),
        )
        .unwrap();
        let mut dbus = Command::new("dbus-daemon")
            .arg(format!("--config-file={}", dir.join("bus.conf").display()))
            .args(["--nofork", "--nopidfile"])
            .stdout(Stdio::null())
            .spawn()
            .expect("start dbus-daemon");
        let bus_ready = Instant::now() + Duration::from_secs(10);
        while !bus.exists() {
            if Instant::now() > bus_ready {
                stop(&mut dbus);
                panic!("dbus-daemon made no socket at {}", bus.display());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        std::fs::write(
            dir.join("avahi.conf"),
            "[server]\nuse-ipv4=yes\nuse-ipv6=no\nallow-interfaces=lo\nratelimit-interval-usec=1000000\n\
             ratelimit-burst=1000\n[wide-area]\nenable-wide-area=no\n[publish]\npublish-hinfo=no\n\
             publish-workstation=no\npublish-aaaa-on-ipv4=no\n",
        )
        .unwrap();
        // A PID file left by a daemon that did not stop makes a new one refuse to start.
        let _ = std::fs::remove_file(PID_FILE);
        let _ = std::fs::create_dir_all("/run/avahi-daemon");
        let daemon = Command::new("avahi-daemon")
            .arg(format!("--file={}", dir.join("avahi.conf").display()))
            .args(["--no-rlimits", "--no-drop-root", "--no-chroot"])
            .env(
                "DBUS_SYSTEM_BUS_ADDRESS",
                format!("unix:path={}", bus.display()),
            )
            .stdout(Stdio::null())
            .spawn()
            .expect("start avahi-daemon");
        let avahi = Avahi { dir, dbus, daemon };
        wait_for("avahi-daemon", Duration::from_secs(15), || {
            avahi
                .command("avahi-browse")
                .args(["-pt", "_srpc-none._tcp"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        });
        avahi
    }

    /// A command of avahi's tools, connected to this daemon's bus.
    pub fn command(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        command.env(
            "DBUS_SYSTEM_BUS_ADDRESS",
            format!("unix:path={}", self.dir.join("bus").display()),
        );
        command
    }

    /// `avahi-browse -rpt TYPE`: the resolved (`=`) lines, each split on `;`.
    pub fn browse(&self, service_type: &str) -> Vec<Vec<String>> {
        // avahi-browse -t waits for every resolver it started; one that never ended (seen once
        // under load: 25 minutes) must not hang the test. It is killed after 10 s, and the
        // caller's loop asks again.
        let mut child = self
            .command("avahi-browse")
            .args(["-rpt", service_type])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("run avahi-browse");
        let mut stdout = child.stdout.take().expect("piped stdout");
        let reader = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = std::io::Read::read_to_string(&mut stdout, &mut text);
            text
        });
        let until = Instant::now() + Duration::from_secs(10);
        while child.try_wait().ok().flatten().is_none() {
            if Instant::now() > until {
                stop(&mut child);
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.wait();
        let text = reader.join().unwrap_or_default();
        text.lines()
            .filter(|l| l.starts_with('='))
            .map(|l| l.split(';').map(str::to_owned).collect())
            .collect()
    }
}

impl Drop for Avahi {
    fn drop(&mut self) {
        stop(&mut self.daemon);
        stop(&mut self.dbus);
        let _ = std::fs::remove_file(PID_FILE);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
