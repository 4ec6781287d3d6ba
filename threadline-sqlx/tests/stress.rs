//! The short (5-second) version of the concurrency stress run; the long one is
//! `cargo run --release -p threadline-sqlx --example stress -- --seconds 60`.

use std::time::Duration;

use threadline_test_support::stress::{StressConfig, run};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_writers_five_seconds_trail_matches_committed_work() {
    let config = StressConfig {
        duration: Duration::from_secs(5),
        ..StressConfig::default()
    };
    let report = run(&config).await;
    eprintln!("{report}");
    assert!(report.is_clean(), "{report}");
    // The run exercised what it claims to.
    assert!(report.committed > 0 && report.rolled_back > 0, "{report}");
    assert!(report.savepoints_rolled_back > 0, "{report}");
    assert!(report.captured_changes > 0, "{report}");
}
