//! The audit explorer in a real browser: headless Debian chromium, driven over the DevTools
//! protocol (through `--remote-debugging-pipe`, so no WebDriver or WebSocket client is
//! needed). Logs in as an admin, filters the timeline, follows links to a transaction, a
//! row's history and an actor, checks the rendered text at each step, and saves a screenshot
//! of each page under `target/explorer-screenshots/`.
//!
//! Needs `chromium` on PATH (or `CHROMIUM=/path`): `bash .ci/setup-chromium.sh` installs it.
#![allow(clippy::unwrap_used, clippy::panic)]

mod support;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

use axum::Form;
use axum::response::{Html, IntoResponse, Redirect};
use axum::routing::get;
use http::header;

/// The test app: a login page that sets a session cookie, and the explorer for admins at
/// `/admin/audit`. Serves until `stop` fires; reports its address on `ready`.
fn serve(ready: mpsc::Sender<SocketAddr>, stop: tokio::sync::oneshot::Receiver<()>) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let seeded = support::seed().await;
        #[derive(serde::Deserialize)]
        struct Login {
            user: String,
        }
        let login_page = Html(
            "<!doctype html><title>Log in</title><form method=post action=/login>\
             <label>User <input name=user></label><button>Log in</button></form>",
        );
        let app = support::app(&seeded.db, |o| o.title("Threadline audit")).route(
            "/login",
            get(move || async move { login_page }).post(|Form(login): Form<Login>| async move {
                let cookie = format!("session={}; Path=/; HttpOnly; SameSite=Strict", login.user);
                ([(header::SET_COOKIE, cookie)], Redirect::to("/admin/audit")).into_response()
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        ready.send(listener.local_addr().unwrap()).unwrap();
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                stop.await.ok();
            })
            .await
            .unwrap();
        drop(seeded);
    });
}

