//! [`Peer`]: a third-party program run as a child (python-zeroconf, avahi tools, the srpc
//! CLI) whose stdout lines a test waits on, stopped by its PID when dropped.

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

use tokio::sync::mpsc;

/// A running child with its stdout lines.
pub struct Peer {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::UnboundedReceiver<String>,
    /// Every line read so far (for failure messages).
    seen: Vec<String>,
}

impl Peer {
    /// Starts `command` with piped stdin and stdout (stderr goes to the test's output).
    pub fn spawn(name: &str, mut command: Command) -> Peer {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Peer {
            name: name.to_owned(),
            child,
            stdin,
            lines,
            seen: Vec::new(),
        }
    }

    /// The child's PID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for a line that `matches`, up to `deadline`; panics with every line seen if
    /// none came.
    pub async fn wait_line(
        &mut self,
        deadline: Duration,
        what: &str,
        matches: impl Fn(&str) -> bool,
    ) -> String {
        let until = tokio::time::Instant::now() + deadline;
        loop {
            match tokio::time::timeout_at(until, self.lines.recv()).await {
                Ok(Some(line)) => {
                    self.seen.push(line.clone());
                    if matches(&line) {
                        return line;
                    }
                }
                Ok(None) => panic!(
                    "{} ended before {what}; its output:\n{}",
                    self.name,
                    self.seen.join("\n")
                ),
                Err(_) => panic!(
                    "{} did not show {what} within {deadline:?}; its output:\n{}",
                    self.name,
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Closes the child's stdin (the peers here take that as "stop cleanly") and waits up
    /// to `deadline` for it to exit; kills it if it does not.
    pub fn finish(&mut self, deadline: Duration) {
        self.stdin.take();
        let until = std::time::Instant::now() + deadline;
        while std::time::Instant::now() < until {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill();
    }

    /// Sends SIGKILL: the child gets no chance to say goodbye.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.stdin.take();
        self.kill();
    }
}
