//! The W3C trace id of a transaction: set through `threadline.trace_id`, stored on the
//! transaction row and on the actions recorded with it, carried into a job, filtered by the
//! timeline and carried by exports; an install made before the column existed gains it.

mod support;

use serde_json::Value;
use sqlx::Row;
use threadline_sqlx::{
    ActionOptions, ActorRef, AuditContext, ExportOptions, JobContext, PoolExt, TableCapture,
    Threadline, TimelineFilter, TraceId, TransactionExt,
};
use threadline_test_support::TestDb;

use support::POSTS;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const OTHER: &str = "0af7651916cd43dd8448eb211c80319c";

fn trace(id: &str) -> TraceId {
    id.parse().unwrap()
}

async fn posts() -> (TestDb, Threadline) {
    let db = TestDb::installed().await;
    db.exec(POSTS).await;
    db.audit("posts", &TableCapture::default()).await;
    let threadline = Threadline::new(db.pool.clone());
    (db, threadline)
}

/// Writes one post in a transaction begun with `ctx`; returns its audit transaction id.
async fn write(db: &TestDb, ctx: &AuditContext, title: &str) -> i64 {
    let mut tx = db.pool.begin_with_context(ctx).await.unwrap();
    sqlx::query("INSERT INTO posts (title) VALUES ($1)")
        .bind(title)
        .execute(&mut *tx)
        .await
        .unwrap();
    let id = threadline_sqlx::current_audit_transaction_id(&mut tx)
        .await
        .unwrap()
        .unwrap();
    tx.commit().await.unwrap();
    id
}

async fn stored_trace(db: &TestDb, transaction: i64) -> Option<String> {
    sqlx::query("SELECT trace_id FROM audit_transactions WHERE id = $1")
        .bind(transaction)
        .fetch_one(&db.pool)
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn the_trace_id_is_stored_on_the_transaction_row() {
    let (db, threadline) = posts().await;
    let user = ActorRef::user("7").unwrap();
    // begin_with_context (one round trip) ...
    let traced = write(
        &db,
        &AuditContext::for_actor(user.clone()).with_trace_id(trace(TRACE)),
        "a",
    )
    .await;
    assert_eq!(stored_trace(&db, traced).await.as_deref(), Some(TRACE));
    // ... with_context inside a transaction, which also clears an earlier trace id ...
    let mut tx = db.pool.begin().await.unwrap();
    tx.with_context(&AuditContext::for_actor(user.clone()).with_trace_id(trace(OTHER)))
        .await
        .unwrap();
    tx.with_context(&AuditContext::for_actor(user.clone()))
        .await
        .unwrap();
    sqlx::query("INSERT INTO posts (title) VALUES ('b')")
        .execute(&mut *tx)
        .await
        .unwrap();
    let cleared = threadline_sqlx::current_audit_transaction_id(&mut tx)
        .await
        .unwrap()
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(stored_trace(&db, cleared).await, None);
    // ... and no trace id stores NULL.
    let untraced = write(&db, &AuditContext::for_actor(user), "c").await;
    assert_eq!(stored_trace(&db, untraced).await, None);
    let detail = threadline.transaction(traced).await.unwrap().unwrap();
    assert_eq!(detail.transaction.trace_id.as_deref(), Some(TRACE));
}

#[tokio::test]
async fn a_malformed_setting_aborts_the_write_naming_the_setting() {
    let (db, _) = posts().await;
    for bad in [
        "4BF92F3577B34DA6A3CE929D0E0E4736",
        "00000000000000000000000000000000",
        "4bf92f3577b34da6",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    ] {
        let mut tx = db.pool.begin().await.unwrap();
        sqlx::query("SELECT set_config('threadline.trace_id', $1, true)")
            .bind(bad)
            .execute(&mut *tx)
            .await
            .unwrap();
        let err = sqlx::query("INSERT INTO posts (title) VALUES ('x')")
            .execute(&mut *tx)
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("setting threadline.trace_id must be 32 lowercase hex digits"),
            "{bad}: {err}"
        );
        tx.rollback().await.unwrap();
    }
    assert_eq!(db.scalar("SELECT count(*) FROM audit_changes").await, 0);
}

