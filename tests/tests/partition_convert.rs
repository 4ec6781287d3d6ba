//! `partitions convert` on the real PostgreSQL: a plain trail becomes the partitioned layout
//! with every row and id kept, capture going on during and after the switch, `Threadline` and
//! the explorer reading it, and a schema equal to a fresh partitioned install.
#![allow(clippy::unwrap_used)]

mod storage;

use std::time::Duration;

use http::StatusCode;
use threadline_sqlx::{
    ActionOptions, ActorRef, ConvertOptions, Ident, InstallOptions, PartitionInterval,
    StorageLayout, TableCapture, Threadline, TransactionExt, convert_to_partitioned,
    storage_layout,
};
use threadline_test_support::{TestDb, TestRole, write};

fn execute() -> ConvertOptions {
    ConvertOptions::default()
        .interval(PartitionInterval::Month)
        .lock_timeout(Duration::from_secs(30))
        .execute(true)
}

/// Every row of both tables, with its id and key time, as text.
async fn rows(db: &TestDb, max_change: i64, max_tx: i64) -> String {
    let q = format!(
        "SELECT (SELECT string_agg(format('%s|%s|%s|%s|%s', id, transaction_id, captured_at, table_pk, data_after), ',' ORDER BY id)
                 FROM audit_changes WHERE id <= {max_change})
             || (SELECT string_agg(format('%s|%s|%s|%s', id, txid, occurred_at, actor_ref), ',' ORDER BY id)
                 FROM audit_transactions WHERE id <= {max_tx})"
    );
    sqlx::query_scalar(sqlx::AssertSqlSafe(q))
        .fetch_one(&db.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn convert_keeps_every_row_and_id_while_capture_goes_on() {
    let db = TestDb::installed_plain().await;
    db.exec("CREATE TABLE items (id bigint PRIMARY KEY, v text)")
        .await;
    db.audit("items", &TableCapture::default()).await;
    // Old rows, months back, written straight into the plain tables.
    db.exec(
        "INSERT INTO audit_transactions (txid, occurred_at, actor_ref)
             SELECT g, now() - make_interval(days => 100 - g), '{\"type\":\"user\",\"id\":\"old\"}'
             FROM generate_series(1, 50) g;
         INSERT INTO audit_changes (transaction_id, table_schema, table_name, table_pk, op, data_after, captured_at)
             SELECT t.id, 'public', 'items', jsonb_build_object('id', 1000 + t.id), 'insert', '{}', t.occurred_at
             FROM audit_transactions t;",
    )
    .await;
    let bob = ActorRef::user("bob").unwrap();
    write(&db, &bob, "INSERT INTO items VALUES (1, 'a')").await;
    // An action linked to its transaction (a foreign key in the plain layout).
    let mut tx = db.pool.begin().await.unwrap();
    tx.with_actor(&bob).await.unwrap();
    sqlx::query("UPDATE items SET v = 'b' WHERE id = 1")
        .execute(&mut *tx)
        .await
        .unwrap();
    Threadline::new(db.pool.clone())
        .on(&mut tx)
        .record_action("item.renamed", &bob, ActionOptions::new())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let max_change = db.scalar("SELECT max(id) FROM audit_changes").await;
    let max_tx = db.scalar("SELECT max(id) FROM audit_transactions").await;
    let before = rows(&db, max_change, max_tx).await;

    // The dry run plans and changes nothing.
    let plan = convert_to_partitioned(
        &db.pool,
        &InstallOptions::default(),
        &ConvertOptions::default(),
    )
    .await
    .unwrap();
    assert!(!plan.executed);
    let switch = &plan.steps.last().unwrap().sql;
    assert!(switch.contains("ATTACH PARTITION"), "{switch}");
    assert!(
        switch.contains("DROP CONSTRAINT \"audit_actions_transaction_id_fkey\""),
        "{switch}"
    );
    assert_eq!(
        storage_layout(&db.pool, &InstallOptions::default())
            .await
            .unwrap(),
        StorageLayout::Plain
    );

    // A writer captures all along the conversion.
    let writer = {
        let pool = db.pool.clone();
        let bob = bob.clone();
        tokio::spawn(async move {
            for i in 0..150i64 {
                let mut tx = pool.begin().await.unwrap();
                tx.with_actor(&bob).await.unwrap();
                sqlx::query("INSERT INTO items VALUES ($1, 'w')")
                    .bind(100 + i)
                    .execute(&mut *tx)
                    .await
                    .unwrap();
                tx.commit().await.unwrap();
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    let report = convert_to_partitioned(&db.pool, &InstallOptions::default(), &execute())
        .await
        .unwrap();
    writer.await.unwrap();
    assert!(report.executed);
    assert_eq!(
        report
            .partitions
            .iter()
            .map(|p| p.name.starts_with(p.table))
            .collect::<Vec<_>>(),
        [true, true]
    );
    assert_eq!(report.created.len(), 6, "{:?}", report.created);
    assert_eq!(
        storage_layout(&db.pool, &InstallOptions::default())
            .await
            .unwrap(),
        StorageLayout::Partitioned {
            interval: Some(PartitionInterval::Month)
        }
    );

    // Nothing lost, nothing renumbered; the writer's 150 changes are all there.
    assert!(
        rows(&db, max_change, max_tx).await == before,
        "rows changed"
    );
    assert_eq!(
        db.scalar("SELECT count(*) FROM audit_changes WHERE table_name = 'items' AND table_pk ->> 'id' >= '100' AND data_after ->> 'v' = 'w'")
            .await,
        150
    );
    // The old tables are partitions now, and DEFAULT is empty.
    let old = &report.partitions[1].name;
    assert_eq!(
        db.scalar(&format!("SELECT count(*) FROM \"{old}\"")).await,
        db.scalar("SELECT count(*) FROM audit_changes").await
    );
    assert_eq!(
        db.scalar("SELECT count(*) FROM audit_changes_default")
            .await,
        0
    );

    // Capture after the switch: ids go on from the old sequence.
    write(&db, &bob, "UPDATE items SET v = 'c' WHERE id = 1").await;
    assert!(
        db.scalar("SELECT min(id) FROM audit_changes WHERE data_after ->> 'v' = 'c'")
            .await
            > max_change
    );
    assert!(db.scalar("SELECT max(id) FROM audit_transactions").await > max_tx);
    // The action stays linked; deleting its transaction unlinks it (the trigger that
    // replaces the foreign key).
    let action_tx = db
        .scalar("SELECT transaction_id FROM audit_actions WHERE name = 'item.renamed'")
        .await;
    assert!(action_tx > 0);
    db.exec(&format!(
        "DELETE FROM audit_changes WHERE transaction_id = {action_tx};
         DELETE FROM audit_transactions WHERE id = {action_tx};"
    ))
    .await;
    assert_eq!(
        db.scalar("SELECT count(*) FROM audit_actions WHERE name = 'item.renamed' AND transaction_id IS NULL")
            .await,
        1
    );

    // Threadline and the explorer read the converted trail.
    let history = Threadline::new(db.pool.clone())
        .history("items", 1)
        .await
        .unwrap();
    assert_eq!(history.len(), 2, "{history:?}"); // insert (a), update (c); (b) deleted above
    let (status, body) =
        storage::explorer_get(&db.pool, "/admin/audit/api/row?table=items&pk=1").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("\"c\""), "{body}");

    // A second conversion is refused with the reason.
    let err = convert_to_partitioned(&db.pool, &InstallOptions::default(), &execute())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("already partitioned"), "{err}");
}

#[tokio::test]
async fn a_concurrent_maintenance_run_is_refused_and_changes_nothing() {
    let db = TestDb::installed_plain().await;
    let mut holder = db.connect().await;
    sqlx::query(
        "SELECT pg_advisory_lock(hashtextextended('threadline partitions ensure public', 0))",
    )
    .execute(&mut holder)
    .await
    .unwrap();
    let err = convert_to_partitioned(&db.pool, &InstallOptions::default(), &execute())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("another partition maintenance run"), "{err}");
    assert_eq!(
        storage_layout(&db.pool, &InstallOptions::default())
            .await
            .unwrap(),
        StorageLayout::Plain
    );
}

/// Parents, partition keys, columns, indexes, constraints, triggers, comments, identity
/// sequences and grants of the audit tables, as text.
const SCHEMA: &str = "
SELECT string_agg(line, E'\\n' ORDER BY line) FROM (
    SELECT format('table %s %s %s %s %s', c.relname, c.relkind, pg_get_partkeydef(c.oid),
                  obj_description(c.oid, 'pg_class'), pg_get_userbyid(c.relowner)) AS line
    FROM pg_class c WHERE c.relname IN ('audit_transactions', 'audit_changes', 'audit_actions')
      AND c.relnamespace = 'public'::regnamespace
    UNION ALL
    SELECT format('acl %s %s', c.relname, (SELECT array_agg(a ORDER BY a::text) FROM unnest(c.relacl) a))
    FROM pg_class c WHERE c.relname IN ('audit_transactions', 'audit_changes', 'audit_actions')
      AND c.relnamespace = 'public'::regnamespace
    UNION ALL
    SELECT format('column %s.%s %s %s %s %s', table_name, column_name, data_type, is_nullable,
                  coalesce(column_default, '-'), is_identity)
    FROM information_schema.columns
    WHERE table_schema = 'public' AND table_name IN ('audit_transactions', 'audit_changes', 'audit_actions')
    UNION ALL
    SELECT format('index %s', pg_get_indexdef(i.indexrelid))
    FROM pg_index i WHERE i.indrelid IN ('audit_transactions'::regclass, 'audit_changes'::regclass, 'audit_actions'::regclass)
    UNION ALL
    SELECT format('constraint %s %s %s', conrelid::regclass, conname, pg_get_constraintdef(oid))
    FROM pg_constraint WHERE conrelid IN ('audit_transactions'::regclass, 'audit_changes'::regclass, 'audit_actions'::regclass)
    UNION ALL
    SELECT format('trigger %s', pg_get_triggerdef(t.oid))
    FROM pg_trigger t WHERE t.tgrelid IN ('audit_transactions'::regclass, 'audit_changes'::regclass, 'audit_actions'::regclass)
      AND NOT t.tgisinternal
    UNION ALL
    SELECT format('sequence %s %s', t, pg_get_serial_sequence(t, 'id'))
    FROM unnest(ARRAY['audit_transactions', 'audit_changes', 'audit_actions']) t
    UNION ALL
    SELECT format('default partition %s', c.relname) FROM pg_class c
    WHERE c.relname IN ('audit_transactions_default', 'audit_changes_default')
) s";

async fn schema(db: &TestDb) -> String {
    sqlx::query_scalar(SCHEMA)
        .fetch_one(&db.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn the_converted_schema_is_a_fresh_partitioned_install() {
    let owner = TestRole::new("NOLOGIN").await;
    let reader = TestRole::new("LOGIN").await;
    for hardened in [false, true] {
        let mut install = InstallOptions::default();
        if hardened {
            install = install
                .with_owner_role(Ident::new(owner.name.clone()).unwrap())
                .with_reader_role(Ident::new(reader.name.clone()).unwrap());
        }
        let converted = TestDb::empty().await;
        threadline_sqlx::install(&converted.pool, &install)
            .await
            .unwrap();
        write_one(&converted, &install).await;
        if hardened {
            // Without its owner role the switch would undo the hardening: refused.
            let err =
                convert_to_partitioned(&converted.pool, &InstallOptions::default(), &execute())
                    .await
                    .unwrap_err()
                    .to_string();
            assert!(
                err.contains("hardened") && err.contains(&owner.name),
                "{err}"
            );
        }
        convert_to_partitioned(&converted.pool, &install, &execute())
            .await
            .unwrap();
        let fresh = TestDb::empty().await;
        let partitioned = install.clone().with_partitioning(PartitionInterval::Month);
        threadline_sqlx::install(&fresh.pool, &partitioned)
            .await
            .unwrap();
        let (converted_schema, fresh_schema) = (schema(&converted).await, schema(&fresh).await);
        assert!(
            converted_schema.contains("PARTITION BY")
                || converted_schema.contains("RANGE (captured_at)"),
            "{converted_schema}"
        );
        assert_eq!(converted_schema, fresh_schema, "hardened: {hardened}");
        drop(converted);
        drop(fresh);
    }
}

async fn write_one(db: &TestDb, install: &InstallOptions) {
    db.exec("CREATE TABLE items (id bigint PRIMARY KEY)").await;
    threadline_sqlx::audit_table(
        &db.pool,
        install,
        &"items".parse().unwrap(),
        &TableCapture::default(),
    )
    .await
    .unwrap();
    write(
        db,
        &ActorRef::user("ann").unwrap(),
        "INSERT INTO items VALUES (1)",
    )
    .await;
}
