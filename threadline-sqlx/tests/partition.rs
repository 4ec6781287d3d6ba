//! The partitioned layout on the real PostgreSQL: install, `ensure` (idempotent, concurrent,
//! moving rows out of DEFAULT), `list`, doctor's warnings, capture, and retention by partition.

use chrono::{DateTime, TimeZone, Utc};
use sqlx::PgPool;
use threadline_sqlx::{
    ActorRef, Config, DoctorOptions, EnsureOptions, InstallOptions, PartitionInterval, PoolExt,
    PurgeOptions, RetentionPolicy, RetiredPartition, Severity, StorageLayout, TableCapture,
    Threadline, doctor, ensure_partitions, list_partitions, purge, purge_partitions,
    storage_layout,
};
use threadline_test_support::TestDb;

fn month() -> InstallOptions {
    InstallOptions::default().with_partitioning(PartitionInterval::Month)
}

fn at(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, h, 0, 0).unwrap()
}

/// Writes one transaction row starting at `start` with one change at each of `changes`, as
/// capture would (straight into the tables, so the times can be in the past).
async fn write_at(pool: &PgPool, start: DateTime<Utc>, changes: &[DateTime<Utc>]) -> i64 {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO audit_transactions (txid, occurred_at, actor_ref)
         VALUES (1, $1, '{\"type\":\"user\",\"id\":\"1\"}') RETURNING id",
    )
    .bind(start)
    .fetch_one(pool)
    .await
    .unwrap();
    for (n, captured) in changes.iter().enumerate() {
        sqlx::query(
            "INSERT INTO audit_changes (transaction_id, table_schema, table_name, table_pk, op, data_after, captured_at)
             VALUES ($1, 'public', 'items', jsonb_build_object('id', $2::bigint), 'insert', '{}', $3)",
        )
        .bind(id)
        .bind(n as i64)
        .bind(captured)
        .execute(pool)
        .await
        .unwrap();
    }
    id
}

async fn partition_names(pool: &PgPool) -> Vec<String> {
    list_partitions(pool, &month())
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.name)
        .collect()
}

#[tokio::test]
async fn ensure_creates_now_and_premake_for_both_tables_and_is_idempotent() {
    let db = TestDb::empty().await;
    threadline_sqlx::install(&db.pool, &month()).await.unwrap();
    assert_eq!(
        storage_layout(&db.pool, &month()).await.unwrap(),
        StorageLayout::Partitioned {
            interval: Some(PartitionInterval::Month)
        }
    );
    // Before ensure only the DEFAULT partitions exist, and capture still works.
    assert_eq!(
        partition_names(&db.pool).await,
        ["audit_transactions_default", "audit_changes_default"]
    );
    let report = ensure_partitions(&db.pool, &month(), &EnsureOptions::default().premake(2))
        .await
        .unwrap();
    assert_eq!(report.created.len(), 6, "{report:?}");
    let now: DateTime<Utc> = sqlx::query_scalar("SELECT now()")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    let current = PartitionInterval::Month.floor(now);
    let first = &report.created[0];
    assert_eq!(first.table, "audit_transactions");
    assert_eq!(first.from, current);
    assert_eq!(first.moved_rows, 0);
    let parts = list_partitions(&db.pool, &month()).await.unwrap();
    assert_eq!(parts.len(), 8);
    assert!(
        parts
            .iter()
            .filter(|p| p.is_default())
            .all(|p| p.rows == 0 && p.rows_exact)
    );
    // A second run finds everything in place.
    let again = ensure_partitions(&db.pool, &month(), &EnsureOptions::default().premake(2))
        .await
        .unwrap();
    assert!(again.created.is_empty(), "{again:?}");
    // A larger premake adds only the missing ones.
    let more = ensure_partitions(&db.pool, &month(), &EnsureOptions::default().premake(3))
        .await
        .unwrap();
    assert_eq!(more.created.len(), 2);
}

