//! TRUNCATE capture on the real PostgreSQL: the `truncate` change with its row count, the
//! `images` policy and its row limit, `CASCADE`, coverage, and the query and export APIs.

use serde_json::{Value, json};
use threadline_sqlx::{
    ChangeOp, Config, CoverageStatus, ExportOptions, InstallOptions, Page, TableCapture,
    Threadline, TimelineFilter, TruncateCapture, trigger_coverage,
};
use threadline_test_support::TestDb;

async fn changes(db: &TestDb) -> Vec<(String, String, Value, Option<Value>)> {
    sqlx::query_as(
        "SELECT table_name, op, table_pk, data_before FROM audit_changes
         WHERE op IN ('truncate', 'delete') ORDER BY id",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn truncate_is_one_change_with_an_empty_key_and_the_row_count() {
    let db = TestDb::installed().await;
    db.exec("CREATE TABLE posts (id int PRIMARY KEY, title text)")
        .await;
    db.audit("posts", &TableCapture::default()).await;
    db.exec("INSERT INTO posts SELECT g, 't' || g FROM generate_series(1, 7) g; TRUNCATE posts; TRUNCATE posts")
        .await;
    assert_eq!(
        changes(&db).await,
        [
            (
                "posts".into(),
                "truncate".into(),
                json!({}),
                Some(json!({"rows": 7}))
            ),
            (
                "posts".into(),
                "truncate".into(),
                json!({}),
                Some(json!({"rows": 0}))
            ),
        ]
    );

    let tl = Threadline::new(db.pool.clone());
    let page = tl
        .timeline(&TimelineFilter::new().op(ChangeOp::Truncate), Page::first())
        .await
        .unwrap();
    let removed: Vec<Option<i64>> = page.items.iter().map(|c| c.rows_removed()).collect();
    assert_eq!(removed, [Some(0), Some(7)]);
    assert!(page.items.iter().all(|c| c.image().is_none()));

    let filter = TimelineFilter::new().op(ChangeOp::Truncate);
    let csv = tl
        .export_csv(&filter, &ExportOptions::default())
        .await
        .unwrap();
    assert_eq!(csv.returned_count, 2);
    assert!(csv.data.contains(",truncate,"), "{}", csv.data);
    let ndjson = tl
        .export_ndjson(&filter, &ExportOptions::default())
        .await
        .unwrap();
    let first: Value = serde_json::from_str(ndjson.data.lines().next().unwrap()).unwrap();
    assert_eq!(first["op"], "truncate");
    assert_eq!(first["table_pk"], json!({}));
    assert_eq!(first["data_before"], json!({"rows": 0}));
}

#[tokio::test]
async fn a_rolled_back_truncate_leaves_no_change_and_the_rows() {
    let db = TestDb::installed().await;
    db.exec("CREATE TABLE posts (id int PRIMARY KEY)").await;
    db.audit("posts", &TableCapture::default()).await;
    db.exec("INSERT INTO posts VALUES (1); BEGIN; TRUNCATE posts; ROLLBACK")
        .await;
    assert!(changes(&db).await.is_empty());
}

#[tokio::test]
async fn images_stores_every_removed_row_as_a_redacted_delete_in_the_same_transaction() {
    let db = TestDb::installed().await;
    db.exec("CREATE TABLE users (id int PRIMARY KEY, email text, name text)")
        .await;
    db.audit(
        "users",
        &TableCapture::default()
            .mask(["email"])
            .truncate(TruncateCapture::Images),
    )
    .await;
    db.exec("INSERT INTO users VALUES (1, 'a@x', 'Ann'), (2, 'b@x', 'Bo'); TRUNCATE users")
        .await;
    let found = changes(&db).await;
    assert_eq!(found.len(), 3, "{found:?}");
    let deletes: Vec<&(String, String, Value, Option<Value>)> =
        found.iter().filter(|c| c.1 == "delete").collect();
    assert_eq!(deletes[0].2, json!({"id": 1}));
    assert_eq!(
        deletes[0].3,
        Some(json!({"id": 1, "email": "[REDACTED]", "name": "Ann"}))
    );
    assert_eq!(deletes[1].2, json!({"id": 2}));
    assert_eq!(found[2].1, "truncate");
    assert_eq!(found[2].3, Some(json!({"rows": 2})));
    let transactions: i64 =
        sqlx::query_scalar("SELECT count(DISTINCT transaction_id) FROM audit_changes")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(transactions, 1);

    // The row's history ends with its delete, as after a DELETE.
    let history = Threadline::new(db.pool.clone())
        .history("users", 2)
        .await
        .unwrap();
    assert_eq!(history[0].op, ChangeOp::Delete);
}

#[tokio::test]
async fn images_over_the_row_limit_refuses_the_truncate_and_keeps_the_rows() {
    let db = TestDb::installed().await;
    db.exec("CREATE TABLE big (id int PRIMARY KEY)").await;
    db.audit(
        "big",
        &TableCapture::default()
            .truncate(TruncateCapture::Images)
            .truncate_row_limit(3),
    )
    .await;
    db.exec("INSERT INTO big SELECT generate_series(1, 4)")
        .await;
    let err = sqlx::raw_sql("TRUNCATE big")
        .execute(&db.pool)
        .await
        .unwrap_err();
    let pg = err.as_database_error().unwrap();
    assert_eq!(pg.code().as_deref(), Some("54000"), "{err}");
    assert!(
        pg.message()
            .contains("TRUNCATE of public.big refused: it holds more than 3 rows"),
        "{err}"
    );
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM big")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(rows, 4);
    assert!(changes(&db).await.is_empty());

    // At the limit it goes through.
    db.exec("DELETE FROM big WHERE id = 4; TRUNCATE big").await;
    let found = changes(&db).await;
    assert_eq!(found.len(), 1 + 3 + 1, "{found:?}");
    assert_eq!(found.last().unwrap().3, Some(json!({"rows": 3})));
}

#[tokio::test]
async fn truncate_cascade_records_each_audited_table() {
    let db = TestDb::installed().await;
    db.exec(
        "CREATE TABLE authors (id int PRIMARY KEY);
         CREATE TABLE books (id int PRIMARY KEY, author_id int REFERENCES authors);
         CREATE TABLE reviews (id int PRIMARY KEY, book_id int REFERENCES books);",
    )
    .await;
    db.audit("authors", &TableCapture::default()).await;
    db.audit("books", &TableCapture::default()).await;
    db.audit(
        "reviews",
        &TableCapture::default().truncate(TruncateCapture::Images),
    )
    .await;
    db.exec(
        "INSERT INTO authors VALUES (1), (2);
         INSERT INTO books VALUES (10, 1), (11, 1), (12, 2);
         INSERT INTO reviews VALUES (100, 10);
         TRUNCATE authors CASCADE;",
    )
    .await;
    let mut found: Vec<(String, String, Option<Value>)> = changes(&db)
        .await
        .into_iter()
        .map(|(t, op, _, before)| (t, op, before))
        .collect();
    found.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    assert_eq!(
        found,
        [
            (
                "authors".into(),
                "truncate".into(),
                Some(json!({"rows": 2}))
            ),
            ("books".into(), "truncate".into(), Some(json!({"rows": 3}))),
            (
                "reviews".into(),
                "delete".into(),
                Some(json!({"id": 100, "book_id": 10}))
            ),
            (
                "reviews".into(),
                "truncate".into(),
                Some(json!({"rows": 1}))
            ),
        ]
    );
}

#[tokio::test]
async fn a_table_without_the_truncate_trigger_is_stale() {
    let db = TestDb::installed().await;
    db.exec("CREATE TABLE posts (id int PRIMARY KEY)").await;
    db.audit("posts", &TableCapture::default()).await;
    let status = |rows: Vec<threadline_sqlx::TableCoverage>| {
        rows.into_iter()
            .find(|t| t.table.name().as_str() == "posts")
            .unwrap()
    };
    let install = InstallOptions::default();
    let before = status(
        trigger_coverage(&db.pool, &install, &Config::default())
            .await
            .unwrap(),
    );
    assert_eq!(before.status, CoverageStatus::Covered);
    db.exec("DROP TRIGGER threadline_capture_truncate ON posts")
        .await;
    let after = status(
        trigger_coverage(&db.pool, &install, &Config::default())
            .await
            .unwrap(),
    );
    assert_eq!(after.status, CoverageStatus::Stale);
    assert!(
        after.explain().contains("threadline_capture_truncate"),
        "{}",
        after.explain()
    );
}
