//! Whole-schema enrollment: `gen-triggers --all [--in-schema S] [--except a,b]` and
//! `verify-coverage --all [--in-schema S]`, with their errors, on the real PostgreSQL.

mod support;

use support::{config, run, threadline_on};
use threadline_test_support::TestDb;

async fn apply(db: &TestDb, sql: &str) {
    db.exec(sql).await;
}

#[tokio::test]
async fn gen_triggers_all_audits_every_table_of_the_schema_but_the_excepted_ones() {
    let db = TestDb::installed().await;
    db.exec(
        "CREATE SCHEMA shop;
         CREATE TABLE shop.orders (id bigint PRIMARY KEY);
         CREATE TABLE shop.customers (id bigint PRIMARY KEY);
         CREATE TABLE shop.scratch (id bigint PRIMARY KEY);
         CREATE TABLE posts (id bigint PRIMARY KEY);",
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    config(dir.path(), "");
    let (code, sql, err) = run(threadline_on(&db, dir.path()).args([
        "gen-triggers",
        "--all",
        "--in-schema",
        "shop",
        "--except",
        "scratch",
        "--stdout",
    ]));
    assert_eq!(code, 0, "{err}");
    assert!(
        sql.contains(
            "CREATE TRIGGER threadline_capture_insert AFTER INSERT ON \"shop\".\"orders\""
        )
    );
    assert!(sql.contains("AFTER INSERT ON \"shop\".\"customers\""));
    assert!(!sql.contains("\"scratch\""), "--except left it out");
    assert!(!sql.contains("\"posts\""), "another schema's table");
    apply(&db, &sql).await;

    // verify-coverage --all: the excepted table is uncovered, so the check fails on it.
    let (code, out, _) = run(threadline_on(&db, dir.path()).args([
        "verify-coverage",
        "--all",
        "--in-schema",
        "shop",
    ]));
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("shop.customers  covered"), "{out}");
    assert!(out.contains("shop.orders     covered"), "{out}");
    assert!(out.contains("shop.scratch    uncovered"), "{out}");
    assert!(
        out.contains("summary: 2/3 expected tables covered (1 violated)"),
        "{out}"
    );

    db.exec("DROP TABLE shop.scratch").await;
    let (code, out, err) = run(threadline_on(&db, dir.path()).args([
        "verify-coverage",
        "--all",
        "--in-schema",
        "shop",
    ]));
    assert_eq!(code, 0, "{out}{err}");

    // A table created since is the usual way coverage erodes: the CI check catches it.
    db.exec("CREATE TABLE shop.refunds (id bigint PRIMARY KEY)")
        .await;
    let (code, out, _) = run(threadline_on(&db, dir.path()).args([
        "verify-coverage",
        "--all",
        "--in-schema",
        "shop",
    ]));
    assert_eq!(code, 1);
    assert!(out.contains("shop.refunds    uncovered"), "{out}");
}

#[tokio::test]
async fn verify_coverage_all_defaults_to_public_and_leaves_out_the_audit_tables() {
    let db = TestDb::installed().await;
    db.exec("CREATE TABLE posts (id bigint PRIMARY KEY)").await;
    let dir = tempfile::tempdir().unwrap();
    config(dir.path(), "");
    let (code, out, _) = run(threadline_on(&db, dir.path()).args(["verify-coverage", "--all"]));
    assert_eq!(code, 1);
    assert!(out.contains("public.posts  uncovered"), "{out}");
    assert!(!out.contains("audit_changes"), "{out}");
    let (code, sql, err) =
        run(threadline_on(&db, dir.path()).args(["gen-triggers", "--all", "--stdout"]));
    assert_eq!(code, 0, "{err}");
    assert!(
        !sql.contains("ON \"public\".\"audit_"),
        "never audits the audit tables"
    );
    apply(&db, &sql).await;
    let (code, out, _) = run(threadline_on(&db, dir.path()).args(["verify-coverage", "--all"]));
    assert_eq!(code, 0, "{out}");
}

#[tokio::test]
async fn tables_without_a_primary_key_are_listed_with_the_fix() {
    let db = TestDb::installed().await;
    db.exec(
        "CREATE TABLE posts (id bigint PRIMARY KEY);
         CREATE TABLE events (at timestamptz, name text);
         CREATE TABLE logs (line text);",
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    config(dir.path(), "");
    let (code, out, err) =
        run(threadline_on(&db, dir.path()).args(["gen-triggers", "--all", "--stdout"]));
    assert_eq!(code, 1, "{out}");
    assert!(out.is_empty(), "nothing is generated: {out}");
    assert!(
        err.contains("2 table(s) of schema \"public\" have no primary key"),
        "{err}"
    );
    assert!(
        err.contains("public.events: add a primary key, or set key_columns under [capture.tables.\"public.events\"] in threadline.toml"),
        "{err}"
    );
    assert!(err.contains("public.logs: add a primary key"), "{err}");
    assert!(err.contains("--except public.events,public.logs"), "{err}");

    // The fix the message names works: key_columns for one, --except for the other.
    config(
        dir.path(),
        "[capture.tables.\"public.events\"]\nkey_columns = [\"at\", \"name\"]\n",
    );
    let (code, sql, err) = run(threadline_on(&db, dir.path()).args([
        "gen-triggers",
        "--all",
        "--except",
        "logs",
        "--stdout",
    ]));
    assert_eq!(code, 0, "{err}");
    assert!(sql.contains("ON \"public\".\"events\""));
    assert!(!sql.contains("ON \"public\".\"logs\""));
}

#[tokio::test]
async fn unknown_schema_and_unknown_except_table_get_clear_errors() {
    let db = TestDb::installed().await;
    db.exec("CREATE TABLE posts (id bigint PRIMARY KEY)").await;
    let dir = tempfile::tempdir().unwrap();
    config(dir.path(), "");
    for command in ["gen-triggers", "verify-coverage"] {
        let (code, _, err) =
            run(threadline_on(&db, dir.path()).args([command, "--all", "--in-schema", "nope"]));
        assert_eq!(code, 1, "{command}");
        assert!(
            err.contains("schema \"nope\" does not exist; existing schemas: public"),
            "{command}: {err}"
        );
    }
    let (code, _, err) = run(threadline_on(&db, dir.path()).args([
        "gen-triggers",
        "--all",
        "--except",
        "posts,ghost",
        "--stdout",
    ]));
    assert_eq!(code, 1);
    assert!(
        err.contains("--except names public.ghost, which is not a table of schema \"public\" (its tables: posts)"),
        "{err}"
    );
    // --all needs the database, and does not mix with --tables.
    let (code, _, err) =
        run(support::threadline(dir.path()).args(["gen-triggers", "--all", "--stdout"]));
    assert_eq!(code, 1);
    assert!(
        err.contains("--all reads the schema's tables from the database"),
        "{err}"
    );
    let (code, _, err) =
        run(threadline_on(&db, dir.path()).args(["gen-triggers", "--all", "--tables", "posts"]));
    assert_ne!(code, 0);
    assert!(err.contains("cannot be used with"), "{err}");
}
