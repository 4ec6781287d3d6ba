//! Helpers shared by the operations CLI tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;
use threadline_sqlx::TableCapture;
use threadline_test_support::TestDb;

/// The binary with no inherited `DATABASE_URL`, run in `dir`.
pub(crate) fn threadline(dir: &Path) -> Command {
    let mut cmd = Command::cargo_bin("threadline").unwrap();
    cmd.env_remove("DATABASE_URL").current_dir(dir);
    cmd
}

/// The binary against `db`, run in `dir`.
pub(crate) fn threadline_on(db: &TestDb, dir: &Path) -> Command {
    let mut cmd = threadline(dir);
    cmd.env("DATABASE_URL", &db.url);
    cmd
}

/// Writes `threadline.toml` in `dir`.
pub(crate) fn config(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("threadline.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs, asserts success (showing stderr otherwise) and returns stdout.
pub(crate) fn stdout_of(cmd: &mut Command) -> String {
    let (code, stdout, stderr) = run(cmd);
    assert_eq!(code, 0, "{stderr}");
    stdout
}

/// Runs and returns (exit code, stdout, stderr).
pub(crate) fn run(cmd: &mut Command) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().unwrap();
    (
        status.code().unwrap_or(-1),
        String::from_utf8(stdout).unwrap(),
        String::from_utf8(stderr).unwrap(),
    )
}

/// A database with the audit schema and an audited `items (id bigint primary key, v text)`.
pub(crate) async fn db_with_items() -> TestDb {
    let db = TestDb::installed().await;
    db.exec("CREATE TABLE items (id bigint PRIMARY KEY, v text)")
        .await;
    db.audit("items", &TableCapture::default()).await;
    db
}

/// Runs `threadline seal` until it seals (a transaction of the database that is not the
/// test's own, such as an autovacuum ANALYZE of fresh tables, can hold the boundary back for a
/// moment) and returns its output.
pub(crate) fn seal(db: &TestDb, dir: &Path) -> String {
    for _ in 0..100 {
        let out = stdout_of(threadline_on(db, dir).arg("seal"));
        if !out.contains("nothing to seal") {
            return out;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("no seal after 10 s: a transaction of this database stayed open")
}
