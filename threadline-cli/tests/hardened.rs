//! `threadline install --owner-role` and `gen-triggers --owner-role`: the generated SQL
//! hands the trail to the owner role, bad role input fails with a fix, and `gen-triggers`
//! with a database follows the install's owner role from the catalog.

use assert_cmd::Command;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection};
use threadline_test_support::{TestDb, TestRole};

mod support;

use support::{run, stdout_of};

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
    // Three audit tables and the three seal and erasure tables; the shared functions
    // (transaction id, shape check, changed fields), the action function and the capture
    // function.
    assert_eq!(tables, 6);
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

/// A database with `posts`, a hardened install owned by `owner` (from the CLI's install SQL),
/// and `app` allowed to write `posts` and read the trail.
async fn hardened_posts(owner: &TestRole, app: &TestRole) -> TestDb {
    let db = TestDb::empty().await;
    db.exec(&format!(
        "CREATE TABLE posts (id bigint PRIMARY KEY, title text);
         GRANT SELECT, INSERT, UPDATE, DELETE ON posts TO \"{}\"",
        app.name
    ))
    .await;
    db.exec(&stdout_of(threadline().args([
        "install",
        "--stdout",
        "--owner-role",
        &owner.name,
        "--reader-role",
        &app.name,
    ])))
    .await;
    db
}

/// A connection to `db` as `role`.
async fn connect_as(db: &TestDb, role: &TestRole) -> sqlx::PgConnection {
    let options: PgConnectOptions = db.url.parse().unwrap();
    options.username(&role.name).connect().await.unwrap()
}

#[tokio::test]
async fn gen_triggers_with_a_database_uses_the_hardened_installs_owner() {
    let owner = TestRole::new("NOLOGIN").await;
    let app = TestRole::new("LOGIN").await;
    let db = hardened_posts(&owner, &app).await;
    let mut as_app = connect_as(&db, &app).await;

    // The hazard: capture generated without the owner role runs as the application role,
    // which may not write the trail, so every write to the table fails.
    db.exec(&stdout_of(threadline().args([
        "gen-triggers",
        "--tables",
        "posts",
        "--stdout",
    ])))
    .await;
    let err = sqlx::query("INSERT INTO posts VALUES (1, 'first')")
        .execute(&mut as_app)
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("permission denied for table audit_changes"),
        "{err}"
    );

    // With the database, gen-triggers reads the owner from the catalog and says so.
    let (code, sql, stderr) = run(threadline().args([
        "gen-triggers",
        "--tables",
        "posts",
        "--stdout",
        "--database-url",
        &db.url,
    ]));
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "note: schema \"public\" holds a hardened install owned by role \"{0}\"; the capture runs as that role, as with --owner-role {0}",
            owner.name
        )),
        "{stderr}"
    );
    db.exec(&sql).await;
    sqlx::raw_sql(
        "INSERT INTO posts VALUES (1, 'first');
         UPDATE posts SET title = 'second' WHERE id = 1",
    )
    .execute(&mut as_app)
    .await
    .unwrap();
    let ops: Vec<String> = sqlx::query_scalar("SELECT op FROM audit_changes ORDER BY id")
        .fetch_all(&mut as_app)
        .await
        .unwrap();
    assert_eq!(ops, ["insert", "update"]);
    // Still hardened: the application cannot write the trail itself.
    let err = sqlx::query("DELETE FROM audit_changes")
        .execute(&mut as_app)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("permission denied"), "{err}");

    // The dry run shows the owner too; naming the same owner needs no note.
    let (code, out, stderr) = run(threadline().args([
        "gen-triggers",
        "--tables",
        "posts",
        "--dry-run",
        "--database-url",
        &db.url,
        "--owner-role",
        &owner.name,
    ]));
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.is_empty(), "{stderr}");
    assert!(
        out.trim()
            .ends_with(&format!("owner_role=\"{}\"", owner.name)),
        "{out}"
    );
    as_app.close().await.unwrap();
}

#[tokio::test]
async fn gen_triggers_refuses_an_owner_role_the_install_does_not_have() {
    let owner = TestRole::new("NOLOGIN").await;
    let other = TestRole::new("NOLOGIN").await;
    let app = TestRole::new("LOGIN").await;
    let hardened = hardened_posts(&owner, &app).await;
    let plain = TestDb::installed().await;
    plain
        .exec("CREATE TABLE posts (id bigint PRIMARY KEY, title text)")
        .await;
    let dir = tempfile::tempdir().unwrap();
    let gen_triggers = |db: &TestDb| {
        let mut cmd = support::threadline(dir.path());
        cmd.args([
            "gen-triggers",
            "--tables",
            "posts",
            "--database-url",
            &db.url,
        ]);
        cmd
    };

    // Another owner than the hardened install's, from the flag and from the config file.
    let (code, out, stderr) = run(gen_triggers(&hardened).args(["--owner-role", &other.name]));
    assert_eq!(code, 1, "{stderr}");
    assert!(out.is_empty(), "{out}");
    assert!(
        stderr.contains(&format!(
            "--owner-role names role \"{}\", but the install in schema \"public\" is hardened with owner role \"{}\"",
            other.name, owner.name
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "pass --owner-role {} (or leave it out",
            owner.name
        )),
        "{stderr}"
    );
    support::config(dir.path(), &format!("owner_role = \"{}\"\n", other.name));
    let (code, _, stderr) = run(&mut gen_triggers(&hardened));
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "owner_role in threadline.toml names role \"{}\"",
            other.name
        )),
        "{stderr}"
    );

    // An owner role for an install that is not hardened.
    std::fs::remove_file(dir.path().join("threadline.toml")).unwrap();
    let (code, _, stderr) = run(gen_triggers(&plain).args(["--owner-role", &owner.name]));
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("but the install in schema \"public\" is not hardened")
            && stderr.contains("leave out --owner-role"),
        "{stderr}"
    );
    assert!(
        !dir.path().join("migrations").exists(),
        "a refused run wrote a migration"
    );

    // Matching the catalog writes the migration.
    let (code, out, stderr) = run(gen_triggers(&plain).args(["--migrations-dir", "m"]));
    assert_eq!(code, 0, "{stderr}");
    assert!(out.starts_with("wrote m/"), "{out}");
}
