//! Export on the real PostgreSQL: every format, truncation, every filter, streaming pages.

use chrono::{DateTime, TimeDelta, Utc};
use futures_util::TryStreamExt;
use serde_json::{Value, json};
use threadline_sqlx::{
    ActionOptions, ActorRef, AuditContext, ChangeOp, Error, ExportOptions, PoolExt, TableCapture,
    Threadline, TimelineFilter,
};
use threadline_test_support::TestDb;

/// posts and tags audited; five transactions:
/// 1. user:1, req-1, corr-a: insert posts 1, 2 (+ action post.created)
/// 2. user:2, req-2, corr-a: update post 1
/// 3. user:1, req-3: insert tag 1
/// 4. no context: delete post 2
/// 5. user:2, req-5, corr-b: update post 1 (+ two actions)
async fn trail() -> (TestDb, Threadline) {
    let db = TestDb::installed().await;
    db.exec("CREATE TABLE posts (id bigint PRIMARY KEY, title text); CREATE TABLE tags (id bigint PRIMARY KEY, name text);")
        .await;
    for t in ["posts", "tags"] {
        db.audit(t, &TableCapture::default()).await;
    }
    let ctx = |user: &str, req: &str, corr: Option<&str>| {
        let mut c = AuditContext::for_actor(ActorRef::user(user).unwrap()).with_request_id(req);
        if let Some(corr) = corr {
            c = c.with_correlation_id(corr);
        }
        c
    };
    let steps: [(Option<AuditContext>, &str, &[&str]); 5] = [
        (
            Some(ctx("1", "req-1", Some("corr-a"))),
            "INSERT INTO posts VALUES (1, 'one'), (2, 'two')",
            &["post.created"],
        ),
        (
            Some(ctx("2", "req-2", Some("corr-a"))),
            "UPDATE posts SET title = 'uno' WHERE id = 1",
            &[],
        ),
        (
            Some(ctx("1", "req-3", None)),
            "INSERT INTO tags VALUES (1, 'rust')",
            &[],
        ),
        (None, "DELETE FROM posts WHERE id = 2", &[]),
        (
            Some(ctx("2", "req-5", Some("corr-b"))),
            "UPDATE posts SET title = 'one, \"1\"' WHERE id = 1",
            &["post.edited", "post.reviewed"],
        ),
    ];
    for (context, sql, actions) in steps {
        let mut tx = match &context {
            Some(c) => db.pool.begin_with_context(c).await.unwrap(),
            None => db.pool.begin().await.unwrap(),
        };
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut *tx)
            .await
            .unwrap();
        for name in actions {
            Threadline::new(db.pool.clone())
                .on(&mut tx)
                .record_action(
                    name,
                    &ActorRef::user("1").unwrap(),
                    ActionOptions::new().reason("test"),
                )
                .await
                .unwrap();
        }
        tx.commit().await.unwrap();
    }
    let tl = Threadline::new(db.pool.clone());
    (db, tl)
}

fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(secs, 0).unwrap()
}

fn fixed() -> ExportOptions {
    ExportOptions::default().generated_at(at(1_800_000_000))
}

