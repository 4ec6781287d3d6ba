//! A minimal DevTools-protocol client for browser tests: headless Debian chromium driven
//! through `--remote-debugging-pipe` (NUL-terminated JSON messages on file descriptors 3 and
//! 4), so neither chromedriver nor a WebSocket client is needed.
//!
//! ```no_run
//! use threadline_test_support::browser::Browser;
//! let mut browser = Browser::launch();
//! browser.navigate("http://127.0.0.1:3000/");
//! assert!(browser.text().contains("Timeline"));
//! browser.screenshot(&threadline_test_support::browser::screenshot_dir().join("timeline.png"));
//! ```
#![allow(clippy::panic, clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};

const TIMEOUT: Duration = Duration::from_secs(30);

/// A headless chromium with one page, closed when dropped.
#[derive(Debug)]
pub struct Browser {
    child: Child,
    to: ChildStdin,
    from: mpsc::Receiver<Value>,
    next_id: u64,
    session: String,
    _profile: tempfile::TempDir,
}

fn chromium() -> PathBuf {
    if let Ok(path) = std::env::var("CHROMIUM") {
        return path.into();
    }
    for candidate in ["chromium", "chromium-browser", "google-chrome"] {
        let found = std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(candidate))
                .find(|p| p.is_file())
        });
        if let Some(path) = found {
            return path;
        }
    }
    panic!("chromium is not installed: run `bash .ci/setup-chromium.sh` (or set CHROMIUM=/path)");
}

impl Browser {
    /// Starts chromium with a fresh profile; panics with the fix when it is not installed.
    pub fn launch() -> Self {
        let profile = tempfile::tempdir().unwrap();
        let log = std::fs::File::create(profile.path().join("chromium.log")).unwrap();
        // The shell moves the pipes to the descriptors chromium reads (3) and writes (4).
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(r#"exec "$@" 3<&0 4>&1 0</dev/null 1>&2"#)
            .arg("sh")
            .arg(chromium())
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--disable-dev-shm-usage",
                "--hide-scrollbars",
                "--window-size=1280,900",
                "--remote-debugging-pipe",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap();
        let to = child.stdin.take().unwrap();
        let mut reader = BufReader::new(child.stdout.take().unwrap());
        let (tx, from) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            while reader.read_until(0, &mut buf).unwrap_or(0) > 0 {
                if buf.last() == Some(&0) {
                    buf.pop();
                }
                if let Ok(message) = serde_json::from_slice::<Value>(&buf)
                    && tx.send(message).is_err()
                {
                    return;
                }
                buf.clear();
            }
        });
        let mut browser = Self {
            child,
            to,
            from,
            next_id: 0,
            session: String::new(),
            _profile: profile,
        };
        let target = browser.call("Target.createTarget", json!({"url": "about:blank"}));
        let attached = browser.call(
            "Target.attachToTarget",
            json!({"targetId": target["targetId"], "flatten": true}),
        );
        browser.session = attached["sessionId"].as_str().unwrap().to_owned();
        browser.call("Page.enable", json!({}));
        browser
    }

    /// Sends a command (to the page's session once attached) and waits for its result.
    fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({"id": id, "method": method, "params": params});
        if !self.session.is_empty() {
            message["sessionId"] = json!(self.session);
        }
        let mut bytes = serde_json::to_vec(&message).unwrap();
        bytes.push(0);
        self.to.write_all(&bytes).unwrap();
        self.to.flush().unwrap();
        loop {
            let reply = self
                .from
                .recv_timeout(TIMEOUT)
                .unwrap_or_else(|_| panic!("chromium did not answer {method} within {TIMEOUT:?}"));
            if reply["id"] == json!(id) {
                if let Some(error) = reply.get("error") {
                    panic!("{method} failed: {error}");
                }
                return reply["result"].clone();
            }
        }
    }

    /// Runs `action`, then waits until the page fires its load event.
    fn and_wait_for_load(&mut self, action: impl FnOnce(&mut Self)) {
        while self.from.try_recv().is_ok() {}
        action(self);
        loop {
            let event = self
                .from
                .recv_timeout(TIMEOUT)
                .unwrap_or_else(|_| panic!("no page load within {TIMEOUT:?}"));
            if event["method"] == "Page.loadEventFired" {
                return;
            }
        }
    }

    /// Opens `url` and waits for its load event.
    pub fn navigate(&mut self, url: &str) {
        self.and_wait_for_load(|b| {
            b.call("Page.navigate", json!({"url": url}));
        });
    }

    /// Evaluates a JavaScript expression in the page (awaiting a promise); returns its value.
    pub fn eval(&mut self, expression: &str) -> Value {
        let result = self.call(
            "Runtime.evaluate",
            json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
        );
        if let Some(exception) = result.get("exceptionDetails") {
            panic!("{expression} threw: {exception}");
        }
        result["result"]["value"].clone()
    }

    fn element(selector: &str) -> String {
        let selector = serde_json::to_string(selector).unwrap();
        format!(
            "(() => {{ const e = document.querySelector({selector}); \
             if (!e) throw new Error('no element matches ' + {selector}); return e; }})()"
        )
    }

    /// Sets the value of the first element matching `selector`.
    pub fn fill(&mut self, selector: &str, value: &str) {
        let value = serde_json::to_string(value).unwrap();
        self.eval(&format!("{}.value = {value}", Self::element(selector)));
    }

    /// Clicks an element (a link or a submit button) and waits for the next page.
    pub fn click_and_wait(&mut self, selector: &str) {
        let click = format!("{}.click()", Self::element(selector));
        self.and_wait_for_load(|b| {
            b.eval(&click);
        });
    }

    /// The page's visible text.
    pub fn text(&mut self) -> String {
        self.eval("document.body.innerText")
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// The page's URL.
    pub fn location(&mut self) -> String {
        self.eval("location.href").as_str().unwrap().to_owned()
    }

    /// A PNG of the whole page.
    pub fn screenshot(&mut self, path: &Path) {
        let metrics = self.call("Page.getLayoutMetrics", json!({}));
        let size = &metrics["cssContentSize"];
        let shot = self.call(
            "Page.captureScreenshot",
            json!({
                "format": "png",
                "captureBeyondViewport": true,
                "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1},
            }),
        );
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().unwrap())
            .unwrap();
        std::fs::write(path, png).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.session.clear();
        let _ = self
            .to
            .write_all(b"{\"id\":999999,\"method\":\"Browser.close\"}\0");
        let _ = self.to.flush();
        for _ in 0..50 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `target/explorer-screenshots/` of the workspace's target directory (created).
pub fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let dir = target.join("explorer-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
