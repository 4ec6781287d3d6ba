//! Baseline snapshots on the real PostgreSQL: redaction, batches, rerun safety, capture gaps,
//! and what history and as_of make of snapshot rows.

use chrono::Utc;
use serde_json::json;
use threadline_sqlx::{
    AsOf, ChangeOp, Config, Error, InstallOptions, SnapshotOptions, TableCapture, Threadline,
    snapshot_table,
};
use threadline_test_support::TestDb;

const CONFIG: &str = "[capture.tables.users]\nmask = [\"email\"]\nexclude = [\"secret\"]\n";

/// `users` with 25 rows written before capture existed, then capture from `CONFIG`.
async fn brownfield() -> (TestDb, Config) {
    let db = TestDb::installed().await;
    db.exec(
        "CREATE TABLE users (id bigint PRIMARY KEY, name text, email text, secret text);
         INSERT INTO users SELECT g, 'user ' || g, 'u' || g || '@example.com', 's' FROM generate_series(1, 25) AS g;",
    )
    .await;
    let config = Config::from_toml(CONFIG).unwrap();
    db.audit("users", &config.table_policy(&"users".parse().unwrap()))
        .await;
    (db, config)
}

fn options(batch_size: u32) -> SnapshotOptions {
    SnapshotOptions {
        batch_size,
        ..SnapshotOptions::default()
    }
}

async fn snapshot(
    db: &TestDb,
    config: &Config,
    batch_size: u32,
) -> threadline_sqlx::SnapshotReport {
    snapshot_table(
        &db.pool,
        &InstallOptions::default(),
        config,
        &"users".parse().unwrap(),
        &options(batch_size),
        |_| {},
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn records_every_row_redacted_in_batches_and_history_and_as_of_see_it() {
    let (db, config) = brownfield().await;
    let tl = Threadline::new(db.pool.clone());
    let before = Utc::now();
    assert!(
        tl.history("users", 7).await.unwrap().is_empty(),
        "no history before the snapshot"
    );

    let mut batches = Vec::new();
    let report = snapshot_table(
        &db.pool,
        &InstallOptions::default(),
        &config,
        &"users".parse().unwrap(),
        &options(10),
        |r| {
            batches.push((r.batches, r.scanned));
        },
    )
    .await
    .unwrap();
    assert_eq!(
        (report.scanned, report.recorded, report.batches),
        (25, 25, 3)
    );
    assert_eq!(batches, [(1, 10), (2, 20), (3, 25)]);
    assert_eq!(
        db.scalar("SELECT count(*) FROM audit_changes WHERE op = 'snapshot'")
            .await,
        25
    );
    assert_eq!(
        db.scalar("SELECT count(DISTINCT transaction_id) FROM audit_changes")
            .await,
        3,
        "one transaction per batch"
    );
    let actor: serde_json::Value =
        sqlx::query_scalar("SELECT DISTINCT actor_ref FROM audit_transactions")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(
        actor,
        json!({"type": "system", "id": "threadline-snapshot"})
    );

    let history = tl.history("users", 7).await.unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].op, ChangeOp::Snapshot);
    assert_eq!(
        history[0].data_after,
        Some(json!({"id": 7, "name": "user 7", "email": "[REDACTED]"}))
    );
    assert_eq!(history[0].table_pk, json!({"id": 7}));

    match tl.as_of("users", 7, Utc::now()).await.unwrap() {
        AsOf::Existed { image, change } => {
            assert_eq!(image["email"], "[REDACTED]");
            assert_eq!(change.op, ChangeOp::Snapshot);
        }
        other => panic!("{other:?}"),
    }
    match tl.as_of("users", 7, before).await.unwrap() {
        AsOf::BeforeCapture {
            first_change: Some(first),
        } => assert_eq!(first.op, ChangeOp::Snapshot),
        other => panic!("as_of before the snapshot: {other:?}"),
    }

    // Changes after the snapshot follow it in history.
    db.exec("UPDATE users SET name = 'renamed' WHERE id = 7")
        .await;
    let history = tl.history("users", 7).await.unwrap();
    assert_eq!(
        history.iter().map(|c| c.op).collect::<Vec<_>>(),
        [ChangeOp::Update, ChangeOp::Snapshot]
    );
}

