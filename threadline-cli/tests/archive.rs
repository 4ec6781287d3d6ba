//! `threadline archive` through the binary on the real PostgreSQL: the Parquet files are read
//! back with the `parquet` crate and every change and transaction compared with the
//! database; the manifest, reruns, `--drop`, the plain layout and bad input.

mod support;

use std::path::Path;

use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::{Field, Row};
use support::{run, stdout_of, threadline_on};
use threadline_sqlx::PartitionInterval;
use threadline_test_support::TestDb;

/// Rows written straight into the trail (as capture would, with past times): 60 transactions
/// one day apart ending 10 days before the start of this month, one change each, with every
/// kind of value (JSON numbers that must keep their digits, NULL / empty / listed changed
/// fields, NULL and set optional columns, non-ASCII text).
const SEED: &str = "
CREATE TEMP TABLE base AS SELECT date_trunc('month', now()) - interval '70 days' AS t0;
INSERT INTO audit_transactions (txid, occurred_at, actor_ref, request_id, correlation_id, remote_ip, source, meta, trace_id)
SELECT g, (SELECT t0 FROM base) + g * interval '1 day',
       CASE WHEN g % 4 = 0 THEN NULL ELSE jsonb_build_object('type', 'user', 'id', 'u' || g) END,
       'req-' || g, CASE WHEN g % 2 = 0 THEN 'corr-' || g END,
       CASE WHEN g % 3 = 0 THEN inet '10.0.0.5' WHEN g % 3 = 1 THEN inet '2001:db8::1' END,
       CASE WHEN g % 5 = 0 THEN 'job' END,
       CASE WHEN g % 2 = 1 THEN '{\"n\": 1.10, \"big\": 12345678901234567890}'::jsonb END,
       CASE WHEN g % 3 = 2 THEN lpad(to_hex(g), 32, '0') END
FROM generate_series(1, 60) g;
INSERT INTO audit_changes (transaction_id, table_schema, table_name, table_pk, op, data_after, data_before, changed_fields, changed_from, captured_at)
SELECT t.id, 'public', 'items', jsonb_build_object('id', t.id), CASE WHEN t.id % 2 = 0 THEN 'update' ELSE 'insert' END,
       jsonb_build_object('id', t.id, 'v', 'ünïcode ' || t.id, 'price', 19.990),
       CASE WHEN t.id % 2 = 0 THEN jsonb_build_object('id', t.id, 'v', 'old') END,
       CASE WHEN t.id % 3 = 0 THEN NULL WHEN t.id % 3 = 1 THEN '{}'::text[] ELSE '{v,price}'::text[] END,
       CASE WHEN t.id % 2 = 0 THEN '{\"v\": \"old\"}'::jsonb END,
       t.occurred_at + interval '1 second'
FROM audit_transactions t;";

const CHANGES_TEXT: &str = "SELECT format('%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s', id, transaction_id, table_schema,
        table_name, table_pk, op, coalesce(data_after::text, 'NULL'), coalesce(data_before::text, 'NULL'),
        coalesce(changed_fields::text, 'NULL'), coalesce(changed_from::text, 'NULL'),
        (extract(epoch FROM captured_at) * 1000000)::bigint)
    FROM audit_changes WHERE captured_at < date_trunc('month', now()) ORDER BY id";

const TRANSACTIONS_TEXT: &str = "SELECT format('%s|%s|%s|%s|%s|%s|%s|%s|%s|%s', id, txid,
        (extract(epoch FROM occurred_at) * 1000000)::bigint, coalesce(actor_ref::text, 'NULL'),
        coalesce(request_id, 'NULL'), coalesce(correlation_id, 'NULL'), coalesce(host(remote_ip), 'NULL'),
        coalesce(source, 'NULL'), coalesce(meta::text, 'NULL'), coalesce(trace_id, 'NULL'))
    FROM audit_transactions WHERE occurred_at < date_trunc('month', now()) ORDER BY id";

async fn texts(db: &TestDb, sql: &str) -> Vec<String> {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_all(&db.pool)
        .await
        .unwrap()
}

async fn seeded(layout: Option<PartitionInterval>) -> TestDb {
    let db = match layout {
        Some(interval) => TestDb::installed_partitioned(interval).await,
        None => TestDb::installed_plain().await,
    };
    db.exec(SEED).await;
    if layout.is_some() {
        threadline_sqlx::ensure_partitions(
            &db.pool,
            &threadline_sqlx::InstallOptions::default(),
            &threadline_sqlx::EnsureOptions::default(),
        )
        .await
        .unwrap();
    }
    db
}

