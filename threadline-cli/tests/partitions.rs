//! `threadline install --partitioned`, `partitions ensure|list`, and retention on the
//! partitioned layout, through the binary.

mod support;

use support::{config, run, stdout_of, threadline, threadline_on};
use threadline_test_support::TestDb;

#[test]
fn install_partitioned_writes_the_partitioned_migration_and_rejects_bad_intervals() {
    let dir = tempfile::tempdir().unwrap();
    let sql = stdout_of(threadline(dir.path()).args([
        "install",
        "--stdout",
        "--partitioned",
        "--interval",
        "week",
    ]));
    assert!(sql.contains("PARTITION BY RANGE (captured_at)"), "{sql}");
    assert!(sql.contains("'threadline: partitioned by week'"), "{sql}");
    // The default install is unchanged: no partitions.
    let plain = stdout_of(threadline(dir.path()).args(["install", "--stdout"]));
    assert!(!plain.contains("PARTITION"));
    // From the config file.
    config(
        dir.path(),
        "[storage]\npartitioned = true\ninterval = \"day\"\n",
    );
    let sql = stdout_of(threadline(dir.path()).args(["install", "--stdout"]));
    assert!(sql.contains("'threadline: partitioned by day'"), "{sql}");

    let (code, out, err) =
        run(threadline(dir.path()).args(["install", "--partitioned", "--interval", "year"]));
    assert_ne!(code, 0);
    assert!(out.is_empty());
    assert!(
        err.contains("'year'") && err.contains("day, week, month"),
        "{err}"
    );
    config(
        dir.path(),
        "[storage]\npartitioned = true\ninterval = \"year\"\n",
    );
    let (code, _, err) = run(threadline(dir.path()).args(["install"]));
    assert_eq!(code, 1);
    assert!(
        err.contains("\"year\"") && err.contains("use day, week or month"),
        "{err}"
    );
    assert!(
        !dir.path().join("migrations").exists(),
        "no partial file on bad input"
    );
}

#[tokio::test]
async fn ensure_list_doctor_and_retention_on_a_partitioned_install() {
    let db = TestDb::empty().await;
    let dir = tempfile::tempdir().unwrap();
    config(
        dir.path(),
        "[storage]\npartitioned = true\npremake = 2\n[retention]\nenabled = true\nkeep_days = 30\n",
    );
    let sql = stdout_of(threadline(dir.path()).args(["install", "--stdout"]));
    db.exec(&sql).await;
    // Rows written before any partition exists land in DEFAULT; doctor says so.
    db.exec(
        "INSERT INTO audit_transactions (txid, occurred_at) VALUES (1, '2026-01-15');
         INSERT INTO audit_changes (transaction_id, table_schema, table_name, table_pk, op, captured_at)
         SELECT id, 'public', 'items', '{\"id\":1}', 'insert', '2026-01-15' FROM audit_transactions;",
    )
    .await;
    let (code, out, _) = run(threadline_on(&db, dir.path()).args(["doctor"]));
    assert_eq!(code, 0, "warnings only: {out}");
    assert!(out.contains("audit_changes_default holds 1 rows"), "{out}");
    assert!(out.contains("fewer than premake = 2"), "{out}");

    let out = stdout_of(threadline_on(&db, dir.path()).args(["partitions", "ensure"]));
    assert!(
        out.contains("created audit_changes_p20260101")
            && out.contains("moved 1 rows out of DEFAULT"),
        "{out}"
    );
    assert!(out.contains("(month interval, 2 future)"), "{out}");
    let again = stdout_of(threadline_on(&db, dir.path()).args(["partitions", "ensure"]));
    assert!(again.ends_with(": 0 created\n"), "{again}");
    let list = stdout_of(threadline_on(&db, dir.path()).args(["partitions", "list"]));
    assert!(
        list.contains("audit_changes_default") && list.contains("2026-01-01T00:00:00+00:00"),
        "{list}"
    );
    let json =
        stdout_of(threadline_on(&db, dir.path()).args(["partitions", "list", "--format", "json"]));
    let parts: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(parts.as_array().unwrap().len(), 2 * (1 + 3 + 1), "{json}");
    let (_, out, _) = run(threadline_on(&db, dir.path()).args(["doctor"]));
    assert!(
        !out.contains("holds") && !out.contains("fewer than premake"),
        "{out}"
    );

    // Retention: dry run lists the partition, --execute gate unchanged, then it goes.
    let out = stdout_of(threadline_on(&db, dir.path()).args(["retention", "purge", "--dry-run"]));
    assert!(
        out.contains("audit_changes_p20260101") && out.contains("1 rows  would drop"),
        "{out}"
    );
    assert!(out.contains("dry run: would delete 1 changes (0 of them row by row at the boundary) and 1 transactions"), "{out}");
    let (code, _, err) = run(threadline_on(&db, dir.path()).args(["retention", "purge"]));
    assert_eq!(code, 1);
    assert!(err.contains("--execute was not given"), "{err}");
    assert_eq!(db.scalar("SELECT count(*) FROM audit_changes").await, 1);
    let out = stdout_of(threadline_on(&db, dir.path()).args(["retention", "purge", "--execute"]));
    assert!(out.contains("2 partitions retired"), "{out}");
    assert_eq!(db.scalar("SELECT count(*) FROM audit_changes").await, 0);
    assert_eq!(
        db.scalar("SELECT count(*) FROM audit_transactions").await,
        0
    );
}

#[tokio::test]
async fn partitions_commands_refuse_a_plain_install() {
    let db = TestDb::installed_plain().await;
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = run(threadline_on(&db, dir.path()).args(["partitions", "ensure"]));
    assert_eq!(code, 1);
    assert!(
        err.contains("not partitioned") && err.contains("install --partitioned"),
        "{err}"
    );
    let (code, _, err) =
        run(threadline_on(&db, dir.path()).args(["partitions", "ensure", "--premake", "9999"]));
    assert_eq!(code, 2);
    assert!(err.contains("9999"), "{err}");
}

#[tokio::test]
async fn convert_prints_the_plan_then_converts_with_execute() {
    let db = TestDb::installed_plain().await;
    db.exec("CREATE TABLE items (id bigint PRIMARY KEY)").await;
    db.audit("items", &threadline_sqlx::TableCapture::default())
        .await;
    threadline_test_support::write(
        &db,
        &threadline_test_support::user("1"),
        "INSERT INTO items VALUES (1)",
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let plan = stdout_of(threadline_on(&db, dir.path()).args(["partitions", "convert"]));
    assert!(
        plan.contains("ATTACH PARTITION") && plan.contains("dry run") && plan.contains("--execute"),
        "{plan}"
    );
    assert_eq!(
        db.scalar(
            "SELECT count(*) FROM pg_class WHERE relname = 'audit_changes' AND relkind = 'p'"
        )
        .await,
        0
    );
    let done = stdout_of(threadline_on(&db, dir.path()).args([
        "partitions",
        "convert",
        "--interval",
        "week",
        "--premake",
        "1",
        "--execute",
    ]));
    assert!(
        done.contains("converted to the partitioned layout (week interval)"),
        "{done}"
    );
    let list = stdout_of(threadline_on(&db, dir.path()).args(["partitions", "list"]));
    assert!(list.contains("audit_changes_default"), "{list}");
    assert_eq!(db.scalar("SELECT count(*) FROM audit_changes").await, 1);
    let (code, _, err) = run(threadline_on(&db, dir.path()).args(["partitions", "convert"]));
    assert_eq!(code, 1);
    assert!(err.contains("already partitioned"), "{err}");
}
