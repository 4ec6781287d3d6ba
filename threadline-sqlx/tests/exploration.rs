//! The exploration API on a real PostgreSQL: data captured by real triggers from real writes.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use serde_json::json;
use threadline_core::query::QueryError;
use threadline_sqlx::{
    ActionOptions, ActorRef, AsOf, AuditChange, AuditContext, ChangeOp, CursorError, DiffValue,
    Error, Ident, InstallOptions, Page, PoolExt, TableCapture, Threadline, TimelineFilter,
    TransactionExt, audit_table, change_diff,
};
use threadline_test_support::TestDb;

/// A database with `setup` applied and capture attached to `tables`.
async fn setup(setup: &str, tables: &[&str]) -> (TestDb, Threadline) {
    let db = TestDb::installed().await;
    db.exec(setup).await;
    for table in tables {
        audit(&db, table, &TableCapture::default()).await;
    }
    let threadline = Threadline::new(db.pool.clone());
    (db, threadline)
}

async fn audit(db: &TestDb, table: &str, policy: &TableCapture) {
    audit_table(
        &db.pool,
        &InstallOptions::default(),
        &table.parse().unwrap(),
        policy,
    )
    .await
    .unwrap();
}

fn user(id: &str) -> ActorRef {
    ActorRef::user(id).unwrap()
}

