//! `history` and `as_of` on a real PostgreSQL: one row's changes, matched by any form of its
//! key, captured by real triggers from real writes.

mod support;

use chrono::{DateTime, Duration, Utc};
use serde_json::json;
use threadline_core::query::QueryError;
use threadline_sqlx::{AsOf, ChangeOp, Error, Page, TimelineFilter};
use threadline_test_support::{user, write};

use support::{assert_newest_first, ids, ops, query_error, setup};

#[tokio::test]
async fn history_lists_one_row_newest_first_and_integer_and_string_ids_match() {
    let (db, tl) = setup(
        "CREATE TABLE posts (id bigint PRIMARY KEY, title text)",
        &["posts"],
    )
    .await;
    write(
        &db,
        &user("1"),
        "INSERT INTO posts VALUES (42, 'a'), (43, 'x')",
    )
    .await;
    write(
        &db,
        &user("2"),
        "UPDATE posts SET title = 'b' WHERE id = 42",
    )
    .await;
    write(
        &db,
        &user("1"),
        "UPDATE posts SET title = 'c' WHERE id = 42",
    )
    .await;

    let history = tl.history("posts", 42).await.unwrap();
    assert_eq!(
        ops(&history),
        [ChangeOp::Update, ChangeOp::Update, ChangeOp::Insert]
    );
    assert_newest_first(&history);
    assert!(history.iter().all(|c| c.table_pk == json!({"id": 42})));
    assert_eq!(history[0].data_after.as_ref().unwrap()["title"], "c");
    assert_eq!(
        history[0].changed_fields.as_deref(),
        Some(&["title".to_owned()][..])
    );
    assert_eq!(history[0].actor().unwrap(), Some(user("1")));
    assert_eq!(history[1].actor().unwrap(), Some(user("2")));

    // The documented rule: an integer and its canonical decimal string are the same key.
    assert_eq!(tl.history("posts", "42").await.unwrap(), history);
    assert_eq!(tl.history("posts", 42u32).await.unwrap(), history);
    assert_eq!(
        tl.history("public.posts", json!(42)).await.unwrap(),
        history
    );
    assert_eq!(
        tl.history("POSTS", 42).await.unwrap(),
        history,
        "unquoted names fold"
    );
    assert_eq!(
        tl.history("posts", json!({"id": 42})).await.unwrap(),
        history
    );
    // Objects are matched exactly, and non-canonical strings are only strings.
    assert!(
        tl.history("posts", json!({"id": "42"}))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(tl.history("posts", "042").await.unwrap().is_empty());
    assert!(tl.history("posts", 44).await.unwrap().is_empty());
    assert_eq!(tl.history("posts", 43).await.unwrap().len(), 1);
}

#[tokio::test]
async fn text_uuid_and_custom_named_keys() {
    let (db, tl) = setup(
        "CREATE TABLE tags (slug text PRIMARY KEY, n int);
         CREATE TABLE docs (id uuid PRIMARY KEY, body text);
         CREATE TABLE accounts (account_no int PRIMARY KEY, owner text);",
        &["tags", "docs", "accounts"],
    )
    .await;
    let uuid = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11";
    write(
        &db,
        &user("1"),
        &format!(
            "INSERT INTO tags VALUES ('abc', 1), ('7', 2);
             INSERT INTO docs VALUES ('{uuid}', 'x');
             INSERT INTO accounts VALUES (5, 'ann');
             UPDATE accounts SET owner = 'bob' WHERE account_no = 5;"
        ),
    )
    .await;

    let abc = tl.history("tags", "abc").await.unwrap();
    assert_eq!(abc.len(), 1);
    assert_eq!(abc[0].table_pk, json!({"slug": "abc"}));
    // A text key that looks like an integer matches the integer too.
    assert_eq!(
        tl.history("tags", 7).await.unwrap()[0].table_pk,
        json!({"slug": "7"})
    );
    assert_eq!(tl.history("tags", "7").await.unwrap().len(), 1);

    let doc = tl.history("docs", uuid.to_uppercase()).await.unwrap();
    assert_eq!(doc.len(), 1, "UUIDs match in any letter case");
    assert_eq!(doc[0].table_pk, json!({"id": uuid}));

    let account = tl.history("accounts", 5).await.unwrap();
    assert_eq!(ops(&account), [ChangeOp::Update, ChangeOp::Insert]);
    assert_eq!(account[0].table_pk, json!({"account_no": 5}));
}

#[tokio::test]
async fn composite_keys_need_every_key_column() {
    let (db, tl) = setup(
        "CREATE TABLE lines (tenant_id int, sku text, qty int, PRIMARY KEY (tenant_id, sku))",
        &["lines"],
    )
    .await;
    write(
        &db,
        &user("1"),
        "INSERT INTO lines VALUES (7, 'A-1', 1), (7, 'A-2', 1), (8, 'A-1', 1);
         UPDATE lines SET qty = 2 WHERE tenant_id = 7 AND sku = 'A-1';",
    )
    .await;

    let key = json!({"sku": "A-1", "tenant_id": 7});
    let history = tl.history("lines", key.clone()).await.unwrap();
    assert_eq!(ops(&history), [ChangeOp::Update, ChangeOp::Insert]);
    assert!(history.iter().all(|c| c.table_pk == key));
    let other = tl
        .history("lines", json!({"tenant_id": 8, "sku": "A-1"}))
        .await
        .unwrap();
    assert_eq!(other.len(), 1);

    let err = query_error(tl.history("lines", 7).await.unwrap_err());
    assert_eq!(
        err,
        QueryError::CompositeKey {
            table: "public.lines".into(),
            columns: "sku, tenant_id".into()
        }
    );
    assert!(err.to_string().contains("pass a JSON object"), "{err}");
    let err = query_error(
        tl.history("lines", json!({"tenant": 7, "sku": "A-1"}))
            .await
            .unwrap_err(),
    );
    assert!(matches!(err, QueryError::KeyColumns { .. }), "{err}");
}

#[tokio::test]
async fn same_named_tables_in_two_schemas_never_mix() {
    let (db, tl) = setup(
        "CREATE SCHEMA a; CREATE SCHEMA b;
         CREATE TABLE a.posts (id int PRIMARY KEY, title text);
         CREATE TABLE b.posts (id int PRIMARY KEY, title text);",
        &["a.posts", "b.posts"],
    )
    .await;
    write(
        &db,
        &user("1"),
        "INSERT INTO a.posts VALUES (1, 'in a'); INSERT INTO b.posts VALUES (1, 'in b');
         UPDATE a.posts SET title = 'a2';",
    )
    .await;

    let a = tl.history("a.posts", 1).await.unwrap();
    assert_eq!(ops(&a), [ChangeOp::Update, ChangeOp::Insert]);
    assert!(a.iter().all(|c| c.table_schema == "a"));
    let b = tl.history("b.posts", 1).await.unwrap();
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].table_schema, "b");
    assert_eq!(
        tl.as_of("b.posts", 1, Utc::now()).await.unwrap().image(),
        Some(&json!({"id": 1, "title": "in b"}))
    );

    let filter = TimelineFilter::new().table("b.posts".parse().unwrap());
    let page = tl.timeline(&filter, Page::first()).await.unwrap();
    assert_eq!(ids(&page.items), ids(&b));
    assert_eq!(tl.count(&filter).await.unwrap(), 1);
    assert_eq!(
        tl.count(&TimelineFilter::new().table("a.posts".parse().unwrap()))
            .await
            .unwrap(),
        2
    );
    // public.posts neither exists nor has history.
    assert!(matches!(
        tl.history("posts", 1).await.unwrap_err(),
        Error::TableNotFound(name) if name == "public.posts"
    ));
}

