//! Capture (SPEC §3): one `audit_transactions` row per database transaction, however its
//! changes were made.

mod support;

use serde_json::{Value, json};
use threadline_sqlx::{ActorRef, TableCapture, TransactionExt};
use threadline_test_support::{TestDb, changes};

use support::POSTS;

#[tokio::test]
async fn one_transaction_row_per_database_transaction() {
    let db = TestDb::installed().await;
    db.exec(POSTS).await;
    db.exec("CREATE TABLE tags (id int PRIMARY KEY)").await;
    db.audit("posts", &TableCapture::default()).await;
    db.audit("tags", &TableCapture::default()).await;
    let mut tx = db.pool.begin().await.unwrap();
    sqlx::query("INSERT INTO posts (title) VALUES ('a'), ('b')")
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("INSERT INTO tags VALUES (1)")
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("UPDATE posts SET views = 1")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    db.exec("INSERT INTO tags VALUES (2)").await;
    db.exec("SELECT 1").await;

    let c = changes(&db).await;
    assert_eq!(c.len(), 6);
    assert!(
        c[..5]
            .iter()
            .all(|x| x.transaction_id == c[0].transaction_id)
    );
    assert_ne!(c[5].transaction_id, c[0].transaction_id);
    assert_eq!(
        db.scalar("SELECT count(*) FROM audit_transactions").await,
        2
    );
}

#[tokio::test]
async fn cached_transaction_id_cannot_be_replayed_into_another_transaction() {
    let db = TestDb::installed().await;
    db.exec(POSTS).await;
    db.audit("posts", &TableCapture::default()).await;
    let mut conn = db.connect().await;
    let mut tx = sqlx::Connection::begin(&mut conn).await.unwrap();
    sqlx::query("INSERT INTO posts (title) VALUES ('first')")
        .execute(&mut *tx)
        .await
        .unwrap();
    let cached: String = sqlx::query_scalar("SELECT current_setting('threadline.txn')")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    // A forged or leftover cache value from the first transaction, replayed into a second.
    let mut tx = sqlx::Connection::begin(&mut conn).await.unwrap();
    sqlx::query("SELECT set_config('threadline.txn', $1, true)")
        .bind(&cached)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.with_actor(&ActorRef::user("second").unwrap())
        .await
        .unwrap();
    sqlx::query("INSERT INTO posts (title) VALUES ('second')")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let c = changes(&db).await;
    assert_ne!(
        c[0].transaction_id, c[1].transaction_id,
        "the replayed id was ignored"
    );
    let actor: Value = sqlx::query_scalar("SELECT actor_ref FROM audit_transactions WHERE id = $1")
        .bind(c[1].transaction_id)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(actor, json!({"type": "user", "id": "second"}));
}

#[tokio::test]
async fn savepoint_rollback_of_the_first_capture_keeps_later_changes_linked() {
    let db = TestDb::installed().await;
    db.exec(POSTS).await;
    db.audit("posts", &TableCapture::default()).await;
    let mut tx = db.pool.begin().await.unwrap();
    tx.with_actor(&ActorRef::user("7").unwrap()).await.unwrap();
    let mut sp = sqlx::Connection::begin(&mut *tx).await.unwrap();
    sqlx::query("INSERT INTO posts (title) VALUES ('rolled back')")
        .execute(&mut *sp)
        .await
        .unwrap();
    sp.rollback().await.unwrap();
    sqlx::query("INSERT INTO posts (title) VALUES ('kept')")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let c = changes(&db).await;
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].data_after.as_ref().unwrap()["title"], "kept");
    let actor: Value = sqlx::query_scalar("SELECT actor_ref FROM audit_transactions WHERE id = $1")
        .bind(c[0].transaction_id)
        .fetch_one(&db.pool)
        .await
        .expect("the change points at an existing transaction row");
    assert_eq!(actor, json!({"type": "user", "id": "7"}));
    assert_eq!(
        db.scalar("SELECT count(*) FROM audit_transactions").await,
        1
    );
}