async fn this_month(db: &TestDb) -> String {
    sqlx::query_scalar("SELECT to_char(date_trunc('month', now()), 'YYYY-MM-DD')")
        .fetch_one(&db.pool)
        .await
        .unwrap()
}

fn text(row: &Row, i: usize) -> String {
    match &row.get_column_iter().nth(i).unwrap().1 {
        Field::Null => "NULL".to_owned(),
        Field::Str(s) => s.clone(),
        Field::Long(n) => n.to_string(),
        Field::TimestampMicros(n) => n.to_string(),
        Field::ListInternal(list) => {
            let items: Vec<String> = list
                .elements()
                .iter()
                .map(|f| match f {
                    Field::Str(s) => s.clone(),
                    other => panic!("list element {other:?}"),
                })
                .collect();
            format!("{{{}}}", items.join(","))
        }
        other => panic!("unexpected field {other:?}"),
    }
}

/// Every row of the Parquet files of `table` in `dir`, in the text form of the queries above,
/// ordered by id.
fn parquet_rows(dir: &Path, table: &str) -> Vec<String> {
    let mut rows: Vec<(i64, String)> = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !(name.starts_with(&format!("{table}_")) && name.ends_with(".parquet")) {
            continue;
        }
        let reader = SerializedFileReader::try_from(path.as_path()).unwrap();
        for row in reader.get_row_iter(None).unwrap() {
            let row = row.unwrap();
            let n = row.len();
            let fields: Vec<String> = (0..n).map(|i| text(&row, i)).collect();
            rows.push((fields[0].parse().unwrap(), fields.join("|")));
        }
    }
    rows.sort();
    rows.into_iter().map(|(_, r)| r).collect()
}

fn sha256_hex(path: &Path) -> String {
    use sha2::Digest;
    let bytes = std::fs::read(path).unwrap();
    sha2::Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test]
async fn parquet_archive_holds_every_row_verifies_reruns_and_drops() {
    let db = seeded(Some(PartitionInterval::Month)).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("archive");
    let before = this_month(&db).await;
    let archive = |extra: &[&str]| {
        let mut cmd = threadline_on(&db, dir.path());
        cmd.args(["archive", "--before", &before, "--out"])
            .arg(&out)
            .args(extra);
        cmd
    };
    let first = stdout_of(&mut archive(&[]));
    assert!(first.contains("verified"), "{first}");

    // Every change and transaction before the cutoff, field by field.
    let changes = texts(&db, CHANGES_TEXT).await;
    assert_eq!(changes.len(), 60);
    assert_eq!(parquet_rows(&out, "audit_changes"), changes);
    let transactions = texts(&db, TRANSACTIONS_TEXT).await;
    assert_eq!(parquet_rows(&out, "audit_transactions"), transactions);
    // JSON keeps its digits.
    assert!(changes.iter().any(|c| c.contains("19.990")), "{changes:?}");

    // The manifest lists each file with its rows, ids and SHA-256; no temporary file is left.
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    let files = manifest["files"].as_array().unwrap();
    let names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), files.len() + 1, "{names:?}");
    let mut rows = 0;
    for f in files {
        let path = out.join(f["file"].as_str().unwrap());
        assert_eq!(f["sha256"].as_str().unwrap(), sha256_hex(&path));
        rows += f["rows"].as_u64().unwrap();
        assert!(f["min_id"].as_i64().unwrap() <= f["max_id"].as_i64().unwrap());
    }
    assert_eq!(rows, 120);

    // A rerun skips the verified files and rewrites a damaged one.
    let damaged = out.join(files[0]["file"].as_str().unwrap());
    std::fs::write(&damaged, b"not parquet").unwrap();
    let again = stdout_of(&mut archive(&[]));
    assert_eq!(again.matches("skipped").count(), files.len() - 1, "{again}");
    assert_eq!(parquet_rows(&out, "audit_changes"), changes);

    // --drop: the archived partitions go, the rest of the trail stays.
    let total = db.scalar("SELECT count(*) FROM audit_changes").await;
    let dropped = stdout_of(&mut archive(&["--drop"]));
    assert!(dropped.contains("dropped"), "{dropped}");
    assert_eq!(
        db.scalar("SELECT count(*) FROM audit_changes").await,
        total - 60
    );
    assert_eq!(
        db.scalar("SELECT count(*) FROM pg_class WHERE relname LIKE 'audit_changes_p%' AND relname < 'audit_changes_p' || to_char(date_trunc('month', now()), 'YYYYMMDD')")
            .await,
        0
    );
    // Nothing is left before the cutoff: a new run cuts nothing.
    let (code, _, err) = run(&mut archive(&[]));
    assert_eq!(code, 1);
    assert!(err.contains("cuts nothing"), "{err}");
}

