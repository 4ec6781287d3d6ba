//! Test support: each test gets its own PostgreSQL database, dropped when the test ends.
//!
//! The server comes from `DATABASE_URL` when set, else `postgres://postgres@127.0.0.1:5432/postgres`.
//!
//! ```no_run
//! # async fn t() {
//! let db = threadline_test_support::TestDb::installed().await;
//! sqlx::query("SELECT 1").execute(&db.pool).await.unwrap();
//! # }
//! ```

pub mod stress;

use std::sync::atomic::{AtomicU32, Ordering};

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgConnection, PgPool};

/// The server used when `DATABASE_URL` is unset.
pub const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// The admin URL of the test server.
pub fn server_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned())
}

/// A fresh database, dropped (with its connections) when this value is dropped.
pub struct TestDb {
    /// A pool on the fresh database.
    pub pool: PgPool,
    /// The database's name.
    pub name: String,
    /// Its connection URL.
    pub url: String,
}

impl TestDb {
    /// An empty database.
    pub async fn empty() -> Self {
        let admin: PgConnectOptions = server_url().parse().expect("valid DATABASE_URL");
        let name = format!(
            "threadline_test_{}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0)
        );
        let mut conn = admin.connect().await.expect("connect to the test server");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut conn)
            .await
            .expect("create test database");
        conn.close().await.ok();
        let options = admin.clone().database(&name);
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .connect_with(options.clone())
            .await
            .expect("connect to the test database");
        let url = options.to_url_lossy().to_string();
        Self { pool, name, url }
    }

    /// A database with the Threadline schema installed in `public`.
    pub async fn installed() -> Self {
        let db = Self::empty().await;
        threadline_sqlx::install(&db.pool, &threadline_core::InstallOptions::default())
            .await
            .expect("install threadline");
        db
    }

    /// Runs SQL (several statements allowed), panicking with the database's message on error.
    pub async fn exec(&self, sql: &str) {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(&self.pool)
            .await
            .unwrap_or_else(|e| panic!("{e}\nSQL: {sql}"));
    }

    /// A new single connection to the database.
    pub async fn connect(&self) -> PgConnection {
        PgConnection::connect(&self.url).await.expect("connect")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // Drop runs inside the test's runtime, which is blocked while we wait here, so the
        // pool cannot be closed gracefully: `WITH (FORCE)` ends its connections server-side.
        // The statement runs on a private runtime on a helper thread.
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                let Ok(admin) = server_url().parse::<PgConnectOptions>() else {
                    return;
                };
                if let Ok(mut conn) = admin.connect().await {
                    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                    )))
                    .execute(&mut conn)
                    .await;
                    let _ = conn.close().await;
                }
            });
        })
        .join();
    }
}
