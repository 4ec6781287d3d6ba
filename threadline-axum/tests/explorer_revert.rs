//! Reverting from the audit explorer, on a real axum router over a real database, driven
//! with `oneshot`: the button, the plan page, and the POST's refusals (no token, a wrong
//! token, a token of another session, transaction or user, no revert authorization) and
//! success.
#![allow(clippy::unwrap_used)]

mod support;

use axum::Router;
use axum::body::Body;
use http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use support::{Seeded, app, seed};
use threadline_axum::ActorRef;
use threadline_axum::explorer;
use tower::ServiceExt;

struct Reply {
    status: StatusCode,
    set_cookie: Option<String>,
    body: String,
}

async fn send(app: &Router, req: Request<Body>) -> Reply {
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let set_cookie = res
        .headers()
        .get(header::SET_COOKIE)
        .map(|v| v.to_str().unwrap().to_owned());
    let body = res.into_body().collect().await.unwrap().to_bytes();
    Reply {
        status,
        set_cookie,
        body: String::from_utf8(body.to_vec()).unwrap(),
    }
}

async fn get(app: &Router, actor: &str, uri: &str, cookie: Option<&str>) -> Reply {
    let mut req = Request::get(uri).header("x-actor", actor);
    if let Some(cookie) = cookie {
        req = req.header(header::COOKIE, cookie);
    }
    send(app, req.body(Body::empty()).unwrap()).await
}

async fn post(app: &Router, actor: &str, uri: &str, cookie: Option<&str>, form: &str) -> Reply {
    let mut req = Request::post(uri)
        .header("x-actor", actor)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some(cookie) = cookie {
        req = req.header(header::COOKIE, cookie);
    }
    send(app, req.body(Body::from(form.to_owned())).unwrap()).await
}

/// Admins read; only admin:alice may revert, as herself.
fn revert_app(s: &Seeded) -> Router {
    app(&s.db, |o| {
        o.allow_revert(explorer::actor_may_revert(|a: &ActorRef| {
            a.id() == Some("alice")
        }))
    })
}

/// The plan page's session cookie (`name=value`) and token.
fn session_and_token(reply: &Reply) -> (String, String) {
    let cookie = reply
        .set_cookie
        .as_deref()
        .expect("the plan page sets a session cookie");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(cookie.contains("Path=/admin/audit"), "{cookie}");
    let pair = cookie.split(';').next().unwrap().to_owned();
    let marker = "name=\"token\" value=\"";
    let start = reply.body.find(marker).expect("the plan page has a token") + marker.len();
    let token = reply.body[start..][..64].to_owned();
    (pair, token)
}

async fn notes(s: &Seeded) -> i64 {
    s.db.scalar("SELECT count(*) FROM notes").await
}

#[tokio::test]
async fn the_button_shows_only_when_enabled_and_allowed() {
    let s = seed().await;
    let tx = s.transactions[4];
    let uri = format!("/admin/audit/transactions/{tx}");
    let enabled = revert_app(&s);
    let page = get(&enabled, "admin:alice", &uri, None).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body.contains("Revert this transaction…"),
        "{}",
        page.body
    );
    assert!(
        page.body
            .contains(&format!("href=\"/admin/audit/transactions/{tx}/revert\""))
    );
    // carol may read but not revert: no button, and the plan page is refused.
    let page = get(&enabled, "admin:carol", &uri, None).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(!page.body.contains("Revert this transaction"));
    let plan = get(&enabled, "admin:carol", &format!("{uri}/revert"), None).await;
    assert_eq!(plan.status, StatusCode::FORBIDDEN, "{}", plan.body);
    assert!(
        plan.body
            .contains("`allow_revert` check does not let you revert")
    );
    // Not enabled: no button, and the revert routes answer 404.
    let disabled = app(&s.db, |o| o);
    let page = get(&disabled, "admin:alice", &uri, None).await;
    assert!(!page.body.contains("Revert this transaction"));
    let plan = get(&disabled, "admin:alice", &format!("{uri}/revert"), None).await;
    assert_eq!(plan.status, StatusCode::NOT_FOUND);
    assert!(plan.body.contains("not enabled"), "{}", plan.body);
    let refused = post(
        &disabled,
        "admin:alice",
        &format!("{uri}/revert"),
        None,
        "token=x",
    )
    .await;
    assert_eq!(refused.status, StatusCode::NOT_FOUND);
    // Readers the explorer refuses never reach the revert check.
    let plan = get(&enabled, "user:alice", &format!("{uri}/revert"), None).await;
    assert_eq!(plan.status, StatusCode::FORBIDDEN);
    assert_eq!(notes(&s).await, 1);
}

