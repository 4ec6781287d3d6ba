//! `threadline revert`: plan only, execute, conflicts, skip, and the exit codes.

mod support;

use support::{config, db_with_items, run, threadline_on};

#[tokio::test]
async fn revert_prints_the_plan_executes_refuses_conflicts_and_exits_0_1_2() {
    let db = db_with_items().await;
    db.exec("INSERT INTO items VALUES (1, 'a'), (2, 'b')").await;
    db.exec("UPDATE items SET v = 'changed'").await;
    let t: i64 = sqlx::query_scalar("SELECT max(id) FROM audit_transactions")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    config(dir.path(), "[coverage]\nexpected_tables = []\n");
    let target = [
        "revert",
        "--transaction",
        &t.to_string(),
        "--actor",
        "admin:7",
    ];

    // Plan only: prints the SQL, changes nothing, exit 0.
    let (code, out, err) = run(threadline_on(&db, dir.path()).args(target));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("UPDATE \"public\".\"items\"") && out.contains("plan only"),
        "{out}"
    );
    assert_eq!(
        db.scalar("SELECT count(*) FROM items WHERE v = 'changed'")
            .await,
        2
    );

    // A later change conflicts: exit 1, nothing changed.
    db.exec("UPDATE items SET v = 'later' WHERE id = 2").await;
    let (code, out, err) = run(threadline_on(&db, dir.path()).args(target).arg("--execute"));
    assert_eq!(code, 1);
    assert!(out.contains("CONFLICT: changed later by change"), "{out}");
    assert!(err.contains("refused"), "{err}");
    assert_eq!(
        db.scalar("SELECT count(*) FROM items WHERE v = 'a'").await,
        0
    );

    // Skipping applies the rest: exit 0, the action is recorded.
    let (code, out, err) = run(threadline_on(&db, dir.path())
        .args(target)
        .args(["--skip-conflicts", "--execute"]));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("applied: reverted 1 change(s)") && out.contains("skipped:"),
        "{out}"
    );
    assert_eq!(
        db.scalar("SELECT count(*) FROM items WHERE v = 'a'").await,
        1
    );
    assert_eq!(
        db.scalar("SELECT count(*) FROM audit_actions WHERE name = 'threadline.revert' AND actor_ref = '{\"type\":\"admin\",\"id\":\"7\"}'").await,
        1
    );

    // Bad input: exit 2.
    let (code, _, err) =
        run(threadline_on(&db, dir.path())
            .args(["revert", "--change", "999999", "--actor", "admin:7"]));
    assert_eq!(code, 2, "{err}");
    let (code, _, err) =
        run(threadline_on(&db, dir.path()).args(["revert", "--change", "1", "--actor", "nobody"]));
    assert_eq!(code, 2, "{err}");
    let (code, _, _) = run(threadline_on(&db, dir.path()).args(["revert", "--actor", "admin:7"]));
    assert_eq!(code, 2);
}
