//! A private network namespace for a whole test binary, for tests that multicast on a link
//! (mDNS): nothing they send can reach this machine's networks, and test binaries running
//! side by side do not hear each other.
//!
//! Every test of such a binary calls [`private`] before it touches the network. The first
//! call re-executes the binary, with the same arguments, under `unshare --net` (a new
//! namespace holding only `lo`, brought up with multicast on); in there the calls only check
//! that no other interface is present.

use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::Mutex;

/// Set in the environment of the re-executed binary.
const MARKER: &str = "SRPC_TEST_PRIVATE_NETWORK";

/// Makes sure this process runs in a private network namespace holding only loopback (see
/// the module docs); panics with the reason when it cannot.
pub fn private() {
    static ENTERING: Mutex<()> = Mutex::new(());
    if std::env::var_os(MARKER).is_some() {
        if let Err(reason) = check_private() {
            panic!("{reason}");
        }
        return;
    }
    let _only_one = ENTERING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut unshare = Command::new("unshare");
    if !is_root() {
        // A user namespace, where this user is root, brings the right to make the network one.
        unshare.args(["--user", "--map-root-user"]);
    }
    unshare
        .args(["--net", "--", "/bin/sh", "-c"])
        .arg(r#"ip link set lo up multicast on && exec "$0" "$@""#)
        .arg(exe)
        .args(std::env::args_os().skip(1))
        .env(MARKER, "1");
    // Only returns when the exec failed.
    let error = unshare.exec();
    panic!("cannot re-run the tests under `unshare --net` (util-linux): {error}");
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status
            .lines()
            .find(|l| l.starts_with("Uid:"))
            .and_then(|l| l.split_whitespace().nth(2))
            == Some("0")
    })
}

/// Refuses to go on if any interface but loopback is in this namespace.
pub fn check_private() -> Result<(), String> {
    let interfaces = if_addrs::get_if_addrs().map_err(|e| format!("list interfaces: {e}"))?;
    let others: Vec<String> = interfaces
        .iter()
        .filter(|i| !i.is_loopback())
        .map(|i| format!("{} {}", i.name, i.ip()))
        .collect();
    if others.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "not a private network: interfaces besides loopback are here: {}",
            others.join(", ")
        ))
    }
}
