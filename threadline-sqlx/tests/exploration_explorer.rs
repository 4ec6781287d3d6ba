//! `previous_images` and `activity`, the two reads behind the explorer's derived before-values
//! and activity chart, on a real PostgreSQL with changes captured by real triggers.

mod support;

use chrono::{Duration, Utc};
use serde_json::json;
use threadline_sqlx::{ActivityBucket, ActivityWindow, ChangeOp, TimelineFilter};
use threadline_test_support::{user, write};

use support::setup;

#[tokio::test]
async fn previous_images_give_each_change_the_version_before_it_in_one_query() {
    let (db, tl) = setup(
        "CREATE TABLE posts (id bigint PRIMARY KEY, title text)",
        &["posts"],
    )
    .await;
    write(
        &db,
        &user("1"),
        "INSERT INTO posts VALUES (1, 'a'), (2, 'x')",
    )
    .await;
    // Two updates of row 1 in one transaction: the second's previous version is the first.
    write(
        &db,
        &user("1"),
        "UPDATE posts SET title = 'b' WHERE id = 1; UPDATE posts SET title = 'c' WHERE id = 1",
    )
    .await;
    write(&db, &user("1"), "DELETE FROM posts WHERE id = 2").await;
    write(&db, &user("1"), "INSERT INTO posts VALUES (2, 'y')").await;
    write(&db, &user("1"), "TRUNCATE posts").await;

    let page = tl
        .timeline(&TimelineFilter::new(), threadline_sqlx::Page::first())
        .await
        .unwrap()
        .items;
    let changes: Vec<_> = page.iter().collect();
    let images = tl.previous_images(&changes).await.unwrap();
    let find = |op: ChangeOp, pk: i64, title: Option<&str>| {
        page.iter()
            .find(|c| {
                c.op == op
                    && c.table_pk == json!({"id": pk})
                    && c.data_after.as_ref().map(|d| d["title"].clone()) == title.map(|t| json!(t))
            })
            .unwrap()
    };
    let first_insert = find(ChangeOp::Insert, 1, Some("a"));
    let b = find(ChangeOp::Update, 1, Some("b"));
    let c = find(ChangeOp::Update, 1, Some("c"));
    let reinsert = find(ChangeOp::Insert, 2, Some("y"));
    assert_eq!(images[&b.id].change_id, first_insert.id);
    assert_eq!(images[&b.id].image["title"], "a");
    assert_eq!(images[&c.id].change_id, b.id);
    assert_eq!(images[&c.id].image["title"], "b");
    // Nothing before the first insert; a delete before the re-insert is no image; the
    // truncate (empty key) is never looked up.
    assert!(!images.contains_key(&first_insert.id));
    assert!(!images.contains_key(&reinsert.id));
    let truncate = page.iter().find(|c| c.op == ChangeOp::Truncate).unwrap();
    assert!(!images.contains_key(&truncate.id));
    assert!(tl.previous_images(&[]).await.unwrap().is_empty());
}

#[tokio::test]
async fn activity_counts_the_filters_changes_per_bucket_with_empty_buckets_as_zero() {
    let (db, tl) = setup(
        "CREATE TABLE posts (id bigint PRIMARY KEY, title text);
         CREATE TABLE tags (id bigint PRIMARY KEY)",
        &["posts", "tags"],
    )
    .await;
    write(
        &db,
        &user("1"),
        "INSERT INTO posts SELECT g, 't' FROM generate_series(1, 4) g",
    )
    .await;
    write(&db, &user("2"), "INSERT INTO tags VALUES (1)").await;
    // Move two changes back three hours, as if captured then.
    db.exec(
        "UPDATE audit_changes SET captured_at = captured_at - interval '3 hours' \
         WHERE table_name = 'posts' AND table_pk->>'id' IN ('1', '2')",
    )
    .await;
    let now = Utc::now();
    let filter = TimelineFilter::new().from(now - Duration::hours(5));
    let window = ActivityWindow::for_filter(&filter, now);
    assert_eq!(window.bucket, ActivityBucket::Hour);
    let counts = tl.activity(&filter, &window).await.unwrap();
    assert_eq!(counts.len(), window.buckets().len());
    let total: i64 = counts.iter().map(|(_, n)| n).sum();
    assert_eq!(total, 5);
    assert_eq!(
        counts.last().unwrap().1,
        3,
        "this hour: two posts and the tag"
    );
    assert_eq!(
        counts.iter().filter(|(_, n)| *n == 0).count(),
        counts.len() - 2
    );

    let posts = filter.clone().table("posts".parse().unwrap());
    let counts = tl.activity(&posts, &window).await.unwrap();
    assert_eq!(counts.iter().map(|(_, n)| n).sum::<i64>(), 4);
    let by_actor = filter.actor(user("2"));
    let counts = tl.activity(&by_actor, &window).await.unwrap();
    assert_eq!(counts.iter().map(|(_, n)| n).sum::<i64>(), 1);
}
