//! The audit explorer in a real browser, on the demo: starts the `axum-blog` binary on a
//! loopback port against a fresh database, writes a few posts through its API as alice and
//! bob, signs in as the admin, opens the explorer, filters the timeline by table, follows a
//! link to a transaction, then to the row's history, picks an "as of" time, opens an actor,
//! checks the rendered text at each step (the activity chart, before-values derived from the
//! previous version), reverts alice's edit from its transaction page (a forged POST refused,
//! then the real form), and saves a screenshot of each page under
//! `target/explorer-screenshots/` (`demo-*.png`, `revert-*.png`).
//!
//! Needs chromium: `bash .ci/setup-chromium.sh`.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::json;
use threadline_test_support::TestDb;
use threadline_test_support::browser::{Browser, screenshot_dir};

/// A post title that must render as text.
const SCRIPT_TITLE: &str = "<script>alert(\"pwned\")</script>";

/// The demo server, stopped when dropped.
struct Demo(Child);

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the demo on a free port; returns it with its startup output (up to the line that
/// names the explorer).
fn start_demo(database_url: &str) -> (Demo, u16, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_axum-blog"))
        .env("DATABASE_URL", database_url)
        .env("PORT", port.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let demo = Demo(child);
    let (lines, output) = mpsc::channel();
    // Reads the demo's output to its end, also after the startup lines have been received:
    // a reader that stopped would close the pipe, and the demo, still printing its example
    // requests, would die of a broken pipe before serving (seen once under load).
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });
    let mut printed = String::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !printed.contains("Audit explorer:") {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = output
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("the demo did not start; it printed:\n{printed}"));
        printed.push_str(&line);
        printed.push('\n');
    }
    (demo, port, printed)
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_explores_the_demo_trail_in_a_real_browser() {
    let db = TestDb::empty().await;
    let url = db.url.clone();
    tokio::task::spawn_blocking(move || explore(&url))
        .await
        .unwrap();
}

