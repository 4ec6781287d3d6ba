//! Attaching capture to a table (`audit_table`): which tables are accepted, names of any
//! shape, and regenerating the triggers.

mod support;

use serde_json::json;
use threadline_sqlx::{Error, InstallOptions, TableCapture, TableName, audit_table};
use threadline_test_support::{TestDb, changes};

use support::POSTS;

#[tokio::test]
async fn table_without_primary_key_is_refused_unless_key_columns_are_given() {
    let db = TestDb::installed().await;
    db.exec("CREATE TABLE events (ref text NOT NULL, payload text)")
        .await;
    let table: TableName = "events".parse().unwrap();
    let err = audit_table(
        &db.pool,
        &InstallOptions::default(),
        &table,
        &TableCapture::default(),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("has no primary key"), "{err}");
    assert!(
        err.to_string().contains("key_columns"),
        "the message says how to fix it: {err}"
    );
    assert_eq!(
        db.scalar(
            "SELECT count(*) FROM pg_trigger WHERE NOT tgisinternal AND tgname LIKE 'threadline%'"
        )
        .await,
        0
    );

    db.audit("events", &TableCapture::default().key_columns(["ref"]))
        .await;
    db.exec("INSERT INTO events VALUES ('r1', 'p')").await;
    assert_eq!(changes(&db).await[0].table_pk, json!({"ref": "r1"}));
}

#[tokio::test]
async fn schema_qualified_mixed_case_and_long_names() {
    let db = TestDb::installed().await;
    let long_a = format!("{}_a", "x".repeat(61));
    let long_b = format!("{}_b", "x".repeat(61));
    db.exec(&format!(
        r#"CREATE SCHEMA "Sales";
           CREATE TABLE "Sales"."OrderLines" ("LineId" int PRIMARY KEY, qty int);
           CREATE TABLE {long_a} (id int PRIMARY KEY);
           CREATE TABLE {long_b} (id int PRIMARY KEY);"#
    ))
    .await;
    db.audit(r#""Sales"."OrderLines""#, &TableCapture::default())
        .await;
    db.audit(&long_a, &TableCapture::default()).await;
    db.audit(&long_b, &TableCapture::default()).await;
    db.exec(&format!(
        r#"INSERT INTO "Sales"."OrderLines" VALUES (1, 2);
           INSERT INTO {long_a} VALUES (1);
           INSERT INTO {long_b} VALUES (2);"#
    ))
    .await;
    let c = changes(&db).await;
    assert_eq!(
        (c[0].table_schema.as_str(), c[0].table_name.as_str()),
        ("Sales", "OrderLines")
    );
    assert_eq!(c[0].table_pk, json!({"LineId": 1}));
    assert_eq!(c[1].table_name, long_a);
    assert_eq!(c[2].table_name, long_b);
    assert_eq!(
        db.scalar("SELECT count(DISTINCT tgfoid) FROM pg_trigger WHERE tgname LIKE 'threadline%'")
            .await,
        3,
        "each long table has its own capture function"
    );
}

#[tokio::test]
async fn regenerating_replaces_the_triggers() {
    let db = TestDb::installed().await;
    db.exec(POSTS).await;
    db.audit("posts", &TableCapture::default()).await;
    db.audit("posts", &TableCapture::default().mask(["title"]))
        .await;
    assert_eq!(
        db.scalar(
            "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'posts'::regclass AND NOT tgisinternal"
        )
        .await,
        5,
        "insert, update, delete, truncate, and the row-level update trigger for key changes"
    );
    db.exec("INSERT INTO posts (title) VALUES ('secret')").await;
    let c = changes(&db).await;
    assert_eq!(c.len(), 1, "one capture per write");
    assert_eq!(c[0].data_after.as_ref().unwrap()["title"], "[REDACTED]");
}

#[tokio::test]
async fn audit_tables_can_never_be_audited() {
    let db = TestDb::installed().await;
    for name in [
        "audit_changes",
        "public.audit_transactions",
        "audit_actions",
    ] {
        let table: TableName = name.parse().unwrap();
        let err = audit_table(
            &db.pool,
            &InstallOptions::default(),
            &table,
            &TableCapture::default(),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, Error::Core(_)), "{err}");
        assert!(err.to_string().contains("can never be audited"), "{err}");
    }
}
