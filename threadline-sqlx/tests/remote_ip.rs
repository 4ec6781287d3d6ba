//! The client address is read from the `inet` column itself (no text round trip).

use std::net::IpAddr;

use threadline_sqlx::{AuditContext, Page, PoolExt, TableCapture, Threadline, TimelineFilter};
use threadline_test_support::TestDb;

async fn write(db: &TestDb, ctx: &AuditContext, hand_set_ip: Option<&str>, title: &str) {
    let mut tx = db.pool.begin_with_context(ctx).await.unwrap();
    if let Some(ip) = hand_set_ip {
        sqlx::query("SELECT set_config('threadline.remote_ip', $1, true)")
            .bind(ip)
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    sqlx::query("INSERT INTO posts (title) VALUES ($1)")
        .bind(title)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn remote_ips_decode_from_inet_for_v4_v6_and_hand_set_netmasks() {
    let db = TestDb::installed().await;
    db.exec("CREATE TABLE posts (id bigserial PRIMARY KEY, title text NOT NULL)")
        .await;
    db.audit("posts", &TableCapture::default()).await;
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    let cases = [
        ("v4", Some(ip("203.0.113.5")), None),
        ("v6", Some(ip("2001:db8::17")), None),
        ("none", None, None),
        // Set by hand with a netmask: the address part is the client.
        ("netmask", None, Some("10.1.2.3/8")),
    ];
    for (title, remote_ip, hand_set) in &cases {
        let mut ctx = AuditContext::new();
        if let Some(remote_ip) = remote_ip {
            ctx = ctx.with_remote_ip(*remote_ip);
        }
        write(&db, &ctx, *hand_set, title).await;
    }

    let threadline = Threadline::new(db.pool.clone());
    let page = threadline
        .timeline(&TimelineFilter::new(), Page::first())
        .await
        .unwrap();
    assert_eq!(page.items.len(), cases.len());
    for change in &page.items {
        let title = change.data_after.as_ref().unwrap()["title"]
            .as_str()
            .unwrap();
        let detail = threadline
            .transaction(change.transaction_id)
            .await
            .unwrap()
            .unwrap();
        let expected = match title {
            "netmask" => Some(ip("10.1.2.3")),
            _ => cases.iter().find(|c| c.0 == title).unwrap().1,
        };
        assert_eq!(detail.transaction.remote_ip, expected, "{title}");
    }
}
