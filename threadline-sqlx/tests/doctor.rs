//! `doctor` on the real PostgreSQL: each check passing, and each finding it can report.

use sqlx::PgPool;
use threadline_sqlx::{
    Config, DoctorOptions, Finding, Ident, InstallOptions, Severity, TableCapture, doctor,
};
use threadline_test_support::{TestDb, TestRole};

async fn setup() -> TestDb {
    let db = TestDb::installed().await;
    db.exec("CREATE TABLE posts (id bigint PRIMARY KEY, title text)")
        .await;
    db.audit("posts", &TableCapture::default()).await;
    db
}

fn expecting_posts() -> Config {
    Config::from_toml("[coverage]\nexpected_tables = [\"posts\"]").unwrap()
}

async fn run(pool: &PgPool, config: &Config, options: &DoctorOptions) -> Vec<Finding> {
    doctor(pool, &InstallOptions::default(), config, options)
        .await
        .unwrap()
}

/// The findings of one check that are not ok.
fn problems<'a>(findings: &'a [Finding], check: &str) -> Vec<&'a Finding> {
    findings
        .iter()
        .filter(|f| f.check == check && f.severity != Severity::Ok)
        .collect()
}

#[tokio::test]
async fn a_healthy_install_passes_every_check_but_warns_about_a_superuser() {
    let db = setup().await;
    let findings = run(&db.pool, &expecting_posts(), &DoctorOptions::default()).await;
    let checks: Vec<(&str, Severity)> = findings.iter().map(|f| (f.check, f.severity)).collect();
    assert_eq!(
        checks,
        [
            ("install", Severity::Ok),
            ("indexes", Severity::Ok),
            ("coverage", Severity::Ok),
            ("capture_policy", Severity::Ok),
            ("replication_role", Severity::Ok),
            ("privileges", Severity::Warning),
            ("orphans", Severity::Ok),
            ("unattributed", Severity::Ok),
            // Only on the partitioned layout (THREADLINE_TEST_LAYOUT=partitioned).
            ("partitions", Severity::Ok),
        ][..checks.len().max(8)],
        "{findings:#?}"
    );
    assert_eq!(
        checks.len(),
        8 + usize::from(threadline_test_support::layout_from_env().is_some())
    );
    assert!(findings[0].message.contains("present and current"));
    assert!(
        findings[5].message.contains("is a superuser"),
        "{}",
        findings[5].message
    );
    assert!(
        findings
            .iter()
            .filter(|f| f.severity != Severity::Ok)
            .all(|f| f.fix.is_some())
    );
}

#[tokio::test]
async fn a_missing_install_is_one_error() {
    let db = TestDb::empty().await;
    let findings = run(&db.pool, &Config::default(), &DoctorOptions::default()).await;
    let install = problems(&findings, "install");
    assert_eq!(install.len(), 1);
    assert_eq!(install[0].severity, Severity::Error);
    assert!(
        install[0]
            .message
            .contains("not installed in schema \"public\"")
    );
    assert!(
        install[0]
            .fix
            .as_deref()
            .unwrap()
            .contains("threadline install")
    );
    assert!(
        findings
            .iter()
            .all(|f| f.check != "orphans" && f.check != "indexes")
    );
}