#[tokio::test]
async fn json_carries_transactions_and_actions_newest_first() {
    let (_db, tl) = trail().await;
    let export = tl
        .export_json(&TimelineFilter::new(), &fixed())
        .await
        .unwrap();
    assert_eq!(
        (export.truncated, export.returned_count, export.max_rows),
        (false, 6, 10_000)
    );
    let doc: Value = serde_json::from_str(&export.data).unwrap();
    assert_eq!(doc["format_version"], 1);
    assert_eq!(doc["generated_at"], "2027-01-15T08:00:00.000000Z");
    let changes = doc["changes"].as_array().unwrap();
    let ops: Vec<&str> = changes.iter().map(|c| c["op"].as_str().unwrap()).collect();
    assert_eq!(
        ops,
        ["update", "delete", "insert", "update", "insert", "insert"]
    );
    let newest = &changes[0];
    assert_eq!(newest["table_pk"], json!({"id": 1}));
    assert_eq!(
        newest["transaction"]["actor_ref"],
        json!({"type": "user", "id": "2"})
    );
    assert_eq!(newest["transaction"]["request_id"], "req-5");
    assert_eq!(newest["transaction"]["correlation_id"], "corr-b");
    let names: Vec<&str> = newest["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["post.edited", "post.reviewed"]);
    assert_eq!(
        changes[1]["transaction"]["actor_ref"],
        Value::Null,
        "no context: null actor"
    );
    assert_eq!(changes[1]["data_before"], json!({"id": 2, "title": "two"}));
    assert_eq!(
        changes[4]["actions"][0]["name"], "post.created",
        "both inserts carry the action"
    );
    assert_eq!(changes[5]["actions"][0]["name"], "post.created");
    // Sorted keys, ISO timestamps.
    assert!(
        export
            .data
            .starts_with("{\"changes\":[{\"actions\":[{\"actor_ref\":"),
        "{}",
        export.data
    );
    let captured = newest["captured_at"].as_str().unwrap();
    assert!(
        captured.ends_with('Z') && captured.len() == 27,
        "{captured}"
    );
    assert_eq!(
        export.data,
        tl.export_json(&TimelineFilter::new(), &fixed())
            .await
            .unwrap()
            .data,
        "deterministic"
    );
}

#[tokio::test]
async fn ndjson_and_csv_hold_the_same_changes() {
    let (_db, tl) = trail().await;
    let ndjson = tl
        .export_ndjson(&TimelineFilter::new(), &fixed())
        .await
        .unwrap();
    let lines: Vec<Value> = ndjson
        .data
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 6);
    let json: Value = serde_json::from_str(
        &tl.export_json(&TimelineFilter::new(), &fixed())
            .await
            .unwrap()
            .data,
    )
    .unwrap();
    assert_eq!(Value::Array(lines), json["changes"]);

    let csv = tl
        .export_csv(&TimelineFilter::new(), &fixed())
        .await
        .unwrap();
    assert_eq!(csv.returned_count, 6);
    let mut reader = csv::Reader::from_reader(csv.data.as_bytes());
    assert_eq!(
        reader.headers().unwrap().iter().collect::<Vec<_>>(),
        threadline_sqlx::CSV_HEADER
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 6);
    assert_eq!(&rows[0][5], "update");
    let data: Value = serde_json::from_str(&rows[0][7]).unwrap();
    assert_eq!(
        data,
        json!({"id": 1, "title": "one, \"1\""}),
        "commas and quotes survive"
    );
    assert_eq!((&rows[0][12], &rows[0][13]), ("req-5", "corr-b"));
    assert_eq!(&rows[1][11], "", "no actor: empty cell");
    let actions: Value = serde_json::from_str(&rows[0][16]).unwrap();
    assert_eq!(actions.as_array().unwrap().len(), 2);
    let ids: Vec<i64> = rows.iter().map(|r| r[0].parse().unwrap()).collect();
    let json_ids: Vec<i64> = json["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, json_ids);
}

#[tokio::test]
async fn max_rows_truncates_to_the_newest() {
    let (_db, tl) = trail().await;
    let export = tl
        .export_ndjson(&TimelineFilter::new(), &fixed().max_rows(2))
        .await
        .unwrap();
    assert_eq!(
        (export.truncated, export.returned_count, export.max_rows),
        (true, 2, 2)
    );
    assert_eq!(export.data.lines().count(), 2);
    let exact = tl
        .export_csv(&TimelineFilter::new(), &fixed().max_rows(6))
        .await
        .unwrap();
    assert_eq!((exact.truncated, exact.returned_count), (false, 6));
    let empty = tl
        .export_csv(&TimelineFilter::new().request_id("nope"), &fixed())
        .await
        .unwrap();
    assert_eq!((empty.truncated, empty.returned_count), (false, 0));
    assert_eq!(empty.data.lines().count(), 1, "header only");
    for bad in [0, 1_000_001] {
        let err = tl
            .export_json(&TimelineFilter::new(), &fixed().max_rows(bad))
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::InvalidInput {
                    field: "max_rows",
                    ..
                }
            ),
            "{err}"
        );
    }
}