#[tokio::test]
async fn ensure_moves_rows_out_of_default_keeping_every_row_and_id() {
    let db = TestDb::empty().await;
    threadline_sqlx::install(&db.pool, &month()).await.unwrap();
    let old = write_at(
        &db.pool,
        at(2026, 1, 31, 23),
        &[at(2026, 1, 31, 23), at(2026, 2, 1, 1)],
    )
    .await;
    let march = write_at(&db.pool, at(2026, 3, 5, 0), &[at(2026, 3, 5, 0)]).await;
    let before: Vec<(i64, i64, DateTime<Utc>)> =
        sqlx::query_as("SELECT id, transaction_id, captured_at FROM audit_changes ORDER BY id")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    assert_eq!(
        db.scalar("SELECT count(*) FROM audit_changes_default")
            .await,
        3
    );
    let report = ensure_partitions(&db.pool, &month(), &EnsureOptions::default().premake(0))
        .await
        .unwrap();
    let moved: Vec<(&str, u64)> = report
        .created
        .iter()
        .filter(|c| c.moved_rows > 0)
        .map(|c| (c.name.as_str(), c.moved_rows))
        .collect();
    assert_eq!(
        moved,
        [
            ("audit_transactions_p20260101", 1),
            ("audit_transactions_p20260301", 1),
            ("audit_changes_p20260101", 1),
            ("audit_changes_p20260201", 1),
            ("audit_changes_p20260301", 1),
        ]
    );
    assert_eq!(
        db.scalar("SELECT count(*) FROM audit_changes_default")
            .await,
        0
    );
    assert_eq!(
        db.scalar("SELECT count(*) FROM audit_transactions_default")
            .await,
        0
    );
    let after: Vec<(i64, i64, DateTime<Utc>)> =
        sqlx::query_as("SELECT id, transaction_id, captured_at FROM audit_changes ORDER BY id")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    assert_eq!(before, after);
    let homes: Vec<String> =
        sqlx::query_scalar("SELECT tableoid::regclass::text FROM audit_transactions ORDER BY id")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    assert_eq!(
        homes,
        [
            "audit_transactions_p20260101",
            "audit_transactions_p20260301"
        ]
    );
    // The identity goes on after the moved rows, and capture lands in the new partitions.
    let next = write_at(&db.pool, at(2026, 3, 6, 0), &[at(2026, 3, 6, 0)]).await;
    assert!(next > march && march > old);
    assert_eq!(
        db.scalar("SELECT count(*) FROM audit_changes_p20260301")
            .await,
        2
    );
}

#[tokio::test]
async fn concurrent_ensure_runs_are_safe() {
    let db = TestDb::empty().await;
    threadline_sqlx::install(&db.pool, &month()).await.unwrap();
    for m in 1..=6 {
        write_at(
            &db.pool,
            at(2026, m, 10, 0),
            &[at(2026, m, 10, 0), at(2026, m, 11, 0)],
        )
        .await;
    }
    let runs = (0..4).map(|_| {
        let pool = db.pool.clone();
        tokio::spawn(
            async move { ensure_partitions(&pool, &month(), &EnsureOptions::default()).await },
        )
    });
    let mut created = Vec::new();
    for run in runs {
        created.extend(
            run.await
                .unwrap()
                .expect("every concurrent run succeeds")
                .created,
        );
    }
    let mut names: Vec<&str> = created.iter().map(|c| c.name.as_str()).collect();
    let total = names.len();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), total, "no partition was made twice");
    assert_eq!(created.iter().map(|c| c.moved_rows).sum::<u64>(), 18);
    assert_eq!(db.scalar("SELECT count(*) FROM audit_changes").await, 12);
    assert_eq!(
        db.scalar("SELECT count(*) FROM audit_changes_default")
            .await,
        0
    );
}

#[tokio::test]
async fn ensure_and_list_refuse_a_plain_install_with_the_fix() {
    let db = TestDb::installed_plain().await;
    let err = ensure_partitions(&db.pool, &month(), &EnsureOptions::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("not partitioned") && err.contains("--partitioned"),
        "{err}"
    );
    assert!(list_partitions(&db.pool, &month()).await.is_err());
    let err = ensure_partitions(
        &db.pool,
        &month(),
        &EnsureOptions::default().premake(10_000),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("premake") && err.contains("0 to 366"), "{err}");
}