#[tokio::test]
async fn as_of_distinguishes_existing_deleted_and_before_capture() {
    let (db, tl) = setup(
        "CREATE TABLE posts (id int PRIMARY KEY, title text);
         CREATE TABLE legacy (id int PRIMARY KEY, title text);
         INSERT INTO legacy VALUES (1, 'old');
         CREATE TABLE quiet (id int PRIMARY KEY);",
        &["posts", "legacy", "quiet"],
    )
    .await;
    let u = user("1");
    write(&db, &u, "INSERT INTO posts VALUES (1, 'v1')").await;
    write(&db, &u, "UPDATE posts SET title = 'v2' WHERE id = 1").await;
    write(&db, &u, "DELETE FROM posts WHERE id = 1").await;
    write(&db, &u, "INSERT INTO posts VALUES (1, 'v3')").await;
    let mut h = tl.history("posts", 1).await.unwrap();
    h.reverse();
    let [insert, update, delete, reinsert] = &h[..] else {
        panic!("expected 4 changes, got {h:?}")
    };
    let us = Duration::microseconds(1);
    let at = |t: DateTime<Utc>| tl.as_of("posts", 1, t);

    match at(insert.captured_at - us).await.unwrap() {
        AsOf::BeforeCapture { first_change } => {
            assert_eq!(
                first_change.as_ref(),
                Some(insert),
                "first change is the insert"
            )
        }
        other => panic!("{other:?}"),
    }
    let image = |title: &str| Some(json!({"id": 1, "title": title}));
    assert_eq!(
        at(insert.captured_at).await.unwrap().image().cloned(),
        image("v1")
    );
    assert_eq!(
        at(update.captured_at - us).await.unwrap().image().cloned(),
        image("v1")
    );
    assert_eq!(
        at(update.captured_at).await.unwrap().image().cloned(),
        image("v2")
    );
    for t in [delete.captured_at, reinsert.captured_at - us] {
        match at(t).await.unwrap() {
            AsOf::Deleted { change } => {
                assert_eq!(&change, delete);
                assert_eq!(change.data_before, image("v2"));
            }
            other => panic!("{other:?}"),
        }
    }
    match at(Utc::now()).await.unwrap() {
        AsOf::Existed { image: img, change } => {
            assert_eq!(Some(img), image("v3"));
            assert_eq!(&change, reinsert);
        }
        other => panic!("{other:?}"),
    }

    // A row that predates capture: before its first captured change, its state is unknown.
    let before_update = Utc::now();
    write(&db, &u, "UPDATE legacy SET title = 'new'").await;
    match tl.as_of("legacy", 1, before_update).await.unwrap() {
        AsOf::BeforeCapture {
            first_change: Some(first),
        } => assert_eq!(first.op, ChangeOp::Update),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        tl.as_of("legacy", "1", Utc::now()).await.unwrap().image(),
        Some(&json!({"id": 1, "title": "new"}))
    );
    // A table without any captured change.
    assert_eq!(
        tl.as_of("quiet", 1, Utc::now()).await.unwrap(),
        AsOf::BeforeCapture { first_change: None }
    );
    assert!(tl.history("quiet", 1).await.unwrap().is_empty());
}

