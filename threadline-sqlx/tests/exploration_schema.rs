//! The `Threadline` handle with the audit tables in a schema other than `public`.

use threadline_sqlx::{
    ActionOptions, Ident, InstallOptions, TableCapture, Threadline, TimelineFilter, audit_table,
};
use threadline_test_support::{TestDb, user, write};

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
