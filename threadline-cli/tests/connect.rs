//! An unreachable database is reported within seconds, with its real cause and the fix:
//! connection refused, unknown host, authentication failed, database missing, no answer.

use std::path::Path;
use std::time::{Duration, Instant};

use sqlx::ConnectOptions;
use sqlx::postgres::PgConnectOptions;
use threadline_test_support::{TestRole, server_url};

mod support;

use support::{config, run, threadline};

/// Far below sqlx's 30 s pool timeout, which the commands used to wait out.
const FAST: Duration = Duration::from_secs(3);

fn server() -> PgConnectOptions {
    server_url().parse().unwrap()
}

/// A local port nobody listens on (bound, then released).
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Runs `args` in `dir` with `DATABASE_URL=url`; returns (exit code, stdout, stderr, time).
fn attempt(dir: &Path, url: &str, args: &[&str]) -> (i32, String, String, Duration) {
    let started = Instant::now();
    let (code, out, err) = run(threadline(dir).env("DATABASE_URL", url).args(args));
    (code, out, err, started.elapsed())
}

/// Asserts a fast, non-zero exit whose message contains every one of `expected`.
fn assert_fails_fast(dir: &Path, url: &str, args: &[&str], expected: &[&str]) {
    let (code, out, err, took) = attempt(dir, url, args);
    assert_eq!(code, 1, "{args:?}: {err}");
    assert!(out.is_empty(), "{args:?} printed {out}");
    for part in expected {
        assert!(err.contains(part), "{args:?}: expected {part:?} in {err}");
    }
    assert!(took < FAST, "{args:?} took {took:?}: {err}");
}

#[test]
fn connection_refused_says_where_postgres_should_run() {
    let dir = tempfile::tempdir().unwrap();
    let port = closed_port();
    let url = format!("postgres://root@127.0.0.1:{port}/x");
    assert_fails_fast(
        dir.path(),
        &url,
        &["doctor"],
        &[
            "Connection refused",
            &format!("is PostgreSQL running on 127.0.0.1:{port}?"),
        ],
    );
}

#[test]
fn every_database_command_fails_fast_when_the_server_is_down() {
    let dir = tempfile::tempdir().unwrap();
    config(
        dir.path(),
        "[coverage]\nexpected_tables = [\"items\"]\n\n[retention]\nenabled = true\nkeep_days = 90\n",
    );
    let port = closed_port();
    let url = format!("postgres://root@127.0.0.1:{port}/x");
    let expected = format!("is PostgreSQL running on 127.0.0.1:{port}?");
    for args in [
        &["doctor"][..],
        &["verify-coverage"],
        &["continuity", "--table", "items"],
        &["snapshot", "--table", "items"],
        &["retention", "purge", "--dry-run"],
        &["export", "--dry-run"],
        &["gen-triggers", "--tables", "items"],
    ] {
        assert_fails_fast(dir.path(), &url, args, &[&expected]);
    }
    assert!(
        !dir.path().join("migrations").exists(),
        "gen-triggers wrote a file"
    );
}

#[test]
fn an_unknown_host_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let url = server().host("threadline-test.invalid").to_url_lossy();
    assert_fails_fast(
        dir.path(),
        url.as_str(),
        &["doctor"],
        &[
            "unknown host threadline-test.invalid",
            "fix the host name in --database-url / DATABASE_URL",
        ],
    );
}

/// The test server trusts every connection, so no password can be wrong; a role the server
/// refuses (SQLSTATE class 28, like a wrong password) is the authentication failure here:
/// one that does not exist, and one without LOGIN.
#[tokio::test]
async fn an_authentication_failure_names_the_role_and_the_server_reason() {
    let dir = tempfile::tempdir().unwrap();
    let url = server().username("threadline_no_such_role").to_url_lossy();
    assert_fails_fast(
        dir.path(),
        url.as_str(),
        &["doctor"],
        &[
            "authentication failed for role threadline_no_such_role",
            "role \"threadline_no_such_role\" does not exist",
            "fix the user name and password",
        ],
    );
    let role = TestRole::new("NOLOGIN").await;
    let url = server().username(&role.name).to_url_lossy();
    assert_fails_fast(
        dir.path(),
        url.as_str(),
        &["doctor"],
        &[
            &format!("authentication failed for role {}", role.name),
            "is not permitted to log in",
        ],
    );
}

#[test]
fn a_missing_database_says_create_it_or_fix_the_url() {
    let dir = tempfile::tempdir().unwrap();
    let name = format!("threadline_missing_{}", std::process::id());
    let url = server().database(&name).to_url_lossy();
    assert_fails_fast(
        dir.path(),
        url.as_str(),
        &["doctor"],
        &[&format!(
            "database {name} does not exist: create it (CREATE DATABASE \"{name}\") or fix the URL"
        )],
    );
}

#[test]
fn a_server_that_never_answers_times_out_after_connect_timeout() {
    let dir = tempfile::tempdir().unwrap();
    // The kernel accepts the connection; nothing ever answers the startup message.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let url = format!("postgres://root@127.0.0.1:{port}/x");
    let expected = format!("at 127.0.0.1:{port}: no answer within 1 s");

    let (code, _, err, took) = attempt(dir.path(), &url, &["doctor", "--connect-timeout", "1"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains(&expected), "{err}");
    assert!(err.contains("--connect-timeout"), "{err}");
    assert!(
        took >= Duration::from_secs(1) && took < FAST,
        "took {took:?}"
    );

    // The environment variable sets it too.
    let started = Instant::now();
    let (code, _, err) = run(threadline(dir.path())
        .env("DATABASE_URL", &url)
        .env("THREADLINE_CONNECT_TIMEOUT", "1")
        .args(["export", "--dry-run"]));
    let took = started.elapsed();
    assert_eq!(code, 1, "{err}");
    assert!(err.contains(&expected), "{err}");
    assert!(took < FAST, "took {took:?}");
    drop(silent);
}

#[test]
fn bad_urls_and_timeouts_are_refused_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err, _) = attempt(dir.path(), "nonsense", &["doctor"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("invalid --database-url / DATABASE_URL")
            && err.contains("expected postgres://"),
        "{err}"
    );
    let (code, _, err, _) = attempt(
        dir.path(),
        "postgres://root@127.0.0.1/x",
        &["doctor", "--connect-timeout", "0"],
    );
    assert_eq!(code, 2, "clap rejects it: {err}");
    assert!(err.contains("--connect-timeout"), "{err}");
}
