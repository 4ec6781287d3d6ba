//! `threadline doctor`: findings with fixes, exit codes.

mod support;

use support::{config, db_with_items, run, threadline_on};

#[tokio::test]
async fn doctor_prints_findings_and_exits_1_on_errors() {
    let db = db_with_items().await;
    let dir = tempfile::tempdir().unwrap();
    config(dir.path(), "[coverage]\nexpected_tables = [\"items\"]\n");
    let (code, out, err) = run(threadline_on(&db, dir.path()).arg("doctor"));
    assert_eq!(code, 0, "warnings alone exit 0: {out}{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0]
            .starts_with("ok       install           audit schema \"public\" present and current"),
        "{out}"
    );
    assert!(
        out.contains("\nwarning  privileges        role postgres is a superuser"),
        "{out}"
    );
    assert!(
        out.contains(
            "\n                           fix: connect the application as a role without SUPERUSER"
        ),
        "{out}"
    );
    assert_eq!(lines.last(), Some(&"summary: 0 errors, 1 warnings"));

    db.exec("ALTER TABLE items DISABLE TRIGGER ALL").await;
    let (code, out, _) = run(threadline_on(&db, dir.path()).arg("doctor"));
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("error    coverage          public.items is disabled"),
        "{out}"
    );
    assert!(
        out.contains("ALTER TABLE \"public\".\"items\" ENABLE TRIGGER threadline_capture_insert;"),
        "{out}"
    );

    let (code, out, _) = run(threadline_on(&db, dir.path()).args([
        "doctor",
        "--format",
        "json",
        "--app-role",
        "nobody_here",
    ]));
    assert_eq!(code, 1);
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["errors"], 2, "{doc:#}");
    let privileges = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["check"] == "privileges")
        .unwrap();
    assert_eq!(privileges["severity"], "error");
    assert!(
        privileges["message"]
            .as_str()
            .unwrap()
            .contains("\"nobody_here\" does not exist")
    );
}
