//! `ArchiveSession` on the real PostgreSQL: the plan, batches through the cursor, and drops
//! that keep a partition whose rows changed after the plan.

use chrono::{DateTime, Utc};
use threadline_sqlx::{
    ArchiveBatch, ArchiveSession, EnsureOptions, InstallOptions, PartitionInterval,
    ensure_partitions,
};
use threadline_test_support::TestDb;

async fn month_start(db: &TestDb) -> DateTime<Utc> {
    sqlx::query_scalar("SELECT date_trunc('month', now(), 'UTC')")
        .fetch_one(&db.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn batches_cover_the_plan_and_a_changed_partition_is_kept() {
    let db = TestDb::installed_partitioned(PartitionInterval::Month).await;
    db.exec(
        "INSERT INTO audit_transactions (txid, occurred_at)
             SELECT g, date_trunc('month', now()) - interval '40 days' + g * interval '1 minute'
             FROM generate_series(1, 25) g;
         INSERT INTO audit_changes (transaction_id, table_schema, table_name, table_pk, op, captured_at)
             SELECT id, 'public', 'items', jsonb_build_object('id', id), 'insert', occurred_at
             FROM audit_transactions;",
    )
    .await;
    let install = InstallOptions::default();
    ensure_partitions(&db.pool, &install, &EnsureOptions::default())
        .await
        .unwrap();
    let before = month_start(&db).await;
    let mut session = ArchiveSession::open(&db.pool, &install).await.unwrap();
    // One run at a time.
    let second = ArchiveSession::open(&db.pool, &install).await.unwrap_err();
    assert!(
        second.to_string().contains("another archive run"),
        "{second}"
    );

    let units = session.plan(before).await.unwrap();
    let rows: u64 = units.iter().map(|u| u.rows).sum();
    assert_eq!(rows, 50);
    let changes = units.iter().find(|u| u.table == "audit_changes").unwrap();
    let mut seen = Vec::new();
    let mut batches = 0;
    session
        .read(changes, 10, |batch| {
            batches += 1;
            match batch {
                ArchiveBatch::Changes(rows) => seen.extend(rows.iter().map(|r| r.id)),
                other => panic!("{other:?}"),
            }
            Ok::<_, ()>(())
        })
        .await
        .unwrap()
        .unwrap();
    seen.sort();
    assert_eq!(seen, (1..=25).collect::<Vec<i64>>());
    assert_eq!(batches, 3);

    // A row written into an archived range after the plan keeps its partition.
    db.exec(&format!(
        "INSERT INTO audit_changes (transaction_id, table_schema, table_name, table_pk, op, captured_at)
         VALUES (1, 'public', 'items', '{{}}', 'insert', '{}'::timestamptz + interval '1 hour')",
        changes.from.to_rfc3339()
    ))
    .await;
    let dropped = session
        .drop_partitions(&units, std::time::Duration::from_secs(10))
        .await
        .unwrap();
    let outcome = |p: &str| {
        dropped
            .iter()
            .find(|d| d.partition == p)
            .map(|d| d.outcome.clone())
            .unwrap()
    };
    let changes_partition = changes.partition.clone().unwrap();
    assert!(
        outcome(&changes_partition).starts_with("kept: it holds 26 rows"),
        "{dropped:?}"
    );
    // Its transactions still have changes in the trail, so their partition stays as well.
    let tx_partition = changes_partition.replace("audit_changes", "audit_transactions");
    assert!(outcome(&tx_partition).starts_with("kept:"), "{dropped:?}");
    assert_eq!(db.scalar("SELECT count(*) FROM audit_changes").await, 26);
    session.close().await.unwrap();
}
