//! [`Browser`]: headless Chromium driven through Selenium (`tests/python/browser.py`), for the
//! dashboard's browser tests. Run it inside [`crate::netns::private`]: the browser then
//! reaches nothing but loopback.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{Value, json};

/// How long one command may take (a page load, a wait), beyond its own timeout.
const ANSWER: Duration = Duration::from_secs(60);

/// A browser session; closed, and its process group (Python, chromedriver, Chromium) killed
/// by its PID, when dropped. Chromium's profile lives in a directory of the session's own,
/// removed after the browser is gone.
pub struct Browser {
    child: Child,
    stdin: Option<ChildStdin>,
    answers: mpsc::Receiver<String>,
    // Declared last: dropped after `drop` has killed the browser that writes into it.
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Whether Chromium, its driver and Selenium are installed (`cargo xtask deps`).
    pub fn is_installed() -> bool {
        std::path::Path::new("/usr/bin/chromium").exists()
            && std::path::Path::new("/usr/bin/chromedriver").exists()
            && Command::new("python3")
                .args(["-c", "import selenium"])
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
    }

    /// Starts the browser; panics with the reason when it cannot.
    pub fn start() -> Browser {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/python/browser.py");
        let profile = tempfile::Builder::new()
            .prefix("srpc-chromium-")
            .tempdir()
            .expect("a directory for Chromium's profile");
        let mut child = Command::new("python3")
            .arg(script)
            .env("SRPC_CHROMIUM_PROFILE", profile.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            // Its own process group, so that the browser it starts goes with it.
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {script}: {e}"));
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, answers) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut browser = Browser {
            child,
            stdin,
            answers,
            _profile: profile,
        };
        let ready = browser.answer().expect("the browser did not start");
        assert_eq!(ready, json!("ready"));
        browser
    }

    fn answer(&mut self) -> Result<Value, String> {
        let line = self
            .answers
            .recv_timeout(ANSWER)
            .map_err(|_| "the browser did not answer in time".to_owned())?;
        let answer: Value =
            serde_json::from_str(&line).map_err(|e| format!("unreadable answer {line:?}: {e}"))?;
        if answer["ok"] == true {
            Ok(answer["value"].clone())
        } else {
            Err(answer["error"].as_str().unwrap_or("no reason").to_owned())
        }
    }

    /// Sends one command (see `browser.py`) and returns its value or its error.
    pub fn command(&mut self, command: Value) -> Result<Value, String> {
        let stdin = self.stdin.as_mut().ok_or("the browser is closed")?;
        writeln!(stdin, "{command}").map_err(|e| format!("cannot send {command}: {e}"))?;
        stdin.flush().map_err(|e| e.to_string())?;
        self.answer()
    }

    /// Loads `url`.
    pub fn open(&mut self, url: &str) {
        self.command(json!({"op": "open", "url": url}))
            .unwrap_or_else(|e| panic!("open {url}: {e}"));
    }

    /// Runs `js` (a function body: `return …;`) and returns its value.
    pub fn js(&mut self, js: &str) -> Value {
        self.command(json!({"op": "js", "js": js}))
            .unwrap_or_else(|e| panic!("{js}: {e}"))
    }

    /// Runs `js` until it returns `expect`, for at most `timeout`; panics with the last value.
    pub fn wait(&mut self, js: &str, expect: Value, timeout: Duration) {
        self.command(
            json!({"op": "wait", "js": js, "expect": expect, "timeout": timeout.as_secs_f64()}),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    }

    /// The text of the first element `css` selects ("" when none).
    pub fn text(&mut self, css: &str) -> String {
        let js = format!(
            "const e = document.querySelector({}); return e ? e.textContent : '';",
            json!(css)
        );
        self.js(&js).as_str().unwrap_or_default().to_owned()
    }

    /// Sends an action on the element `css` selects: `type` (with `text`), `select` (with
    /// `value`) or `click`.
    pub fn act(&mut self, op: &str, css: &str, arg: Option<&str>) {
        let mut command = json!({"op": op, "css": css});
        if let Some(arg) = arg {
            let key = if op == "type" { "text" } else { "value" };
            command[key] = json!(arg);
        }
        self.command(command)
            .unwrap_or_else(|e| panic!("{op} {css}: {e}"));
    }

    /// Saves a PNG of the window at `path`.
    pub fn screenshot(&mut self, path: &std::path::Path) {
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        self.command(json!({"op": "screenshot", "path": path}))
            .unwrap_or_else(|e| panic!("screenshot {}: {e}", path.display()));
    }

    /// Resizes the window.
    pub fn size(&mut self, width: u32, height: u32) {
        self.command(json!({"op": "size", "width": width, "height": height}))
            .unwrap_or_else(|e| panic!("size: {e}"));
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = writeln!(stdin, "{}", json!({"op": "quit"}));
        }
        let until = std::time::Instant::now() + Duration::from_secs(10);
        while std::time::Instant::now() < until {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // Whatever is left of the group (a browser the driver did not close), by its PID.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.wait();
    }
}
