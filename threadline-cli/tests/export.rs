//! `threadline export`: formats, files, filters, truncation, and errors that leave no file.

mod support;

use serde_json::Value;
use support::{db_with_items, run, threadline, threadline_on};
use threadline_test_support::TestDb;

/// items 1..=5 inserted by user:1 (correlation c-1), then item 1 updated by user:2 (trace
/// 4bf92f3577b34da6a3ce929d0e0e4736), then item 2 deleted by user:1.
async fn trail() -> TestDb {
    let db = db_with_items().await;
    db.exec(
        "BEGIN; SELECT set_config('threadline.actor_ref', '{\"type\":\"user\",\"id\":\"1\"}', true),
                       set_config('threadline.correlation_id', 'c-1', true);
         INSERT INTO items SELECT g, 'v' FROM generate_series(1, 5) g; COMMIT;",
    )
    .await;
    db.exec(
        "BEGIN; SELECT set_config('threadline.actor_ref', '{\"type\":\"user\",\"id\":\"2\"}', true),
                       set_config('threadline.trace_id', '4bf92f3577b34da6a3ce929d0e0e4736', true);
         UPDATE items SET v = 'w' WHERE id = 1; COMMIT;",
    )
    .await;
    db.exec(
        "BEGIN; SELECT set_config('threadline.actor_ref', '{\"type\":\"user\",\"id\":\"1\"}', true);
         DELETE FROM items WHERE id = 2; COMMIT;",
    )
    .await;
    db
}

fn files(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn each_format_to_a_file_and_to_stdout() {
    let db = trail().await;
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) = run(threadline_on(&db, dir.path()).args([
        "export",
        "--format",
        "csv",
        "-o",
        "out/trail.csv",
    ]));
    assert_eq!(code, 0, "{err}");
    assert!(out.is_empty());
    assert_eq!(err, "wrote 7 changes to out/trail.csv\n");
    let csv = std::fs::read_to_string(dir.path().join("out/trail.csv")).unwrap();
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 7);
    assert_eq!(
        (&rows[0][5], &rows[0][11]),
        ("delete", "{\"id\":\"1\",\"type\":\"user\"}")
    );
    assert_eq!(&reader.headers().unwrap()[14], "trace_id");
    assert_eq!(
        (&rows[0][14], &rows[1][14]),
        ("", "4bf92f3577b34da6a3ce929d0e0e4736")
    );
    assert_eq!(
        files(&dir.path().join("out")),
        ["trail.csv"],
        "no temporary file left"
    );

    let (code, out, err) = run(threadline_on(&db, dir.path()).args(["export", "--format", "json"]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(err, "wrote 7 changes to stdout\n");
    let doc: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["format_version"], 1);
    assert_eq!(doc["changes"].as_array().unwrap().len(), 7);
    assert_eq!(doc["changes"][1]["transaction"]["actor_ref"]["id"], "2");
    assert_eq!(
        doc["changes"][1]["transaction"]["trace_id"],
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );

    let (code, out, _) =
        run(threadline_on(&db, dir.path()).args(["export", "--format", "ndjson", "--all"]));
    assert_eq!(code, 0);
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(Value::Array(lines), doc["changes"]);
}

/// `-o` into folders that do not exist creates them, and `--help` says so (a typo in the path
/// makes new folders rather than an error).
#[tokio::test]
async fn output_into_missing_folders_creates_them_as_help_says() {
    let db = trail().await;
    let dir = tempfile::tempdir().unwrap();
    let (code, help, _) = run(threadline(dir.path()).args(["export", "--help"]));
    assert_eq!(code, 0);
    let flag = help
        .split("\n\n")
        .find(|block| block.contains("--output <OUTPUT>"))
        .unwrap_or_else(|| panic!("no -o in the help: {help}"));
    let flag = flag.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        flag.contains("Missing parent folders are created, so check the path for typos"),
        "{flag}"
    );

    let (code, _, err) = run(threadline_on(&db, dir.path()).args([
        "export",
        "--format",
        "csv",
        "-o",
        "no/such/dir/x.csv",
    ]));
    assert_eq!(code, 0, "{err}");
    assert_eq!(err, "wrote 7 changes to no/such/dir/x.csv\n");
    assert_eq!(files(&dir.path().join("no/such/dir")), ["x.csv"]);
}

#[tokio::test]
async fn filters_dry_run_and_truncation() {
    let db = trail().await;
    let dir = tempfile::tempdir().unwrap();
    let count = |args: &[&str]| {
        let (code, out, err) = run(threadline_on(&db, dir.path())
            .args(["export", "--dry-run"])
            .args(args));
        assert_eq!(code, 0, "{args:?}: {err}");
        out.trim()
            .strip_suffix(" changes match")
            .unwrap()
            .parse::<u64>()
            .unwrap()
    };
    assert_eq!(count(&[]), 7);
    assert_eq!(count(&["--table", "items"]), 7);
    assert_eq!(count(&["--table", "other"]), 0);
    assert_eq!(count(&["--actor", "user:1"]), 6);
    assert_eq!(count(&["--actor", "user:2", "--op", "update"]), 1);
    assert_eq!(count(&["--correlation-id", "c-1"]), 5);
    assert_eq!(count(&["--request-id", "none"]), 0);
    assert_eq!(
        count(&["--trace-id", "4bf92f3577b34da6a3ce929d0e0e4736"]),
        1
    );
    assert_eq!(
        count(&["--from", "2000-01-01", "--to", "2999-12-31T00:00:00+02:00"]),
        7
    );
    assert_eq!(count(&["--to", "2000-01-01"]), 0);
    assert!(files(dir.path()).is_empty(), "a dry run writes nothing");

    let (code, out, err) = run(threadline_on(&db, dir.path()).args([
        "export",
        "--format",
        "ndjson",
        "--max-rows",
        "2",
        "--actor",
        "user:1",
    ]));
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 2);
    assert!(
        err.contains("wrote 2 changes to stdout") && err.contains("truncated at --max-rows 2"),
        "{err}"
    );
    let (_, out, err) = run(threadline_on(&db, dir.path()).args([
        "export",
        "--format",
        "ndjson",
        "--max-rows",
        "7",
    ]));
    assert_eq!(out.lines().count(), 7);
    assert!(!err.contains("truncated"), "{err}");
}

