//! Coverage on the real PostgreSQL: every status, expected tables, capture readiness.

use threadline_sqlx::{
    Config, CoverageStatus, Error, InstallOptions, TableCapture, assert_capture_ready,
    trigger_coverage, verify_coverage,
};
use threadline_test_support::TestDb;

const CONFIG: &str = r#"
[capture.tables.orders]
mask = ["note"]
"#;

/// posts: covered; notes: uncovered; users: a disabled trigger; orders: generated without the
/// mask the config now asks for (covered: capture matches the policy stored with it); tags: a
/// stamp from another generator; billing.invoices: covered in another schema; a partition and
/// the audit tables are not listed.
async fn setup() -> (TestDb, Config) {
    let db = TestDb::installed().await;
    db.exec(
        "CREATE TABLE posts (id bigint PRIMARY KEY, title text);
         CREATE TABLE notes (id bigint PRIMARY KEY);
         CREATE TABLE users (id bigint PRIMARY KEY, email text);
         CREATE TABLE orders (id bigint PRIMARY KEY, note text);
         CREATE TABLE tags (id bigint PRIMARY KEY);
         CREATE SCHEMA billing;
         CREATE TABLE billing.invoices (id bigint PRIMARY KEY);
         CREATE TABLE events (id bigint, at date, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
         CREATE TABLE events_2026 PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');",
    )
    .await;
    for t in [
        "posts",
        "users",
        "orders",
        "tags",
        "billing.invoices",
        "events",
    ] {
        db.audit(t, &TableCapture::default()).await;
    }
    db.exec("ALTER TABLE users DISABLE TRIGGER threadline_capture_update")
        .await;
    let tags_function: String = sqlx::query_scalar(
        "SELECT tgfoid::regproc::text FROM pg_trigger WHERE tgrelid = 'tags'::regclass LIMIT 1",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    db.exec(&format!(
        "COMMENT ON FUNCTION {tags_function}() IS 'threadline:capture:v0:0123'"
    ))
    .await;
    (db, Config::from_toml(CONFIG).unwrap())
}

#[tokio::test]
async fn every_table_gets_its_status() {
    let (db, config) = setup().await;
    let coverage = trigger_coverage(&db.pool, &InstallOptions::default(), &config)
        .await
        .unwrap();
    let got: Vec<(String, CoverageStatus)> = coverage
        .iter()
        .map(|c| (c.table.display_name(), c.status))
        .collect();
    let want = [
        ("billing.invoices", CoverageStatus::Covered),
        ("public.events", CoverageStatus::Covered),
        ("public.notes", CoverageStatus::Uncovered),
        ("public.orders", CoverageStatus::Covered),
        ("public.posts", CoverageStatus::Covered),
        ("public.tags", CoverageStatus::Stale),
        ("public.users", CoverageStatus::Disabled),
    ];
    assert_eq!(got, want.map(|(t, s)| (t.to_owned(), s)));
    let detail = |name: &str| {
        coverage
            .iter()
            .find(|c| c.table.display_name() == name)
            .unwrap()
            .explain()
    };
    // The config disagrees with the stored policy: that is drift, reported on its own.
    let drift = threadline_sqlx::policy_drift(&db.pool, &InstallOptions::default(), &config)
        .await
        .unwrap();
    assert_eq!(drift.len(), 1);
    assert_eq!(drift[0].table.display_name(), "public.orders");
    assert_eq!(
        drift[0].differences[0].to_string(),
        "mask: note only in threadline.toml"
    );
    assert!(
        detail("public.tags").contains("another generator version"),
        "{}",
        detail("public.tags")
    );
    assert!(detail("public.users").contains("ENABLE TRIGGER threadline_capture_update"));

    // Without the config, orders is current too.
    let plain = trigger_coverage(&db.pool, &InstallOptions::default(), &Config::default())
        .await
        .unwrap();
    assert!(
        plain
            .iter()
            .any(|c| c.table.display_name() == "public.orders"
                && c.status == CoverageStatus::Covered)
    );

    // Regenerating with the configured policy stores it: current, and no drift.
    db.audit("orders", &config.table_policy(&"orders".parse().unwrap()))
        .await;
    let again = trigger_coverage(&db.pool, &InstallOptions::default(), &config)
        .await
        .unwrap();
    assert!(
        again
            .iter()
            .any(|c| c.table.display_name() == "public.orders"
                && c.status == CoverageStatus::Covered)
    );
    assert!(
        threadline_sqlx::policy_drift(&db.pool, &InstallOptions::default(), &config)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn a_policy_the_table_no_longer_fits_is_stale() {
    let (db, _) = setup().await;
    db.audit("posts", &TableCapture::default().mask(["title"]))
        .await;
    db.exec("ALTER TABLE posts DROP COLUMN title").await;
    let coverage = verify_coverage(
        &db.pool,
        &InstallOptions::default(),
        &Config::default(),
        &["posts".parse().unwrap()],
    )
    .await
    .unwrap();
    assert_eq!(coverage[0].status, CoverageStatus::Stale);
    assert!(
        coverage[0]
            .detail
            .as_deref()
            .unwrap()
            .contains("has no column(s) title"),
        "{:?}",
        coverage[0].detail
    );
}

#[tokio::test]
async fn expected_tables_report_missing_and_violations() {
    let (db, config) = setup().await;
    let expected: Vec<_> = ["users", "posts", "nope", "posts", "notes"]
        .iter()
        .map(|t| t.parse().unwrap())
        .collect();
    let check = verify_coverage(&db.pool, &InstallOptions::default(), &config, &expected)
        .await
        .unwrap();
    let got: Vec<(String, CoverageStatus)> = check
        .iter()
        .map(|c| (c.table.display_name(), c.status))
        .collect();
    assert_eq!(
        got,
        [
            ("public.nope".to_owned(), CoverageStatus::Missing),
            ("public.notes".to_owned(), CoverageStatus::Uncovered),
            ("public.posts".to_owned(), CoverageStatus::Covered),
            ("public.users".to_owned(), CoverageStatus::Disabled),
        ]
    );
}

#[tokio::test]
async fn capture_ready_names_the_problem() {
    let (db, config) = setup().await;
    let install = InstallOptions::default();
    assert_capture_ready(&db.pool, &install, &config, &"posts".parse().unwrap())
        .await
        .unwrap();
    let err = assert_capture_ready(&db.pool, &install, &config, &"nope".parse().unwrap())
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::TableNotFound(ref t) if t == "public.nope"),
        "{err}"
    );
    let err = assert_capture_ready(&db.pool, &install, &config, &"notes".parse().unwrap())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::NotCaptureReady {
                status: CoverageStatus::Uncovered,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("threadline gen-triggers --tables public.notes"),
        "{err}"
    );
    let err = assert_capture_ready(&db.pool, &install, &config, &"users".parse().unwrap())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::NotCaptureReady {
                status: CoverageStatus::Disabled,
                ..
            }
        ),
        "{err}"
    );
}