/// A change's actor comes from its transaction even when the transaction began more than a day
/// before the change was captured (the lookup first searches that day, for the partitioned
/// layout's sake), or after it (a clock set back).
#[tokio::test]
async fn history_and_as_of_find_the_actor_of_long_transactions_and_clocks_set_back() {
    let (db, tl) = setup(
        "CREATE TABLE posts (id bigint PRIMARY KEY, title text)",
        &["posts"],
    )
    .await;
    write(&db, &user("1"), "INSERT INTO posts VALUES (1, 'a')").await;
    write(&db, &user("2"), "UPDATE posts SET title = 'b' WHERE id = 1").await;
    write(&db, &user("3"), "UPDATE posts SET title = 'c' WHERE id = 1").await;
    let before = tl.history("posts", 1).await.unwrap();
    db.exec(
        "UPDATE audit_transactions t SET occurred_at = c.captured_at - interval '3 days'
         FROM audit_changes c WHERE c.transaction_id = t.id AND c.op = 'insert';
         UPDATE audit_transactions t SET occurred_at = c.captured_at + interval '1 hour'
         FROM audit_changes c WHERE c.transaction_id = t.id AND c.data_after ->> 'title' = 'b'",
    )
    .await;

    let history = tl.history("posts", 1).await.unwrap();
    assert_eq!(history, before);
    let actors: Vec<_> = history.iter().map(|c| c.actor().unwrap()).collect();
    assert_eq!(actors, [Some(user("3")), Some(user("2")), Some(user("1"))]);
    for change in &history {
        match tl.as_of("posts", 1, change.captured_at).await.unwrap() {
            AsOf::Existed { change: found, .. } => assert_eq!(&found, change),
            other => panic!("expected the row as {change:?}, got {other:?}"),
        }
    }
}