#[tokio::test]
async fn an_outdated_install_is_reported_table_by_table() {
    let db = setup().await;
    db.exec(
        "ALTER TABLE audit_changes DROP COLUMN changed_from;
         ALTER TABLE audit_changes ADD CONSTRAINT audit_changes_op_check CHECK (op IN ('insert', 'update', 'delete'));
         CREATE OR REPLACE FUNCTION threadline_check_shape(p_table text, p_image jsonb, p_key text[], p_redacted text[], p_known text[])
             RETURNS boolean LANGUAGE sql AS 'SELECT true';
         DROP INDEX audit_changes_row_idx;
         UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'audit_actions_inserted_at_idx'::regclass;",
    )
    .await;
    let findings = run(&db.pool, &expecting_posts(), &DoctorOptions::default()).await;
    let install: Vec<&str> = problems(&findings, "install")
        .iter()
        .map(|f| f.message.as_str())
        .collect();
    assert_eq!(install.len(), 3, "{install:#?}");
    assert!(install[0].contains("audit_changes lacks column(s) changed_from"));
    assert!(install[1].contains("does not allow op 'snapshot'"));
    assert!(install[2].contains("function public.threadline_check_shape differs"));
    let fixes: Vec<&str> = problems(&findings, "install")
        .iter()
        .map(|f| f.fix.as_deref().unwrap())
        .collect();
    assert!(
        fixes[1].contains(r#"DROP CONSTRAINT "audit_changes_op_check";"#),
        "{}",
        fixes[1]
    );
    assert!(
        fixes[2].contains("threadline install --stdout | psql"),
        "{}",
        fixes[2]
    );
    let indexes = problems(&findings, "indexes");
    assert_eq!(indexes.len(), 2, "{indexes:#?}");
    assert!(
        indexes[0]
            .message
            .contains("\"public\".\"audit_changes_row_idx\" is missing")
    );
    assert!(
        indexes[1]
            .message
            .contains("audit_actions_inserted_at_idx\" is invalid")
    );
    assert_eq!(
        indexes[1].fix.as_deref(),
        Some("REINDEX INDEX CONCURRENTLY \"public\".\"audit_actions_inserted_at_idx\";")
    );
    assert!(
        findings
            .iter()
            .filter(|f| f.severity != Severity::Ok)
            .all(|f| f.severity == Severity::Error || f.check == "privileges")
    );
}

#[tokio::test]
async fn coverage_findings() {
    let db = setup().await;
    db.exec(
        "CREATE TABLE users (id bigint PRIMARY KEY); CREATE TABLE tags (id bigint PRIMARY KEY);",
    )
    .await;
    db.audit("tags", &TableCapture::default()).await;
    db.exec("ALTER TABLE tags DISABLE TRIGGER threadline_capture_insert")
        .await;

    let findings = run(&db.pool, &Config::default(), &DoctorOptions::default()).await;
    let coverage = problems(&findings, "coverage");
    assert_eq!(coverage.len(), 2, "{coverage:#?}");
    assert_eq!(
        coverage[0].severity,
        Severity::Error,
        "a disabled trigger is an error even when not expected"
    );
    assert!(
        coverage[0]
            .message
            .starts_with("public.tags is disabled: trigger(s) threadline_capture_insert disabled")
    );
    assert_eq!(
        coverage[0].fix.as_deref(),
        Some("ALTER TABLE \"public\".\"tags\" ENABLE TRIGGER threadline_capture_insert;")
    );
    assert_eq!(coverage[1].severity, Severity::Warning);
    assert!(
        coverage[1]
            .message
            .contains("no [coverage] expected_tables")
    );

    let config =
        Config::from_toml("[coverage]\nexpected_tables = [\"posts\", \"users\", \"gone\"]")
            .unwrap();
    let findings = run(&db.pool, &config, &DoctorOptions::default()).await;
    let messages: Vec<&str> = problems(&findings, "coverage")
        .iter()
        .map(|f| f.message.as_str())
        .collect();
    assert_eq!(
        messages,
        [
            "public.gone is missing: table public.gone does not exist",
            "public.users is uncovered: no capture triggers",
            "public.tags is disabled: trigger(s) threadline_capture_insert disabled, so changes are not captured",
        ]
    );
}

#[tokio::test]
async fn replica_mode_set_for_the_database_is_an_error() {
    let db = setup().await;
    db.exec(&format!(
        "ALTER DATABASE \"{}\" SET session_replication_role = replica",
        db.name
    ))
    .await;
    let pool = PgPool::connect(&db.url).await.unwrap(); // new sessions get the setting
    let findings = run(&pool, &expecting_posts(), &DoctorOptions::default()).await;
    let replica = problems(&findings, "replication_role");
    assert_eq!(replica.len(), 2, "{replica:#?}");
    assert!(
        replica[0]
            .message
            .contains("is replica for this connection")
    );
    assert!(
        replica[1]
            .message
            .contains(&format!("set for database {}", db.name))
    );
    assert_eq!(
        replica[1].fix.as_deref().unwrap(),
        format!(
            "ALTER DATABASE \"{}\" RESET session_replication_role;",
            db.name
        )
    );
    pool.close().await;
}

#[tokio::test]
async fn privileges_of_the_application_role() {
    let app = TestRole::new("LOGIN").await;
    let owner = TestRole::new("NOLOGIN").await;
    let db = setup().await;
    db.exec(&format!(
        "GRANT INSERT, SELECT ON audit_changes, audit_transactions TO \"{}\"",
        app.name
    ))
    .await;
    let as_app = DoctorOptions::default().app_role(&app.name);
    let findings = run(&db.pool, &expecting_posts(), &as_app).await;
    let privileges = problems(&findings, "privileges");
    assert_eq!(privileges.len(), 1);
    assert_eq!(privileges[0].severity, Severity::Warning);
    assert_eq!(
        privileges[0].message,
        format!(
            "role {} can write the audit tables directly (INSERT on audit_transactions; INSERT on audit_changes), so it can forge or erase the trail",
            app.name
        )
    );
    assert!(
        privileges[0]
            .fix
            .as_deref()
            .unwrap()
            .contains("threadline install --owner-role")
    );

    let findings = run(
        &db.pool,
        &expecting_posts(),
        &DoctorOptions::default().app_role("no_such_role_anywhere"),
    )
    .await;
    let privileges = problems(&findings, "privileges");
    assert_eq!(privileges[0].severity, Severity::Error);
    assert!(privileges[0].message.contains("does not exist"));

    // The hardened install leaves the application only SELECT.
    let hardened = TestDb::empty().await;
    let install = InstallOptions::default()
        .with_owner_role(Ident::new(owner.name.clone()).unwrap())
        .with_reader_role(Ident::new(app.name.clone()).unwrap());
    threadline_sqlx::install(&hardened.pool, &install)
        .await
        .unwrap();
    let findings = doctor(&hardened.pool, &install, &Config::default(), &as_app)
        .await
        .unwrap();
    let ok: Vec<&Finding> = findings
        .iter()
        .filter(|f| f.check == "privileges")
        .collect();
    assert_eq!(ok.len(), 1);
    assert_eq!(ok[0].severity, Severity::Ok, "{ok:#?}");
    assert!(problems(&findings, "install").is_empty(), "{findings:#?}");
    drop(hardened);
    drop(db);
}

#[tokio::test]
async fn orphan_changes_are_an_error() {
    let db = setup().await;
    db.exec("INSERT INTO posts VALUES (1, 'a')").await;
    db.exec("INSERT INTO posts VALUES (2, 'b')").await;
    let first: i64 = sqlx::query_scalar("SELECT min(id) FROM audit_transactions")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    db.exec(&format!(
        "DELETE FROM audit_transactions WHERE id = {first}"
    ))
    .await;
    let findings = run(&db.pool, &expecting_posts(), &DoctorOptions::default()).await;
    let orphans = problems(&findings, "orphans");
    assert_eq!(orphans.len(), 1);
    assert_eq!(orphans[0].severity, Severity::Error);
    assert!(
        orphans[0].message.starts_with(&format!(
            "1 changes have no transaction row (e.g. transaction ids {first})"
        )),
        "{}",
        orphans[0].message
    );
}

#[tokio::test]
async fn writes_outside_any_context_are_reported_as_unattributed() {
    let db = setup().await;
    let mut tx = db.pool.begin().await.unwrap();
    threadline_sqlx::TransactionExt::with_context(&mut *tx, &threadline_sqlx::AuditContext::new())
        .await
        .unwrap();
    sqlx::query("INSERT INTO posts VALUES (1, 'anonymous, not unattributed')")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let findings = run(&db.pool, &expecting_posts(), &DoctorOptions::default()).await;
    assert!(
        problems(&findings, "unattributed").is_empty(),
        "{findings:#?}"
    );

    db.exec("INSERT INTO posts VALUES (2, 'raw')").await;
    let latest: i64 = sqlx::query_scalar("SELECT max(id) FROM audit_transactions")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    let findings = run(&db.pool, &expecting_posts(), &DoctorOptions::default()).await;
    let unattributed = problems(&findings, "unattributed");
    assert_eq!(unattributed.len(), 1, "{findings:#?}");
    assert_eq!(unattributed[0].severity, Severity::Warning);
    assert!(
        unattributed[0].message.starts_with(&format!(
            "1 transactions of the last 24 hours (latest: audit transaction {latest}) have no actor"
        )),
        "{}",
        unattributed[0].message
    );
    assert!(
        unattributed[0]
            .fix
            .as_deref()
            .unwrap()
            .contains("begin_with_context")
    );
}
