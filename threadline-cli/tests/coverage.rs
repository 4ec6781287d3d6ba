//! `threadline verify-coverage`: aligned table, JSON, exit codes.

mod support;

use support::{config, run, threadline, threadline_on};
use threadline_sqlx::TableCapture;
use threadline_test_support::TestDb;

#[tokio::test]
async fn verify_coverage_reports_each_status_and_exits_1_on_violation() {
    let db = TestDb::installed().await;
    db.exec(
        "CREATE TABLE posts (id bigint PRIMARY KEY); CREATE TABLE users (id bigint PRIMARY KEY);",
    )
    .await;
    db.audit("posts", &TableCapture::default()).await;
    let dir = tempfile::tempdir().unwrap();

    config(dir.path(), "[coverage]\nexpected_tables = [\"posts\"]\n");
    let (code, out, err) = run(threadline_on(&db, dir.path()).arg("verify-coverage"));
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "TABLE         STATUS\n------------  ---------\npublic.posts  covered\nsummary: 1/1 expected tables covered (0 violated)\n"
    );

    config(
        dir.path(),
        "[coverage]\nexpected_tables = [\"posts\", \"users\", \"billing.invoices\"]\n",
    );
    let (code, out, _) = run(threadline_on(&db, dir.path()).arg("verify-coverage"));
    assert_eq!(code, 1);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[..5],
        [
            "TABLE             STATUS",
            "----------------  ---------",
            "billing.invoices  missing",
            "public.posts      covered",
            "public.users      uncovered",
        ]
    );
    assert!(
        lines[5].starts_with("billing.invoices: table billing.invoices does not exist"),
        "{out}"
    );
    assert!(
        lines[6].starts_with(
            "public.users: no capture triggers; fix: run `threadline gen-triggers --tables public.users`"
        ),
        "{out}"
    );
    assert_eq!(
        lines[7],
        "summary: 1/3 expected tables covered (2 violated)"
    );

    db.exec("ALTER TABLE posts DISABLE TRIGGER ALL").await;
    let (code, out, _) =
        run(threadline_on(&db, dir.path()).args(["verify-coverage", "--format", "json"]));
    assert_eq!(code, 1);
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (
            doc["expected"].as_u64(),
            doc["covered"].as_u64(),
            doc["violated"].as_u64()
        ),
        (Some(3), Some(0), Some(3))
    );
    assert_eq!(doc["tables"][1]["table"], "public.posts");
    assert_eq!(doc["tables"][1]["status"], "disabled");

    config(
        dir.path(),
        "[capture.tables.posts]\nmask = [\"id\"]\n[coverage]\nexpected_tables = [\"posts\"]\n",
    );
    db.exec("ALTER TABLE posts ENABLE TRIGGER ALL").await;
    let (code, out, err) = run(threadline_on(&db, dir.path()).arg("verify-coverage"));
    assert_eq!(code, 0, "capture matches its stored policy: {out}");
    assert!(out.contains("public.posts  covered\n"), "{out}");
    assert!(
        err.contains("policy for public.posts differs")
            && err.contains("mask: id only in threadline.toml"),
        "{err}"
    );
}

/// A config change that was not applied is a warning that names the columns: capture does
/// what the policy stored with it says, and that is what coverage checks.
#[tokio::test]
async fn verify_coverage_warns_when_the_config_disagrees_with_the_stored_policy() {
    let db = TestDb::installed().await;
    db.exec("CREATE TABLE users (id bigint PRIMARY KEY, email text)")
        .await;
    db.audit("users", &TableCapture::default()).await;
    let dir = tempfile::tempdir().unwrap();
    config(
        dir.path(),
        "[capture.tables.users]\nmask = [\"email\"]\n[coverage]\nexpected_tables = [\"users\"]\n",
    );
    let (code, out, err) = run(threadline_on(&db, dir.path()).arg("verify-coverage"));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("public.users  covered\n"), "{out}");
    assert_eq!(
        err,
        "warning: threadline.toml's policy for public.users differs from the one its capture was generated with: \
         mask: email only in threadline.toml; capture does what the stored policy says \
         (run `threadline gen-triggers --tables public.users` and apply the SQL if the file is right)\n"
    );
    let (_, out, _) =
        run(threadline_on(&db, dir.path()).args(["verify-coverage", "--format", "json"]));
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["policy_warnings"].as_array().unwrap().len(), 1);

    db.audit("users", &TableCapture::default().mask(["email"]))
        .await;
    let (code, out, err) = run(threadline_on(&db, dir.path()).arg("verify-coverage"));
    assert_eq!(code, 0, "{out}");
    assert!(err.is_empty(), "no warning once regenerated: {err}");
}

#[test]
fn verify_coverage_needs_expected_tables() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = run(threadline(dir.path()).arg("verify-coverage"));
    assert_eq!(code, 1);
    assert!(
        err.contains("expected_tables = [\"users\", \"posts\"]"),
        "{err}"
    );
    config(dir.path(), "[coverage]\nexpected_tables = [\"a.b.c\"]\n");
    let (code, _, err) = run(threadline(dir.path()).arg("verify-coverage"));
    assert_eq!(code, 1);
    assert!(
        err.contains("invalid table name \"a.b.c\" in [coverage] expected_tables"),
        "{err}"
    );
}