#[tokio::test]
async fn capture_and_exploration_use_the_current_partition() {
    let db = TestDb::installed_partitioned(PartitionInterval::Month).await;
    db.exec("CREATE TABLE items (id bigint PRIMARY KEY, v text)")
        .await;
    db.audit("items", &TableCapture::default()).await;
    let mut tx = db
        .pool
        .begin_with_context(&threadline_sqlx::AuditContext::for_actor(
            ActorRef::user("7").unwrap(),
        ))
        .await
        .unwrap();
    sqlx::query("INSERT INTO items VALUES (1, 'a'), (2, 'b')")
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("UPDATE items SET v = 'c' WHERE id = 1")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        db.scalar("SELECT count(*) FROM audit_changes_default")
            .await,
        0
    );
    assert_eq!(
        db.scalar("SELECT count(*) FROM audit_transactions_default")
            .await,
        0
    );
    let history = Threadline::new(db.pool.clone())
        .history("items", 1)
        .await
        .unwrap();
    assert_eq!(history.len(), 2);
    let findings = doctor(
        &db.pool,
        &month(),
        &Config::default(),
        &DoctorOptions::default(),
    )
    .await
    .unwrap();
    let install: Vec<_> = findings
        .iter()
        .filter(|f| ["install", "indexes", "orphans", "partitions"].contains(&f.check))
        .filter(|f| f.severity != Severity::Ok)
        .collect();
    assert!(install.is_empty(), "{install:#?}");
    assert!(
        findings
            .iter()
            .any(|f| f.check == "partitions" && f.severity == Severity::Ok)
    );
}

#[tokio::test]
async fn doctor_warns_about_rows_in_default_and_missing_future_partitions() {
    let db = TestDb::empty().await;
    threadline_sqlx::install(&db.pool, &month()).await.unwrap();
    write_at(&db.pool, at(2026, 1, 2, 0), &[at(2026, 1, 2, 0)]).await;
    // Doctor reads the layout from the catalog, even with a config that does not mention it.
    let findings = doctor(
        &db.pool,
        &InstallOptions::default(),
        &Config::default(),
        &DoctorOptions::default(),
    )
    .await
    .unwrap();
    let warnings: Vec<&str> = findings
        .iter()
        .filter(|f| f.check == "partitions")
        .map(|f| f.message.as_str())
        .collect();
    assert_eq!(warnings.len(), 4, "{warnings:#?}");
    assert!(
        warnings[0].starts_with("audit_transactions_default holds 1 rows"),
        "{warnings:#?}"
    );
    assert!(warnings.iter().any(|w| {
        w.contains("audit_changes has 0 partitions ahead of now, fewer than premake = 3")
    }));
    assert!(
        findings
            .iter()
            .filter(|f| f.check == "install")
            .all(|f| f.severity == Severity::Ok)
    );
    ensure_partitions(&db.pool, &month(), &EnsureOptions::default())
        .await
        .unwrap();
    let findings = doctor(
        &db.pool,
        &month(),
        &Config::default(),
        &DoctorOptions::default(),
    )
    .await
    .unwrap();
    let partitions: Vec<_> = findings
        .iter()
        .filter(|f| f.check == "partitions")
        .collect();
    assert_eq!(partitions.len(), 1);
    assert_eq!(partitions[0].severity, Severity::Ok, "{partitions:#?}");
}

