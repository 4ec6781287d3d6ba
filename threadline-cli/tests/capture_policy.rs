//! The capture policy stored by `gen-triggers`: flags that threadline.toml never saw are
//! known to `verify-coverage` and `doctor` afterwards.

mod support;

use support::{config, run, stdout_of, threadline_on};
use threadline_test_support::TestDb;

#[tokio::test]
async fn gen_triggers_flags_are_stored_so_coverage_and_doctor_agree_without_the_file_knowing() {
    let db = TestDb::installed().await;
    db.exec("CREATE TABLE posts (id bigint PRIMARY KEY, title text, updated_at timestamptz)")
        .await;
    let dir = tempfile::tempdir().unwrap();
    config(dir.path(), "[coverage]\nexpected_tables = [\"posts\"]\n");
    let sql = stdout_of(threadline_on(&db, dir.path()).args([
        "gen-triggers",
        "--tables",
        "posts",
        "--except-columns",
        "updated_at",
        "--store-changed-from",
        "--stdout",
    ]));
    db.exec(&sql).await;

    let (code, out, err) = run(threadline_on(&db, dir.path()).arg("verify-coverage"));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("public.posts  covered\n"), "{out}");
    assert!(err.is_empty(), "{err}");

    let (code, out, err) = run(threadline_on(&db, dir.path()).arg("doctor"));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("summary: 0 errors"), "{out}");
    assert!(
        out.contains("capture_policy    1 captured tables carry their capture policy"),
        "{out}"
    );
}
