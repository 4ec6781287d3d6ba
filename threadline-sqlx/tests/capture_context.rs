//! The audit context (actor, request, correlation, ...) of a transaction: how it is set,
//! stored on the transaction row, kept transaction-local, and refused when malformed.

mod support;

use serde_json::{Value, json};
use sqlx::Row;
use threadline_sqlx::{ActorRef, Error, TableCapture, Threadline, TransactionExt};
use threadline_test_support::{TestDb, changes};

use support::POSTS;

#[tokio::test]
async fn context_settings_are_stored_on_the_transaction_row() {
    let db = TestDb::installed().await;
    db.exec(POSTS).await;
    db.audit("posts", &TableCapture::default()).await;
    let ctx =
        threadline_sqlx::AuditContext::for_actor(ActorRef::service_account("billing").unwrap())
            .with_request_id("req-1")
            .with_correlation_id("corr-9")
            .with_remote_ip("203.0.113.5".parse().unwrap())
            .with_source("worker")
            .with_meta(json!({"version": 3}));
    let mut tx = db.pool.begin().await.unwrap();
    tx.with_context(&ctx).await.unwrap();
    sqlx::query("INSERT INTO posts (title) VALUES ('x')")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let row = sqlx::query(
        "SELECT actor_ref, request_id, correlation_id, host(remote_ip), source, meta FROM audit_transactions",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        row.get::<Value, _>(0),
        json!({"type": "service_account", "id": "billing"})
    );
    assert_eq!(row.get::<String, _>(1), "req-1");
    assert_eq!(row.get::<String, _>(2), "corr-9");
    assert_eq!(row.get::<String, _>(3), "203.0.113.5");
    assert_eq!(row.get::<String, _>(4), "worker");
    assert_eq!(row.get::<Value, _>(5), json!({"version": 3}));
}

#[tokio::test]
async fn malformed_actor_json_aborts_the_write_naming_the_setting() {
    let db = TestDb::installed().await;
    db.exec(POSTS).await;
    db.audit("posts", &TableCapture::default()).await;
    for bad in ["{not json", r#""just a string""#, r#"{"id": "1"}"#] {
        let mut tx = db.pool.begin().await.unwrap();
        sqlx::query("SELECT set_config('threadline.actor_ref', $1, true)")
            .bind(bad)
            .execute(&mut *tx)
            .await
            .unwrap();
        let err = sqlx::query("INSERT INTO posts (title) VALUES ('x')")
            .execute(&mut *tx)
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("threadline.actor_ref"),
            "{bad}: {err}"
        );
        tx.rollback().await.unwrap();
    }
    assert_eq!(db.scalar("SELECT count(*) FROM posts").await, 0);
    assert_eq!(db.scalar("SELECT count(*) FROM audit_changes").await, 0);
}

#[tokio::test]
async fn context_is_transaction_local_and_refused_outside_a_transaction() {
    let db = TestDb::installed().await;
    db.exec(POSTS).await;
    db.audit("posts", &TableCapture::default()).await;
    let mut conn = db.connect().await;
    let err = conn
        .with_actor(&ActorRef::user("1").unwrap())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotInTransaction), "{err}");

    let mut tx = sqlx::Connection::begin(&mut conn).await.unwrap();
    tx.with_actor(&ActorRef::user("1").unwrap()).await.unwrap();
    sqlx::query("INSERT INTO posts (title) VALUES ('a')")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    // Same connection, next transaction, no context: nothing carries over.
    let mut tx = sqlx::Connection::begin(&mut conn).await.unwrap();
    sqlx::query("INSERT INTO posts (title) VALUES ('b')")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let actors: Vec<Option<Value>> =
        sqlx::query_scalar("SELECT actor_ref FROM audit_transactions ORDER BY id")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    assert_eq!(actors, [Some(json!({"type": "user", "id": "1"})), None]);
}