fn screenshot_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("explorer-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn admin_explores_the_trail_in_a_real_browser() {
    let (ready_tx, ready) = mpsc::channel();
    let (stop, stop_rx) = tokio::sync::oneshot::channel();
    let server = std::thread::spawn(move || serve(ready_tx, stop_rx));
    let addr = ready.recv_timeout(Duration::from_secs(60)).unwrap();
    let url = |path: &str| format!("http://{addr}{path}");
    let shots = screenshot_dir();
    let mut browser = cdp::Browser::launch();

    // Before logging in, the explorer refuses.
    browser.navigate(&url("/admin/audit"));
    assert!(
        browser.text().contains("access denied"),
        "{}",
        browser.text()
    );

    // Log in as the admin.
    browser.navigate(&url("/login"));
    browser.fill("input[name=user]", "admin:alice");
    browser.click_and_wait("button");
    assert_eq!(browser.location(), url("/admin/audit"));
    let text = browser.text();
    for expected in [
        "Timeline",
        "admin:alice",
        "user:bob",
        "public.posts",
        "public.users",
    ] {
        assert!(
            text.contains(expected),
            "timeline lacks {expected:?}: {text}"
        );
    }
    browser.screenshot(&shots.join("1-timeline.png"));

    // Filter by table.
    browser.fill("input[name=table]", "posts");
    browser.click_and_wait("form.filters button[type=submit]");
    assert!(
        browser.location().contains("table=posts"),
        "{}",
        browser.location()
    );
    let text = browser.text();
    assert!(
        text.contains("public.posts") && !text.contains("public.users"),
        "{text}"
    );
    assert!(
        text.contains("status, title") || text.contains("title"),
        "{text}"
    );
    browser.screenshot(&shots.join("2-timeline-filtered.png"));

    // The oldest change on the page is the post's insert: follow its transaction link.
    browser.click_and_wait("table.changes tbody tr:last-child a.tx");
    assert!(browser.location().contains("/admin/audit/transactions/"));
    let text = browser.text();
    for expected in [
        "Transaction #",
        "admin:alice",
        "req-1",
        "order-7",
        "10.0.0.5",
        "post.created",
        "Hello",
        "masked",
    ] {
        assert!(
            text.contains(expected),
            "transaction page lacks {expected:?}: {text}"
        );
    }
    assert!(!text.contains("ann@example.com"), "the masked email leaked");
    browser.screenshot(&shots.join("3-transaction.png"));

    // Then the post's history.
    browser.click_and_wait("article.change a.pk");
    assert!(browser.location().contains("/admin/audit/row?"));
    let text = browser.text();
    assert!(text.contains("Row public.posts id=1"), "{text}");
    assert!(text.contains("Versions, newest first (4)"), "{text}");
    // The script title is shown as text, and no script element exists.
    assert!(text.contains("<script>alert(\"pwned\")</script>"), "{text}");
    assert_eq!(
        browser.eval("document.scripts.length"),
        serde_json::json!(0)
    );
    browser.screenshot(&shots.join("4-row-history.png"));

    // The row as of the millisecond of its delete, truncated: just before the delete, so
    // the published version.
    let deleted_at = browser.eval(
        "document.querySelector('section.versions article.change time').getAttribute('datetime')",
    );
    let at = deleted_at.as_str().unwrap()[..23].to_owned(); // 2026-11-26T07:14:47.812
    browser.fill("input[name=at]", &at);
    browser.click_and_wait("form.as-of button");
    let text = browser.text();
    assert!(text.contains("the row looked like this"), "{text}");
    assert!(text.contains("published"), "{text}");
    browser.screenshot(&shots.join("5-row-as-of.png"));

    // And an actor's transactions.
    browser.navigate(&url("/admin/audit"));
    browser.click_and_wait("a.actor[href$='user%3Abob']");
    let text = browser.text();
    assert!(text.contains("Actor user:bob"), "{text}");
    assert!(text.contains("req-2") && text.contains("req-3"), "{text}");
    browser.screenshot(&shots.join("6-actor.png"));

    // A bad parameter gets the 400 page.
    browser.navigate(&url("/admin/audit?op=truncate"));
    assert!(
        browser.text().contains("invalid parameter `op`"),
        "{}",
        browser.text()
    );

    drop(browser);
    stop.send(()).unwrap();
    server.join().unwrap();
    for shot in [
        "1-timeline.png",
        "2-timeline-filtered.png",
        "3-transaction.png",
        "4-row-history.png",
        "5-row-as-of.png",
        "6-actor.png",
    ] {
        let bytes = std::fs::read(shots.join(shot)).unwrap();
        assert!(
            bytes.starts_with(b"\x89PNG") && bytes.len() > 5_000,
            "{shot}"
        );
    }
}

/// A minimal DevTools-protocol client over chromium's `--remote-debugging-pipe`
/// (NUL-terminated JSON messages on file descriptors 3 and 4).
mod cdp {
    use std::io::{BufRead, BufReader, Write};
    use std::path::{Path, PathBuf};
    use std::process::{Child, ChildStdin, Command, Stdio};
    use std::sync::mpsc;
    use std::time::Duration;

    use base64::Engine;
    use serde_json::{Value, json};

    const TIMEOUT: Duration = Duration::from_secs(30);

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
        panic!(
            "chromium is not installed: run `bash .ci/setup-chromium.sh` (or set CHROMIUM=/path)"
        );
    }

    impl Browser {
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
                let reply = self.from.recv_timeout(TIMEOUT).unwrap_or_else(|_| {
                    panic!("chromium did not answer {method} within {TIMEOUT:?}")
                });
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

        pub fn navigate(&mut self, url: &str) {
            self.and_wait_for_load(|b| {
                b.call("Page.navigate", json!({"url": url}));
            });
        }

        pub fn eval(&mut self, expression: &str) -> Value {
            let result = self.call(
                "Runtime.evaluate",
                json!({"expression": expression, "returnByValue": true}),
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

        pub fn text(&mut self) -> String {
            self.eval("document.body.innerText")
                .as_str()
                .unwrap_or_default()
                .to_owned()
        }

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
}
