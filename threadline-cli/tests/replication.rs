//! `threadline replication sql` through the binary (the SQL itself runs against a real
//! second cluster in the `replication` suite of the tests package).

mod support;

use support::{config, run, stdout_of, threadline};

#[test]
fn replication_sql_prints_the_three_scripts_in_order() {
    let dir = tempfile::tempdir().unwrap();
    config(dir.path(), "schema = \"audit\"\n");
    let out = stdout_of(threadline(dir.path()).args([
        "replication",
        "sql",
        "--primary-conninfo",
        "host=db1 dbname=app user=o'brien",
        "--publication",
        "audit_pub",
    ]));
    let publication = out.find("CREATE PUBLICATION \"audit_pub\"").unwrap();
    let schema = out
        .find("CREATE TABLE IF NOT EXISTS \"audit\".audit_changes")
        .unwrap();
    let subscription = out
        .find("CREATE SUBSCRIPTION \"threadline_audit\"")
        .unwrap();
    assert!(publication < schema && schema < subscription, "{out}");
    assert!(
        out.contains("publish = 'insert', publish_via_partition_root = true"),
        "{out}"
    );
    assert!(
        out.contains("CONNECTION 'host=db1 dbname=app user=o''brien'"),
        "{out}"
    );
    assert!(out.contains("PUBLICATION \"audit_pub\""), "{out}");
}

#[test]
fn replication_sql_refuses_an_empty_conninfo_and_a_missing_one() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) =
        run(threadline(dir.path()).args(["replication", "sql", "--primary-conninfo", " "]));
    assert_eq!(code, 1);
    assert!(err.contains("--primary-conninfo is empty"), "{err}");
    let (code, _, err) = run(threadline(dir.path()).args(["replication", "sql"]));
    assert_eq!(code, 2);
    assert!(err.contains("--primary-conninfo"), "{err}");
}