#[tokio::test]
async fn actions_carry_the_trace_id_of_their_request() {
    let (db, threadline) = posts().await;
    let user = ActorRef::user("7").unwrap();
    let ctx = AuditContext::for_actor(user.clone()).with_trace_id(trace(TRACE));
    // Linked inside the transaction: the setting supplies it.
    let mut tx = db.pool.begin_with_context(&ctx).await.unwrap();
    sqlx::query("INSERT INTO posts (title) VALUES ('a')")
        .execute(&mut *tx)
        .await
        .unwrap();
    let linked = threadline
        .on(&mut tx)
        .record_action("post.created", &user, ActionOptions::new())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(linked.trace_id.as_deref(), Some(TRACE));
    // Standalone (as #[audited] records after the commit, or after a rollback): the options
    // taken from the request's context supply it.
    let standalone = threadline
        .record_action(
            "post.failed",
            &user,
            ActionOptions::from_context(&ctx).status(threadline_sqlx::ActionStatus::Error),
        )
        .await
        .unwrap();
    assert_eq!(standalone.trace_id.as_deref(), Some(TRACE));
    let plain = threadline
        .record_action("post.viewed", &user, ActionOptions::new())
        .await
        .unwrap();
    assert_eq!(plain.trace_id, None);
    let detail = threadline
        .transaction(linked.transaction_id.unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(detail.actions[0].trace_id.as_deref(), Some(TRACE));
}

#[tokio::test]
async fn a_job_context_carries_the_trace_id_into_the_worker() {
    let (db, threadline) = posts().await;
    let request = AuditContext::for_actor(ActorRef::user("7").unwrap()).with_trace_id(trace(TRACE));
    let mut job = JobContext::new(ActorRef::job("mailer").unwrap()).with_job_id("42");
    job.trace_id = request.trace_id;
    let payload = serde_json::to_string(&job).unwrap();
    assert!(payload.contains(TRACE), "{payload}");
    let restored: JobContext = serde_json::from_str(&payload).unwrap();
    let id = write(&db, &restored.to_context(), "from the job").await;
    let detail = threadline.transaction(id).await.unwrap().unwrap();
    assert_eq!(detail.transaction.trace_id.as_deref(), Some(TRACE));
    assert_eq!(detail.transaction.source.as_deref(), Some("job"));
}

#[tokio::test]
async fn the_timeline_filters_by_trace_id_and_exports_carry_it() {
    let (db, threadline) = posts().await;
    let user = ActorRef::user("7").unwrap();
    let ctx = AuditContext::for_actor(user.clone());
    write(&db, &ctx.clone().with_trace_id(trace(TRACE)), "a").await;
    write(&db, &ctx.clone().with_trace_id(trace(OTHER)), "b").await;
    write(&db, &ctx.clone().with_trace_id(trace(TRACE)), "c").await;
    write(&db, &ctx, "d").await;

    let filter = TimelineFilter::new().trace_id(trace(TRACE));
    let page = threadline
        .timeline(&filter, threadline_sqlx::Page::first())
        .await
        .unwrap();
    let titles: Vec<&str> = page
        .items
        .iter()
        .map(|c| c.data_after.as_ref().unwrap()["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, ["c", "a"]);
    assert_eq!(threadline.count(&filter).await.unwrap(), 2);
    assert_eq!(
        threadline
            .count(&TimelineFilter::new().trace_id(trace("0000000000000000000000000000abcd")))
            .await
            .unwrap(),
        0
    );

    let ndjson = threadline
        .export_ndjson(&filter, &ExportOptions::default())
        .await
        .unwrap();
    let lines: Vec<Value> = ndjson
        .data
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    for line in &lines {
        assert_eq!(line["transaction"]["trace_id"], TRACE);
    }
    let csv = threadline
        .export_csv(&TimelineFilter::new(), &ExportOptions::default())
        .await
        .unwrap();
    let mut reader = csv::Reader::from_reader(csv.data.as_bytes());
    let column = reader
        .headers()
        .unwrap()
        .iter()
        .position(|h| h == "trace_id")
        .expect("a trace_id column");
    let traces: Vec<String> = reader
        .records()
        .map(|r| r.unwrap()[column].to_owned())
        .collect();
    assert_eq!(traces, vec!["", TRACE, OTHER, TRACE], "newest first");
}

/// An install made before the trace id existed (no columns, no index, the old action
/// function) gains them when `install` runs again, and capture then stores trace ids.
#[tokio::test]
async fn rerunning_install_upgrades_an_older_install() {
    let (db, threadline) = posts().await;
    db.exec(
        "DROP INDEX audit_transactions_trace_id_idx;
         ALTER TABLE audit_transactions DROP COLUMN trace_id;
         DROP FUNCTION threadline_record_action(text, jsonb, text, text, text, text, text, text, text, text, boolean, bigint, text);
         ALTER TABLE audit_actions DROP COLUMN trace_id;
         CREATE FUNCTION threadline_record_action(text, jsonb, text, text, text, text, text, text, text, text, boolean, bigint)
             RETURNS int LANGUAGE sql AS 'SELECT 1';",
    )
    .await;
    let options = threadline_test_support::install_options_from_env();
    threadline_sqlx::install(&db.pool, &options).await.unwrap();
    threadline_sqlx::install(&db.pool, &options).await.unwrap();
    assert_eq!(
        db.scalar(
            "SELECT count(*) FROM pg_attribute
             WHERE attname = 'trace_id' AND NOT attisdropped
               AND attrelid IN ('audit_transactions'::regclass, 'audit_actions'::regclass)"
        )
        .await,
        2
    );
    assert_eq!(
        db.scalar(
            "SELECT count(*) FROM pg_class WHERE relname = 'audit_transactions_trace_id_idx'"
        )
        .await,
        1
    );
    assert_eq!(
        db.scalar("SELECT count(*) FROM pg_proc WHERE proname = 'threadline_record_action'")
            .await,
        1,
        "the old signature is dropped"
    );
    let user = ActorRef::user("7").unwrap();
    let id = write(
        &db,
        &AuditContext::for_actor(user.clone()).with_trace_id(trace(TRACE)),
        "after the upgrade",
    )
    .await;
    assert_eq!(stored_trace(&db, id).await.as_deref(), Some(TRACE));
    let action = threadline
        .record_action(
            "post.checked",
            &user,
            ActionOptions::new().trace_id(trace(TRACE)),
        )
        .await
        .unwrap();
    assert_eq!(action.trace_id.as_deref(), Some(TRACE));
}