fn explore(database_url: &str) {
    let (_demo, port, printed) = start_demo(database_url);
    let explorer_line = format!(
        "Audit explorer: http://localhost:{port}/admin/audit \
         (admin only: sign in at http://localhost:{port}/login/browser"
    );
    assert!(printed.contains(&explorer_line), "{printed}");
    let base = format!("http://127.0.0.1:{port}");
    let shots = screenshot_dir();
    let mut browser = Browser::launch();

    // Alice writes and publishes a post, bob comments and writes a post whose title is
    // markup, alice edits her post: all through the demo's API.
    browser.navigate(&format!("{base}/posts"));
    // Readiness: the first fetch of a fresh headless chromium can fail before its network
    // service settles; an idempotent GET, retried for a few seconds, absorbs that.
    let ready = browser.eval(
        "(async () => { for (let i = 0; i < 20; i++) { \
           try { return (await fetch('/posts')).status; } \
           catch (e) { await new Promise(r => setTimeout(r, 250)); } } \
         return 0; })()",
    );
    assert_eq!(ready, json!(200), "the demo answers GET /posts");
    let writes = [
        (
            "PUT",
            "/posts/hello",
            "alice",
            "{title: 'Hello', body: 'First draft'}",
        ),
        ("POST", "/posts/hello/publish", "alice", ""),
        (
            "POST",
            "/posts/hello/comments",
            "bob",
            "{body: 'Nice post'}",
        ),
        (
            "PUT",
            "/posts/markup",
            "bob",
            "{title: SCRIPT, body: 'shown as text'}",
        ),
        (
            "PUT",
            "/posts/hello",
            "alice",
            "{title: 'Hello, Threadline', body: 'Edited'}",
        ),
    ];
    for (method, path, user, body) in writes {
        let body = if body.is_empty() {
            "undefined".to_owned()
        } else {
            format!("JSON.stringify({body})")
        };
        let status = browser.eval(&format!(
            "(() => {{ const SCRIPT = {SCRIPT_TITLE:?}; return fetch({path:?}, \
             {{method: {method:?}, headers: {{'x-user': {user:?}, \
             'content-type': 'application/json'}}, body: {body}}}).then(r => r.status) }})()"
        ));
        let status = status.as_u64().unwrap();
        assert!((200..300).contains(&status), "{method} {path}: {status}");
    }

    // Before signing in, the explorer refuses.
    browser.navigate(&format!("{base}/admin/audit"));
    let text = browser.text();
    assert!(text.contains("access denied"), "{text}");

    // Sign in as the admin: the form sends the browser on to the explorer.
    browser.navigate(&format!("{base}/login/browser"));
    browser.fill("input[name=user]", "admin");
    browser.click_and_wait("button[type=submit]");
    assert_eq!(browser.location(), format!("{base}/admin/audit"));
    let text = browser.text();
    let expected = [
        "Timeline",
        "user:alice",
        "user:bob",
        "public.posts",
        "public.comments",
    ];
    for want in expected {
        assert!(text.contains(want), "timeline lacks {want:?}: {text}");
    }
    // The activity chart: an SVG with a title, one bar per day, and its table fallback.
    let chart = browser.eval(
        "(() => { const svg = document.querySelector('section.activity svg'); \
           const bars = [...svg.querySelectorAll('rect.bar')]; \
           return {title: svg.querySelector('title').textContent, bars: bars.length, \
             total: bars.reduce((n, b) => n + Number(b.dataset.count), 0), \
             rows: document.querySelectorAll('details.chart-table tbody tr').length, \
             height: svg.getBoundingClientRect().height}; })()",
    );
    assert!(
        chart["title"]
            .as_str()
            .unwrap()
            .starts_with("Changes per day (UTC)"),
        "{chart}"
    );
    assert_eq!(chart["bars"], json!(31), "{chart}");
    assert_eq!(chart["rows"], json!(31), "{chart}");
    assert!(chart["total"].as_u64().unwrap() >= 5, "{chart}");
    assert!(
        chart["height"].as_f64().unwrap() > 50.0,
        "the chart is drawn: {chart}"
    );
    browser.screenshot(&shots.join("demo-1-timeline.png"));

    // Filter by table.
    browser.fill("input[name=table]", "posts");
    browser.click_and_wait("form.filters button[type=submit]");
    let location = browser.location();
    assert!(location.contains("table=posts"), "{location}");
    let text = browser.text();
    assert!(text.contains("public.posts"), "{text}");
    assert!(!text.contains("public.comments"), "{text}");
    assert!(
        text.contains("published"),
        "the publish's changed field: {text}"
    );
    browser.screenshot(&shots.join("demo-2-timeline-posts.png"));

    // The newest change is alice's edit: follow its transaction link.
    browser.click_and_wait("table.changes tbody tr:first-child a.tx");
    assert!(browser.location().contains("/admin/audit/transactions/"));
    let text = browser.text();
    // The demo does not store changed_from: the old values come from the post's previous
    // version, marked derived.
    let expected = [
        "Transaction #",
        "user:alice",
        "axum-blog",
        "Hello, Threadline",
        "Edited",
        "First draft",
        "derived",
    ];
    for want in expected {
        assert!(
            text.contains(want),
            "transaction page lacks {want:?}: {text}"
        );
    }
    assert!(!text.contains("not captured"), "{text}");
    let derived = browser.eval("document.querySelectorAll('td.before.derived').length");
    assert!(
        derived.as_u64().unwrap() >= 2,
        "title and body (at least) are derived: {derived}"
    );
    browser.screenshot(&shots.join("demo-3-transaction.png"));
    let edit = browser.location();

    // Then the post's history: insert, publish, edit.
    browser.click_and_wait("article.change a.pk");
    assert!(browser.location().contains("/admin/audit/row?"));
    let text = browser.text();
    assert!(text.contains("Row public.posts id=1"), "{text}");
    assert!(text.contains("Versions, newest first (3)"), "{text}");
    // Consecutive versions recover the old values the transaction page could not show.
    assert!(text.contains("First draft"), "{text}");
    browser.screenshot(&shots.join("demo-4-row-history.png"));

    // The row as of a second after its last change: the edited version.
    let at = browser.eval(
        "new Date(Date.parse(document.querySelector('section.versions time')\
         .getAttribute('datetime')) + 1000).toISOString().slice(0, 23)",
    );
    browser.fill("input[name=at]", at.as_str().unwrap());
    browser.click_and_wait("form.as-of button");
    let text = browser.text();
    assert!(text.contains("the row looked like this"), "{text}");
    assert!(text.contains("its state after the update"), "{text}");
    browser.screenshot(&shots.join("demo-5-row-as-of.png"));

    // The publish is an #[audited] action: its transaction lists it.
    browser.click_and_wait("section.versions article.change:nth-of-type(2) a.tx");
    let text = browser.text();
    assert!(text.contains("post.published"), "{text}");

    // Bob's transactions, from an actor link on the timeline.
    browser.navigate(&format!("{base}/admin/audit"));
    browser.click_and_wait("a.actor[href$='user%3Abob']");
    let text = browser.text();
    assert!(text.contains("Actor user:bob"), "{text}");
    let rows = browser.eval("document.querySelectorAll('table.transactions tbody tr').length");
    assert_eq!(rows, json!(2), "bob's comment and post: {text}");
    browser.screenshot(&shots.join("demo-6-actor.png"));

    // Bob's markup title is text on the page, and no script element exists.
    browser.navigate(&format!("{base}/admin/audit/row?table=posts&pk=2"));
    let text = browser.text();
    assert!(text.contains(SCRIPT_TITLE), "{text}");
    assert_eq!(browser.eval("document.scripts.length"), json!(0));

    // A bad parameter gets the 400 page.
    browser.navigate(&format!("{base}/admin/audit?op=merge"));
    let text = browser.text();
    assert!(text.contains("invalid parameter `op`"), "{text}");

    revert_the_edit(&mut browser, &base, &edit);
}