#[tokio::test]
async fn the_post_is_refused_without_a_valid_token_and_runs_with_one() {
    let s = seed().await;
    let app = revert_app(&s);
    let tx = s.transactions[4];
    let uri = format!("/admin/audit/transactions/{tx}/revert");
    let plan = get(&app, "admin:alice", &uri, None).await;
    assert_eq!(plan.status, StatusCode::OK, "{}", plan.body);
    for text in [
        "1 row(s) to restore",
        "DELETE FROM",
        "public.notes",
        "ready",
        "as <a",
    ] {
        assert!(
            plan.body.contains(text),
            "plan page lacks {text:?}: {}",
            plan.body
        );
    }
    let (cookie, token) = session_and_token(&plan);
    // A second visit with the cookie keeps the session (no new cookie) and its token.
    let again = get(&app, "admin:alice", &uri, Some(&cookie)).await;
    assert!(again.set_cookie.is_none());
    assert!(again.body.contains(&token));

    let refusals = [
        (
            "no token",
            Some(cookie.as_str()),
            String::new(),
            "carries no anti-forgery token",
        ),
        (
            "an empty token",
            Some(cookie.as_str()),
            "token=".to_owned(),
            "carries no anti-forgery token",
        ),
        (
            "a wrong token",
            Some(cookie.as_str()),
            format!("token={}", "0".repeat(64)),
            "not valid",
        ),
        (
            "not hex",
            Some(cookie.as_str()),
            "token=%3Cscript%3E".to_owned(),
            "not valid",
        ),
        (
            "no session cookie",
            None,
            format!("token={token}"),
            "no explorer session cookie",
        ),
        (
            "another session's cookie",
            Some("threadline_explorer_session=0123456789abcdef0123456789abcdef"),
            format!("token={token}"),
            "not valid",
        ),
        (
            "two tokens",
            Some(cookie.as_str()),
            format!("token={token}&token={token}"),
            "carries no anti-forgery token",
        ),
    ];
    for (what, cookie, form, message) in refusals {
        let reply = post(&app, "admin:alice", &uri, cookie, &form).await;
        assert_eq!(
            reply.status,
            StatusCode::FORBIDDEN,
            "{what}: {}",
            reply.body
        );
        assert!(reply.body.contains(message), "{what}: {}", reply.body);
    }
    // The right token, but the revert check refuses carol (who may read).
    let reply = post(
        &app,
        "admin:carol",
        &uri,
        Some(&cookie),
        &format!("token={token}"),
    )
    .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert!(
        reply.body.contains("does not let you revert"),
        "{}",
        reply.body
    );
    // A token is bound to its transaction.
    let other = format!("/admin/audit/transactions/{}/revert", s.transactions[1]);
    let reply = post(
        &app,
        "admin:alice",
        &other,
        Some(&cookie),
        &format!("token={token}"),
    )
    .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert_eq!(notes(&s).await, 1, "nothing reverted by a refused POST");

    let done = post(
        &app,
        "admin:alice",
        &uri,
        Some(&cookie),
        &format!("token={token}"),
    )
    .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    assert!(
        done.body.contains("1 row(s) of transaction"),
        "{}",
        done.body
    );
    assert_eq!(
        notes(&s).await,
        0,
        "the note the transaction inserted is gone"
    );
    // The revert is its own audited transaction, by alice, with the revert action; the page
    // links to it.
    let revert_tx =
        s.db.scalar(
            "SELECT transaction_id FROM audit_actions WHERE name = 'threadline.revert' \
             AND actor_ref = '{\"type\":\"admin\",\"id\":\"alice\"}'",
        )
        .await;
    assert!(
        done.body
            .contains(&format!("href=\"/admin/audit/transactions/{revert_tx}\""))
    );
    let reverted = s
        .db
        .scalar(&format!(
            "SELECT count(*) FROM audit_changes c JOIN audit_transactions t ON t.id = c.transaction_id \
             WHERE c.transaction_id = {revert_tx} AND c.op = 'delete' AND c.table_name = 'notes' \
             AND t.actor_ref = '{{\"type\":\"admin\",\"id\":\"alice\"}}'"
        ))
        .await;
    assert_eq!(reverted, 1);
    // Submitting the same form again finds the revert's own change as a conflict.
    let again = post(
        &app,
        "admin:alice",
        &uri,
        Some(&cookie),
        &format!("token={token}"),
    )
    .await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.body);
    assert!(again.body.contains("conflict"));
}

#[tokio::test]
async fn a_conflicting_plan_shows_its_conflicts_and_no_form() {
    let s = seed().await;
    let app = revert_app(&s);
    // The first transaction inserted post 1, which later transactions changed.
    let tx = s.transactions[0];
    let plan = get(
        &app,
        "admin:alice",
        &format!("/admin/audit/transactions/{tx}/revert"),
        None,
    )
    .await;
    assert_eq!(plan.status, StatusCode::OK, "{}", plan.body);
    assert!(
        plan.body.contains("changed later by change #"),
        "{}",
        plan.body
    );
    assert!(plan.body.contains("This revert cannot run"));
    assert!(plan.body.contains("--skip-conflicts"));
    assert!(
        !plan.body.contains("name=\"token\""),
        "no form for a refused plan"
    );
}
