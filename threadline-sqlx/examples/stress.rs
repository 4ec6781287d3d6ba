//! Concurrency stress: 16 writers on overlapping rows of 4 audited tables, with bulk
//! statements, rollbacks and savepoint rollbacks; then the audit trail is checked against the
//! writers' own count of committed row changes. Exits non-zero when any check fails.
//!
//! ```text
//! cargo run --release -p threadline-sqlx --example stress -- --seconds 60 [--writers 16] [--seed N]
//! ```
//!
//! Uses a fresh database on `DATABASE_URL` (default postgres://postgres@127.0.0.1:5432/postgres),
//! dropped afterwards.

use std::process::ExitCode;
use std::time::Duration;

use threadline_test_support::stress::{StressConfig, run};

#[tokio::main]
async fn main() -> ExitCode {
    let mut config = StressConfig::default();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().and_then(|v| v.parse::<u64>().ok());
        match (flag.as_str(), value) {
            ("--seconds", Some(v)) => config.duration = Duration::from_secs(v),
            ("--writers", Some(v)) => config.writers = v as usize,
            ("--seed", Some(v)) => config.seed = v,
            _ => {
                eprintln!(
                    "usage: stress [--seconds N] [--writers N] [--seed N] (got {flag:?} without a number)"
                );
                return ExitCode::from(2);
            }
        }
    }
    println!(
        "stress: {} writers, {} tables, {} s, seed {}",
        config.writers,
        config.tables,
        config.duration.as_secs(),
        config.seed
    );
    let report = run(&config).await;
    println!("{report}");
    if report.is_clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