#[tokio::test]
async fn reruns_record_only_rows_whose_image_is_not_the_latest() {
    let (db, config) = brownfield().await;
    // A row captured since capture began needs no snapshot: its insert holds its image.
    db.exec("INSERT INTO users VALUES (26, 'new', 'n@example.com', 's')")
        .await;
    assert_eq!(snapshot(&db, &config, 7).await.recorded, 25);
    let again = snapshot(&db, &config, 7).await;
    assert_eq!(
        (again.scanned, again.recorded),
        (26, 0),
        "a rerun records nothing"
    );

    // Updated through capture: the latest change already holds the current image.
    db.exec("UPDATE users SET name = 'x' WHERE id = 3").await;
    // Changed while capture was off: the trail's latest image is stale, so it is recorded again.
    db.exec("ALTER TABLE users DISABLE TRIGGER ALL; UPDATE users SET name = 'quiet' WHERE id = 5; ALTER TABLE users ENABLE TRIGGER ALL;").await;
    // Deleted and re-created while capture was off.
    db.exec("DELETE FROM users WHERE id = 9").await;
    db.exec("ALTER TABLE users DISABLE TRIGGER ALL; INSERT INTO users VALUES (9, 'back', 'b@example.com', 's'); ALTER TABLE users ENABLE TRIGGER ALL;").await;
    let gaps = snapshot(&db, &config, 100).await;
    assert_eq!((gaps.scanned, gaps.recorded, gaps.batches), (26, 2, 1));
    let recorded: Vec<serde_json::Value> = sqlx::query_scalar(
        "SELECT table_pk FROM audit_changes WHERE op = 'snapshot' ORDER BY id DESC LIMIT 2",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(recorded, [json!({"id": 9}), json!({"id": 5})]);
}

#[tokio::test]
async fn composite_and_text_keys_page_in_key_order() {
    let db = TestDb::installed().await;
    db.exec(
        "CREATE TABLE lines (tenant int, sku text, qty int, PRIMARY KEY (tenant, sku));
         INSERT INTO lines SELECT t, 'sku-' || s, s FROM generate_series(1, 3) t, generate_series(1, 9) s;",
    )
    .await;
    db.audit("lines", &TableCapture::default()).await;
    let report = snapshot_table(
        &db.pool,
        &InstallOptions::default(),
        &Config::default(),
        &"lines".parse().unwrap(),
        &options(4),
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!(
        (report.scanned, report.recorded, report.batches),
        (27, 27, 7)
    );
    assert_eq!(
        db.scalar("SELECT count(DISTINCT table_pk) FROM audit_changes")
            .await,
        27
    );
}

#[tokio::test]
async fn a_table_that_is_not_capture_ready_is_refused() {
    let (db, config) = brownfield().await;
    db.exec("CREATE TABLE plain (id int PRIMARY KEY)").await;
    let install = InstallOptions::default();
    let run = |table: &'static str, config: Config| {
        let pool = db.pool.clone();
        let install = install.clone();
        async move {
            snapshot_table(
                &pool,
                &install,
                &config,
                &table.parse().unwrap(),
                &SnapshotOptions::default(),
                |_| {},
            )
            .await
        }
    };
    let err = run("plain", config.clone()).await.unwrap_err();
    assert!(matches!(err, Error::NotCaptureReady { .. }), "{err}");
    let err = run("nope", config.clone()).await.unwrap_err();
    assert!(matches!(err, Error::TableNotFound(_)), "{err}");

    let bad = SnapshotOptions {
        batch_size: 0,
        ..SnapshotOptions::default()
    };
    let err = snapshot_table(
        &db.pool,
        &install,
        &config,
        &"users".parse().unwrap(),
        &bad,
        |_| {},
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidInput {
                field: "batch_size",
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        db.scalar("SELECT count(*) FROM audit_changes").await,
        0,
        "refusals record nothing"
    );
}

/// A batch holds its rows until it commits: an update that comes in meanwhile waits, and is
/// captured after the snapshot row, so history never ends on the older snapshot image.
#[tokio::test]
async fn a_concurrent_update_waits_and_follows_the_snapshot() {
    let (db, config) = brownfield().await;
    let users = "users".parse().unwrap();
    let plan = threadline_sqlx::plan_capture(
        &db.pool,
        &InstallOptions::default(),
        &users,
        &config.table_policy(&users),
    )
    .await
    .unwrap();
    let mut snapshotting = db.connect().await;
    let mut tx = sqlx::Connection::begin(&mut snapshotting).await.unwrap();
    let (scanned, recorded, _): (i64, i64, Option<serde_json::Value>) =
        sqlx::query_as(sqlx::AssertSqlSafe(plan.snapshot_batch_sql()))
            .bind(None::<serde_json::Value>)
            .bind(100_i64)
            .fetch_one(&mut *tx)
            .await
            .unwrap();
    assert_eq!((scanned, recorded), (25, 25));
    let updater = tokio::spawn({
        let pool = db.pool.clone();
        async move {
            sqlx::query("UPDATE users SET name = 'later' WHERE id = 4")
                .execute(&pool)
                .await
        }
    });
    let mut waited = false;
    for _ in 0..200 {
        waited = db.scalar("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'UPDATE users%'").await == 1;
        if waited {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(waited, "the update did not wait for the snapshot batch");
    tx.commit().await.unwrap();
    updater.await.unwrap().unwrap();
    let history = Threadline::new(db.pool.clone())
        .history("users", 4)
        .await
        .unwrap();
    assert_eq!(
        history.iter().map(|c| c.op).collect::<Vec<_>>(),
        [ChangeOp::Update, ChangeOp::Snapshot]
    );
    assert_eq!(history[0].data_after.as_ref().unwrap()["name"], "later");
}

/// The capture of `users` masks `email` and excludes `secret`: a snapshot taken without that
/// in the config redacts with the policy stored with the capture, as capture does.
#[tokio::test]
async fn snapshot_images_are_redacted_with_the_stored_policy_whatever_the_config() {
    let (db, _) = brownfield().await;
    let report = snapshot(&db, &Config::default(), 10).await;
    assert_eq!(report.recorded, 25);
    let (leaked, with_secret): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE data_after->>'email' <> '[REDACTED]'),
                count(*) FILTER (WHERE data_after ? 'secret')
         FROM audit_changes WHERE op = 'snapshot'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!((leaked, with_secret), (0, 0));
}
