//! The capture policy stored with each table's capture, on the real PostgreSQL: written by
//! `audit_table`, read back, used by coverage instead of threadline.toml, and compared with
//! threadline.toml by doctor.

use threadline_sqlx::{
    Config, CoverageStatus, DoctorOptions, Finding, InstallOptions, PolicyDifference, Severity,
    TableCapture, TableCoverage, doctor, policy_drift, stored_capture_policies,
    stored_capture_policy, trigger_coverage,
};
use threadline_test_support::TestDb;

const FUNCTION: &str = "(SELECT p.oid FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid
    WHERE t.tgrelid = 'posts'::regclass AND t.tgname = 'threadline_capture_insert')";

/// `posts` captured with its policy set in code, as the axum-blog demo does.
async fn setup() -> TestDb {
    let db = TestDb::installed().await;
    db.exec(
        "CREATE TABLE posts (id bigint PRIMARY KEY, title text, secret text, updated_at timestamptz)",
    )
    .await;
    db.audit(
        "posts",
        &TableCapture::default()
            .except_columns(["updated_at"])
            .exclude(["secret"]),
    )
    .await;
    db
}

async fn posts_coverage(db: &TestDb, config: &Config) -> TableCoverage {
    trigger_coverage(&db.pool, &InstallOptions::default(), config)
        .await
        .unwrap()
        .into_iter()
        .find(|t| t.table.display_name() == "public.posts")
        .unwrap()
}

async fn findings(db: &TestDb, config: &Config) -> Vec<Finding> {
    doctor(
        &db.pool,
        &InstallOptions::default(),
        config,
        &DoctorOptions::default(),
    )
    .await
    .unwrap()
}

fn of_check<'a>(findings: &'a [Finding], check: &str) -> Vec<&'a Finding> {
    findings.iter().filter(|f| f.check == check).collect()
}

#[tokio::test]
async fn a_policy_set_in_code_is_stored_and_read_back_in_rust_and_in_sql() {
    let db = setup().await;
    let install = InstallOptions::default();
    let stored = stored_capture_policy(&db.pool, &install, &"posts".parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.except_columns, ["updated_at"]);
    assert_eq!(stored.exclude, ["secret"]);
    assert!(stored.mask.is_empty());
    assert_eq!(stored.mask_placeholder.as_deref(), Some("[REDACTED]"));
    assert!(!stored.store_changed_from);

    let all = stored_capture_policies(&db.pool, &install).await.unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].table.display_name(), "public.posts");

    // The SQL the guide shows, for tools outside Rust.
    let excluded: serde_json::Value = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT split_part(obj_description({FUNCTION}, 'pg_proc'), E'\\n', 2)::jsonb -> 'exclude'"
    )))
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(excluded, serde_json::json!(["secret"]));

    let none = stored_capture_policy(&db.pool, &install, &"nothing".parse().unwrap())
        .await
        .unwrap();
    assert_eq!(none, None, "no capture, no policy");
}

#[tokio::test]
async fn coverage_compares_with_the_stored_policy_not_threadline_toml() {
    let db = setup().await;
    // No threadline.toml at all: the policy set in code is what the capture is checked with.
    let c = posts_coverage(&db, &Config::default()).await;
    assert_eq!(c.status, CoverageStatus::Covered, "{}", c.explain());
    // A disagreeing threadline.toml does not make it stale either.
    let config = Config::from_toml("[capture.tables.posts]\nmask = [\"title\"]").unwrap();
    let c = posts_coverage(&db, &config).await;
    assert_eq!(c.status, CoverageStatus::Covered, "{}", c.explain());

    // Staleness is about the stored policy: a function that differs from what the generator
    // makes of it (here, its stored policy edited to mask the title) is stale.
    db.exec(&format!(
        "DO $$ BEGIN EXECUTE format('COMMENT ON FUNCTION %s IS %L', {FUNCTION}::regprocedure,
            replace(obj_description({FUNCTION}, 'pg_proc'), '\"mask\":[]', '\"mask\":[\"title\"]'));
         END $$"
    ))
    .await;
    let c = posts_coverage(&db, &Config::default()).await;
    assert_eq!(c.status, CoverageStatus::Stale);
    assert!(
        c.explain()
            .contains("differs from what the current generator makes of its stored capture policy"),
        "{}",
        c.explain()
    );
}