#[tokio::test]
async fn drop_keeps_a_transaction_partition_whose_changes_stay() {
    let db = seeded(Some(PartitionInterval::Month)).await;
    // A transaction of last month with a change captured this month.
    let straddler = db
        .scalar(
            "INSERT INTO audit_transactions (txid, occurred_at) VALUES (9, date_trunc('month', now()) - interval '1 hour') RETURNING id",
        )
        .await;
    db.exec(&format!(
        "INSERT INTO audit_changes (transaction_id, table_schema, table_name, table_pk, op, captured_at)
         VALUES ({straddler}, 'public', 'items', '{{\"id\": 1}}', 'delete', date_trunc('month', now()) + interval '1 minute')"
    ))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let before = this_month(&db).await;
    let out = stdout_of(
        threadline_on(&db, dir.path())
            .args(["archive", "--before", &before, "--drop", "--out", "a"]),
    );
    assert!(out.contains("kept: 1 changes"), "{out}");
    // No change lost its transaction row.
    assert_eq!(
        db.scalar(
            "SELECT count(*) FROM audit_changes c WHERE NOT EXISTS (SELECT 1 FROM audit_transactions t WHERE t.id = c.transaction_id)"
        )
        .await,
        0
    );
}

#[tokio::test]
async fn ndjson_and_the_plain_layout_write_one_file_per_month() {
    let db = seeded(None).await;
    let dir = tempfile::tempdir().unwrap();
    let before = this_month(&db).await;
    stdout_of(threadline_on(&db, dir.path()).args([
        "archive", "--before", &before, "--out", "a", "--format", "ndjson",
    ]));
    let months: i64 = db
        .scalar(
            "SELECT count(DISTINCT date_trunc('month', captured_at, 'UTC')) FROM audit_changes WHERE captured_at < date_trunc('month', now())",
        )
        .await;
    let mut ids = Vec::new();
    let mut files = 0;
    for entry in std::fs::read_dir(dir.path().join("a")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("audit_changes_") {
            files += 1;
            assert!(name.ends_with(".ndjson"), "{name}");
            for line in std::fs::read_to_string(&path).unwrap().lines() {
                let v: serde_json::Value = serde_json::from_str(line).unwrap();
                ids.push(v["id"].as_i64().unwrap());
                assert!(v["captured_at"].as_str().unwrap().ends_with('Z'));
            }
        }
    }
    assert_eq!(files, months);
    ids.sort();
    assert_eq!(ids, (1..=60).collect::<Vec<i64>>());
    // --drop needs partitions; retention deletes the rows of a plain trail.
    let (code, _, err) = run(threadline_on(&db, dir.path())
        .args(["archive", "--before", &before, "--out", "a", "--drop"]));
    assert_eq!(code, 1);
    assert!(err.contains("retention purge"), "{err}");
    assert_eq!(db.scalar("SELECT count(*) FROM audit_changes").await, 60);
}

