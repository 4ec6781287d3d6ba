//! Statement-level capture details: key changes mixed with plain changes, the hand-over
//! between the row-level key-change trigger and the statement-level trigger, explicit key
//! columns, and statements that capture nothing. One fresh database per test.

use serde_json::Value;
use threadline_sqlx::TableCapture;
use threadline_test_support::TestDb;

/// `(table_pk, data_after, changed_from, changed_fields)` of every update, in capture order.
async fn updates(db: &TestDb) -> Vec<(Value, Value, Value, Vec<String>)> {
    sqlx::query_as(
        "SELECT table_pk, data_after, coalesce(changed_from, '{}'), changed_fields
         FROM audit_changes WHERE op = 'update' ORDER BY id",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap()
}

async fn items(db: &TestDb, rows: i32) {
    // Checked at the end of each statement, so keys can be swapped in one statement.
    db.exec(
        "CREATE TABLE items (id int PRIMARY KEY DEFERRABLE INITIALLY IMMEDIATE,
            payload text NOT NULL, n int NOT NULL)",
    )
    .await;
    db.audit("items", &TableCapture::default().store_changed_from(true))
        .await;
    db.exec(&format!(
        "INSERT INTO items SELECT g, 'p' || g, g * 10 FROM generate_series(1, {rows}) g"
    ))
    .await;
}

/// Checks one captured update of `items`: the images belong to the same row.
fn assert_paired(pk: &Value, after: &Value, from: &Value) {
    let new_id = after["id"].as_i64().unwrap();
    let old_id = from.get("id").map_or(new_id, |v| v.as_i64().unwrap());
    assert_eq!(pk, &serde_json::json!({"id": new_id}));
    assert_eq!(
        after["payload"],
        format!("p{old_id}"),
        "old and new images of one row"
    );
    assert_eq!(from["n"].as_i64().unwrap(), old_id * 10);
    assert_eq!(after["n"].as_i64().unwrap(), old_id * 10 + 100);
}

#[tokio::test]
async fn key_changes_and_plain_changes_in_one_statement_are_each_captured_once() {
    let db = TestDb::installed().await;
    items(&db, 6).await;
    // 1 and 2 swap keys, 3 moves to a free key, 4..6 keep theirs: every row also changes n.
    db.exec(
        "UPDATE items SET n = n + 100,
             id = CASE id WHEN 1 THEN 2 WHEN 2 THEN 1 WHEN 3 THEN 30 ELSE id END",
    )
    .await;
    let u = updates(&db).await;
    assert_eq!(u.len(), 6, "{u:?}");
    for (pk, after, from, fields) in &u {
        assert_paired(pk, after, from);
        let moved = from.get("id").is_some();
        let expected: &[&str] = if moved { &["id", "n"] } else { &["n"] };
        assert_eq!(
            fields,
            &expected.iter().map(|s| s.to_string()).collect::<Vec<_>>()
        );
    }
    let mut new_ids: Vec<i64> = u.iter().map(|x| x.1["id"].as_i64().unwrap()).collect();
    new_ids.sort_unstable();
    assert_eq!(new_ids, [1, 2, 4, 5, 6, 30]);
}

#[tokio::test]
async fn a_key_change_does_not_hide_rows_of_the_next_statement() {
    let db = TestDb::installed().await;
    items(&db, 3).await;
    let mut tx = db.pool.begin().await.unwrap();
    sqlx::query("UPDATE items SET id = 100, n = n + 100 WHERE id = 1")
        .execute(&mut *tx)
        .await
        .unwrap();
    // Key 100 was a moved key of the first statement; here it is a plain change.
    sqlx::query("UPDATE items SET payload = payload || '!'")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let u = updates(&db).await;
    assert_eq!(u.len(), 4, "{u:?}");
    let second: Vec<i64> = u[1..].iter().map(|x| x.0["id"].as_i64().unwrap()).collect();
    assert_eq!(second.len(), 3);
    assert!(second.contains(&100), "{second:?}");
    assert_eq!(
        db.scalar("SELECT count(*) FROM audit_transactions").await,
        2
    );
}

#[tokio::test]
async fn composite_key_changes_pair_by_row() {
    let db = TestDb::installed().await;
    db.exec(
        "CREATE TABLE stock (tenant_id int, sku text, qty int,
            PRIMARY KEY (tenant_id, sku) DEFERRABLE INITIALLY IMMEDIATE)",
    )
    .await;
    db.audit("stock", &TableCapture::default().store_changed_from(true))
        .await;
    db.exec("INSERT INTO stock SELECT 1, 's' || g, g FROM generate_series(1, 50) g")
        .await;
    // Shift every sku to the next one's name: only row order, not the key, tells rows apart.
    db.exec("UPDATE stock SET sku = 's' || (substr(sku, 2)::int + 1), qty = qty * 2")
        .await;
    let u = updates(&db).await;
    assert_eq!(u.len(), 50);
    for (pk, after, from, _) in &u {
        let old: i64 = from["sku"].as_str().unwrap()[1..].parse().unwrap();
        assert_eq!(after["sku"], format!("s{}", old + 1));
        assert_eq!(
            after["qty"].as_i64().unwrap(),
            old * 2,
            "qty belongs to the old sku"
        );
        assert_eq!(pk["sku"], after["sku"]);
        assert_eq!(pk["tenant_id"], 1);
    }
}

