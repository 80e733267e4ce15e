//! Helpers shared by the CLI tests: a child process whose stdout lines can be awaited, and
//! which is stopped by its PID when the test is done with it.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// How long a test waits for a line.
pub(crate) const DEADLINE: Duration = Duration::from_secs(20);

/// A running child; killed and reaped on drop if the test did not stop it.
pub(crate) struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Running {
    /// Starts `command` with stdout captured line by line (stderr goes to the test's).
    pub(crate) fn spawn(mut command: Command) -> Running {
        let mut child = command.stdout(Stdio::piped()).spawn().expect("spawn");
        let stdout = child.stdout.take().expect("piped stdout");
        Running::reading(child, stdout)
    }

    /// Starts `command` with stderr captured line by line instead (for the messages a
    /// command prints there).
    #[allow(dead_code)] // Not every test file uses it.
    pub(crate) fn spawn_reading_stderr(mut command: Command) -> Running {
        let mut child = command.stderr(Stdio::piped()).spawn().expect("spawn");
        let stderr = child.stderr.take().expect("piped stderr");
        Running::reading(child, stderr)
    }

    fn reading(child: Child, stream: impl std::io::Read + Send + 'static) -> Running {
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Running { child, lines }
    }

    /// The next stdout line, waiting at most [`DEADLINE`].
    #[allow(dead_code)] // Not every test file uses it.
    pub(crate) fn next_line(&self) -> String {
        self.lines
            .recv_timeout(DEADLINE)
            .expect("a line on stdout in time")
    }

    /// The next stdout line if one comes within `within`.
    #[allow(dead_code)] // Not every test file uses it.
    pub(crate) fn line_within(&self, within: Duration) -> Option<String> {
        self.lines.recv_timeout(within).ok()
    }

    /// The child's PID.
    #[allow(dead_code)] // Not every test file uses it.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` (e.g. `-TERM`) to the child's PID and returns its exit code (`None`
    /// when a signal ended it).
    #[allow(dead_code)] // Not every test file uses it.
    pub(crate) fn signal(mut self, signal: &str) -> Option<i32> {
        self.send(signal);
        self.child.wait().expect("wait").code()
    }
}

impl Running {
    /// Sends `signal` to the child's PID without waiting for it to end.
    #[allow(dead_code)] // Not every test file uses it.
    pub(crate) fn send(&self, signal: &str) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args([signal, &pid])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill {signal} {pid}");
    }

    /// The child's exit code once it ends, if it does within `within` (`Some(None)` when a
    /// signal ended it); `None` if it is still running then.
    #[allow(dead_code)] // Not every test file uses it.
    pub(crate) fn exit_within(&mut self, within: Duration) -> Option<Option<i32>> {
        let deadline = std::time::Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status.code());
            }
            if std::time::Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
