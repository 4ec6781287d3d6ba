//! Capture of inserts, updates and deletes (SPEC §2): row images, native keys, changed
//! fields, and the pairing of old and new rows in bulk and deferred-key statements.

mod support;

use serde_json::{Value, json};
use threadline_sqlx::TableCapture;
use threadline_test_support::{Change, TestDb, changes};

use support::POSTS;

#[tokio::test]
async fn insert_update_delete_are_captured_with_native_keys() {
    let db = TestDb::installed().await;
    db.exec(POSTS).await;
    db.audit("posts", &TableCapture::default()).await;
    db.exec("INSERT INTO posts (title) VALUES ('a')").await;
    db.exec("UPDATE posts SET title = 'b' WHERE id = 1").await;
    db.exec("DELETE FROM posts WHERE id = 1").await;

    let c = changes(&db).await;
    assert_eq!(
        c.iter().map(|c| c.op.as_str()).collect::<Vec<_>>(),
        ["insert", "update", "delete"]
    );
    for change in &c {
        assert_eq!(
            change.table_pk,
            json!({"id": 1}),
            "integer key stays an integer"
        );
        assert_eq!(
            (change.table_schema.as_str(), change.table_name.as_str()),
            ("public", "posts")
        );
    }
    assert_eq!(c[0].data_after.as_ref().unwrap()["title"], "a");
    assert_eq!(c[0].data_before, None);
    assert_eq!(c[1].data_after.as_ref().unwrap()["title"], "b");
    assert_eq!(
        c[1].changed_fields.as_deref(),
        Some(&["title".to_owned()][..])
    );
    assert_eq!(c[2].data_after, None);
    assert_eq!(
        c[2].data_before.as_ref().unwrap()["title"],
        "b",
        "delete keeps the pre-image"
    );
}

#[tokio::test]
async fn composite_and_non_id_keys_use_the_real_primary_key() {
    let db = TestDb::installed().await;
    db.exec(
        "CREATE TABLE stock (tenant_id int, sku text, qty int, PRIMARY KEY (tenant_id, sku));
         CREATE TABLE codes (code text PRIMARY KEY, label text);",
    )
    .await;
    db.audit("stock", &TableCapture::default()).await;
    db.audit("codes", &TableCapture::default()).await;
    db.exec("INSERT INTO stock VALUES (7, 'A-1', 3); INSERT INTO codes VALUES ('X9', 'x');")
        .await;
    let c = changes(&db).await;
    assert_eq!(c[0].table_pk, json!({"tenant_id": 7, "sku": "A-1"}));
    assert_eq!(c[1].table_pk, json!({"code": "X9"}));
}

#[tokio::test]
async fn changed_fields_are_sorted_and_noop_updates_write_nothing() {
    let db = TestDb::installed().await;
    db.exec(POSTS).await;
    db.audit("posts", &TableCapture::default()).await;
    db.exec("INSERT INTO posts (title, body) VALUES ('t', 'b')")
        .await;
    db.exec("UPDATE posts SET views = 5, body = 'c', title = 'u'")
        .await;
    db.exec("UPDATE posts SET title = title, views = views")
        .await;
    db.exec("UPDATE posts SET body = 'c'").await;
    let c = changes(&db).await;
    assert_eq!(c.len(), 2, "the two no-op updates wrote nothing");
    assert_eq!(
        c[1].changed_fields.as_deref().unwrap(),
        ["body", "title", "views"].map(String::from)
    );
}

#[tokio::test]
async fn bulk_statements_pair_old_and_new_rows_by_key() {
    let db = TestDb::installed().await;
    db.exec("CREATE TABLE items (id int PRIMARY KEY DEFERRABLE INITIALLY IMMEDIATE, payload text, n int)").await;
    db.audit("items", &TableCapture::default().store_changed_from(true))
        .await;
    db.exec("INSERT INTO items SELECT g, 'p' || g, g FROM generate_series(1, 1000) g")
        .await;
    db.exec("UPDATE items SET n = n * 10").await;
    // Reverse the keys: row k becomes 1001 - k, so row order and key order disagree.
    db.exec("UPDATE items SET id = 1001 - id").await;
    db.exec("DELETE FROM items WHERE id <= 1000").await;

    let c = changes(&db).await;
    let by_op = |op: &str| c.iter().filter(|x| x.op == op).collect::<Vec<_>>();
    assert_eq!(by_op("insert").len(), 1000);
    assert_eq!(by_op("update").len(), 2000);
    assert_eq!(by_op("delete").len(), 1000);
    for u in &by_op("update")[..1000] {
        let after = u.data_after.as_ref().unwrap();
        let id = after["id"].as_i64().unwrap();
        assert_eq!(u.table_pk, json!({"id": id}));
        assert_eq!(after["n"].as_i64().unwrap(), id * 10);
        assert_eq!(u.changed_from.as_ref().unwrap()["n"].as_i64().unwrap(), id);
    }
    for u in &by_op("update")[1000..] {
        let after = u.data_after.as_ref().unwrap();
        let old_id = u.changed_from.as_ref().unwrap()["id"].as_i64().unwrap();
        let new_id = after["id"].as_i64().unwrap();
        assert_eq!(
            new_id,
            1001 - old_id,
            "old and new images belong to the same row"
        );
        assert_eq!(after["payload"], format!("p{old_id}"));
        assert_eq!(u.table_pk, json!({"id": new_id}));
    }
    for d in by_op("delete") {
        let before = d.data_before.as_ref().unwrap();
        assert_eq!(d.table_pk, json!({"id": before["id"]}));
    }
    let tx_ids: std::collections::BTreeSet<i64> = c.iter().map(|x| x.transaction_id).collect();
    assert_eq!(tx_ids.len(), 4, "one transaction row per statement here");
}

#[tokio::test]
async fn deferred_primary_keys_pair_updates_row_by_row() {
    let db = TestDb::installed().await;
    db.exec("CREATE TABLE slots (id int PRIMARY KEY DEFERRABLE INITIALLY DEFERRED, v text)")
        .await;
    db.audit("slots", &TableCapture::default().store_changed_from(true))
        .await;
    db.exec("INSERT INTO slots VALUES (1, 'a'), (2, 'b')").await;
    // Row a takes key 2 while row b keeps it: the statement ends with two rows keyed 2.
    // The next statement moves b away before the deferred check at commit.
    db.exec(
        "BEGIN;
         UPDATE slots SET id = 2, v = v || '!';
         UPDATE slots SET id = 3 WHERE v = 'b!';
         COMMIT;",
    )
    .await;
    let updates: Vec<Change> = changes(&db)
        .await
        .into_iter()
        .filter(|c| c.op == "update")
        .collect();
    assert_eq!(
        updates.len(),
        3,
        "every updated row is captured: {updates:?}"
    );
    let afters: Vec<Value> = updates
        .iter()
        .map(|u| u.data_after.clone().unwrap())
        .collect();
    assert!(afters.contains(&json!({"id": 2, "v": "a!"})), "{afters:?}");
    assert!(afters.contains(&json!({"id": 2, "v": "b!"})), "{afters:?}");
    assert!(afters.contains(&json!({"id": 3, "v": "b!"})), "{afters:?}");
}
