//! Faults: the backend of a writing connection is killed (`pg_terminate_backend`) in the middle
//! of a transaction and during bulk statements. Afterwards the audit trail must match the
//! committed data exactly: replaying the last captured image of every row gives the table,
//! nothing from the killed transaction is left, and no change lacks its transaction row.

use std::time::Duration;

use sqlx::{Connection, PgPool};
use threadline_sqlx::{ActorRef, InstallOptions, TableCapture, TransactionExt, audit_table};
use threadline_test_support::{TestDb, backend_pid};

async fn setup() -> TestDb {
    let db = TestDb::installed().await;
    db.exec("CREATE TABLE items (id bigint PRIMARY KEY, v bigint NOT NULL, note text NOT NULL)")
        .await;
    audit_table(
        &db.pool,
        &InstallOptions::default(),
        &"items".parse().unwrap(),
        &TableCapture::default(),
    )
    .await
    .unwrap();
    db
}

async fn terminate(pool: &PgPool, pid: i32) {
    let killed: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
        .bind(pid)
        .fetch_one(pool)
        .await
        .unwrap();
    assert!(killed, "backend {pid} was not there to kill");
}

/// Waits until backend `pid` runs a statement (optionally waiting on `wait_event`).
async fn wait_until_busy(pool: &PgPool, pid: i32, wait_event: Option<&str>) {
    for _ in 0..2_000 {
        let busy: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_stat_activity
             WHERE pid = $1 AND state = 'active' AND ($2::text IS NULL OR wait_event = $2))",
        )
        .bind(pid)
        .bind(wait_event)
        .fetch_one(pool)
        .await
        .unwrap();
        if busy {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("backend {pid} never got busy");
}

/// Every way the trail can disagree with the table, as readable lines (empty when it agrees).
async fn trail_mismatches(pool: &PgPool) -> Vec<String> {
    replay_mismatches(pool, false).await
}

/// Like [`trail_mismatches`]; with `purged`, live rows whose whole history was purged are fine.
async fn replay_mismatches(pool: &PgPool, purged: bool) -> Vec<String> {
    let mut problems: Vec<String> = sqlx::query_scalar(
        "WITH last AS (
             SELECT DISTINCT ON (table_pk) table_pk, op, data_after
             FROM audit_changes WHERE table_name = 'items' ORDER BY table_pk, id DESC),
         live AS (SELECT jsonb_build_object('id', id) AS pk, to_jsonb(i) AS img FROM items i)
         SELECT format('row %s: live %s, trail says %s %s',
                       COALESCE(live.pk, last.table_pk), live.img, last.op, last.data_after)
         FROM last FULL JOIN live ON live.pk = last.table_pk
         WHERE (live.pk IS NULL AND last.op <> 'delete')
            OR (last.table_pk IS NULL AND NOT $1)
            OR (live.pk IS NOT NULL AND last.op = 'delete')
            OR (live.pk IS NOT NULL AND last.table_pk IS NOT NULL
                AND last.data_after IS DISTINCT FROM live.img)
         LIMIT 5",
    )
    .bind(purged)
    .fetch_all(pool)
    .await
    .unwrap();
    let orphans: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_changes c
         WHERE NOT EXISTS (SELECT 1 FROM audit_transactions t WHERE t.id = c.transaction_id)",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    if orphans > 0 {
        problems.push(format!("{orphans} changes without a transaction row"));
    }
    let empty: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_transactions t
         WHERE NOT EXISTS (SELECT 1 FROM audit_changes c WHERE c.transaction_id = t.id)",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    if empty > 0 {
        problems.push(format!("{empty} transaction rows without changes"));
    }
    problems
}

