//! Revert (SPEC §11) against real PostgreSQL: every target kind and operation, composite and
//! changing keys, the type round trip through the row type, conflicts, redaction, redo,
//! concurrency and the hardened install.

use serde_json::{Value, json};
use sqlx::Row;
use threadline_sqlx::{
    ActorRef, AuditContext, Error, RevertError, RevertTarget, StepStatus, TableCapture, Threadline,
    TransactionExt,
};
use threadline_test_support::TestDb;

fn admin() -> ActorRef {
    ActorRef::admin("7").unwrap()
}

/// Runs `sql` in one audited transaction under `ctx`; returns its audit transaction id.
async fn write(db: &TestDb, ctx: AuditContext, sql: &str) -> i64 {
    let mut tx = db.pool.begin().await.unwrap();
    tx.with_context(&ctx).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&mut *tx)
        .await
        .unwrap();
    let id: Option<i64> =
        sqlx::query_scalar("SELECT max(id) FROM audit_transactions WHERE txid = txid_current()")
            .fetch_one(&mut *tx)
            .await
            .unwrap();
    tx.commit().await.unwrap();
    id.expect("the write was captured")
}

fn user(id: &str) -> AuditContext {
    AuditContext::for_actor(ActorRef::user(id).unwrap())
}

/// Plans and executes a revert as the admin; returns the revert's own transaction id.
async fn revert(
    threadline: &Threadline,
    target: RevertTarget,
    skip: bool,
) -> threadline_sqlx::Result<i64> {
    let plan = threadline
        .revert(target)
        .skip_conflicts(skip)
        .plan()
        .await?;
    let mut tx = threadline.pool().begin().await?;
    tx.with_actor(&admin()).await?;
    let done = plan.execute(&mut tx).await?;
    tx.commit().await?;
    Ok(done.transaction_id.expect("linked"))
}

async fn rows(db: &TestDb, sql: &str) -> Value {
    sqlx::query_scalar::<_, Option<Value>>(sqlx::AssertSqlSafe(format!(
        "SELECT jsonb_agg(to_jsonb(r)) FROM ({sql}) r"
    )))
    .fetch_one(&db.pool)
    .await
    .unwrap()
    .unwrap_or(json!([]))
}

async fn posts_db(policy: TableCapture) -> TestDb {
    let db = TestDb::installed().await;
    db.exec("CREATE TABLE posts (id bigint PRIMARY KEY, title text NOT NULL, body text)")
        .await;
    db.audit("posts", &policy).await;
    db
}

#[tokio::test]
async fn each_op_of_a_transaction_is_inverted_and_the_revert_is_an_audited_action() {
    let db = posts_db(TableCapture::default()).await;
    write(
        &db,
        user("1"),
        "INSERT INTO posts VALUES (1, 'one', 'a'), (2, 'two', 'b')",
    )
    .await;
    let t = write(
        &db,
        user("2"),
        "INSERT INTO posts VALUES (3, 'three', 'c'); UPDATE posts SET title = 'ONE' WHERE id = 1; DELETE FROM posts WHERE id = 2",
    )
    .await;
    let threadline = Threadline::new(db.pool.clone());
    let plan = threadline
        .revert(RevertTarget::Transaction(t))
        .plan()
        .await
        .unwrap();
    assert!(plan.is_clean(), "{}", plan.render());
    // Reverse capture order: the delete is undone first.
    let actions: Vec<String> = plan.steps.iter().map(|s| s.action.to_string()).collect();
    assert_eq!(actions, ["insert", "update", "delete"]);
    let own = revert(&threadline, RevertTarget::Transaction(t), false)
        .await
        .unwrap();
    assert_eq!(
        rows(&db, "SELECT id, title, body FROM posts ORDER BY 1, 2").await,
        json!([{"id":1,"title":"one","body":"a"},{"id":2,"title":"two","body":"b"}])
    );
    // Captured like any write, under the reverting actor, with the action linked to it.
    let detail = threadline.transaction(own).await.unwrap().unwrap();
    assert_eq!(
        detail.transaction.actor_ref,
        Some(json!({"type":"admin","id":"7"}))
    );
    assert_eq!(detail.changes.len(), 3);
    assert_eq!(detail.actions.len(), 1);
    let action = &detail.actions[0];
    assert_eq!(action.name, "threadline.revert");
    let comment: Value = serde_json::from_str(action.comment.as_deref().unwrap()).unwrap();
    assert_eq!(
        comment,
        json!({"target":{"transaction":t},"transactions":[t]})
    );
    // History is not rewritten: the original transaction still has its three changes.
    assert_eq!(
        threadline
            .transaction(t)
            .await
            .unwrap()
            .unwrap()
            .changes
            .len(),
        3
    );
}