/// Reverts alice's edit from its transaction page: the plan, a forged POST refused, the
/// real form accepted, then the revert's own transaction.
fn revert_the_edit(browser: &mut Browser, base: &str, edit: &str) {
    let shots = screenshot_dir();
    browser.navigate(edit);
    browser.click_and_wait("a.button.revert");
    assert!(
        browser.location().ends_with("/revert"),
        "{}",
        browser.location()
    );
    let text = browser.text();
    for want in [
        "Revert transaction #",
        "1 row(s) to restore",
        "UPDATE \"public\".\"posts\"",
        "ready",
        "as admin:admin",
    ] {
        assert!(text.contains(want), "plan page lacks {want:?}: {text}");
    }
    browser.screenshot(&shots.join("revert-1-plan.png"));

    // A POST from elsewhere (here a script on the demo's own origin, which the browser sends
    // with the session cookies) without the form's token, or with a made-up one, is refused.
    let plan = browser.location();
    browser.navigate(&format!("{base}/posts"));
    for form in [
        "",
        "token=0000000000000000000000000000000000000000000000000000000000000000",
    ] {
        let refused = browser.eval(&format!(
            "fetch({plan:?}, {{method: 'POST', headers: {{'content-type': \
             'application/x-www-form-urlencoded'}}, body: {form:?}}}) \
             .then(async r => [r.status, await r.text()])"
        ));
        assert_eq!(refused[0], json!(403), "{form:?}: {refused}");
        assert!(
            refused[1].as_str().unwrap().contains("anti-forgery token"),
            "{refused}"
        );
    }
    let title = browser.eval("fetch('/posts/hello').then(r => r.json()).then(p => p.title)");
    assert_eq!(title, json!("Hello, Threadline"), "nothing reverted yet");

    browser.navigate(&plan);
    browser.click_and_wait("form.revert button[type=submit]");
    let text = browser.text();
    assert!(text.contains("reverted"), "{text}");
    assert!(text.contains("1 row(s) of transaction"), "{text}");
    browser.screenshot(&shots.join("revert-2-done.png"));
    browser.click_and_wait("a.revert-transaction");
    let text = browser.text();
    for want in [
        "threadline.revert",
        "admin:admin",
        "Hello, Threadline",
        "First draft",
    ] {
        assert!(
            text.contains(want),
            "the revert's transaction lacks {want:?}: {text}"
        );
    }
    browser.screenshot(&shots.join("revert-3-transaction.png"));
    browser.navigate(&format!("{base}/posts"));
    let post = browser.eval("fetch('/posts/hello').then(r => r.json())");
    assert_eq!(post["title"], json!("Hello"), "{post}");
    assert_eq!(post["body"], json!("First draft"), "{post}");
}