/// Commits a transaction as `actor` that inserts ids `lo..=hi` and bumps ids below `lo`.
async fn committed_work(db: &TestDb, actor: &str, lo: i64, hi: i64) {
    let mut tx = db.pool.begin().await.unwrap();
    tx.with_actor(&ActorRef::user(actor).unwrap())
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO items SELECT g, 0, 'committed' FROM generate_series($1::bigint, $2) g",
    )
    .bind(lo)
    .bind(hi)
    .execute(&mut *tx)
    .await
    .unwrap();
    sqlx::query("UPDATE items SET v = v + 1 WHERE id < $1 AND id % 7 = 0")
        .bind(lo)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn killed_mid_transaction_leaves_no_trace() {
    let db = setup().await;
    committed_work(&db, "before", 1, 100).await;
    let before = db.scalar("SELECT count(*) FROM audit_changes").await;

    let mut victim = db.connect().await;
    let pid = backend_pid(&mut victim).await;
    let mut tx = victim.begin().await.unwrap();
    tx.with_actor(&ActorRef::user("victim").unwrap())
        .await
        .unwrap();
    sqlx::query("INSERT INTO items SELECT g, 0, 'killed' FROM generate_series(101, 150) g")
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("UPDATE items SET v = v + 100, note = 'killed' WHERE id <= 50")
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("DELETE FROM items WHERE id BETWEEN 60 AND 70")
        .execute(&mut *tx)
        .await
        .unwrap();
    // The capture already wrote audit rows inside the open transaction.
    let own: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_changes")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(own, before + 50 + 50 + 11);

    terminate(&db.pool, pid).await;
    assert!(
        tx.commit().await.is_err(),
        "commit on a killed backend must fail"
    );
    drop(victim);

    assert_eq!(
        db.scalar("SELECT count(*) FROM audit_changes").await,
        before
    );
    assert_eq!(
        db.scalar("SELECT count(*) FROM audit_transactions WHERE actor_ref ->> 'id' = 'victim'")
            .await,
        0
    );
    assert_eq!(trail_mismatches(&db.pool).await, Vec::<String>::new());

    // Work after the fault is captured normally.
    committed_work(&db, "after", 151, 200).await;
    assert_eq!(trail_mismatches(&db.pool).await, Vec::<String>::new());
}

/// Runs `sql` on a fresh connection as actor `victim`, kills it `delay` after it got busy (on
/// `wait_event` when given), and
/// checks that the statement failed and the trail still matches the table.
async fn kill_during(db: &TestDb, sql: &'static str, wait_event: Option<&str>, delay: Duration) {
    let before = db.scalar("SELECT count(*) FROM audit_changes").await;
    let mut victim = db.connect().await;
    let pid = backend_pid(&mut victim).await;
    let statement = tokio::spawn(async move {
        let mut tx = victim.begin().await?;
        tx.with_actor(&ActorRef::user("victim").unwrap())
            .await
            .map_err(|e| sqlx::Error::Protocol(e.to_string()))?;
        sqlx::query(sql).execute(&mut *tx).await?;
        tx.commit().await
    });
    wait_until_busy(&db.pool, pid, wait_event).await;
    tokio::time::sleep(delay).await;
    terminate(&db.pool, pid).await;
    let outcome = statement.await.unwrap();
    assert!(
        outcome.is_err(),
        "the statement finished before it was killed; make it bigger: {sql}"
    );
    assert_eq!(
        db.scalar("SELECT count(*) FROM audit_changes").await,
        before,
        "{sql}"
    );
    assert_eq!(
        trail_mismatches(&db.pool).await,
        Vec::<String>::new(),
        "{sql}"
    );
}

#[tokio::test]
async fn killed_during_bulk_statements_leaves_no_trace() {
    let db = setup().await;
    committed_work(&db, "before", 1, 20_000).await;

    // Mid-statement, at several points of a big INSERT (rows, then the statement-level capture).
    for delay in [50, 400, 1_200] {
        kill_during(
            &db,
            "INSERT INTO items SELECT g, 0, 'bulk' FROM generate_series(100001, 700000) g",
            None,
            Duration::from_millis(delay),
        )
        .await;
    }
    // Mid-statement in a big UPDATE, where the row-level capture writes as it goes.
    kill_during(
        &db,
        "UPDATE items SET v = v + 1, note = 'bulk' WHERE id <= 20000 AND pg_sleep(0.0001) IS NOT NULL",
        None,
        Duration::from_millis(300),
    )
    .await;

    // After the capture finished its INSERT ... SELECT of audit rows, while a later trigger on
    // the same statement still runs: the audit rows are written but must vanish with the kill.
    db.exec(
        "CREATE FUNCTION slow_after() RETURNS trigger LANGUAGE plpgsql AS
         $$ BEGIN PERFORM pg_sleep(30); RETURN NULL; END $$;
         CREATE TRIGGER zz_slow_after AFTER INSERT OR DELETE ON items
             FOR EACH STATEMENT EXECUTE FUNCTION slow_after();",
    )
    .await;
    for sql in [
        "INSERT INTO items SELECT g, 0, 'bulk' FROM generate_series(30001, 31000) g",
        "DELETE FROM items WHERE id BETWEEN 1 AND 5000",
    ] {
        kill_during(&db, sql, Some("PgSleep"), Duration::ZERO).await;
    }
    db.exec("DROP TRIGGER zz_slow_after ON items").await;

    committed_work(&db, "after", 40_001, 40_100).await;
    assert_eq!(
        db.scalar("SELECT count(*) FROM audit_transactions WHERE actor_ref ->> 'id' = 'victim'")
            .await,
        0
    );
    assert_eq!(trail_mismatches(&db.pool).await, Vec::<String>::new());
}

