//! `threadline install --owner-role` and `gen-triggers --owner-role`: the generated SQL
//! hands the trail to the owner role, and bad role input fails with a fix.

use assert_cmd::Command;
use threadline_test_support::TestDb;

mod support;

use support::stdout_of;

/// The binary with no inherited `DATABASE_URL`, run in the current directory.
fn threadline() -> Command {
    support::threadline(std::path::Path::new("."))
}

#[tokio::test]
async fn hardened_sql_from_the_cli_makes_the_owner_role_own_the_trail() {
    let db = TestDb::empty().await;
    let owner = format!("{}_own", db.name);
    db.exec(&format!(
        "CREATE ROLE \"{owner}\" NOLOGIN;
         CREATE TABLE posts (id bigint PRIMARY KEY, title text)"
    ))
    .await;
    let install = stdout_of(threadline().args([
        "install",
        "--stdout",
        "--owner-role",
        &format!("\"{owner}\""),
    ]));
    let triggers = stdout_of(threadline().args([
        "gen-triggers",
        "--tables",
        "posts",
        "--stdout",
        "--owner-role",
        &format!("\"{owner}\""),
    ]));
    db.exec(&install).await;
    db.exec(&triggers).await;
    let (tables, definers): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM pg_class
                 WHERE relname LIKE 'audit\\_%' AND relkind = 'r' AND relowner::regrole::text = quote_ident($1)),
                (SELECT count(*) FROM pg_proc
                 WHERE proname LIKE 'threadline\\_%' AND prosecdef
                   AND proconfig = ARRAY['search_path=pg_catalog, pg_temp']
                   AND proowner::regrole::text = quote_ident($1))",
    )
    .bind(&owner)
    .fetch_one(&db.pool)
    .await
    .unwrap();
    // Three audit tables; the shared functions (transaction id, shape check, changed fields),
    // the action function and the capture function.
    assert_eq!(tables, 3);
    assert_eq!(definers, 5);
    drop(db);
    let mut admin =
        <sqlx::PgConnection as sqlx::Connection>::connect(&threadline_test_support::server_url())
            .await
            .unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP ROLE \"{owner}\"")))
        .execute(&mut admin)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_missing_owner_role_fails_when_applied_with_the_fix() {
    let db = TestDb::empty().await;
    let install = stdout_of(threadline().args([
        "install",
        "--stdout",
        "--owner-role",
        "threadline_no_such_role",
    ]));
    let err = sqlx::raw_sql(sqlx::AssertSqlSafe(install))
        .execute(&db.pool)
        .await
        .unwrap_err();
    let db_err = err.as_database_error().unwrap();
    assert!(
        db_err
            .message()
            .contains("owner role threadline_no_such_role does not exist")
    );
    let hint = db_err
        .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
        .and_then(|e| e.hint())
        .unwrap_or_default();
    assert!(
        hint.contains("CREATE ROLE threadline_no_such_role NOLOGIN"),
        "{hint}"
    );
}

#[test]
fn bad_role_arguments_exit_non_zero_with_a_fix() {
    for (args, expected) in [
        (
            vec!["install", "--stdout", "--reader-role", "app"],
            "also give --owner-role",
        ),
        (
            vec!["install", "--stdout", "--owner-role", "a b"],
            "invalid --owner-role",
        ),
        (
            vec![
                "gen-triggers",
                "--tables",
                "posts",
                "--stdout",
                "--owner-role",
                "x",
                "--reader-role",
                "1a",
            ],
            "invalid --reader-role",
        ),
    ] {
        let out = threadline().args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?} printed output");
    }
}