/// January to March with a transaction that straddles into February (its row is in
/// January's partition) and an action linked to a January transaction.
async fn quarter(db: &TestDb) -> (i64, i64) {
    threadline_sqlx::install(&db.pool, &month()).await.unwrap();
    let jan = write_at(
        &db.pool,
        at(2026, 1, 10, 0),
        &[at(2026, 1, 10, 0), at(2026, 1, 10, 1)],
    )
    .await;
    write_at(&db.pool, at(2026, 1, 20, 0), &[at(2026, 1, 20, 0)]).await;
    let straddler = write_at(
        &db.pool,
        at(2026, 1, 31, 23),
        &[at(2026, 1, 31, 23), at(2026, 2, 20, 0)],
    )
    .await;
    write_at(&db.pool, at(2026, 2, 5, 0), &[at(2026, 2, 5, 0)]).await;
    write_at(&db.pool, at(2026, 2, 15, 0), &[at(2026, 2, 15, 0)]).await;
    write_at(&db.pool, at(2026, 3, 5, 0), &[at(2026, 3, 5, 0)]).await;
    sqlx::query(
        "SELECT threadline_record_action('a', '{\"type\":\"user\",\"id\":\"1\"}', 'ok', NULL, NULL, NULL, NULL, NULL, NULL, NULL, false, $1, NULL)",
    )
    .bind(jan)
    .execute(&db.pool)
    .await
    .unwrap();
    ensure_partitions(&db.pool, &month(), &EnsureOptions::default().premake(0))
        .await
        .unwrap();
    (jan, straddler)
}

fn options(cutoff: DateTime<Utc>, dry_run: bool) -> PurgeOptions {
    PurgeOptions {
        cutoff: Some(cutoff),
        dry_run,
        batch_size: 1,
        ..PurgeOptions::default()
    }
}

#[tokio::test]
async fn retention_drops_whole_partitions_and_deletes_rows_only_at_the_boundary() {
    let db = TestDb::empty().await;
    let (jan, straddler) = quarter(&db).await;
    let policy = RetentionPolicy::keep_days(1).unwrap().enabled(true);
    let cutoff = at(2026, 2, 10, 0);
    let dry = purge_partitions(&db.pool, &month(), &policy, &options(cutoff, true), |_| {})
        .await
        .unwrap();
    let plan: Vec<(&str, u64, &str, u64)> = dry
        .partitions
        .iter()
        .map(|p| (p.name.as_str(), p.rows, p.action, p.straddling_transactions))
        .collect();
    assert_eq!(
        plan,
        [
            ("audit_changes_p20260101", 4, "drop", 0),
            ("audit_transactions_p20260101", 3, "keep", 1),
        ]
    );
    // February 5th's change at the boundary; its transaction empties.
    assert_eq!(dry.boundary_changes, 1);
    assert_eq!(
        (dry.purge.deleted_changes, dry.purge.deleted_transactions),
        (5, 3)
    );
    assert_eq!(
        db.scalar("SELECT count(*) FROM audit_changes").await,
        8,
        "dry run deletes nothing"
    );

    let live = purge_partitions(&db.pool, &month(), &policy, &options(cutoff, false), |_| {})
        .await
        .unwrap();
    assert_eq!(live.partitions, dry.partitions);
    assert_eq!(
        (live.purge.deleted_changes, live.purge.deleted_transactions),
        (dry.purge.deleted_changes, dry.purge.deleted_transactions)
    );
    let names = partition_names(&db.pool).await;
    assert!(
        !names.contains(&"audit_changes_p20260101".to_owned()),
        "{names:?}"
    );
    assert!(
        names.contains(&"audit_transactions_p20260101".to_owned()),
        "kept for the straddler"
    );
    // The straddler keeps its row and its February change; no change lost its transaction.
    assert_eq!(
        db.scalar("SELECT count(*) FROM audit_transactions_p20260101")
            .await,
        1
    );
    assert_eq!(
        db.scalar(&format!(
            "SELECT count(*) FROM audit_changes WHERE transaction_id = {straddler}"
        ))
        .await,
        1
    );
    assert_eq!(
        db.scalar("SELECT count(*) FROM audit_changes c WHERE NOT EXISTS (SELECT 1 FROM audit_transactions t WHERE t.id = c.transaction_id)").await,
        0
    );
    assert_eq!(
        db.scalar("SELECT count(*) FROM audit_changes WHERE captured_at < '2026-02-10'")
            .await,
        0
    );
    // The action survives, unlinked from its deleted transaction.
    let link: Option<i64> = sqlx::query_scalar("SELECT transaction_id FROM audit_actions")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(link, None, "transaction {jan} is gone");

    // Once the straddler's last change goes, its partition goes too.
    let later = purge_partitions(
        &db.pool,
        &month(),
        &policy,
        &options(at(2026, 3, 1, 0), false),
        |_| {},
    )
    .await
    .unwrap();
    let actions: Vec<(&str, &str)> = later
        .partitions
        .iter()
        .map(|p| (p.name.as_str(), p.action))
        .collect();
    assert_eq!(
        actions,
        [
            ("audit_changes_p20260201", "drop"),
            ("audit_transactions_p20260101", "drop"),
            ("audit_transactions_p20260201", "drop"),
        ]
    );
    assert_eq!(db.scalar("SELECT count(*) FROM audit_changes").await, 1);
    assert_eq!(
        db.scalar("SELECT count(*) FROM audit_transactions").await,
        1
    );
}