#[tokio::test]
async fn bad_input_is_refused_with_the_fix_and_leaves_nothing() {
    let db = seeded(Some(PartitionInterval::Month)).await;
    let dir = tempfile::tempdir().unwrap();
    let before = this_month(&db).await;
    let archive = |args: &[&str]| run(threadline_on(&db, dir.path()).arg("archive").args(args));

    let (code, _, err) = archive(&["--before", "2999-01-01", "--out", "a"]);
    assert_eq!(code, 1);
    assert!(err.contains("in the future"), "{err}");
    let (code, _, err) = archive(&["--before", "2001-01-01", "--out", "a"]);
    assert_eq!(code, 1);
    assert!(err.contains("cuts nothing"), "{err}");
    let (code, _, err) = archive(&["--before", "last tuesday", "--out", "a"]);
    assert_eq!(code, 1);
    assert!(err.contains("2026-01-31"), "{err}");
    std::fs::write(dir.path().join("file"), "x").unwrap();
    let (code, _, err) = archive(&["--before", &before, "--out", "file/sub"]);
    assert_eq!(code, 1);
    assert!(err.contains("--out"), "{err}");

    // Rows in DEFAULT before the cutoff must get their partitions first.
    db.exec("ALTER TABLE audit_changes DETACH PARTITION audit_changes_default;
             INSERT INTO audit_changes_default (id, transaction_id, table_schema, table_name, table_pk, op, captured_at)
                 VALUES (999999, 1, 'public', 'items', '{}', 'insert', '2001-01-01');
             ALTER TABLE audit_changes ATTACH PARTITION audit_changes_default DEFAULT;")
        .await;
    let (code, _, err) = archive(&["--before", &before, "--out", "a"]);
    assert_eq!(code, 1);
    assert!(err.contains("partitions ensure"), "{err}");
    db.exec("DELETE FROM audit_changes_default").await;

    // A concurrent run is refused.
    let mut holder = db.connect().await;
    sqlx::query("SELECT pg_advisory_lock(hashtextextended('threadline archive public', 0))")
        .execute(&mut holder)
        .await
        .unwrap();
    let (code, _, err) = archive(&["--before", &before, "--out", "a"]);
    assert_eq!(code, 1);
    assert!(err.contains("another archive run"), "{err}");
    drop(holder);
    assert!(!dir.path().join("a").join("manifest.json").exists());
}

/// A write that fails mid-archive (here: the file size limit, as a full disk would) leaves
/// no file under its final name and keeps every partition; a rerun finishes the job.
#[tokio::test]
async fn a_failed_write_keeps_the_partitions_and_a_rerun_completes() {
    let db = seeded(Some(PartitionInterval::Month)).await;
    db.exec(
        "INSERT INTO audit_changes (transaction_id, table_schema, table_name, table_pk, op, data_after, captured_at)
         SELECT 1, 'public', 'items', jsonb_build_object('id', g), 'update',
                jsonb_build_object('body', md5(g::text) || repeat(md5((g * 7)::text), 20)),
                date_trunc('month', now()) - interval '40 days'
         FROM generate_series(1, 3000) g",
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let before = this_month(&db).await;
    let bin = assert_cmd::cargo::cargo_bin("threadline");
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!(
            "trap '' XFSZ; ulimit -f 64; exec '{}' archive --before {before} --drop --out a",
            bin.display()
        ))
        .current_dir(dir.path())
        .env("DATABASE_URL", &db.url)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("partition was kept"), "{err}");
    let names: Vec<String> = std::fs::read_dir(dir.path().join("a"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.starts_with(".tmp")), "{names:?}");
    let changes = db.scalar("SELECT count(*) FROM audit_changes").await;
    assert_eq!(changes, 3060);
    let rerun = stdout_of(
        threadline_on(&db, dir.path()).args(["archive", "--before", &before, "--out", "a"]),
    );
    assert!(rerun.contains("skipped"), "{rerun}");
    assert_eq!(
        parquet_rows(&dir.path().join("a"), "audit_changes").len(),
        3060
    );
}

#[tokio::test]
async fn the_archive_carries_its_seals_and_a_drop_marks_them_purged() {
    let db = seeded(Some(PartitionInterval::Month)).await;
    let dir = tempfile::tempdir().unwrap();
    support::seal(&db, dir.path());
    let head: String =
        sqlx::query_scalar("SELECT encode(hash, 'hex') FROM audit_seals ORDER BY id DESC LIMIT 1")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    let before = this_month(&db).await;
    let out = stdout_of(
        threadline_on(&db, dir.path())
            .args(["archive", "--before", &before, "--drop", "--out", "a"]),
    );
    assert!(out.contains("dropped"), "{out}");

    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("a/manifest.json")).unwrap())
            .unwrap();
    let seals = manifest["seals"].as_array().unwrap();
    assert_eq!(seals.len(), 1, "{manifest:#}");
    assert_eq!(seals[0]["hash"], head.as_str());
    assert_eq!(seals[0]["transaction_count"], 60);

    // The dropped rows took the seal's content with them: it is marked purged, and
    // verification still passes, from the oldest retained seal.
    assert_eq!(
        db.scalar("SELECT count(*) FROM audit_seals WHERE purged_at IS NOT NULL")
            .await,
        1
    );
    let (code, out, err) = run(threadline_on(&db, dir.path()).arg("verify-seals"));
    assert_eq!(code, 0, "{out}{err}");
}