#[tokio::test]
async fn every_filter_selects_what_timeline_selects() {
    let (db, tl) = trail().await;
    let times: Vec<DateTime<Utc>> =
        sqlx::query_scalar("SELECT captured_at FROM audit_changes ORDER BY id")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    let filters: [(TimelineFilter, usize); 8] = [
        (TimelineFilter::new().table("tags".parse().unwrap()), 1),
        (TimelineFilter::new().table("posts".parse().unwrap()), 5),
        (TimelineFilter::new().actor(ActorRef::user("1").unwrap()), 3),
        (TimelineFilter::new().from(times[3]), 3),
        (TimelineFilter::new().to(times[1]).from(times[0]), 2),
        (TimelineFilter::new().correlation_id("corr-a"), 3),
        (TimelineFilter::new().request_id("req-2"), 1),
        (
            TimelineFilter::new()
                .op(ChangeOp::Insert)
                .actor(ActorRef::user("1").unwrap()),
            3,
        ),
    ];
    for (filter, expected) in filters {
        let export = tl.export_ndjson(&filter, &fixed()).await.unwrap();
        assert_eq!(export.returned_count as usize, expected, "{filter:?}");
        assert_eq!(
            tl.count(&filter).await.unwrap() as usize,
            expected,
            "{filter:?}"
        );
        let streamed: Vec<_> = tl.export_stream(&filter).try_collect().await.unwrap();
        assert_eq!(streamed.len(), expected, "{filter:?}");
    }
    let future = TimelineFilter::new().from(Utc::now() + TimeDelta::days(1));
    assert_eq!(
        tl.export_json(&future, &fixed())
            .await
            .unwrap()
            .returned_count,
        0
    );
    let bad = TimelineFilter::new()
        .from(at(2_000_000_000))
        .to(at(1_000_000_000));
    assert!(tl.export_json(&bad, &fixed()).await.is_err());
    let err = tl
        .export_stream(&bad)
        .try_collect::<Vec<_>>()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("swap them"), "{err}");
}

#[tokio::test]
async fn the_stream_reads_every_change_once_across_pages() {
    let db = TestDb::installed().await;
    db.exec("CREATE TABLE items (id bigint PRIMARY KEY)").await;
    db.audit("items", &TableCapture::default()).await;
    // 2,500 changes in one statement share one transaction (and many share a timestamp).
    db.exec("INSERT INTO items SELECT generate_series(1, 2500)")
        .await;
    db.exec("UPDATE audit_changes SET captured_at = date_trunc('second', captured_at)")
        .await;
    let tl = Threadline::new(db.pool.clone());
    let records: Vec<_> = tl
        .export_stream(&TimelineFilter::new())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(records.len(), 2500);
    let mut ids: Vec<i64> = records.iter().map(|r| r.change.id).collect();
    let order_ok = records.windows(2).all(|w| {
        (w[0].change.captured_at, w[0].change.id) > (w[1].change.captured_at, w[1].change.id)
    });
    assert!(order_ok, "newest first, strictly");
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 2500, "no change twice");
    assert!(records.iter().all(|r| r.transaction.is_some()));

    let bounded = tl
        .export_ndjson(
            &TimelineFilter::new(),
            &ExportOptions::default().max_rows(2100),
        )
        .await
        .unwrap();
    assert_eq!((bounded.truncated, bounded.returned_count), (true, 2100));
    let lines: Vec<i64> = bounded
        .data
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["id"]
                .as_i64()
                .unwrap()
        })
        .collect();
    let streamed: Vec<i64> = records.iter().take(2100).map(|r| r.change.id).collect();
    assert_eq!(lines, streamed, "the bounded export is the stream's prefix");
}