/// Runs `sql` in one transaction with `actor` set through `tx.with_actor`.
async fn write(db: &TestDb, actor: &ActorRef, sql: &str) {
    let mut tx = db.pool.begin().await.unwrap();
    tx.with_actor(actor).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

/// Runs `sql` in one transaction with a whole context.
async fn write_ctx(db: &TestDb, ctx: &AuditContext, sql: &str) {
    let mut tx = db.pool.begin_with_context(ctx).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

fn ops(changes: &[AuditChange]) -> Vec<ChangeOp> {
    changes.iter().map(|c| c.op).collect()
}

fn ids(changes: &[AuditChange]) -> Vec<i64> {
    changes.iter().map(|c| c.id).collect()
}

fn assert_newest_first(changes: &[AuditChange]) {
    assert!(
        changes
            .windows(2)
            .all(|w| (w[0].captured_at, w[0].id) > (w[1].captured_at, w[1].id)),
        "not in (captured_at desc, id desc) order: {:?}",
        changes
            .iter()
            .map(|c| (c.captured_at, c.id))
            .collect::<Vec<_>>()
    );
}

fn query_error(err: Error) -> QueryError {
    match err {
        Error::Core(threadline_core::Error::Query(e)) => e,
        other => panic!("expected a query error, got {other:?}"),
    }
}

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

/// Writes six changes in four transactions with different contexts over two tables.
async fn mixed_trail() -> (TestDb, Threadline) {
    let (db, tl) = setup(
        "CREATE TABLE posts (id int PRIMARY KEY, title text);
         CREATE TABLE comments (id int PRIMARY KEY, body text);",
        &["posts", "comments"],
    )
    .await;
    let ctx =
        |actor: &str, request: &str| AuditContext::for_actor(user(actor)).with_request_id(request);
    write_ctx(
        &db,
        &ctx("1", "r1").with_correlation_id("c1"),
        "INSERT INTO posts VALUES (1, 'a'), (2, 'b')",
    )
    .await;
    write_ctx(
        &db,
        &ctx("2", "r2").with_correlation_id("c1"),
        "INSERT INTO comments VALUES (1, 'hi'); UPDATE posts SET title = 'a2' WHERE id = 1;",
    )
    .await;
    write_ctx(&db, &ctx("1", "r3"), "DELETE FROM posts WHERE id = 2").await;
    write_ctx(
        &db,
        &AuditContext::new(),
        "INSERT INTO comments VALUES (2, 'anon')",
    )
    .await;
    (db, tl)
}

#[tokio::test]
async fn timeline_and_count_apply_every_filter() {
    let (_db, tl) = mixed_trail().await;
    let all = tl
        .timeline(&TimelineFilter::new(), Page::first().with_size(1000))
        .await
        .unwrap();
    assert_eq!(all.items.len(), 6);
    assert!(all.next.is_none() && all.prev.is_none());
    assert_newest_first(&all.items);
    let mut txns = BTreeMap::new();
    for c in &all.items {
        let detail = tl.transaction(c.transaction_id).await.unwrap().unwrap();
        txns.insert(c.transaction_id, detail.transaction);
    }
    // The second transaction's time span, for from/to.
    let t2: Vec<&AuditChange> = all
        .items
        .iter()
        .filter(|c| txns[&c.transaction_id].request_id.as_deref() == Some("r2"))
        .collect();
    let t2_from = t2.iter().map(|c| c.captured_at).min().unwrap();
    let t2_to = t2.iter().map(|c| c.captured_at).max().unwrap();
    assert_eq!(t2.len(), 2);

    type Pred<'a> = Box<dyn Fn(&AuditChange) -> bool + 'a>;
    let txn = |c: &AuditChange| txns[&c.transaction_id].clone();
    let cases: Vec<(TimelineFilter, Pred<'_>)> = vec![
        (
            TimelineFilter::new().table("posts".parse().unwrap()),
            Box::new(|c: &AuditChange| c.table_name == "posts"),
        ),
        (
            TimelineFilter::new().table("public.comments".parse().unwrap()),
            Box::new(|c: &AuditChange| c.table_name == "comments"),
        ),
        (
            TimelineFilter::new().actor(user("1")),
            Box::new(move |c: &AuditChange| c.actor().unwrap() == Some(user("1"))),
        ),
        (
            TimelineFilter::new().from(t2_from),
            Box::new(move |c: &AuditChange| c.captured_at >= t2_from),
        ),
        (
            TimelineFilter::new().to(t2_to),
            Box::new(move |c: &AuditChange| c.captured_at <= t2_to),
        ),
        (
            TimelineFilter::new().from(t2_from).to(t2_to),
            Box::new(move |c: &AuditChange| c.captured_at >= t2_from && c.captured_at <= t2_to),
        ),
        (
            TimelineFilter::new().correlation_id("c1"),
            Box::new(move |c: &AuditChange| txn(c).correlation_id.as_deref() == Some("c1")),
        ),
        (
            TimelineFilter::new().request_id("r3"),
            Box::new(move |c: &AuditChange| txn(c).request_id.as_deref() == Some("r3")),
        ),
        (
            TimelineFilter::new().op(ChangeOp::Delete),
            Box::new(|c: &AuditChange| c.op == ChangeOp::Delete),
        ),
        (
            TimelineFilter::new()
                .op(ChangeOp::Insert)
                .table("posts".parse().unwrap())
                .actor(user("1")),
            Box::new(|c: &AuditChange| {
                c.op == ChangeOp::Insert
                    && c.table_name == "posts"
                    && c.actor().unwrap() == Some(user("1"))
            }),
        ),
        (
            TimelineFilter::new().actor(user("nobody")),
            Box::new(|_: &AuditChange| false),
        ),
    ];
    for (filter, pred) in cases {
        let expected: Vec<i64> = all.items.iter().filter(|c| pred(c)).map(|c| c.id).collect();
        let page = tl.timeline(&filter, Page::first()).await.unwrap();
        assert_eq!(ids(&page.items), expected, "{filter:?}");
        assert_eq!(
            tl.count(&filter).await.unwrap(),
            expected.len() as u64,
            "{filter:?}"
        );
    }
    // Each filter narrows: the cases above are not all trivially equal.
    assert_eq!(tl.count(&TimelineFilter::new()).await.unwrap(), 6);
    assert_eq!(
        tl.count(&TimelineFilter::new().correlation_id("c1"))
            .await
            .unwrap(),
        4
    );
    assert_eq!(
        tl.count(&TimelineFilter::new().request_id("r3"))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        tl.count(&TimelineFilter::new().from(t2_from).to(t2_to))
            .await
            .unwrap(),
        2
    );
}

#[tokio::test]
async fn pagination_neither_skips_nor_repeats_rows_that_share_timestamps() {
    let (db, tl) = setup(
        "CREATE TABLE posts (id int PRIMARY KEY, title text)",
        &["posts"],
    )
    .await;
    write(
        &db,
        &user("1"),
        "INSERT INTO posts SELECT g, 't' FROM generate_series(1, 200) g",
    )
    .await;
    write(
        &db,
        &user("2"),
        "UPDATE posts SET title = 'u' WHERE id <= 60",
    )
    .await;
    // Force heavy ties: most changes share one of three timestamps.
    db.exec(
        "UPDATE audit_changes SET captured_at = timestamptz '2026-03-01 12:00:00+00'
             + (id % 3) * interval '1 microsecond' WHERE id % 5 <> 0",
    )
    .await;

    for filter in [
        TimelineFilter::new(),
        TimelineFilter::new()
            .table("posts".parse().unwrap())
            .op(ChangeOp::Insert),
    ] {
        let total = tl.count(&filter).await.unwrap() as usize;
        assert!(total >= 200);
        let mut forward = Vec::new();
        let mut pages = vec![
            tl.timeline(&filter, Page::first().with_size(7))
                .await
                .unwrap(),
        ];
        assert!(pages[0].prev.is_none());
        while let Some(next) = pages.last().unwrap().next.clone() {
            let page = tl
                .timeline(&filter, Page::at(next).with_size(7))
                .await
                .unwrap();
            assert!(!page.items.is_empty());
            pages.push(page);
        }
        for page in &pages {
            forward.extend(page.items.iter().cloned());
        }
        assert_eq!(forward.len(), total, "every row exactly once");
        assert_newest_first(&forward);

        // And back again with the `prev` cursors, page by page.
        let mut backward = pages.pop().unwrap().items;
        let mut cursor = tl
            .timeline(
                &filter,
                Page::at(pages.last().unwrap().next.clone().unwrap()).with_size(7),
            )
            .await
            .unwrap()
            .prev;
        while let Some(prev) = cursor {
            let page = tl
                .timeline(&filter, Page::at(prev).with_size(7))
                .await
                .unwrap();
            assert_eq!(page.items.len(), 7);
            let mut items = page.items;
            items.extend(backward);
            backward = items;
            cursor = page.prev;
        }
        assert_eq!(ids(&backward), ids(&forward));
    }
}

#[tokio::test]
async fn actor_history_pages_an_actors_transactions_newest_first() {
    let (db, tl) = setup(
        "CREATE TABLE posts (id int PRIMARY KEY, title text)",
        &["posts"],
    )
    .await;
    for i in 0..5 {
        write(
            &db,
            &user("1"),
            &format!("INSERT INTO posts VALUES ({i}, 'x')"),
        )
        .await;
    }
    for i in 5..7 {
        write(
            &db,
            &user("2"),
            &format!("INSERT INTO posts VALUES ({i}, 'x')"),
        )
        .await;
    }
    write(
        &db,
        &ActorRef::anonymous(),
        "INSERT INTO posts VALUES (9, 'anon')",
    )
    .await;

    let mut seen = Vec::new();
    let mut page = tl
        .actor_history(&user("1"), Page::first().with_size(2))
        .await
        .unwrap();
    loop {
        assert!(page.items.len() <= 2);
        seen.extend(page.items.clone());
        match page.next {
            Some(next) => {
                page = tl
                    .actor_history(&user("1"), Page::at(next).with_size(2))
                    .await
                    .unwrap()
            }
            None => break,
        }
    }
    assert_eq!(seen.len(), 5);
    assert!(seen.iter().all(|t| t.actor().unwrap() == Some(user("1"))));
    assert!(
        seen.windows(2)
            .all(|w| (w[0].occurred_at, w[0].id) > (w[1].occurred_at, w[1].id))
    );
    assert_eq!(
        tl.actor_history(&user("2"), Page::first())
            .await
            .unwrap()
            .items
            .len(),
        2
    );
    let anon = tl
        .actor_history(&ActorRef::anonymous(), Page::first())
        .await
        .unwrap();
    assert_eq!(anon.items.len(), 1);
    assert!(
        tl.actor_history(&user("3"), Page::first())
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

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
    audit(
        &db,
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

#[tokio::test]
async fn bad_input_gets_typed_errors() {
    let (db, tl) = mixed_trail().await;
    // Table names.
    let ident = |e: Error| match e {
        Error::Core(threadline_core::Error::Ident(e)) => e,
        other => panic!("expected a name error, got {other:?}"),
    };
    use threadline_core::IdentError;
    assert!(matches!(
        ident(tl.history("my table", 1).await.unwrap_err()),
        IdentError::InvalidChar { ch: ' ', .. }
    ));
    assert!(matches!(
        ident(tl.history("a.b.c", 1).await.unwrap_err()),
        IdentError::Malformed(_)
    ));
    assert_eq!(
        ident(tl.as_of("", 1, Utc::now()).await.unwrap_err()),
        IdentError::Empty
    );
    assert!(matches!(
        tl.history("nope", 1).await.unwrap_err(),
        Error::TableNotFound(_)
    ));
    // Keys.
    assert!(matches!(
        query_error(tl.history("posts", json!(null)).await.unwrap_err()),
        QueryError::KeyValue(_)
    ));
    assert!(matches!(
        query_error(tl.as_of("posts", json!([1]), Utc::now()).await.unwrap_err()),
        QueryError::KeyValue(_)
    ));
    // Filters.
    let now = Utc::now();
    let backwards = TimelineFilter::new()
        .from(now)
        .to(now - Duration::seconds(1));
    for err in [
        tl.timeline(&backwards, Page::first()).await.unwrap_err(),
        tl.count(&backwards).await.unwrap_err(),
    ] {
        assert!(matches!(
            query_error(err),
            QueryError::Filter { field: "from", .. }
        ));
    }
    assert!(matches!(
        query_error(
            tl.count(&TimelineFilter::new().request_id(""))
                .await
                .unwrap_err()
        ),
        QueryError::Filter {
            field: "request_id",
            ..
        }
    ));
    // Page sizes.
    for size in [0, 1001] {
        let err = tl
            .timeline(&TimelineFilter::new(), Page::first().with_size(size))
            .await
            .unwrap_err();
        assert_eq!(query_error(err), QueryError::PageSize { size });
        let err = tl
            .actor_history(&user("1"), Page::first().with_size(size))
            .await
            .unwrap_err();
        assert_eq!(query_error(err), QueryError::PageSize { size });
    }
    assert!(
        tl.timeline(&TimelineFilter::new(), Page::first().with_size(1000))
            .await
            .is_ok()
    );
    // Action names and fields.
    let invalid = |e: Error| match e {
        Error::InvalidInput { field, .. } => field,
        other => panic!("expected invalid input, got {other:?}"),
    };
    let u = user("1");
    for name in ["", "  ", &"x".repeat(257), "a\nb"] {
        let err = tl
            .record_action(name, &u, ActionOptions::new())
            .await
            .unwrap_err();
        assert_eq!(invalid(err), "action name", "{name:?}");
    }
    let err = tl
        .record_action(
            "ok.name",
            &u,
            ActionOptions::new().comment("x".repeat(1025)),
        )
        .await
        .unwrap_err();
    assert_eq!(invalid(err), "comment");
    let err = tl
        .record_action("ok.name", &u, ActionOptions::new().job_id("a\0b"))
        .await
        .unwrap_err();
    assert_eq!(invalid(err), "job_id");
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_actions")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(count, 0, "refused actions write nothing");
}

#[tokio::test]
async fn cursors_are_tamper_checked_and_bound_to_their_filter_and_method() {
    let (db, tl) = mixed_trail().await;
    write(&db, &user("1"), "INSERT INTO posts VALUES (3, 'c')").await;
    let filter = TimelineFilter::new().table("posts".parse().unwrap());
    let first = tl
        .timeline(&filter, Page::first().with_size(1))
        .await
        .unwrap();
    let next = first.next.clone().unwrap();
    let text = next.to_string();
    assert!(
        text.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    );

    // Round trip through text and serde, as a web handler would.
    let parsed = Page::parse(Some(1), Some(&text)).unwrap();
    let second = tl.timeline(&filter, parsed).await.unwrap();
    assert_ne!(ids(&second.items), ids(&first.items));
    let via_serde: threadline_sqlx::Cursor =
        serde_json::from_value(serde_json::to_value(&next).unwrap()).unwrap();
    assert_eq!(via_serde, next);

    // An edited cursor.
    let mut edited = text.clone().into_bytes();
    edited[10] = if edited[10] == b'A' { b'B' } else { b'A' };
    let edited = String::from_utf8(edited).unwrap();
    assert_eq!(
        Page::parse(None, Some(&edited)),
        Err(QueryError::Cursor(CursorError::Tampered))
    );
    assert_eq!(
        Page::parse(None, Some("garbage!")),
        Err(QueryError::Cursor(CursorError::Malformed))
    );
    assert!(serde_json::from_value::<threadline_sqlx::Cursor>(json!("garbage")).is_err());

    // A cursor for another filter, and one from another method.
    let err = tl
        .timeline(&TimelineFilter::new(), Page::at(next.clone()))
        .await
        .unwrap_err();
    assert_eq!(
        query_error(err),
        QueryError::Cursor(CursorError::WrongFilter)
    );
    let actor_page = tl
        .actor_history(&user("1"), Page::first().with_size(1))
        .await
        .unwrap();
    let err = tl
        .timeline(&filter, Page::at(actor_page.next.unwrap()))
        .await
        .unwrap_err();
    assert!(matches!(
        query_error(err),
        QueryError::Cursor(CursorError::WrongMethod {
            issued_by: "actor_history",
            used_in: "timeline"
        })
    ));
    let err = tl
        .actor_history(&user("2"), Page::at(next))
        .await
        .unwrap_err();
    assert!(matches!(
        query_error(err),
        QueryError::Cursor(CursorError::WrongMethod { .. })
    ));
}

#[tokio::test]
async fn handle_works_with_a_custom_audit_schema() {
    let db = TestDb::empty().await;
    let options = InstallOptions::with_schema(Ident::new("Audit Log").unwrap());
    threadline_sqlx::install(&db.pool, &options).await.unwrap();
    db.exec("CREATE TABLE posts (id int PRIMARY KEY, title text)")
        .await;
    audit_table(
        &db.pool,
        &options,
        &"posts".parse().unwrap(),
        &TableCapture::default(),
    )
    .await
    .unwrap();
    write(&db, &user("1"), "INSERT INTO posts VALUES (1, 'a')").await;

    let tl = Threadline::with_options(db.pool.clone(), &options);
    assert_eq!(tl.schema().as_str(), "Audit Log");
    let history = tl.history("posts", 1).await.unwrap();
    assert_eq!(history.len(), 1);
    let same = Threadline::new(db.pool.clone()).with_schema(Ident::new("Audit Log").unwrap());
    assert_eq!(same.history("posts", 1).await.unwrap(), history);
    assert_eq!(same.clone().count(&TimelineFilter::new()).await.unwrap(), 1);
    let detail = same
        .transaction(history[0].transaction_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(detail.changes, history);
    let action = same
        .record_action("x.done", &user("1"), ActionOptions::new())
        .await
        .unwrap();
    assert_eq!(action.transaction_id, None);
}