#[tokio::test]
async fn bad_input_and_failing_outputs_leave_no_file() {
    let db = trail().await;
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&[&str], i32, &str); 9] = [
        (
            &["--from", "yesterday"],
            1,
            "invalid --from \"yesterday\": use ISO 8601 with an offset",
        ),
        (
            &["--to", "2026-01-31T10:00:00"],
            1,
            "add a UTC offset such as Z or +02:00",
        ),
        (
            &["--actor", "42"],
            1,
            "invalid --actor \"42\": use TYPE:ID such as user:42",
        ),
        (&["--actor", "robot:1"], 1, "invalid --actor"),
        (&["--op", "upsert"], 1, "invalid --op \"upsert\""),
        (
            &["--trace-id", "4BF92F3577B34DA6A3CE929D0E0E4736"],
            1,
            "invalid --trace-id \"4BF92F3577B34DA6A3CE929D0E0E4736\": invalid trace id: not 32 lowercase hex digits",
        ),
        (
            &["--from", "2026-02-01", "--to", "2026-01-01"],
            1,
            "swap them",
        ),
        (&["--all", "--max-rows", "5"], 2, "cannot be used with"),
        (&["--schema", "nope"], 1, "nope"),
    ];
    for (args, code, message) in cases {
        let (got, out, err) = run(threadline_on(&db, dir.path())
            .args(["export", "--format", "csv", "-o", "x.csv"])
            .args(args));
        assert_eq!(got, code, "{args:?}: {err}");
        assert!(err.contains(message), "{args:?}: {err}");
        assert!(out.is_empty());
        assert!(
            files(dir.path()).is_empty(),
            "{args:?} left {:?}",
            files(dir.path())
        );
    }
    std::fs::write(dir.path().join("a-file"), "x").unwrap();
    let (code, _, err) = run(threadline_on(&db, dir.path()).args([
        "export",
        "--format",
        "csv",
        "-o",
        "a-file/x.csv",
    ]));
    assert_eq!(code, 1);
    assert!(err.contains("cannot create directory a-file"), "{err}");
    std::fs::create_dir(dir.path().join("taken")).unwrap();
    let (code, _, err) =
        run(threadline_on(&db, dir.path()).args(["export", "--format", "json", "-o", "taken"]));
    assert_eq!(code, 1);
    assert!(err.contains("cannot create taken"), "{err}");
    assert_eq!(
        files(dir.path()),
        ["a-file", "taken"],
        "no temporary file left"
    );
    assert!(files(&dir.path().join("taken")).is_empty());

    let (code, _, err) = run(threadline(dir.path()).args(["export", "--format", "csv"]));
    assert_eq!(code, 1);
    assert!(err.contains("pass --database-url"), "{err}");
    let (code, _, err) = run(threadline(dir.path()).arg("export"));
    assert_eq!(code, 2);
    assert!(err.contains("--format"), "{err}");
}

/// Ctrl-C or SIGTERM in the middle of an export: the command stops with 128 + the signal's
/// number and removes the temporary file it was writing, so no partial export is left.
#[tokio::test]
async fn an_interrupted_export_leaves_no_file() {
    let db = trail().await;
    for (signal, code, name) in [("INT", 130, "SIGINT"), ("TERM", 143, "SIGTERM")] {
        let dir = tempfile::tempdir().unwrap();
        // The lock makes the export wait inside its query, after it created its output file.
        let mut lock = db.pool.begin().await.unwrap();
        sqlx::query("LOCK TABLE audit_changes IN ACCESS EXCLUSIVE MODE")
            .execute(&mut *lock)
            .await
            .unwrap();
        let child = std::process::Command::new(assert_cmd::cargo::cargo_bin("threadline"))
            .args(["export", "--format", "csv", "-o", "out/trail.csv"])
            .env("DATABASE_URL", &db.url)
            .current_dir(dir.path())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let out = dir.path().join("out");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !out.exists() || files(&out).is_empty() {
            assert!(
                std::time::Instant::now() < deadline,
                "the export never started its file"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let status = std::process::Command::new("kill")
            .args([format!("-{signal}"), child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let output = tokio::task::spawn_blocking(move || child.wait_with_output())
            .await
            .unwrap()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(code), "{stderr}");
        assert!(
            stderr.contains(&format!("interrupted by {name}")),
            "{stderr}"
        );
        assert!(files(&out).is_empty(), "left behind: {:?}", files(&out));
        lock.rollback().await.unwrap();
    }
}
