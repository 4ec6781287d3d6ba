//! Capture across schema changes of an audited table: added, dropped and renamed columns.

mod support;

use threadline_sqlx::TableCapture;
use threadline_test_support::{TestDb, changes};

use support::POSTS;

#[tokio::test]
async fn add_column_change_to_only_the_new_column_is_captured() {
    let db = TestDb::installed().await;
    db.exec(POSTS).await;
    db.audit(
        "posts",
        &TableCapture::default()
            .mask(["body"])
            .except_columns(["updated_at"]),
    )
    .await;
    db.exec("INSERT INTO posts (title) VALUES ('t')").await;
    db.exec("ALTER TABLE posts ADD COLUMN slug text").await;
    db.exec("UPDATE posts SET slug = 'hello'").await;
    // The fallback diff (threadline_changed_fields) still leaves out except columns.
    db.exec(
        "UPDATE posts SET slug = 'again', views = views + 1, updated_at = now() + interval '1 day'",
    )
    .await;
    let c = changes(&db).await;
    assert_eq!(c.len(), 3);
    assert_eq!(c[1].changed_fields.as_deref().unwrap(), ["slug".to_owned()]);
    assert_eq!(c[1].data_after.as_ref().unwrap()["slug"], "hello");
    assert_eq!(
        c[2].changed_fields.as_deref().unwrap(),
        ["slug".to_owned(), "views".to_owned()]
    );
}

#[tokio::test]
async fn drop_column_keeps_writes_working() {
    let db = TestDb::installed().await;
    db.exec(POSTS).await;
    db.audit(
        "posts",
        &TableCapture::default()
            .mask(["body"])
            .except_columns(["updated_at"]),
    )
    .await;
    db.exec("INSERT INTO posts (title, body) VALUES ('t', 'b')")
        .await;
    db.exec("ALTER TABLE posts DROP COLUMN views, DROP COLUMN updated_at")
        .await;
    db.exec("INSERT INTO posts (title) VALUES ('u'); UPDATE posts SET title = 'v'; DELETE FROM posts WHERE id = 1;")
        .await;
    // Dropping a masked column (nothing new appeared) is no leak: writes go on.
    db.exec("ALTER TABLE posts DROP COLUMN body").await;
    db.exec("UPDATE posts SET title = 'w'").await;
    let ops: Vec<String> = changes(&db).await.into_iter().map(|c| c.op).collect();
    assert_eq!(
        ops,
        ["insert", "insert", "update", "update", "delete", "update"]
    );
}

#[tokio::test]
async fn rename_of_a_redacted_column_never_leaks() {
    for policy in [
        TableCapture::default().mask(["body"]),
        TableCapture::default().exclude(["body"]),
    ] {
        let db = TestDb::installed().await;
        db.exec(POSTS).await;
        db.audit("posts", &policy).await;
        db.exec("INSERT INTO posts (title, body) VALUES ('t', 'old secret')")
            .await;
        db.exec("ALTER TABLE posts RENAME COLUMN body TO content")
            .await;
        for write in [
            "INSERT INTO posts (title, content) VALUES ('t2', 'new secret')",
            "UPDATE posts SET content = 'new secret'",
            "DELETE FROM posts",
        ] {
            let err = sqlx::query(write).execute(&db.pool).await.unwrap_err();
            assert!(
                err.to_string().contains("renamed or dropped"),
                "{write}: {err}"
            );
            let hint = err
                .as_database_error()
                .and_then(|e| e.try_downcast_ref::<sqlx::postgres::PgDatabaseError>())
                .and_then(|e| e.hint().map(str::to_owned));
            assert!(
                hint.unwrap_or_default().contains("threadline gen-triggers"),
                "{write}: {err}"
            );
        }
        let leaked = db.scalar("SELECT count(*) FROM audit_changes WHERE data_after::text LIKE '%secret%' OR data_before::text LIKE '%secret%'").await;
        assert_eq!(leaked, 0);
        // Regenerating with the new name restores writes, still redacted.
        db.audit("posts", &TableCapture::default().mask(["content"]))
            .await;
        db.exec("UPDATE posts SET content = 'newer secret'").await;
        let leaked = db
            .scalar("SELECT count(*) FROM audit_changes WHERE data_after::text LIKE '%secret%'")
            .await;
        assert_eq!(leaked, 0);
        assert_eq!(
            db.scalar("SELECT count(*) FROM audit_changes WHERE op = 'update'")
                .await,
            1
        );
    }
}