#[tokio::test]
async fn explicit_key_columns_need_not_be_unique() {
    let db = TestDb::installed().await;
    db.exec("CREATE TABLE events (ref text NOT NULL, seq int NOT NULL, payload int)")
        .await;
    db.audit(
        "events",
        &TableCapture::default()
            .key_columns(["ref"])
            .store_changed_from(true),
    )
    .await;
    db.exec("INSERT INTO events VALUES ('a', 1, 1), ('a', 2, 2), ('b', 3, 3)")
        .await;
    db.exec("UPDATE events SET payload = payload * 10").await;
    let u = updates(&db).await;
    assert_eq!(u.len(), 3);
    for (pk, after, from, fields) in &u {
        assert_eq!(pk["ref"], after["ref"]);
        assert_eq!(
            after["payload"].as_i64().unwrap(),
            after["seq"].as_i64().unwrap() * 10
        );
        assert_eq!(
            from["payload"], after["seq"],
            "the prior value of this very row"
        );
        assert_eq!(fields, &["payload".to_owned()]);
    }
}

#[tokio::test]
async fn statements_that_capture_nothing_create_no_transaction_row() {
    let db = TestDb::installed().await;
    items(&db, 3).await;
    db.exec("DELETE FROM audit_changes; DELETE FROM audit_transactions")
        .await;
    db.exec("UPDATE items SET n = n WHERE id > 0").await;
    db.exec("UPDATE items SET n = 0 WHERE id < 0").await;
    db.exec("DELETE FROM items WHERE id < 0").await;
    db.exec("INSERT INTO items SELECT 1, 'x', 1 WHERE false")
        .await;
    assert_eq!(db.scalar("SELECT count(*) FROM audit_changes").await, 0);
    assert_eq!(
        db.scalar("SELECT count(*) FROM audit_transactions").await,
        0
    );
}

#[tokio::test]
async fn bulk_updates_of_json_columns_are_detected() {
    let db = TestDb::installed().await;
    db.exec("CREATE TABLE docs (id int PRIMARY KEY, legacy json, doc jsonb, n int)")
        .await;
    db.audit("docs", &TableCapture::default()).await;
    db.exec(
        r#"INSERT INTO docs SELECT g, '{"a": 1}', '{"b": 2}', g FROM generate_series(1, 20) g"#,
    )
    .await;
    db.exec(r#"UPDATE docs SET legacy = '{"a": 2}' WHERE id <= 10"#)
        .await;
    db.exec(r#"UPDATE docs SET legacy = '{"a":1}', doc = '{"b":2}'  WHERE id > 10"#)
        .await;
    let u = updates(&db).await;
    assert_eq!(
        u.len(),
        10,
        "equal json values written in another spelling are no change"
    );
    assert!(u.iter().all(|x| x.3 == ["legacy".to_owned()]));
}

#[tokio::test]
async fn actors_are_stored_whether_canonical_or_not() {
    let db = TestDb::installed().await;
    items(&db, 0).await;
    let canonical = threadline_sqlx::ActorRef::user("a\"b\\c é\n")
        .unwrap()
        .to_json();
    for (i, actor) in [
        canonical.as_str(),
        r#"{"id": "7", "type": "admin"}"#,
        r#"{"type":"user","id":"\u00e9"}"#,
    ]
    .into_iter()
    .enumerate()
    {
        let mut tx = db.pool.begin().await.unwrap();
        sqlx::query("SELECT set_config('threadline.actor_ref', $1, true)")
            .bind(actor)
            .execute(&mut *tx)
            .await
            .unwrap();
        sqlx::query("INSERT INTO items VALUES ($1, 'x', 0)")
            .bind(i as i32)
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let stored: Value = sqlx::query_scalar(
            "SELECT t.actor_ref FROM audit_transactions t JOIN audit_changes c
             ON c.transaction_id = t.id WHERE c.table_pk = jsonb_build_object('id', $1::int)",
        )
        .bind(i as i32)
        .fetch_one(&db.pool)
        .await
        .unwrap();
        assert_eq!(
            stored,
            serde_json::from_str::<Value>(actor).unwrap(),
            "{actor}"
        );
    }
}
