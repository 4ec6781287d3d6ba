//! `threadline continuity` and `threadline snapshot`: steps, both errors, a baseline and a rerun.

mod support;

use support::{config, db_with_items, run, threadline, threadline_on};

#[test]
fn dry_run_prints_the_steps_without_a_database() {
    let dir = tempfile::tempdir().unwrap();
    config(
        dir.path(),
        "[coverage]\nexpected_tables = [\"posts\", \"billing.invoices\"]\n",
    );
    let (code, out, err) =
        run(threadline(dir.path()).args(["continuity", "--dry-run", "--table", "posts"]));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("Brownfield cutover: capture begins at T0"),
        "{out}"
    );
    assert!(
        out.contains(
            "threadline gen-triggers --tables public.posts,billing.invoices && sqlx migrate run"
        ),
        "{out}"
    );
    assert!(
        out.contains("threadline snapshot --table public.posts"),
        "{out}"
    );
    assert!(
        out.ends_with("(dry run: nothing was checked or written)\n"),
        "{out}"
    );
}

#[tokio::test]
async fn continuity_table_checks_existence_and_coverage() {
    let db = db_with_items().await;
    db.exec("CREATE TABLE plain (id int PRIMARY KEY)").await;
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) =
        run(threadline_on(&db, dir.path()).args(["continuity", "--table", "items"]));
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("public.items is capture-ready"), "{out}");
    assert!(
        out.contains("threadline snapshot --table public.items"),
        "{out}"
    );

    let (code, out, err) =
        run(threadline_on(&db, dir.path()).args(["continuity", "--table", "nope"]));
    assert_eq!(code, 1);
    assert!(out.is_empty());
    assert!(err.contains("table public.nope does not exist"), "{err}");

    let (code, _, err) =
        run(threadline_on(&db, dir.path()).args(["continuity", "--table", "plain"]));
    assert_eq!(code, 1);
    assert!(err.contains("table public.plain is not capture-ready (uncovered): no capture triggers; fix: run `threadline gen-triggers --tables public.plain`"), "{err}");

    let (code, _, err) =
        run(threadline_on(&db, dir.path()).args(["continuity", "--table", "a.b.c"]));
    assert_eq!(code, 1);
    assert!(
        err.contains("invalid table name \"a.b.c\" in --table"),
        "{err}"
    );
}

#[tokio::test]
async fn snapshot_records_a_baseline_once() {
    let db = db_with_items().await;
    db.exec("ALTER TABLE items DISABLE TRIGGER ALL; INSERT INTO items SELECT g, 'v' FROM generate_series(1, 5) g; ALTER TABLE items ENABLE TRIGGER ALL;").await;
    let dir = tempfile::tempdir().unwrap();
    let args = ["snapshot", "--table", "items", "--batch-size", "2"];
    let (code, out, err) = run(threadline_on(&db, dir.path()).args(args));
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "recorded 5 of 5 rows of public.items as snapshot changes in 3 batches (0 already had their current image in the trail)\n"
    );
    assert_eq!(
        db.scalar("SELECT count(*) FROM audit_changes WHERE op = 'snapshot'")
            .await,
        5
    );
    let (code, out, _) = run(threadline_on(&db, dir.path()).args(args));
    assert_eq!(code, 0);
    assert!(out.starts_with("recorded 0 of 5 rows"), "{out}");

    db.exec("CREATE TABLE plain (id int PRIMARY KEY)").await;
    let (code, out, err) =
        run(threadline_on(&db, dir.path()).args(["snapshot", "--table", "plain"]));
    assert_eq!(code, 1);
    assert!(
        out.is_empty() && err.contains("not capture-ready (uncovered)"),
        "{err}"
    );
    let (code, _, err) = run(threadline_on(&db, dir.path()).args([
        "snapshot",
        "--table",
        "items",
        "--batch-size",
        "0",
    ]));
    assert_eq!(code, 2);
    assert!(err.contains("--batch-size"), "{err}");
}
