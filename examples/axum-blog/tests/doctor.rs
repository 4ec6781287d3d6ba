//! `threadline doctor` on the demo's own database: the demo sets its capture policy in Rust
//! (`except_columns(["updated_at"])` on posts), which no threadline.toml knows, and doctor
//! must still find nothing wrong (issue 18: it used to call posts stale).
#![allow(clippy::unwrap_used)]

use std::process::{Command, ExitCode};

use clap::Parser;
use threadline_sqlx::{
    Config, CoverageStatus, DoctorOptions, InstallOptions, Severity, doctor, trigger_coverage,
};
use threadline_test_support::TestDb;

#[tokio::test]
async fn doctor_finds_no_error_on_the_demo_database() {
    let db = TestDb::empty().await;
    // The demo sets its database up itself (tables, install, capture with its policy), then
    // sends its demo requests.
    let demo = Command::new(env!("CARGO_BIN_EXE_axum-blog"))
        .arg("--smoke")
        .env("DATABASE_URL", &db.url)
        .output()
        .unwrap();
    assert!(
        demo.status.success(),
        "{}{}",
        String::from_utf8_lossy(&demo.stdout),
        String::from_utf8_lossy(&demo.stderr)
    );

    // `threadline doctor` as a user runs it, with no threadline.toml in the working directory.
    let cli = threadline_cli::Cli::parse_from(["threadline", "doctor", "--database-url", &db.url]);
    let code = threadline_cli::run(cli).await.unwrap();
    assert_eq!(code, ExitCode::SUCCESS, "threadline doctor exits 1");

    // The same checks through the library, to see each finding.
    let install = InstallOptions::default();
    let findings = doctor(
        &db.pool,
        &install,
        &Config::default(),
        &DoctorOptions::default(),
    )
    .await
    .unwrap();
    let errors: Vec<_> = findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    let policy: Vec<_> = findings
        .iter()
        .filter(|f| f.check == "capture_policy")
        .collect();
    assert_eq!(policy.len(), 1, "{policy:#?}");
    assert_eq!(policy[0].severity, Severity::Ok);
    assert!(
        policy[0]
            .message
            .starts_with("2 captured tables carry their capture policy"),
        "{}",
        policy[0].message
    );
    let coverage = trigger_coverage(&db.pool, &install, &Config::default())
        .await
        .unwrap();
    for table in ["public.posts", "public.comments"] {
        let c = coverage
            .iter()
            .find(|c| c.table.display_name() == table)
            .unwrap();
        assert_eq!(
            c.status,
            CoverageStatus::Covered,
            "{table}: {}",
            c.explain()
        );
    }
    let stored =
        threadline_sqlx::stored_capture_policy(&db.pool, &install, &"posts".parse().unwrap())
            .await
            .unwrap()
            .unwrap();
    assert_eq!(stored.except_columns, ["updated_at"]);
}
