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
use std::sync::mpsc;
use std::time::Duration;

use axum::Form;
use axum::response::{Html, IntoResponse, Redirect};
use axum::routing::get;
use http::header;
use threadline_test_support::browser::{Browser, screenshot_dir};

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

#[test]
fn admin_explores_the_trail_in_a_real_browser() {
    let (ready_tx, ready) = mpsc::channel();
    let (stop, stop_rx) = tokio::sync::oneshot::channel();
    let server = std::thread::spawn(move || serve(ready_tx, stop_rx));
    let addr = ready.recv_timeout(Duration::from_secs(60)).unwrap();
    let url = |path: &str| format!("http://{addr}{path}");
    let shots = screenshot_dir();
    let mut browser = Browser::launch();

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