#[tokio::test]
async fn retention_detaches_when_asked_and_keeps_the_gates() {
    let db = TestDb::empty().await;
    quarter(&db).await;
    let cutoff = at(2026, 2, 10, 0);
    let disabled = RetentionPolicy::keep_days(1).unwrap();
    let err = purge(&db.pool, &month(), &disabled, &options(cutoff, false))
        .await
        .unwrap_err();
    assert!(
        matches!(err, threadline_sqlx::Error::RetentionDisabled),
        "{err}"
    );
    let policy = disabled.enabled(true);
    let detach = PurgeOptions {
        retired_partitions: RetiredPartition::Detach,
        ..options(cutoff, false)
    };
    // `purge` takes the partition path by itself on this layout.
    let report = purge(&db.pool, &month(), &policy, &detach).await.unwrap();
    assert_eq!(report.deleted_changes, 5);
    // Detached, the partition is a plain table outside the trail.
    assert_eq!(
        db.scalar("SELECT count(*) FROM audit_changes_p20260101")
            .await,
        4
    );
    assert!(
        !partition_names(&db.pool)
            .await
            .contains(&"audit_changes_p20260101".to_owned())
    );
    assert_eq!(
        db.scalar("SELECT count(*) FROM audit_changes WHERE captured_at < '2026-02-01'")
            .await,
        0
    );
}

#[tokio::test]
async fn a_second_concurrent_purge_is_refused() {
    let db = TestDb::empty().await;
    quarter(&db).await;
    let policy = RetentionPolicy::keep_days(1).unwrap().enabled(true);
    let mut holder = db.connect().await;
    sqlx::query(
        "SELECT pg_advisory_lock(hashtextextended('threadline retention purge public', 0))",
    )
    .execute(&mut holder)
    .await
    .unwrap();
    let err = purge_partitions(
        &db.pool,
        &month(),
        &policy,
        &options(at(2026, 2, 10, 0), false),
        |_| {},
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("another retention purge"), "{err}");
    assert_eq!(db.scalar("SELECT count(*) FROM audit_changes").await, 8);
}

/// The partitioned install writes its own `CREATE TABLE`s: their columns (names, types,
/// nullability, defaults, identity) must stay those of the plain install, so that capture,
/// exploration and export read both layouts alike.
#[tokio::test]
async fn both_layouts_have_the_same_audit_columns() {
    const COLUMNS: &str = "SELECT string_agg(format('%s.%s %s %s %s %s', table_name, column_name,
                data_type, is_nullable, coalesce(column_default, '-'), is_identity), E'\\n'
                ORDER BY table_name, ordinal_position)
         FROM information_schema.columns
         WHERE table_schema = 'public' AND table_name IN
               ('audit_transactions', 'audit_changes', 'audit_actions')";
    let plain = TestDb::installed_plain().await;
    let partitioned = TestDb::installed_partitioned(PartitionInterval::Month).await;
    let columns = |db: &TestDb| {
        let pool = db.pool.clone();
        async move {
            let text: String = sqlx::query_scalar(COLUMNS).fetch_one(&pool).await.unwrap();
            text
        }
    };
    let (plain_columns, partitioned_columns) = (columns(&plain).await, columns(&partitioned).await);
    assert!(
        plain_columns.contains("audit_changes.captured_at"),
        "{plain_columns}"
    );
    assert_eq!(plain_columns, partitioned_columns);
}
