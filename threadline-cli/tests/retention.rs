//! `threadline retention purge`: refusals, dry run, live run.

mod support;

use support::{config, db_with_items, run, threadline, threadline_on};

#[tokio::test]
async fn purge_refuses_until_enabled_and_executed_then_deletes() {
    let db = db_with_items().await;
    db.exec("INSERT INTO items VALUES (1, 'a'), (2, 'b')").await;
    db.exec("INSERT INTO items VALUES (3, 'c')").await;
    db.exec("UPDATE audit_changes SET captured_at = now() - interval '10 days' WHERE table_pk->>'id' <> '3'").await;
    let dir = tempfile::tempdir().unwrap();
    let purge = ["retention", "purge"];

    config(dir.path(), "[coverage]\nexpected_tables = []\n");
    let (code, _, err) = run(threadline_on(&db, dir.path()).args(purge).arg("--execute"));
    assert_eq!(code, 1);
    assert!(
        err.contains("has no [retention] section") && err.contains("keep_days = 90"),
        "{err}"
    );

    config(dir.path(), "[retention]\nkeep_days = 0\n");
    let (code, _, err) = run(threadline_on(&db, dir.path()).args(purge).arg("--dry-run"));
    assert_eq!(code, 1);
    assert!(err.contains("keep_days must be positive"), "{err}");

    config(dir.path(), "[retention]\nkeep_days = 5\n");
    let (code, _, err) = run(threadline_on(&db, dir.path()).args(purge));
    assert_eq!(code, 1);
    assert!(
        err.contains("retention is disabled") && err.contains("--execute was not given"),
        "{err}"
    );
    let (code, _, err) = run(threadline_on(&db, dir.path()).args(purge).arg("--execute"));
    assert_eq!(code, 1);
    assert!(
        err.contains("retention is disabled") && !err.contains("--execute"),
        "{err}"
    );

    let (code, out, err) = run(threadline_on(&db, dir.path()).args(purge).arg("--dry-run"));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("dry run: would delete 2 changes and 1 transactions captured before "),
        "{out}"
    );
    assert_eq!(db.scalar("SELECT count(*) FROM audit_changes").await, 3);

    config(dir.path(), "[retention]\nenabled = true\nkeep_days = 5\n");
    let (code, _, err) = run(threadline_on(&db, dir.path()).args(purge));
    assert_eq!(code, 1);
    assert!(
        err.contains("--execute was not given") && !err.contains("disabled"),
        "{err}"
    );
    assert_eq!(
        db.scalar("SELECT count(*) FROM audit_changes").await,
        3,
        "refusals delete nothing"
    );

    let (code, out, err) =
        run(threadline_on(&db, dir.path())
            .args(purge)
            .args(["--execute", "--batch-size", "1"]));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("deleted 2 changes and 1 transactions captured before "),
        "{out}"
    );
    assert!(out.contains(" in 1 batches"), "{out}");
    assert_eq!(db.scalar("SELECT count(*) FROM audit_changes").await, 1);
    assert_eq!(
        db.scalar("SELECT count(*) FROM audit_transactions").await,
        1
    );
}

#[tokio::test]
async fn max_batches_reports_unfinished_work() {
    let db = db_with_items().await;
    for i in 0..3 {
        db.exec(&format!("INSERT INTO items VALUES ({i}, 'x')"))
            .await;
    }
    db.exec("UPDATE audit_changes SET captured_at = now() - interval '10 days'")
        .await;
    let dir = tempfile::tempdir().unwrap();
    config(
        dir.path(),
        "[retention]\nenabled = true\nmax_age_seconds = 3600\n",
    );
    let args = [
        "retention",
        "purge",
        "--execute",
        "--batch-size",
        "1",
        "--max-batches",
        "2",
    ];
    let (code, out, _) = run(threadline_on(&db, dir.path()).args(args));
    assert_eq!(code, 3, "work remains: a distinct exit status for cron");
    assert!(
        out.contains("deleted 2 changes and 2 transactions")
            && out.contains("run the command again"),
        "{out}"
    );
    let (code, out, _) = run(threadline_on(&db, dir.path()).args(args));
    assert_eq!(code, 0);
    assert!(
        out.contains("deleted 1 changes") && !out.contains("again"),
        "{out}"
    );
}

#[test]
fn bad_flags_and_missing_database_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    config(dir.path(), "[retention]\nenabled = true\nkeep_days = 5\n");
    let (code, _, err) =
        run(threadline(dir.path()).args(["retention", "purge", "--batch-size", "0"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--batch-size"), "{err}");
    let (code, _, err) =
        run(threadline(dir.path()).args(["retention", "purge", "--dry-run", "--execute"]));
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = run(threadline(dir.path()).args(["retention", "purge", "--dry-run"]));
    assert_eq!(code, 1);
    assert!(err.contains("pass --database-url"), "{err}");
}
