//! Retention purge on the real PostgreSQL: counts, batching, refusals and interruption.

use std::sync::Mutex;
use std::time::Duration;

use chrono::{TimeDelta, Utc};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgPool};
use threadline_sqlx::{
    ActionOptions, ActorRef, Error, InstallOptions, PoolExt, PurgeOptions, RetentionPolicy,
    TableCapture, Threadline, purge, purge_with_progress,
};
use threadline_test_support::{TestDb, scalar};

async fn setup() -> TestDb {
    let db = TestDb::installed().await;
    db.exec("CREATE TABLE items (id bigint PRIMARY KEY, v text)")
        .await;
    db.audit("items", &TableCapture::default()).await;
    db
}

/// Commits one transaction inserting `ids`; returns its audit transaction id.
async fn write(pool: &PgPool, ids: std::ops::Range<i64>) -> i64 {
    let mut tx = pool
        .begin_with_context(&threadline_sqlx::AuditContext::for_actor(
            ActorRef::user("7").unwrap(),
        ))
        .await
        .unwrap();
    for id in ids {
        sqlx::query("INSERT INTO items (id, v) VALUES ($1, 'x')")
            .bind(id)
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    let txn: i64 = sqlx::query_scalar("SELECT threadline_transaction_id()")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    txn
}

/// Moves the capture time of some changes `days` days into the past.
async fn age(pool: &PgPool, condition: &str, days: i32) {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE audit_changes SET captured_at = captured_at - make_interval(days => $1) WHERE {condition}"
    )))
    .bind(days)
    .execute(pool)
    .await
    .unwrap();
}

/// Purges with the default install and [`policy`].
async fn run(
    pool: &PgPool,
    options: &PurgeOptions,
) -> threadline_sqlx::Result<threadline_sqlx::PurgeReport> {
    purge(pool, &InstallOptions::default(), &policy(), options).await
}

fn batches_of(batch_size: u32) -> PurgeOptions {
    PurgeOptions {
        batch_size,
        ..Default::default()
    }
}

fn policy() -> RetentionPolicy {
    RetentionPolicy::keep_days(5).unwrap().enabled(true)
}

#[tokio::test]
async fn dry_run_counts_exactly_and_live_run_deletes_the_same() {
    let db = setup().await;
    let pool = &db.pool;
    let old = write(pool, 0..3).await; // all changes old: the transaction empties
    let straddling = write(pool, 10..13).await; // two old changes, one recent
    let recent = write(pool, 20..22).await;
    let orphan = write(pool, 30..31).await; // an old change whose transaction row is gone
    age(pool, &format!("transaction_id IN ({old}, {orphan})"), 10).await;
    age(
        pool,
        &format!("transaction_id = {straddling} AND table_pk->>'id' <> '12'"),
        10,
    )
    .await;
    db.exec(&format!(
        "DELETE FROM audit_transactions WHERE id = {orphan}"
    ))
    .await;
    // An action-only transaction: a transaction row with no changes, old enough to purge.
    let mut tx = pool.begin().await.unwrap();
    let action = Threadline::new(pool.clone())
        .on(&mut tx)
        .record_action(
            "report.viewed",
            &ActorRef::user("7").unwrap(),
            ActionOptions::new(),
        )
        .await
        .unwrap();
    tx.commit().await.unwrap();
    db.exec("UPDATE audit_transactions SET occurred_at = now() - interval '30 days'")
        .await;
    // An action linked to the transaction that will be emptied.
    let linked: i64 = scalar(
        pool,
        &format!(
            "INSERT INTO audit_actions (name, actor_ref, status, transaction_id)
             VALUES ('x', '{{\"type\":\"system\",\"id\":\"t\"}}', 'ok', {old}) RETURNING id"
        ),
    )
    .await;

    let dry = run(
        pool,
        &PurgeOptions {
            dry_run: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(dry.dry_run);
    assert_eq!(
        (dry.deleted_changes, dry.deleted_transactions, dry.batches),
        (6, 1, 0)
    );
    assert_eq!(
        scalar(pool, "SELECT count(*) FROM audit_changes").await,
        9,
        "dry run deletes nothing"
    );
    let expected_cutoff = Utc::now() - TimeDelta::days(5);
    assert!(
        (dry.cutoff - expected_cutoff).abs() < TimeDelta::seconds(5),
        "{}",
        dry.cutoff
    );

    let live = run(pool, &PurgeOptions::default()).await.unwrap();
    assert_eq!((live.deleted_changes, live.deleted_transactions), (6, 1));
    assert!(live.complete);
    assert!(!live.dry_run);
    assert_eq!(
        scalar(
            pool,
            "SELECT count(*) FROM audit_changes WHERE captured_at < now() - interval '5 days'"
        )
        .await,
        0
    );
    let left: Vec<(i64, i64)> =
        sqlx::query_as("SELECT transaction_id, count(*) FROM audit_changes GROUP BY 1 ORDER BY 1")
            .fetch_all(pool)
            .await
            .unwrap();
    assert_eq!(left, [(straddling, 1), (recent, 2)]);
    let transactions: Vec<i64> =
        sqlx::query_scalar("SELECT id FROM audit_transactions ORDER BY id")
            .fetch_all(pool)
            .await
            .unwrap();
    assert_eq!(
        transactions,
        [straddling, recent, action.transaction_id.unwrap()],
        "the emptied transaction is gone; the straddling and action-only ones stay"
    );
    let link: Option<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT transaction_id FROM audit_actions WHERE id = {linked}"
    )))
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(link, None, "the action stays, unlinked");

    let again = run(pool, &PurgeOptions::default()).await.unwrap();
    assert_eq!(
        (
            again.deleted_changes,
            again.deleted_transactions,
            again.batches
        ),
        (0, 0, 0)
    );
}