#[tokio::test]
async fn begin_with_context_applies_hostile_values_exactly_and_only_in_its_transaction() {
    use threadline_sqlx::{AuditContext, PoolExt};
    let db = TestDb::installed().await;
    db.exec(POSTS).await;
    db.audit("posts", &TableCapture::default()).await;
    let hostile = "it's \\'; DROP TABLE posts; -- $$ \u{e9}\u{1f600} \\x41";
    let ctx = AuditContext::for_actor(ActorRef::user(hostile).unwrap())
        .with_request_id(hostile)
        .with_correlation_id("c'1")
        .with_meta(json!({"note": hostile}));
    let mut tx = db.pool.begin_with_context(&ctx).await.unwrap();
    sqlx::query("INSERT INTO posts (title) VALUES ('a')")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let row =
        sqlx::query("SELECT actor_ref, request_id, correlation_id, meta FROM audit_transactions")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(
        row.get::<Value, _>("actor_ref"),
        json!({"type": "user", "id": hostile})
    );
    assert_eq!(row.get::<String, _>("request_id"), hostile);
    assert_eq!(row.get::<String, _>("correlation_id"), "c'1");
    assert_eq!(row.get::<Value, _>("meta"), json!({"note": hostile}));
    let posts: i64 = sqlx::query_scalar("SELECT count(*) FROM posts")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(posts, 1, "the value never ran as SQL");

    // The same values arrive on a session with standard_conforming_strings off, and the
    // settings end with the transaction, on commit and on rollback alike (one connection, so
    // the next statement runs where the transaction ran).
    let one = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect_with(
            (*db.pool.connect_options())
                .clone()
                .options([("standard_conforming_strings", "off")]),
        )
        .await
        .unwrap();
    for commit in [true, false] {
        let mut tx = one.begin_with_context(&ctx).await.unwrap();
        let seen: String = sqlx::query_scalar("SELECT current_setting('threadline.request_id')")
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        assert_eq!(seen, hostile);
        if commit {
            tx.commit().await.unwrap()
        } else {
            tx.rollback().await.unwrap()
        }
        let left: Option<String> =
            sqlx::query_scalar("SELECT NULLIF(current_setting('threadline.request_id', true), '')")
                .fetch_one(&one)
                .await
                .unwrap();
        assert_eq!(left, None, "commit = {commit}");
    }
    // An actor left behind by a session-level SET never reaches a context-less transaction.
    sqlx::query("SET threadline.actor_ref = '{\"type\":\"user\",\"id\":\"leaked\"}'")
        .execute(&one)
        .await
        .unwrap();
    let mut tx = one
        .begin_with_context(&AuditContext::new().with_request_id("r"))
        .await
        .unwrap();
    let actor: String = sqlx::query_scalar("SELECT current_setting('threadline.actor_ref')")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(
        actor, r#"{"type":"anonymous"}"#,
        "the actor is always written: a context without one is anonymous"
    );
    tx.rollback().await.unwrap();
    one.close().await;

    // A NUL byte is refused before any SQL runs, and the pool stays usable.
    let bad = AuditContext::new().with_request_id("a\0b");
    let err = db.pool.begin_with_context(&bad).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidInput {
                field: "threadline.request_id",
                ..
            }
        ),
        "{err}"
    );
    let tx = db.pool.begin_with_context(&ctx).await.unwrap();
    tx.rollback().await.unwrap();
}

#[tokio::test]
async fn begin_with_context_on_a_held_connection_and_refused_inside_a_transaction() {
    use sqlx::Connection;
    use threadline_sqlx::{AuditContext, ConnectionExt};
    let db = TestDb::installed().await;
    db.exec(POSTS).await;
    db.audit("posts", &TableCapture::default()).await;
    let ctx = AuditContext::for_actor(ActorRef::job("sync").unwrap()).with_request_id("r-9");
    let mut conn = db.pool.acquire().await.unwrap();
    let mut tx = conn.begin_with_context(&ctx).await.unwrap();
    sqlx::query("INSERT INTO posts (title) VALUES ('a')")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let (actor, request): (Value, String) =
        sqlx::query_as("SELECT actor_ref, request_id FROM audit_transactions")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(actor, json!({"type": "job", "id": "sync"}));
    assert_eq!(request, "r-9");

    // Inside a transaction it is refused before anything is sent; the transaction goes on.
    let mut outer = conn.begin().await.unwrap();
    let err = outer.begin_with_context(&ctx).await.unwrap_err();
    assert!(matches!(err, Error::Database(_)), "{err}");
    let seen: String =
        sqlx::query_scalar("SELECT coalesce(current_setting('threadline.request_id', true), '')")
            .fetch_one(&mut *outer)
            .await
            .unwrap();
    assert_eq!(seen, "", "no setting was applied");
    outer.rollback().await.unwrap();
}

#[tokio::test]
async fn begin_with_context_and_linked_actions() {
    use threadline_sqlx::{ActionOptions, AuditContext, PoolExt};
    let db = TestDb::installed().await;
    db.exec(POSTS).await;
    db.audit("posts", &TableCapture::default()).await;
    let actor = ActorRef::admin("root").unwrap();
    let ctx = AuditContext::for_actor(actor.clone())
        .with_correlation_id("c-1")
        .with_request_id("r-1");
    let mut tx = db.pool.begin_with_context(&ctx).await.unwrap();
    sqlx::query("INSERT INTO posts (title) VALUES ('a')")
        .execute(&mut *tx)
        .await
        .unwrap();
    let first = Threadline::new(db.pool.clone())
        .on(&mut tx)
        .record_action(
            "post.published",
            &actor,
            ActionOptions::new().reason("launch"),
        )
        .await
        .unwrap();
    let second = Threadline::new(db.pool.clone())
        .on(&mut tx)
        .record_action("post.featured", &actor, ActionOptions::new())
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let c = changes(&db).await;
    assert_eq!(first.transaction_id, Some(c[0].transaction_id));
    assert_eq!(
        second.transaction_id,
        Some(c[0].transaction_id),
        "several actions per transaction"
    );
    assert_eq!(
        first.correlation_id.as_deref(),
        Some("c-1"),
        "defaults to the context"
    );
    assert_eq!(first.request_id.as_deref(), Some("r-1"));
    assert_eq!(first.reason.as_deref(), Some("launch"));
    assert_eq!(first.actor().unwrap(), actor);

    let mut tx = db.pool.begin().await.unwrap();
    for bad in ["", "   ", &"x".repeat(257), "a\nb"] {
        let err = Threadline::new(db.pool.clone())
            .on(&mut tx)
            .record_action(bad, &actor, ActionOptions::new())
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::InvalidInput {
                    field: "action name",
                    ..
                }
            ),
            "{bad:?}: {err}"
        );
    }
}
