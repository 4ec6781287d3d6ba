//! `transaction` (a transaction's changes and linked actions), recorded actions and
//! `change_diff` of captured changes.

mod support;

use std::collections::BTreeMap;

use serde_json::json;
use threadline_sqlx::{
    ActionOptions, AuditContext, ChangeOp, DiffValue, PoolExt, TableCapture, Threadline,
    change_diff,
};
use threadline_test_support::{user, write};

use support::{ops, setup};

#[tokio::test]
async fn transaction_shows_changes_and_linked_actions_and_standalone_actions_stay_apart() {
    let (db, tl) = setup(
        "CREATE TABLE posts (id int PRIMARY KEY, title text)",
        &["posts"],
    )
    .await;
    let u = user("1");
    let mut tx = db
        .pool
        .begin_with_context(
            &AuditContext::for_actor(u.clone())
                .with_request_id("req-9")
                .with_correlation_id("corr-9"),
        )
        .await
        .unwrap();
    sqlx::query("INSERT INTO posts VALUES (1, 'a')")
        .execute(&mut *tx)
        .await
        .unwrap();
    let linked = Threadline::new(db.pool.clone())
        .on(&mut tx)
        .record_action("post.published", &u, ActionOptions::new().reason("launch"))
        .await
        .unwrap();
    sqlx::query("UPDATE posts SET title = 'b'")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let standalone = tl
        .record_action("report.exported", &u, ActionOptions::new().comment("csv"))
        .await
        .unwrap();
    assert_eq!(standalone.transaction_id, None);
    assert_eq!(standalone.name, "report.exported");
    assert_eq!(standalone.comment.as_deref(), Some("csv"));

    let id = linked
        .transaction_id
        .expect("linked action has a transaction");
    let detail = tl.transaction(id).await.unwrap().unwrap();
    assert_eq!(detail.transaction.id, id);
    assert_eq!(detail.transaction.actor().unwrap(), Some(u.clone()));
    assert_eq!(detail.transaction.request_id.as_deref(), Some("req-9"));
    assert_eq!(detail.transaction.correlation_id.as_deref(), Some("corr-9"));
    assert_eq!(ops(&detail.changes), [ChangeOp::Insert, ChangeOp::Update]);
    assert!(detail.changes.iter().all(|c| c.transaction_id == id));
    assert_eq!(detail.actions, vec![linked]);
    assert_eq!(detail.actions[0].request_id.as_deref(), Some("req-9"));
    assert!(tl.transaction(id + 1000).await.unwrap().is_none());
}

#[tokio::test]
async fn change_diff_of_captured_updates() {
    let (db, tl) = setup(
        "CREATE TABLE users (id int PRIMARY KEY, name text, email text);
         CREATE TABLE notes (id int PRIMARY KEY, body text);",
        &["notes"],
    )
    .await;
    db.audit(
        "users",
        &TableCapture::default()
            .mask(["email"])
            .store_changed_from(true),
    )
    .await;
    write(
        &db,
        &user("1"),
        "INSERT INTO users VALUES (1, 'ann', 'a@x'); INSERT INTO notes VALUES (1, 'n1');",
    )
    .await;
    write(
        &db,
        &user("1"),
        "UPDATE users SET name = 'bob', email = 'b@x'; UPDATE notes SET body = 'n2';",
    )
    .await;

    let users = tl.history("users", 1).await.unwrap();
    let diff = change_diff(&users[0]);
    let by_name: BTreeMap<&str, (&DiffValue, &DiffValue)> = diff
        .iter()
        .map(|f| (f.name.as_str(), (&f.before, &f.after)))
        .collect();
    assert_eq!(by_name.len(), 2);
    let masked = DiffValue::Value(json!("[REDACTED]"));
    assert_eq!(by_name["email"], (&masked, &masked));
    assert_eq!(
        by_name["name"],
        (
            &DiffValue::Value(json!("ann")),
            &DiffValue::Value(json!("bob"))
        )
    );
    let insert = change_diff(&users[1]);
    assert_eq!(insert.len(), 3);
    assert!(insert.iter().all(|f| f.before == DiffValue::Absent));

    let notes = tl.history("notes", 1).await.unwrap();
    let diff = change_diff(&notes[0]);
    assert_eq!(diff.len(), 1);
    assert_eq!(diff[0].before, DiffValue::NotCaptured);
    assert_eq!(diff[0].after, DiffValue::Value(json!("n2")));
}