#[tokio::test]
async fn keeping_empty_transactions_and_dry_run_agree() {
    let db = setup().await;
    write(&db.pool, 0..2).await;
    age(&db.pool, "true", 10).await;
    let keep = policy().delete_empty_transactions(false);
    let dry = purge(
        &db.pool,
        &InstallOptions::default(),
        &keep,
        &PurgeOptions {
            dry_run: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!((dry.deleted_changes, dry.deleted_transactions), (2, 0));
    let live = purge(
        &db.pool,
        &InstallOptions::default(),
        &keep,
        &PurgeOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!((live.deleted_changes, live.deleted_transactions), (2, 0));
    assert_eq!(
        db.scalar("SELECT count(*) FROM audit_transactions").await,
        1
    );
}

#[tokio::test]
async fn batches_take_whole_transactions_and_max_batches_resumes() {
    let db = setup().await;
    let pool = &db.pool;
    for t in 0..30 {
        write(pool, t * 10..t * 10 + 3).await;
    }
    age(pool, "true", 10).await;
    write(pool, 1000..1002).await; // recent: kept
    assert_eq!(
        scalar(
            pool,
            "SELECT count(*) FROM audit_changes WHERE captured_at < now() - interval '5 days'"
        )
        .await,
        90
    );

    // 4 changes per batch reach into a second transaction, so each batch takes 2 whole ones.
    let options = PurgeOptions {
        batch_size: 4,
        max_batches: Some(10),
        ..Default::default()
    };
    let events = threadline_test_support::logs::Recorder::default();
    let guard = tracing::subscriber::set_default(events.clone());
    let seen = Mutex::new(Vec::new());
    let first = purge_with_progress(pool, &InstallOptions::default(), &policy(), &options, |p| {
        seen.lock()
            .unwrap()
            .push((p.batch, p.changes, p.transactions, p.total_changes));
    })
    .await
    .unwrap();
    drop(guard);
    assert_eq!(
        (
            first.batches,
            first.deleted_changes,
            first.deleted_transactions
        ),
        (10, 60, 20)
    );
    assert!(!first.complete, "max_batches stopped it with work left");
    let seen = seen.into_inner().unwrap();
    assert_eq!(seen.len(), 10);
    assert!(
        seen.iter().enumerate().all(|(i, &(b, c, t, total))| {
            b == i as u32 + 1 && c == 6 && t == 2 && total == 6 * u64::from(b)
        }),
        "{seen:?}"
    );
    assert_eq!(
        events
            .lines()
            .iter()
            .filter(|l| l.contains(" threadline::retention:"))
            .count(),
        10,
        "one tracing event per batch"
    );
    assert_eq!(
        scalar(pool, "SELECT count(*) FROM (SELECT transaction_id FROM audit_changes GROUP BY 1 HAVING count(*) <> 3) s").await,
        1,
        "every remaining transaction keeps all 3 changes (the recent one has 2)"
    );

    let rest = run(pool, &batches_of(4)).await.unwrap();
    assert_eq!(
        (
            rest.batches,
            rest.deleted_changes,
            rest.deleted_transactions
        ),
        (5, 30, 10)
    );
    assert!(rest.complete);
    assert_eq!(scalar(pool, "SELECT count(*) FROM audit_changes").await, 2);
    assert_eq!(
        scalar(pool, "SELECT count(*) FROM audit_transactions").await,
        1
    );
}

#[tokio::test]
async fn refusals_are_typed() {
    let db = setup().await;
    let pool = &db.pool;
    let disabled = RetentionPolicy::keep_days(5).unwrap();
    let err = purge(
        pool,
        &InstallOptions::default(),
        &disabled,
        &PurgeOptions::default(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::RetentionDisabled), "{err}");
    assert!(err.to_string().contains("enabled = true"), "{err}");
    purge(
        pool,
        &InstallOptions::default(),
        &disabled,
        &PurgeOptions {
            dry_run: true,
            ..Default::default()
        },
    )
    .await
    .expect("a dry run works while disabled");

    let too_new = PurgeOptions {
        cutoff: Some(Utc::now() - TimeDelta::days(1)),
        ..Default::default()
    };
    let err = run(pool, &too_new).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("newer than the retention policy allows"),
        "{err}"
    );
    let older = PurgeOptions {
        cutoff: Some(Utc::now() - TimeDelta::days(6)),
        ..Default::default()
    };
    let report = run(pool, &older).await.unwrap();
    assert_eq!(report.cutoff, older.cutoff.unwrap());

    for bad in [
        PurgeOptions {
            batch_size: 0,
            ..Default::default()
        },
        PurgeOptions {
            batch_size: 1_000_001,
            ..Default::default()
        },
        PurgeOptions {
            max_batches: Some(0),
            ..Default::default()
        },
    ] {
        let err = run(pool, &bad).await.unwrap_err();
        assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
    }
}

#[tokio::test]
async fn an_open_transaction_is_never_touched() {
    let db = setup().await;
    let mut open = db.connect().await;
    let mut tx = open.begin().await.unwrap();
    sqlx::query("INSERT INTO items (id, v) VALUES (1, 'x')")
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("UPDATE audit_changes SET captured_at = now() - interval '10 days'")
        .execute(&mut *tx)
        .await
        .unwrap();
    let report = run(&db.pool, &PurgeOptions::default()).await.unwrap();
    assert_eq!(
        (report.deleted_changes, report.deleted_transactions),
        (0, 0)
    );
    tx.commit().await.unwrap();
    assert_eq!(
        db.scalar("SELECT count(*) FROM audit_transactions").await,
        1
    );
    let report = run(&db.pool, &PurgeOptions::default()).await.unwrap();
    assert_eq!(
        (report.deleted_changes, report.deleted_transactions),
        (1, 1)
    );
}

/// Kills the purging backend while a batch has deleted its changes but waits on a lock to
/// delete its transaction row: the batch rolls back whole, earlier batches stay done, and a
/// rerun finishes the job.
#[tokio::test]
async fn a_killed_purge_leaves_no_half_purged_transaction_and_a_rerun_completes() {
    let db = setup().await;
    let pool = &db.pool;
    let mut transactions = Vec::new();
    for t in 0..10 {
        transactions.push(write(pool, t * 10..t * 10 + 3).await);
    }
    age(pool, "true", 10).await;
    write(pool, 1000..1001).await;

    // Hold the third transaction's row, so batch 3 blocks after deleting its changes.
    let mut holder = db.connect().await;
    let mut hold = holder.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM audit_transactions WHERE id = $1 FOR UPDATE")
        .bind(transactions[2])
        .execute(&mut *hold)
        .await
        .unwrap();

    let victim_options: PgConnectOptions = db
        .url
        .parse::<PgConnectOptions>()
        .unwrap()
        .application_name("purge_victim");
    let victim = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(victim_options)
        .await
        .unwrap();
    let purging = tokio::spawn({
        let victim = victim.clone();
        async move { run(&victim, &batches_of(3)).await }
    });
    let mut killed = false;
    for _ in 0..200 {
        let pid: Option<i32> = sqlx::query_scalar(
            "SELECT pid FROM pg_stat_activity WHERE application_name = 'purge_victim' AND wait_event_type = 'Lock'",
        )
        .fetch_optional(pool)
        .await
        .unwrap();
        if let Some(pid) = pid {
            killed = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
                .bind(pid)
                .fetch_one(pool)
                .await
                .unwrap();
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(killed, "the purge never blocked on the held row");
    let err = purging.await.unwrap().expect_err("the purge was killed");
    assert!(matches!(err, Error::Database(_)), "{err}");
    hold.rollback().await.unwrap();

    // Batches 1 and 2 committed; batch 3 rolled back whole.
    let per_transaction: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT t.id, (SELECT count(*) FROM audit_changes c WHERE c.transaction_id = t.id)
         FROM audit_transactions t ORDER BY t.id",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(per_transaction.len(), 9, "{per_transaction:?}");
    assert_eq!(
        per_transaction[0],
        (transactions[2], 3),
        "the killed batch kept all its changes"
    );
    assert!(
        per_transaction[..8].iter().all(|&(_, n)| n == 3),
        "{per_transaction:?}"
    );
    assert_eq!(
        scalar(pool, "SELECT count(*) FROM audit_changes c WHERE NOT EXISTS (SELECT 1 FROM audit_transactions t WHERE t.id = c.transaction_id)").await,
        0,
        "no change lost its transaction row"
    );

    let rerun = run(pool, &batches_of(3)).await.unwrap();
    assert_eq!(
        (
            rerun.deleted_changes,
            rerun.deleted_transactions,
            rerun.batches
        ),
        (24, 8, 8)
    );
    assert_eq!(
        scalar(pool, "SELECT count(*) FROM audit_changes").await,
        1,
        "the recent change stays"
    );
    assert_eq!(
        scalar(pool, "SELECT count(*) FROM audit_transactions").await,
        1
    );
    victim.close().await;
}
