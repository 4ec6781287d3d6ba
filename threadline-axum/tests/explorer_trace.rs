//! Trace ids in the explorer, on a real axum router over a real database: the transaction
//! page shows the id linked through `ExplorerOptions::trace_url`, the timeline filters by it
//! (form field and parameter), and the export and JSON carry it.
#![allow(clippy::unwrap_used)]

mod support;

use axum::Router;
use axum::body::Body;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use support::app;
use threadline_axum::{ActorRef, AuditContext};
use threadline_sqlx::{PoolExt, TableCapture};
use threadline_test_support::TestDb;
use tower::ServiceExt;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const TEMPO: &str = "https://tempo.example/trace/{trace_id}";

async fn get(app: &Router, uri: &str) -> (StatusCode, String) {
    let req = Request::get(uri)
        .header("x-actor", "admin:alice")
        .body(Body::empty())
        .unwrap();
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

async fn page(app: &Router, uri: &str) -> String {
    let (status, body) = get(app, uri).await;
    assert_eq!(status, StatusCode::OK, "{uri}: {body}");
    body
}

/// Two transactions on `posts`: the first traced, the second not. Returns their audit ids.
async fn seed() -> (TestDb, i64, i64) {
    let db = TestDb::installed().await;
    db.exec("CREATE TABLE posts (id bigint PRIMARY KEY, title text NOT NULL)")
        .await;
    db.audit("posts", &TableCapture::default()).await;
    let actor = AuditContext::for_actor(ActorRef::user("bob").unwrap());
    let mut ids = Vec::new();
    for (ctx, sql) in [
        (
            actor.clone().with_trace_id(TRACE.parse().unwrap()),
            "INSERT INTO posts VALUES (1, 'traced')",
        ),
        (actor, "INSERT INTO posts VALUES (2, 'untraced')"),
    ] {
        let mut tx = db.pool.begin_with_context(&ctx).await.unwrap();
        sqlx::query(sql).execute(&mut *tx).await.unwrap();
        ids.push(
            threadline_sqlx::current_audit_transaction_id(&mut tx)
                .await
                .unwrap()
                .unwrap(),
        );
        tx.commit().await.unwrap();
    }
    (db, ids[0], ids[1])
}

#[tokio::test]
async fn the_transaction_page_links_the_trace_through_trace_url() {
    let (db, traced, untraced) = seed().await;
    let linked = app(&db, |o| o.trace_url(TEMPO));
    let body = page(&linked, &format!("/admin/audit/transactions/{traced}")).await;
    assert!(
        body.contains(&format!(
            r#"<a class="trace" href="https://tempo.example/trace/{TRACE}" rel="noopener noreferrer"><code>{TRACE}</code></a>"#
        )),
        "{body}"
    );
    assert!(
        body.contains(&format!(
            r#"href="/admin/audit?trace_id={TRACE}">its changes</a>"#
        )),
        "{body}"
    );
    // Without a template the id is shown, not linked to a backend.
    let plain = app(&db, |o| o);
    let body = page(&plain, &format!("/admin/audit/transactions/{traced}")).await;
    assert!(body.contains(&format!("<code>{TRACE}</code>")), "{body}");
    assert!(!body.contains("tempo.example"), "{body}");
    // A transaction without a trace id shows none, and no link.
    let body = page(&linked, &format!("/admin/audit/transactions/{untraced}")).await;
    assert!(body.contains("Trace id"), "{body}");
    assert!(!body.contains("tempo.example"), "{body}");
    // The JSON endpoint carries it.
    let json: Value = serde_json::from_str(
        &page(&linked, &format!("/admin/audit/api/transactions/{traced}")).await,
    )
    .unwrap();
    assert_eq!(json["transaction"]["trace_id"], TRACE, "{json}");
}

#[tokio::test]
async fn the_timeline_filters_by_trace_id_and_the_export_carries_it() {
    let (db, traced, untraced) = seed().await;
    let app = app(&db, |o| o.trace_url(TEMPO));
    let all = page(&app, "/admin/audit").await;
    assert!(
        all.contains(r#"name="trace_id""#),
        "the filter form has a trace id field: {all}"
    );
    let tx_link = |id: i64| format!("/admin/audit/transactions/{id}\"");
    assert!(all.contains(&tx_link(traced)) && all.contains(&tx_link(untraced)));
    let filtered = page(&app, &format!("/admin/audit?trace_id={TRACE}")).await;
    assert!(filtered.contains(&tx_link(traced)), "{filtered}");
    assert!(!filtered.contains(&tx_link(untraced)), "{filtered}");
    assert!(
        filtered.contains(&format!(r#"name="trace_id" value="{TRACE}""#)),
        "the field keeps the filter: {filtered}"
    );

    let (status, body) = get(
        &app,
        "/admin/audit?trace_id=4BF92F3577B34DA6A3CE929D0E0E4736",
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body.contains(
            "invalid parameter `trace_id`: invalid trace id: not 32 lowercase hex digits"
        ),
        "{body}"
    );

    let csv = page(
        &app,
        &format!("/admin/audit/export?format=csv&trace_id={TRACE}"),
    )
    .await;
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let column = reader
        .headers()
        .unwrap()
        .iter()
        .position(|h| h == "trace_id")
        .unwrap();
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 1, "{csv}");
    assert_eq!(&rows[0][column], TRACE);
}