/// Per transaction: (old changes, newer changes), as a sorted list.
async fn change_shape(pool: &PgPool) -> Vec<(i64, i64, i64)> {
    sqlx::query_as(
        "SELECT transaction_id,
                count(*) FILTER (WHERE captured_at < now() - interval '10 days'),
                count(*) FILTER (WHERE captured_at >= now() - interval '10 days')
         FROM audit_changes GROUP BY 1 ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn killed_purge_never_half_deletes_a_transaction_and_a_rerun_completes() {
    use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
    use threadline_sqlx::{PurgeOptions, RetentionPolicy, purge, purge_with_progress};

    let db = setup().await;
    // 120 committed transactions of 1,000 changes each (the DO block commits per loop).
    db.exec(
        "DO $$ BEGIN
             FOR t IN 0..119 LOOP
                 INSERT INTO items SELECT t * 1000 + g, 0, 'old' FROM generate_series(1, 1000) g;
                 COMMIT;
             END LOOP;
         END $$",
    )
    .await;
    // Age them: 100 wholly old, 10 straddling the cutoff (half old), 10 recent.
    db.exec(
        "UPDATE audit_changes c SET captured_at = c.captured_at - interval '30 days'
         FROM (SELECT id, row_number() OVER (ORDER BY id) AS n FROM audit_transactions) t
         WHERE t.id = c.transaction_id
           AND (t.n <= 100 OR (t.n <= 110 AND (c.table_pk ->> 'id')::bigint % 2 = 0))",
    )
    .await;
    let before = change_shape(&db.pool).await;
    assert_eq!(before.len(), 120);

    let options: PgConnectOptions = db.url.parse().unwrap();
    let purge_pool = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(options.application_name("threadline_purge_victim"))
        .await
        .unwrap();
    let policy = RetentionPolicy::keep_days(10).unwrap().enabled(true);
    let purge_options = PurgeOptions {
        batch_size: 20_000,
        ..PurgeOptions::default()
    };

    // Kill the purge's backend while a batch statement runs: in the first batch of a run, and
    // after one and two batches of a run have committed.
    let mut killed_mid_batch = 0;
    for after_batches in [0u32, 1, 2] {
        let pool = purge_pool.clone();
        let done = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
        let seen = done.clone();
        let run = tokio::spawn(async move {
            purge_with_progress(
                &pool,
                &InstallOptions::default(),
                &policy,
                &purge_options,
                |p| seen.store(p.batch, std::sync::atomic::Ordering::SeqCst),
            )
            .await
        });
        let mut pid = None;
        for _ in 0..5_000 {
            if done.load(std::sync::atomic::Ordering::SeqCst) >= after_batches {
                pid = sqlx::query_scalar(
                    "SELECT pid FROM pg_stat_activity
                     WHERE application_name = 'threadline_purge_victim'
                       AND state = 'active' AND query LIKE '%DELETE FROM%'",
                )
                .fetch_optional(&db.pool)
                .await
                .unwrap();
            }
            if pid.is_some() || run.is_finished() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        if let Some(pid) = pid {
            tokio::time::sleep(Duration::from_millis(20)).await;
            terminate(&db.pool, pid).await;
        }
        if run.await.unwrap().is_err() {
            killed_mid_batch += 1;
        }

        // Every transaction keeps all of its old changes or none, and its newer ones always;
        // a transaction row goes exactly when its last change went.
        let after = change_shape(&db.pool).await;
        for (id, old, newer) in &before {
            let now = after.iter().find(|(t, ..)| t == id);
            match now {
                Some((_, o, n)) => {
                    assert!(
                        *o == 0 || o == old,
                        "transaction {id}: {o} of {old} old changes left"
                    );
                    assert_eq!(n, newer, "transaction {id} lost newer changes");
                }
                None => assert_eq!(*newer, 0, "transaction {id} lost newer changes"),
            }
        }
        assert_eq!(
            replay_mismatches(&db.pool, true).await,
            Vec::<String>::new()
        );
    }
    let deleted_before_rerun = before.len() - change_shape(&db.pool).await.len();
    assert!(
        deleted_before_rerun > 0,
        "no batch committed before the kills"
    );
    assert_eq!(
        killed_mid_batch, 3,
        "a purge run finished before it was killed"
    );

    // A rerun finishes the job.
    let report = purge(
        &purge_pool,
        &InstallOptions::default(),
        &policy,
        &purge_options,
    )
    .await
    .unwrap();
    assert!(report.complete);
    let after = change_shape(&db.pool).await;
    assert_eq!(
        after.len(),
        20,
        "10 straddling and 10 recent transactions remain"
    );
    assert!(after.iter().all(|(_, old, _)| *old == 0));
    let rows: i64 = db.scalar("SELECT count(*) FROM audit_transactions").await;
    assert_eq!(rows, 20);
    assert_eq!(
        replay_mismatches(&db.pool, true).await,
        Vec::<String>::new()
    );
}
