//! The whole web path with the audit tables outside `public` and the application behind a
//! real PgBouncer in transaction mode without prepared statements: `AuditedTx`, `#[audited]`
//! and the explorer on axum, `AuditedTx` and `#[audited]` on actix-web. Everything they need
//! comes from one `Threadline` handle in the state; a fallback to `public` or to named
//! statements fails here (no `public.audit_*` table exists, and named statements collide on
//! PgBouncer's shared server connections).

use axum::Router;
use serde_json::json;
use threadline_axum::explorer::{self, ExplorerOptions};
use threadline_axum::{ActorRef, ActorType, ThreadlineLayer};
use threadline_sqlx::{Ident, InstallOptions, StatementMode, Threadline};
use threadline_test_support::TestDb;
use threadline_tests::{
    Req, Sender, actix_app, axum_app, blog_db_with, bouncer_pool, futures_join_all,
};

const SCHEMA: &str = "trail";

fn install() -> InstallOptions {
    InstallOptions::with_schema(Ident::new(SCHEMA).expect("schema name"))
}

/// The database and the handle an application would build: PgBouncer, `trail`, unnamed.
async fn setup() -> (TestDb, Threadline) {
    let db = blog_db_with(&install()).await;
    let bouncer = bouncer_pool(&db).await;
    let threadline =
        Threadline::with_options(bouncer, &install()).with_statement_mode(StatementMode::Unnamed);
    (db, threadline)
}

/// Twelve concurrent writers then one `#[audited]` publish per post, through `send`; checks
/// every change and action landed in `trail` with its actor and links.
async fn writes_and_actions_land_in_the_audit_schema(db: &TestDb, send: &Sender, name: &str) {
    let created = (0..12).map(|i| {
        send(
            Req::post("/posts", json!({ "title": format!("post {i}") }))
                .header("x-user-id", format!("u{i}")),
        )
    });
    let mut ids = Vec::new();
    for res in futures_join_all(created).await {
        assert_eq!(res.status, 201, "{name}: {res:?}");
        ids.push(res.json()["id"].as_i64().unwrap());
    }
    for (i, id) in ids.iter().enumerate() {
        let res = send(
            Req::post(format!("/posts/{id}/publish"), json!({}))
                .header("x-user-id", format!("u{i}"))
                .header("x-request-id", format!("pub-{i}")),
        )
        .await;
        assert_eq!(res.status, 200, "{name}: {res:?}");
    }

    let public: Option<String> =
        sqlx::query_scalar("SELECT to_regclass('public.audit_changes')::text")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(public, None, "{name}: nothing may be installed in public");
    let wrong_actor: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM trail.audit_changes c JOIN trail.audit_transactions t
             ON t.id = c.transaction_id
         WHERE t.actor_ref->>'id' <> 'u' || split_part(c.data_after->>'title', ' ', 2)",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    let changes: i64 = sqlx::query_scalar("SELECT count(*) FROM trail.audit_changes")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(
        (changes, wrong_actor),
        (24, 0),
        "{name}: every change with its own actor"
    );
    // Each action links to the transaction of its own publish (same request id).
    let linked: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM trail.audit_actions a
         JOIN trail.audit_transactions t ON t.id = a.transaction_id
         JOIN trail.audit_changes c ON c.transaction_id = t.id AND c.op = 'update'
         WHERE a.name = 'post.published' AND a.status = 'ok'
           AND a.request_id = t.request_id AND a.actor_ref = t.actor_ref",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        linked, 12,
        "{name}: every #[audited] action linked to its changes"
    );
}

#[tokio::test]
async fn axum_audited_tx_audited_and_explorer() {
    let (db, threadline) = setup().await;
    let send = axum_app::sender(threadline.clone());
    writes_and_actions_land_in_the_audit_schema(&db, &send, "axum").await;

    // The explorer over the same handle, through PgBouncer.
    let admins = explorer::actor_is(|actor: &ActorRef| actor.kind() == ActorType::Admin);
    let app = Router::new()
        .nest_service(
            "/admin/audit",
            explorer::router(threadline.clone(), ExplorerOptions::new(admins)),
        )
        .layer(ThreadlineLayer::new(|parts: &http::request::Parts| {
            ActorRef::admin(parts.headers.get("x-admin-id")?.to_str().ok()?).ok()
        }));
    let explore = axum_app::router_sender(app);
    let timeline = explore(Req::get("/admin/audit/").header("x-admin-id", "root")).await;
    assert_eq!(timeline.status, 200, "{timeline:?}");
    let page = String::from_utf8_lossy(&timeline.body);
    assert!(
        page.contains("row?table=public.posts&amp;pk=12"),
        "the timeline lists the trail's changes: {page}"
    );
    let api =
        explore(Req::get("/admin/audit/api/timeline?table=posts").header("x-admin-id", "root"))
            .await;
    assert_eq!(api.status, 200, "{api:?}");
    let transaction_id = api.json()["items"][0]["transaction_id"].as_i64().unwrap();
    let detail = explore(
        Req::get(format!("/admin/audit/transactions/{transaction_id}"))
            .header("x-admin-id", "root"),
    )
    .await;
    assert_eq!(detail.status, 200, "{detail:?}");
    assert!(
        String::from_utf8_lossy(&detail.body).contains("post.published"),
        "the transaction page shows its #[audited] action"
    );
    threadline.pool().close().await;
    db.pool.close().await;
}

#[actix_web::test]
async fn actix_audited_tx_and_audited() {
    let (db, threadline) = setup().await;
    let send = actix_app::sender(threadline.clone()).await;
    writes_and_actions_land_in_the_audit_schema(&db, &send, "actix").await;
    threadline.pool().close().await;
    db.pool.close().await;
}
