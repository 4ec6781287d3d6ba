//! The reporting node for real: the SQL of `threadline replication sql` run on the primary
//! (127.0.0.1:5432) and on a second cluster (`.ci/setup-reporting.sh`, 127.0.0.1:5433, or
//! `THREADLINE_REPORTING_URL`). Writes on the primary reach the reporting node, a purge on the
//! primary leaves them there, and `Threadline` and the explorer read them there.
#![allow(clippy::unwrap_used)]

mod storage;

use std::time::{Duration, Instant};

use http::StatusCode;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgConnection, PgPool};
use threadline_core::sql::replication_sql;
use threadline_sqlx::{
    EnsureOptions, Ident, InstallOptions, PurgeOptions, RetentionPolicy, TableCapture, Threadline,
    ensure_partitions, purge,
};
use threadline_test_support::{TestDb, layout_from_env, scalar, user, write};

const DEFAULT_REPORTING_URL: &str = "postgres://postgres@127.0.0.1:5433/postgres";

/// The reporting cluster's admin URL, or `None` (the test is skipped) when it does not
/// answer outside CI. In CI (`CI=true`) a missing cluster fails the test.
async fn reporting_admin() -> Option<String> {
    let url =
        std::env::var("THREADLINE_REPORTING_URL").unwrap_or_else(|_| DEFAULT_REPORTING_URL.into());
    let problem =
        match tokio::time::timeout(Duration::from_secs(5), PgConnection::connect(&url)).await {
            Ok(Ok(conn)) => {
                conn.close().await.ok();
                None
            }
            Ok(Err(e)) => Some(e.to_string()),
            Err(_) => Some("timed out".to_owned()),
        };
    let Some(problem) = problem else {
        return Some(url);
    };
    let message = format!(
        "the reporting cluster at {url} does not answer ({problem}); run `bash .ci/setup-reporting.sh` (or set THREADLINE_REPORTING_URL)"
    );
    assert!(std::env::var("CI").as_deref() != Ok("true"), "{message}");
    eprintln!("skipped: {message}");
    None
}

/// The reporting database and its subscription, dropped (subscription first, which drops
/// its slot on the primary) before the primary's database.
struct Reporting {
    admin: String,
    name: String,
    subscription: String,
    pool: PgPool,
}

impl Drop for Reporting {
    fn drop(&mut self) {
        let (admin, name, subscription) = (
            self.admin.clone(),
            self.name.clone(),
            self.subscription.clone(),
        );
        let db_url = self.pool.connect_options().to_url_lossy().to_string();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                if let Ok(mut conn) = PgConnection::connect(&db_url).await {
                    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                        "DROP SUBSCRIPTION IF EXISTS \"{subscription}\""
                    )))
                    .execute(&mut conn)
                    .await;
                    conn.close().await.ok();
                }
                if let Ok(mut conn) = PgConnection::connect(&admin).await {
                    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                    )))
                    .execute(&mut conn)
                    .await;
                }
            });
        })
        .join();
    }
}

async fn exec(pool: &PgPool, sql: &str) {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(pool)
        .await
        .unwrap_or_else(|e| panic!("{e}\nSQL: {sql}"));
}

