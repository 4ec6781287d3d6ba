//! `timeline`, `count` and `actor_history` on a real PostgreSQL: filters, keyset pagination
//! and its cursors.

mod support;

use std::collections::BTreeMap;

use serde_json::json;
use threadline_core::query::QueryError;
use threadline_sqlx::{ActorRef, AuditChange, ChangeOp, CursorError, Page, TimelineFilter};
use threadline_test_support::{user, write};

use support::{assert_newest_first, ids, mixed_trail, query_error, setup};

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

/// `audit_changes.actor_key` (what the timeline by actor reads) came after the first release:
/// an install made before it gains the column, its index and a key for every change already
/// there when `install` runs again, and changes without an actor keep no key.
#[tokio::test]
async fn rerunning_install_keys_the_changes_of_an_older_install() {
    let (db, tl) = mixed_trail().await;
    let filter = TimelineFilter::new().actor(user("1"));
    let before = ids(&tl.timeline(&filter, Page::first()).await.unwrap().items);
    assert!(!before.is_empty());
    db.exec("ALTER TABLE audit_changes DROP COLUMN actor_key")
        .await;
    write(
        &db,
        &user("9"),
        "UPDATE posts SET title = 'between' WHERE id = 1",
    )
    .await;
    let options = threadline_test_support::install_options_from_env();
    threadline_sqlx::install(&db.pool, &options).await.unwrap();
    threadline_sqlx::install(&db.pool, &options).await.unwrap();
    assert_eq!(
        ids(&tl.timeline(&filter, Page::first()).await.unwrap().items),
        before
    );
    let by_nine = tl
        .timeline(&TimelineFilter::new().actor(user("9")), Page::first())
        .await
        .unwrap();
    assert_eq!(by_nine.items.len(), 1, "the change made before the upgrade");
    assert_eq!(
        db.scalar(
            "SELECT count(*) FROM audit_changes c JOIN audit_transactions t ON t.id = c.transaction_id
             WHERE c.actor_key IS DISTINCT FROM hashtextextended(t.actor_ref::text, 0)"
        )
        .await,
        0,
        "every change is keyed by its transaction's actor, and actor-less ones not at all"
    );
    assert_eq!(
        db.scalar(
            "SELECT count(*) FROM pg_indexes WHERE indexname = 'audit_changes_actor_key_idx'"
        )
        .await,
        1
    );
}
