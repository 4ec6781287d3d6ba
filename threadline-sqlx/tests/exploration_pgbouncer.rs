//! The exploration API through a real PgBouncer in transaction pooling mode, with unnamed
//! statements (`StatementMode::Unnamed`): every method gives the same answer as a direct
//! connection while many calls share PgBouncer's four server connections.
//!
//! Needs PgBouncer on 127.0.0.1:6432 (`bash .ci/setup-pgbouncer.sh`; `PGBOUNCER_URL` overrides).

use chrono::Utc;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use threadline_sqlx::{
    ActionOptions, ActorRef, InstallOptions, Page, StatementMode, TableCapture, Threadline,
    TimelineFilter, TransactionExt,
};
use threadline_test_support::TestDb;

#[tokio::test]
async fn every_method_works_through_pgbouncer_with_unnamed_statements() {
    let db = TestDb::installed().await;
    db.exec("CREATE TABLE posts (id int PRIMARY KEY, title text)")
        .await;
    threadline_sqlx::audit_table(
        &db.pool,
        &InstallOptions::default(),
        &"posts".parse().unwrap(),
        &TableCapture::default(),
    )
    .await
    .unwrap();
    let actor = ActorRef::user("1").unwrap();
    for i in 0..20 {
        let mut tx = db.pool.begin().await.unwrap();
        tx.with_actor(&actor).await.unwrap();
        sqlx::query("INSERT INTO posts VALUES ($1, 'a') ON CONFLICT (id) DO UPDATE SET title = posts.title || 'x'")
            .persistent(false)
            .bind(i % 7)
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }

    let base = std::env::var("PGBOUNCER_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:6432/postgres".to_owned());
    let options: PgConnectOptions = base.parse().unwrap();
    let bouncer = PgPoolOptions::new()
        .max_connections(12)
        .connect_with(options.database(&db.name).statement_cache_capacity(0))
        .await
        .unwrap_or_else(|e| {
            panic!("cannot reach PgBouncer ({e}); run bash .ci/setup-pgbouncer.sh")
        });
    let direct = Threadline::new(db.pool.clone());
    let via = Threadline::new(bouncer.clone()).with_statement_mode(StatementMode::Unnamed);
    let filter = TimelineFilter::new().table("posts".parse().unwrap());

    let expected_history = direct.history("posts", 3).await.unwrap();
    let expected_page = direct
        .timeline(&filter, Page::first().with_size(5))
        .await
        .unwrap();
    let expected_count = direct.count(&filter).await.unwrap();
    let expected_actor = direct.actor_history(&actor, Page::first()).await.unwrap();
    let txn_id = expected_history[0].transaction_id;
    let expected_txn = direct.transaction(txn_id).await.unwrap();
    assert_eq!(expected_history.len(), 3);

    let mut tasks = Vec::new();
    for _ in 0..24 {
        let via = via.clone();
        let filter = filter.clone();
        let actor = actor.clone();
        tasks.push(tokio::spawn(async move {
            let history = via.history("posts", "3").await.unwrap();
            let page = via
                .timeline(&filter, Page::first().with_size(5))
                .await
                .unwrap();
            let next = via
                .timeline(&filter, Page::at(page.next.clone().unwrap()).with_size(5))
                .await
                .unwrap();
            let as_of = via.as_of("posts", 3, Utc::now()).await.unwrap();
            let count = via.count(&filter).await.unwrap();
            let actor_page = via.actor_history(&actor, Page::first()).await.unwrap();
            let txn = via.transaction(history[0].transaction_id).await.unwrap();
            (history, page, next, as_of, count, actor_page, txn)
        }));
    }
    for task in tasks {
        let (history, page, next, as_of, count, actor_page, txn) = task.await.unwrap();
        assert_eq!(history, expected_history);
        assert_eq!(page, expected_page);
        assert_eq!(next.items.len(), 5);
        assert!(next.items[0].id < page.items[4].id);
        assert_eq!(as_of.image(), expected_history[0].data_after.as_ref());
        assert_eq!(count, expected_count);
        assert_eq!(actor_page, expected_actor);
        assert_eq!(txn, expected_txn);
    }
    let action = via
        .record_action("report.viewed", &actor, ActionOptions::new())
        .await
        .unwrap();
    assert_eq!(action.transaction_id, None);

    // The borrowed view inside a transaction of the caller's, through PgBouncer: it sees the
    // transaction's own uncommitted change and links the action to it.
    let mut tx = bouncer.begin().await.unwrap();
    tx.with_actor(&actor).await.unwrap();
    sqlx::query("UPDATE posts SET title = 'in-tx' WHERE id = $1")
        .persistent(false)
        .bind(3)
        .execute(&mut *tx)
        .await
        .unwrap();
    let inside = via.on(&mut tx).history("posts", 3).await.unwrap();
    assert_eq!(inside.len(), expected_history.len() + 1);
    assert_eq!(inside[0].data_after.as_ref().unwrap()["title"], "in-tx");
    let linked = via
        .on(&mut tx)
        .record_action("post.retitled", &actor, ActionOptions::new())
        .await
        .unwrap();
    assert_eq!(linked.transaction_id, Some(inside[0].transaction_id));
    tx.rollback().await.unwrap();
    assert_eq!(direct.history("posts", 3).await.unwrap(), expected_history);
    bouncer.close().await;
}