#[tokio::test]
async fn change_correlation_and_request_targets_select_their_changes() {
    let db = posts_db(TableCapture::default()).await;
    write(
        &db,
        user("1")
            .with_correlation_id("job-9")
            .with_request_id("req-1"),
        "INSERT INTO posts VALUES (1, 'a', NULL)",
    )
    .await;
    write(
        &db,
        user("1")
            .with_correlation_id("job-9")
            .with_request_id("req-2"),
        "INSERT INTO posts VALUES (2, 'b', NULL)",
    )
    .await;
    write(
        &db,
        user("1").with_request_id("req-3"),
        "INSERT INTO posts VALUES (3, 'c', NULL); INSERT INTO posts VALUES (4, 'd', NULL)",
    )
    .await;
    let threadline = Threadline::new(db.pool.clone());

    revert(
        &threadline,
        RevertTarget::CorrelationId("job-9".into()),
        false,
    )
    .await
    .unwrap();
    assert_eq!(
        rows(&db, "SELECT id FROM posts ORDER BY 1").await,
        json!([{"id":3},{"id":4}])
    );

    let change: i64 =
        sqlx::query_scalar("SELECT id FROM audit_changes WHERE table_pk = '{\"id\": 4}'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    revert(&threadline, RevertTarget::Change(change), false)
        .await
        .unwrap();
    assert_eq!(
        rows(&db, "SELECT id FROM posts ORDER BY 1").await,
        json!([{"id":3}])
    );

    revert(&threadline, RevertTarget::RequestId("req-3".into()), true)
        .await
        .unwrap();
    assert_eq!(
        rows(&db, "SELECT id FROM posts ORDER BY 1").await,
        json!([])
    );

    let missing = threadline
        .revert(RevertTarget::RequestId("nope".into()))
        .plan()
        .await;
    assert!(
        matches!(
            missing,
            Err(Error::Core(threadline_core::Error::Revert(
                RevertError::NothingToRevert(_)
            )))
        ),
        "{missing:?}"
    );
    let bad = threadline.revert(RevertTarget::Transaction(0)).plan().await;
    assert!(
        matches!(
            bad,
            Err(Error::Core(threadline_core::Error::Revert(
                RevertError::InvalidTarget(_)
            )))
        ),
        "{bad:?}"
    );
}

#[tokio::test]
async fn composite_keys_and_key_changing_updates_go_back_to_the_old_key() {
    let db = TestDb::installed().await;
    db.exec("CREATE TABLE lines (order_id int, line int, qty int NOT NULL, PRIMARY KEY (order_id, line))")
        .await;
    db.audit("lines", &TableCapture::default().store_changed_from(true))
        .await;
    write(
        &db,
        user("1"),
        "INSERT INTO lines VALUES (1, 1, 5), (1, 2, 6)",
    )
    .await;
    let t = write(
        &db,
        user("2"),
        "UPDATE lines SET line = 3, qty = 7 WHERE order_id = 1 AND line = 1",
    )
    .await;
    let threadline = Threadline::new(db.pool.clone());
    revert(&threadline, RevertTarget::Transaction(t), false)
        .await
        .unwrap();
    assert_eq!(
        rows(&db, "SELECT order_id, line, qty FROM lines ORDER BY 1, 2").await,
        json!([{"order_id":1,"line":1,"qty":5},{"order_id":1,"line":2,"qty":6}])
    );
}

#[tokio::test]
async fn a_key_change_without_changed_from_is_not_revertible_and_says_why() {
    let db = posts_db(TableCapture::default()).await;
    write(&db, user("1"), "INSERT INTO posts VALUES (1, 'a', NULL)").await;
    let t = write(&db, user("1"), "UPDATE posts SET id = 2 WHERE id = 1").await;
    let plan = Threadline::new(db.pool.clone())
        .revert(RevertTarget::Transaction(t))
        .plan()
        .await
        .unwrap();
    let reason = match &plan.steps[0].status {
        StepStatus::NotRevertible { reason } => reason.clone(),
        other => panic!("{other:?}"),
    };
    assert!(reason.contains("key changed"), "{reason}");
}

#[tokio::test]
async fn values_round_trip_exactly_through_the_row_type() {
    let db = TestDb::installed().await;
    db.exec(
        "CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
         CREATE DOMAIN positive AS int CHECK (VALUE > 0);
         CREATE TABLE kinds (
             id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
             amount numeric(30, 10), tags text[], grid int[], feeling mood,
             at timestamptz, doc json, data jsonb, blob bytea, n positive, ratio float8,
             doubled numeric GENERATED ALWAYS AS (amount * 2) STORED)",
    )
    .await;
    db.audit("kinds", &TableCapture::default()).await;
    let values = "amount = 12345678901234567890.0123456789, tags = ARRAY['a', 'b,c', NULL, 'd\"e'], \
                  grid = '{{1,2},{3,4}}', feeling = 'happy', at = '2024-02-29 23:59:59.123456+05:30', \
                  doc = '{\"b\": 1,  \"a\": [1, 2.50]}', data = '{\"k\": {\"n\": 1.000}}', \
                  blob = '\\x00ff10', n = 5, ratio = 0.1";
    write(
        &db,
        user("1"),
        &format!("INSERT INTO kinds (amount) VALUES (1); UPDATE kinds SET {values}"),
    )
    .await;
    let snapshot = "SELECT id, amount::text, tags::text, grid::text, feeling::text, at, doc::jsonb::text AS doc, data::text, blob::text, n, ratio::text, doubled::text FROM kinds";
    let before = rows(&db, snapshot).await;
    // Delete it and bring it back: every value through jsonb_populate_record.
    let t = write(&db, user("2"), "DELETE FROM kinds").await;
    let threadline = Threadline::new(db.pool.clone());
    revert(&threadline, RevertTarget::Transaction(t), false)
        .await
        .unwrap();
    assert_eq!(rows(&db, snapshot).await, before);
    // Change everything and set it back: the update path.
    let t = write(
        &db,
        user("2"),
        "UPDATE kinds SET amount = 0, tags = '{}', grid = NULL, feeling = 'sad', at = now(), doc = '[]', data = 'null', blob = '', n = 1, ratio = 2",
    )
    .await;
    revert(&threadline, RevertTarget::Transaction(t), false)
        .await
        .unwrap();
    assert_eq!(rows(&db, snapshot).await, before);
    let row = &before[0];
    assert_eq!(row["amount"], json!("12345678901234567890.0123456789"));
    assert_eq!(row["doubled"], json!("24691357802469135780.0246913578"));
    assert_eq!(row["blob"], json!("\\x00ff10"));
}

#[tokio::test]
async fn a_later_change_refuses_the_revert_and_skip_reverts_the_rest() {
    let db = posts_db(TableCapture::default()).await;
    write(
        &db,
        user("1"),
        "INSERT INTO posts VALUES (1, 'a', NULL), (2, 'b', NULL)",
    )
    .await;
    let t = write(&db, user("2"), "UPDATE posts SET title = title || '!'").await;
    let later = write(
        &db,
        user("3"),
        "UPDATE posts SET body = 'edited' WHERE id = 2",
    )
    .await;
    let threadline = Threadline::new(db.pool.clone());
    let plan = threadline
        .revert(RevertTarget::Transaction(t))
        .plan()
        .await
        .unwrap();
    let conflicts: Vec<_> = plan.conflicts().collect();
    assert_eq!(conflicts.len(), 1);
    match &conflicts[0].status {
        StepStatus::Conflict { later: l } => {
            assert_eq!(l.transaction_id, later);
            assert_eq!(l.actor_ref, Some(json!({"type":"user","id":"3"})));
        }
        other => panic!("{other:?}"),
    }
    assert!(
        plan.render().contains("CONFLICT: changed later by change"),
        "{}",
        plan.render()
    );
    let refused = revert(&threadline, RevertTarget::Transaction(t), false).await;
    assert!(
        matches!(refused, Err(Error::RevertRefused(_))),
        "{refused:?}"
    );
    assert_eq!(
        rows(&db, "SELECT id, title FROM posts ORDER BY 1, 2").await,
        json!([{"id":1,"title":"a!"},{"id":2,"title":"b!"}])
    );

    let plan = threadline
        .revert(RevertTarget::Transaction(t))
        .skip_conflicts(true)
        .plan()
        .await
        .unwrap();
    let mut tx = db.pool.begin().await.unwrap();
    tx.with_actor(&admin()).await.unwrap();
    let done = plan.execute(&mut tx).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(done.applied().len(), 1);
    assert_eq!(done.skipped().count(), 1);
    assert_eq!(
        rows(&db, "SELECT id, title FROM posts ORDER BY 1, 2").await,
        json!([{"id":1,"title":"a"},{"id":2,"title":"b!"}])
    );
}

#[tokio::test]
async fn masked_and_excluded_columns_are_not_revertible_and_never_get_the_placeholder() {
    let db = TestDb::installed().await;
    db.exec("CREATE TABLE users (id int PRIMARY KEY, name text, email text, hash text)")
        .await;
    db.audit(
        "users",
        &TableCapture::default()
            .mask(["email"])
            .exclude(["hash"])
            .store_changed_from(true),
    )
    .await;
    write(
        &db,
        user("1"),
        "INSERT INTO users VALUES (1, 'ann', 'ann@x', 'h1'), (2, 'bob', 'bob@x', 'h2')",
    )
    .await;
    let t = write(&db, user("1"), "UPDATE users SET email = 'new@x' WHERE id = 1; DELETE FROM users WHERE id = 2; UPDATE users SET name = 'ANN' WHERE id = 1").await;
    let threadline = Threadline::new(db.pool.clone());
    let plan = threadline
        .revert(RevertTarget::Transaction(t))
        .plan()
        .await
        .unwrap();
    let reasons: Vec<String> = plan
        .not_revertible()
        .map(|s| match &s.status {
            StepStatus::NotRevertible { reason } => reason.clone(),
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(reasons.len(), 2, "{}", plan.render());
    assert!(
        reasons.iter().any(|r| r.contains("\"email\" (masked)")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("\"hash\" (excluded)")),
        "{reasons:?}"
    );
    assert!(matches!(
        revert(&threadline, RevertTarget::Transaction(t), false).await,
        Err(Error::RevertRefused(_))
    ));
    revert(&threadline, RevertTarget::Transaction(t), true)
        .await
        .unwrap();
    // Only the name went back; the email was never set to the placeholder; bob stays deleted.
    assert_eq!(
        rows(&db, "SELECT id, name, email FROM users ORDER BY 1, 2").await,
        json!([{"id":1,"name":"ann","email":"new@x"}])
    );
}

#[tokio::test]
async fn reverting_a_revert_redoes_and_reverting_twice_conflicts() {
    let db = posts_db(TableCapture::default()).await;
    write(&db, user("1"), "INSERT INTO posts VALUES (1, 'a', NULL)").await;
    let t = write(&db, user("2"), "UPDATE posts SET title = 'b'").await;
    let threadline = Threadline::new(db.pool.clone());
    let undo = revert(&threadline, RevertTarget::Transaction(t), false)
        .await
        .unwrap();
    assert_eq!(
        rows(&db, "SELECT title FROM posts ORDER BY 1").await,
        json!([{"title":"a"}])
    );
    let again = threadline
        .revert(RevertTarget::Transaction(t))
        .plan()
        .await
        .unwrap();
    assert_eq!(
        again.conflicts().count(),
        1,
        "the revert itself is the later change"
    );
    revert(&threadline, RevertTarget::Transaction(undo), false)
        .await
        .unwrap();
    assert_eq!(
        rows(&db, "SELECT title FROM posts ORDER BY 1").await,
        json!([{"title":"b"}])
    );
}

#[tokio::test]
async fn concurrent_reverts_of_one_target_apply_once() {
    let db = posts_db(TableCapture::default()).await;
    write(&db, user("1"), "INSERT INTO posts VALUES (1, 'a', NULL)").await;
    let t = write(&db, user("2"), "UPDATE posts SET title = 'b'").await;
    let threadline = Threadline::new(db.pool.clone());
    // Both plan before either runs; the first holds its lock until it commits.
    let first = threadline
        .revert(RevertTarget::Transaction(t))
        .plan()
        .await
        .unwrap();
    let second = threadline
        .revert(RevertTarget::Transaction(t))
        .plan()
        .await
        .unwrap();
    let mut tx1 = db.pool.begin().await.unwrap();
    tx1.with_actor(&admin()).await.unwrap();
    first.execute(&mut tx1).await.unwrap();
    let pool = db.pool.clone();
    let other = tokio::spawn(async move {
        let mut tx2 = pool.begin().await.unwrap();
        tx2.with_actor(&admin()).await.unwrap();
        let r = second.execute(&mut tx2).await;
        tx2.rollback().await.unwrap();
        r
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        !other.is_finished(),
        "the second revert waits for the first"
    );
    tx1.commit().await.unwrap();
    let second = other.await.unwrap();
    match second {
        Err(Error::RevertRefused(plan)) => assert_eq!(plan.conflicts().count(), 1),
        other => panic!("{other:?}"),
    }
    let reverts: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_actions WHERE name = 'threadline.revert'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(reverts, 1);
}

#[tokio::test]
async fn a_revert_needs_an_actor_and_a_transaction() {
    let db = posts_db(TableCapture::default()).await;
    let t = write(&db, user("1"), "INSERT INTO posts VALUES (1, 'a', NULL)").await;
    let threadline = Threadline::new(db.pool.clone());
    let plan = threadline
        .revert(RevertTarget::Transaction(t))
        .plan()
        .await
        .unwrap();
    let mut tx = db.pool.begin().await.unwrap();
    let err = plan.clone().execute(&mut tx).await.unwrap_err();
    assert!(err.to_string().contains("tx.with_actor"), "{err}");
    drop(tx);
    let mut conn = db.pool.acquire().await.unwrap();
    assert!(matches!(
        plan.execute(&mut conn).await,
        Err(Error::NotInTransaction)
    ));
}

#[tokio::test]
async fn a_dropped_column_is_a_clear_per_row_error_and_an_unaudited_table_warns() {
    let db = posts_db(TableCapture::default()).await;
    write(&db, user("1"), "INSERT INTO posts VALUES (1, 'a', 'x')").await;
    let t = write(&db, user("1"), "DELETE FROM posts").await;
    db.exec("DROP TRIGGER threadline_capture_insert ON posts; DROP TRIGGER threadline_capture_update ON posts; DROP TRIGGER threadline_capture_delete ON posts; DROP TRIGGER IF EXISTS threadline_capture_update_row ON posts; DROP TRIGGER IF EXISTS threadline_capture_truncate ON posts; ALTER TABLE posts DROP COLUMN body").await;
    let plan = Threadline::new(db.pool.clone())
        .revert(RevertTarget::Transaction(t))
        .plan()
        .await
        .unwrap();
    assert!(
        matches!(&plan.steps[0].status, StepStatus::NotRevertible { reason } if reason.contains("\"body\" no longer exists")),
        "{}",
        plan.render()
    );
    assert!(
        plan.warnings
            .iter()
            .any(|w| w.contains("no longer audited")),
        "{:?}",
        plan.warnings
    );
}

#[tokio::test]
async fn hardened_install_revert_runs_as_the_application_role_and_is_captured() {
    let db = TestDb::empty().await;
    let owner = format!("{}_owner", db.name);
    let app = format!("{}_app", db.name);
    db.exec(&format!(
        "CREATE ROLE \"{owner}\" NOLOGIN; CREATE ROLE \"{app}\" LOGIN;
         CREATE TABLE posts (id bigint PRIMARY KEY, title text NOT NULL);
         GRANT SELECT, INSERT, UPDATE, DELETE ON posts TO \"{app}\";"
    ))
    .await;
    let install = threadline_sqlx::InstallOptions::default()
        .with_owner_role(threadline_sqlx::Ident::new(owner.clone()).unwrap())
        .with_reader_role(threadline_sqlx::Ident::new(app.clone()).unwrap());
    threadline_sqlx::install(&db.pool, &install).await.unwrap();
    threadline_sqlx::audit_table(
        &db.pool,
        &install,
        &"posts".parse().unwrap(),
        &TableCapture::default(),
    )
    .await
    .unwrap();
    let options: sqlx::postgres::PgConnectOptions = db.url.parse().unwrap();
    let app_pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect_with(options.username(&app))
        .await
        .unwrap();
    let mut tx = app_pool.begin().await.unwrap();
    tx.with_actor(&ActorRef::user("1").unwrap()).await.unwrap();
    sqlx::query("INSERT INTO posts VALUES (1, 'a')")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let t: i64 = sqlx::query_scalar("SELECT max(id) FROM audit_transactions")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    let threadline = Threadline::new(app_pool.clone());
    let own = revert(&threadline, RevertTarget::Transaction(t), false)
        .await
        .unwrap();
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM posts")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(n, 0);
    let detail = threadline.transaction(own).await.unwrap().unwrap();
    assert_eq!(detail.changes.len(), 1);
    assert_eq!(detail.actions[0].name, "threadline.revert");
    let role: String = sqlx::query_scalar("SELECT current_user::text")
        .fetch_one(&app_pool)
        .await
        .unwrap();
    assert_eq!(role, app);
    app_pool.close().await;
    let _ = sqlx::query("SELECT 1")
        .fetch_one(&db.pool)
        .await
        .map(|r| r.len());
    drop(db);
    let roles = format!("DROP ROLE IF EXISTS \"{app}\", \"{owner}\"");
    let admin: sqlx::postgres::PgConnectOptions =
        threadline_test_support::server_url().parse().unwrap();
    use sqlx::{ConnectOptions, Connection};
    let mut conn = admin.connect().await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(roles))
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
}