#[tokio::test]
async fn doctor_warns_when_threadline_toml_disagrees_naming_the_columns() {
    let db = setup().await;
    let checks = |f: &[Finding]| -> Vec<(&'static str, Severity)> {
        of_check(f, "capture_policy")
            .iter()
            .map(|f| (f.check, f.severity))
            .collect()
    };

    let quiet = findings(&db, &Config::default()).await;
    assert!(
        quiet.iter().all(|f| f.severity != Severity::Error),
        "{quiet:#?}"
    );
    assert_eq!(checks(&quiet), [("capture_policy", Severity::Ok)]);
    assert!(
        of_check(&quiet, "capture_policy")[0]
            .message
            .starts_with("1 captured tables carry their capture policy"),
        "{quiet:#?}"
    );

    let agreeing = Config::from_toml(
        "[capture.tables.posts]\nexclude = [\"secret\"]\nexcept_columns = [\"updated_at\"]",
    )
    .unwrap();
    assert!(
        policy_drift(&db.pool, &InstallOptions::default(), &agreeing)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        checks(&findings(&db, &agreeing).await),
        [("capture_policy", Severity::Ok)]
    );

    let config = Config::from_toml(
        "[capture.tables.posts]\nexclude = [\"secret\"]\nmask = [\"title\"]\nstore_changed_from = true",
    )
    .unwrap();
    let drift = policy_drift(&db.pool, &InstallOptions::default(), &config)
        .await
        .unwrap();
    assert_eq!(drift.len(), 1);
    assert_eq!(
        drift[0].differences[0],
        PolicyDifference::Columns {
            list: "mask",
            stored_only: vec![],
            local_only: vec!["title".into()],
        }
    );
    let found = findings(&db, &config).await;
    assert!(
        found.iter().all(|f| f.severity != Severity::Error),
        "{found:#?}"
    );
    let warning = of_check(&found, "capture_policy");
    assert_eq!(warning.len(), 1, "{warning:#?}");
    assert_eq!(warning[0].severity, Severity::Warning);
    assert_eq!(
        warning[0].message,
        "threadline.toml's policy for public.posts differs from the one its capture was generated with (stored in the database, and what capture does): \
         mask: title only in threadline.toml; except_columns: updated_at only in the stored policy; \
         store_changed_from: false in the stored policy, true in threadline.toml"
    );
    assert!(
        warning[0]
            .fix
            .as_deref()
            .unwrap()
            .contains("threadline gen-triggers --tables public.posts")
    );
}

#[tokio::test]
async fn capture_from_before_stored_policies_falls_back_to_threadline_toml() {
    let db = setup().await;
    // What capture generated before this change looks like: the stamp alone.
    db.exec(&format!(
        "DO $$ BEGIN EXECUTE format('COMMENT ON FUNCTION %s IS %L', {FUNCTION}::regprocedure,
            split_part(obj_description({FUNCTION}, 'pg_proc'), E'\\n', 1));
         END $$"
    ))
    .await;
    let install = InstallOptions::default();
    assert_eq!(
        stored_capture_policy(&db.pool, &install, &"posts".parse().unwrap())
            .await
            .unwrap(),
        None
    );
    // Checked against threadline.toml, as before: stale without the section, covered with it.
    let c = posts_coverage(&db, &Config::default()).await;
    assert_eq!(c.status, CoverageStatus::Stale);
    assert!(
        c.explain()
            .contains("the current generator and threadline.toml produce"),
        "{}",
        c.explain()
    );
    let config = Config::from_toml(
        "[capture.tables.posts]\nexclude = [\"secret\"]\nexcept_columns = [\"updated_at\"]",
    )
    .unwrap();
    let c = posts_coverage(&db, &config).await;
    assert_eq!(c.status, CoverageStatus::Covered, "{}", c.explain());
    let found = findings(&db, &config).await;
    let policy = of_check(&found, "capture_policy");
    assert_eq!(policy.len(), 1);
    assert_eq!(policy[0].severity, Severity::Ok);
    assert!(
        policy[0]
            .message
            .contains("1 were captured before policies were stored"),
        "{}",
        policy[0].message
    );

    // Regenerating stores the policy.
    db.audit(
        "posts",
        &TableCapture::default()
            .except_columns(["updated_at"])
            .exclude(["secret"]),
    )
    .await;
    assert!(
        stored_capture_policy(&db.pool, &install, &"posts".parse().unwrap())
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn an_unreadable_stored_policy_is_a_typed_error_and_a_doctor_warning() {
    let db = setup().await;
    db.exec(&format!(
        "DO $$ BEGIN EXECUTE format('COMMENT ON FUNCTION %s IS %L', {FUNCTION}::regprocedure,
            split_part(obj_description({FUNCTION}, 'pg_proc'), E'\\n', 1) || E'\\n{{\"mask\": 7}}');
         END $$"
    ))
    .await;
    let err = stored_capture_policy(
        &db.pool,
        &InstallOptions::default(),
        &"posts".parse().unwrap(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            err,
            threadline_sqlx::Error::Core(threadline_core::Error::StoredPolicy(_))
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("cannot be read"), "{err}");
    let found = findings(&db, &Config::default()).await;
    let policy = of_check(&found, "capture_policy");
    assert_eq!(policy.len(), 1, "{policy:#?}");
    assert_eq!(policy[0].severity, Severity::Warning);
    assert!(
        policy[0]
            .message
            .starts_with("public.posts: the capture policy stored"),
        "{}",
        policy[0].message
    );
}
