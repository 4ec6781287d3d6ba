//! Capture policies on the row images: `exclude`, `mask`, `except_columns` and
//! `store_changed_from`.

mod support;

use serde_json::json;
use threadline_sqlx::TableCapture;
use threadline_test_support::{TestDb, changes};

use support::POSTS;

#[tokio::test]
async fn store_changed_from_and_except_columns() {
    let db = TestDb::installed().await;
    db.exec(POSTS).await;
    let policy = TableCapture::default()
        .store_changed_from(true)
        .except_columns(["updated_at"]);
    db.audit("posts", &policy).await;
    db.exec("INSERT INTO posts (title, views) VALUES ('t', 1)")
        .await;
    db.exec("UPDATE posts SET updated_at = now()").await;
    db.exec("UPDATE posts SET views = 2, title = 'u', updated_at = now()")
        .await;
    let c = changes(&db).await;
    assert_eq!(
        c.len(),
        2,
        "an update of only an except column is not a change"
    );
    assert_eq!(
        c[1].changed_fields.as_deref().unwrap(),
        ["title", "views"].map(String::from)
    );
    assert_eq!(c[1].changed_from, Some(json!({"title": "t", "views": 1})));
    assert!(
        !c[1].data_after.as_ref().unwrap()["updated_at"].is_null(),
        "except columns stay in data_after"
    );
}

#[tokio::test]
async fn exclude_and_mask_apply_to_every_image() {
    let db = TestDb::installed().await;
    db.exec(
        "CREATE TABLE users (id int PRIMARY KEY, email text, password_hash text, name text,
            prefs jsonb, legacy json)",
    )
    .await;
    let policy = TableCapture::default()
        .exclude(["password_hash"])
        .mask(["email", "prefs", "legacy"])
        .mask_placeholder("***")
        .store_changed_from(true);
    db.audit("users", &policy).await;
    db.exec(
        r#"INSERT INTO users VALUES (1, 'a@x.io', 'h1', 'Ann', '{"theme": "dark"}', '{"k": [1]}');
           UPDATE users SET email = 'b@x.io', password_hash = 'h2', prefs = '{"theme": "light"}', name = 'Bo';
           UPDATE users SET password_hash = 'h3';
           DELETE FROM users;"#,
    )
    .await;
    let c = changes(&db).await;
    assert_eq!(
        c.len(),
        3,
        "an update of only an excluded column is not a change"
    );
    let images = [
        c[0].data_after.clone().unwrap(),
        c[1].data_after.clone().unwrap(),
        c[1].changed_from.clone().unwrap(),
        c[2].data_before.clone().unwrap(),
    ];
    for image in &images {
        let text = image.to_string();
        for secret in ["a@x.io", "b@x.io", "h1", "h2", "h3", "dark", "light", "[1]"] {
            assert!(!text.contains(secret), "{secret} leaked into {text}");
        }
        assert!(
            image.get("password_hash").is_none(),
            "excluded column present: {text}"
        );
    }
    assert_eq!(images[0]["email"], "***");
    assert_eq!(images[0]["prefs"], "***", "jsonb is masked whole");
    assert_eq!(images[0]["legacy"], "***", "json is masked whole");
    assert_eq!(images[0]["name"], "Ann");
    assert_eq!(
        c[1].changed_fields.as_deref().unwrap(),
        ["email", "name", "prefs"].map(String::from)
    );
    assert_eq!(
        images[2],
        json!({"email": "***", "name": "Ann", "prefs": "***"})
    );
}