/// Waits until `sql` gives `want` on `pool`.
async fn wait_for(pool: &PgPool, sql: &str, want: i64) {
    let start = Instant::now();
    loop {
        let got = scalar(pool, sql).await;
        if got == want {
            eprintln!("waited {:?} for {sql}", start.elapsed());
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the reporting node has {got}, not {want}, after 60 s: {sql}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn the_reporting_node_keeps_the_trail_the_primary_purges() {
    let Some(admin) = reporting_admin().await else {
        return;
    };
    let primary = TestDb::installed().await;
    let wal_level: String = sqlx::query_scalar("SHOW wal_level")
        .fetch_one(&primary.pool)
        .await
        .unwrap();
    if wal_level != "logical" {
        let message = "the primary runs with wal_level != logical; run `bash .ci/setup-reporting.sh` (it sets it and restarts the primary once)";
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{message}");
        eprintln!("skipped: {message}");
        return;
    }
    let install = InstallOptions::default();
    primary
        .exec("CREATE TABLE items (id bigint PRIMARY KEY, v text)")
        .await;
    primary.audit("items", &TableCapture::default()).await;
    // Old rows (100 days back) that retention will purge on the primary.
    primary
        .exec(
            "INSERT INTO audit_transactions (txid, occurred_at, actor_ref)
                 SELECT g, now() - interval '100 days' + g * interval '1 minute', '{\"type\":\"user\",\"id\":\"old\"}'
                 FROM generate_series(1, 5) g;
             INSERT INTO audit_changes (transaction_id, table_schema, table_name, table_pk, op, data_after, captured_at)
                 SELECT id, 'public', 'items', jsonb_build_object('id', 1000 + id), 'insert',
                        jsonb_build_object('id', 1000 + id), occurred_at
                 FROM audit_transactions;",
        )
        .await;
    if layout_from_env().is_some() {
        ensure_partitions(&primary.pool, &install, &EnsureOptions::default())
            .await
            .unwrap();
    }

    // The reporting database, its audit schema and the subscription.
    let name = format!(
        "threadline_storage2_rep_{}",
        &primary.name["threadline_test_".len()..]
    );
    let name: String = name.chars().take(63).collect();
    let mut conn = PgConnection::connect(&admin).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.ok();
    let options: PgConnectOptions = admin.parse::<PgConnectOptions>().unwrap().database(&name);
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .connect_with(options)
        .await
        .unwrap();
    let subscription: String = format!("sub_{}", &name["threadline_storage2_rep_".len()..])
        .chars()
        .take(63)
        .collect();
    let reporting = Reporting {
        admin,
        name,
        subscription: subscription.clone(),
        pool,
    };
    let primary_options: PgConnectOptions = primary.url.parse().unwrap();
    let conninfo = format!(
        "host={} port={} dbname={} user={}",
        primary_options.get_host(),
        primary_options.get_port(),
        primary.name,
        primary_options.get_username()
    );
    let sql = replication_sql(
        &install,
        &Ident::new(subscription.clone()).unwrap(),
        &Ident::new(subscription.clone()).unwrap(),
        &conninfo,
    );
    primary.exec(&sql.publication).await;
    exec(&reporting.pool, &sql.reporting_schema).await;
    exec(&reporting.pool, &sql.subscription).await;

    // Writes on the primary, old and new, reach the reporting node.
    let bob = user("bob");
    write(&primary, &bob, "INSERT INTO items VALUES (1, 'a')").await;
    write(&primary, &bob, "UPDATE items SET v = 'b' WHERE id = 1").await;
    let total = primary.scalar("SELECT count(*) FROM audit_changes").await;
    assert_eq!(total, 7);
    wait_for(&reporting.pool, "SELECT count(*) FROM audit_changes", total).await;
    wait_for(
        &reporting.pool,
        "SELECT count(*) FROM audit_transactions",
        7,
    )
    .await;

    if layout_from_env().is_some() {
        // A row that lands in DEFAULT and is moved out by `partitions ensure` reaches the
        // reporting node once: the move is not replicated as a second insert.
        primary
            .exec(
                "INSERT INTO audit_changes (transaction_id, table_schema, table_name, table_pk, op, captured_at)
                 VALUES (1, 'public', 'items', '{\"id\": 2000}', 'insert', now() - interval '300 days')",
            )
            .await;
        ensure_partitions(&primary.pool, &install, &EnsureOptions::default())
            .await
            .unwrap();
        write(&primary, &bob, "UPDATE items SET v = 'c' WHERE id = 1").await;
        wait_for(
            &reporting.pool,
            "SELECT count(*) FROM audit_changes",
            total + 2,
        )
        .await;
    }

    // A purge on the primary leaves the reporting node's rows alone.
    let kept = scalar(&reporting.pool, "SELECT count(*) FROM audit_changes").await;
    let report = purge(
        &primary.pool,
        &install,
        &RetentionPolicy::keep_days(30).unwrap().enabled(true),
        &PurgeOptions::default(),
    )
    .await
    .unwrap();
    assert!(report.deleted_changes >= 5, "{report:?}");
    assert_eq!(
        primary
            .scalar(
                "SELECT count(*) FROM audit_changes WHERE captured_at < now() - interval '30 days'"
            )
            .await,
        0
    );
    // A marker written after the purge: once it arrived, so would have anything the purge
    // sent.
    write(&primary, &bob, "INSERT INTO items VALUES (2, 'marker')").await;
    wait_for(
        &reporting.pool,
        "SELECT count(*) FROM audit_changes WHERE table_pk = '{\"id\": 2}'",
        1,
    )
    .await;
    assert_eq!(
        scalar(&reporting.pool, "SELECT count(*) FROM audit_changes").await,
        kept + 1
    );
    assert_eq!(
        scalar(
            &reporting.pool,
            "SELECT count(*) - count(DISTINCT id) FROM audit_changes"
        )
        .await,
        0
    );

    // Threadline and the explorer read the whole trail there, purged rows included.
    let there = Threadline::new(reporting.pool.clone());
    let old = there.history("items", 1001).await.unwrap();
    assert_eq!(old.len(), 1);
    assert!(
        Threadline::new(primary.pool.clone())
            .history("items", 1001)
            .await
            .unwrap()
            .is_empty()
    );
    let on_primary = Threadline::new(primary.pool.clone())
        .history("items", 1)
        .await
        .unwrap();
    let on_reporting = there.history("items", 1).await.unwrap();
    assert_eq!(
        on_reporting.iter().map(|c| c.id).collect::<Vec<_>>(),
        on_primary.iter().map(|c| c.id).collect::<Vec<_>>()
    );
    let (status, body) =
        storage::explorer_get(&reporting.pool, "/admin/audit/api/row?table=items&pk=1001").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("1001"), "{body}");
    drop(reporting);
}
