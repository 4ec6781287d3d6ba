//! Seed data and an app with the explorer mounted, for the explorer's router tests.
#![allow(dead_code, clippy::unwrap_used)]

use axum::Router;
use http::request::Parts;
use threadline_axum::explorer::{self, ExplorerOptions};
use threadline_axum::{ActorRef, ActorType, AuditContext, ThreadlineLayer};
use threadline_sqlx::{ActionOptions, TableCapture, Threadline, TransactionExt};
use threadline_test_support::TestDb;

/// A post title that must render as text.
pub(crate) const SCRIPT_TITLE: &str = "<script>alert(\"pwned\")</script>";

/// An actor id with markup in it.
pub(crate) const MARKUP_ACTOR: &str = "<b>mallory</b>";

/// What the seed wrote.
pub(crate) struct Seeded {
    pub db: TestDb,
    /// Ids of the audit transactions, in the order written.
    pub transactions: Vec<i64>,
    /// The id of the post whose history has four versions.
    pub post_id: i64,
}

async fn write(db: &TestDb, ctx: AuditContext, sql: &str, action: Option<&str>) -> i64 {
    // Keeps the seeded transactions apart in time, so the "as of" test can pick a moment
    // a millisecond before one of them that is still after the one before it.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let mut tx = db.pool.begin().await.unwrap();
    tx.with_context(&ctx).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&mut *tx)
        .await
        .unwrap();
    if let Some(name) = action {
        let actor = ctx.actor.clone().unwrap();
        Threadline::new(db.pool.clone())
            .on(&mut tx)
            .record_action(
                name,
                &actor,
                ActionOptions::new().reason("seeded by the test"),
            )
            .await
            .unwrap();
    }
    let id: i64 = sqlx::query_scalar(
        "SELECT id FROM audit_transactions WHERE txid = txid_current() ORDER BY id DESC LIMIT 1",
    )
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
    id
}

/// Two audited tables (`posts` stores `changed_from`; `users` masks `email`) and a few
/// transactions by an admin and a user, one of which writes a `<script>` title.
pub(crate) async fn seed() -> Seeded {
    let db = TestDb::installed().await;
    db.exec(
        "CREATE TABLE posts (id bigint PRIMARY KEY, title text NOT NULL, status text NOT NULL DEFAULT 'draft');
         CREATE TABLE users (id bigint PRIMARY KEY, name text NOT NULL, email text);
         CREATE TABLE notes (code text PRIMARY KEY, body text);",
    )
    .await;
    db.audit("posts", &TableCapture::default().store_changed_from(true))
        .await;
    db.audit("users", &TableCapture::default().mask(["email"]))
        .await;

    db.audit("notes", &TableCapture::default()).await;

    let alice = ActorRef::admin("alice").unwrap();
    let bob = ActorRef::user("bob").unwrap();
    let ctx = |actor: &ActorRef, request: &str| {
        AuditContext::for_actor(actor.clone())
            .with_request_id(request)
            .with_correlation_id("order-7")
            .with_remote_ip("10.0.0.5".parse().unwrap())
    };
    let mut transactions = Vec::new();
    transactions.push(
        write(
            &db,
            ctx(&alice, "req-1"),
            "INSERT INTO posts (id, title) VALUES (1, 'Hello');
             INSERT INTO users (id, name, email) VALUES (1, 'Ann', 'ann@example.com');",
            Some("post.created"),
        )
        .await,
    );
    transactions.push(
        write(
            &db,
            ctx(&bob, "req-2"),
            &format!(
                "UPDATE posts SET title = '{}' WHERE id = 1",
                SCRIPT_TITLE.replace('\'', "''")
            ),
            None,
        )
        .await,
    );
    transactions.push(
        write(
            &db,
            ctx(&bob, "req-3"),
            "UPDATE posts SET status = 'published' WHERE id = 1;
             UPDATE users SET name = 'Ann B', email = 'ann@b.example' WHERE id = 1;",
            Some("post.published"),
        )
        .await,
    );
    transactions.push(
        write(
            &db,
            ctx(&alice, "req-4"),
            "DELETE FROM posts WHERE id = 1",
            None,
        )
        .await,
    );
    // Markup in a key, a value and an actor id: all must render as text.
    let mallory = ActorRef::user(MARKUP_ACTOR).unwrap();
    transactions.push(
        write(
            &db,
            ctx(&mallory, "req-5"),
            &format!(
                "INSERT INTO notes (code, body) VALUES ('{0}', '{0}')",
                SCRIPT_TITLE.replace('\'', "''")
            ),
            None,
        )
        .await,
    );
    Seeded {
        db,
        transactions,
        post_id: 1,
    }
}

/// The actor from the `x-actor` header (`admin:alice`).
pub(crate) fn actor_from_request(parts: &Parts) -> Option<ActorRef> {
    ActorRef::parse_short(parts.headers.get("x-actor")?.to_str().ok()?).ok()
}

/// The explorer for admins, mounted at `/admin/audit` with `nest_service` as the guide says,
/// behind a `ThreadlineLayer`, in an application whose own 404 is empty.
pub(crate) fn app(db: &TestDb, options: impl FnOnce(ExplorerOptions) -> ExplorerOptions) -> Router {
    let admins = explorer::actor_is(|actor: &ActorRef| actor.kind() == ActorType::Admin);
    let explorer = explorer::router(
        Threadline::new(db.pool.clone()),
        options(ExplorerOptions::new(admins)),
    );
    Router::new()
        .nest_service("/admin/audit", explorer)
        .layer(ThreadlineLayer::new(actor_from_request))
}
