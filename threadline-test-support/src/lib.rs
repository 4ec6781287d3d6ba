//! Test support: each test gets its own PostgreSQL database, dropped when the test ends.
//!
//! The server comes from `DATABASE_URL` when set, else `postgres://postgres@127.0.0.1:5432/postgres`.
//!
//! [`TestDb::installed`] installs the layout named by `THREADLINE_TEST_LAYOUT`: `plain` (the
//! default) or `partitioned` (monthly partitions, `partitioned:day` or `partitioned:week` for
//! another interval), so that any suite runs against both layouts:
//!
//! ```sh
//! THREADLINE_TEST_LAYOUT=partitioned cargo test -p threadline-sqlx --test capture_ops
//! ```
//!
//! The install runs once per server and layout, into a template database that each
//! [`TestDb::installed`] copies (`CREATE DATABASE ... TEMPLATE`); the template's name carries
//! an MD5 of the install SQL and the layout, so a changed install SQL never reuses a stale
//! template. `THREADLINE_TEST_TEMPLATE=off` installs into each test's database instead.
//!
//! ```no_run
//! # async fn t() {
//! let db = threadline_test_support::TestDb::installed().await;
//! sqlx::query("SELECT 1").execute(&db.pool).await.unwrap();
//! # }
//! ```

pub mod logs;

pub mod stress;

pub mod browser;

mod helpers;
mod template;

pub use helpers::{Change, backend_pid, changes, user, write, write_ctx};

use std::sync::atomic::{AtomicU32, Ordering};

use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgConnection, PgPool};
use threadline_core::partition::PartitionInterval;

/// The server used when `DATABASE_URL` is unset.
pub const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// The admin URL of the test server.
pub fn server_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned())
}

/// The install options of the layout `THREADLINE_TEST_LAYOUT` names (what
/// [`TestDb::installed`] installs), for a test that runs `install` again.
pub fn install_options_from_env() -> threadline_sqlx::InstallOptions {
    template::install_options(layout_from_env())
}

/// The partition interval `THREADLINE_TEST_LAYOUT` asks for, or `None` for the plain layout.
///
/// # Panics
///
/// On a value other than `plain`, `partitioned` or `partitioned:<day|week|month>`, so a typo
/// never silently tests the wrong layout.
pub fn layout_from_env() -> Option<PartitionInterval> {
    let value = std::env::var("THREADLINE_TEST_LAYOUT").unwrap_or_default();
    match value.as_str() {
        "" | "plain" => None,
        "partitioned" => Some(PartitionInterval::Month),
        other => match other.strip_prefix("partitioned:").map(str::parse) {
            Some(Ok(interval)) => Some(interval),
            _ => panic!(
                "THREADLINE_TEST_LAYOUT={other:?}: use plain, partitioned or partitioned:<day|week|month>"
            ),
        },
    }
}

/// A database name no other test (of this or another process) uses.
fn fresh_name() -> String {
    format!(
        "threadline_test_{}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0)
    )
}

/// Whether [`TestDb::installed`] copies a template database (the default) rather than
/// installing into each test's database: `THREADLINE_TEST_TEMPLATE=off` (or `0`, `false`)
/// turns templates off.
pub fn templates_enabled() -> bool {
    !matches!(
        std::env::var("THREADLINE_TEST_TEMPLATE").as_deref(),
        Ok("off" | "0" | "false")
    )
}

/// A fresh database, dropped (with its connections) when this value is dropped.
#[derive(Debug)]
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
        let name = fresh_name();
        let admin: PgConnectOptions = server_url().parse().expect("valid DATABASE_URL");
        let mut conn = admin.connect().await.expect("connect to the test server");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut conn)
            .await
            .expect("create test database");
        conn.close().await.ok();
        Self::open(name).await
    }

    /// Connects to the new database `name`.
    async fn open(name: String) -> Self {
        let admin: PgConnectOptions = server_url().parse().expect("valid DATABASE_URL");
        let options = admin.database(&name);
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .connect_with(options.clone())
            .await
            .expect("connect to the test database");
        let url = options.to_url_lossy().to_string();
        Self { pool, name, url }
    }

    /// A database with the Threadline schema installed in `public`, in the layout
    /// `THREADLINE_TEST_LAYOUT` names (see the crate documentation; plain by default).
    pub async fn installed() -> Self {
        match layout_from_env() {
            None => Self::installed_plain().await,
            Some(interval) => Self::installed_partitioned(interval).await,
        }
    }

    /// A database with the plain (unpartitioned) layout installed in `public`.
    pub async fn installed_plain() -> Self {
        Self::installed_layout(None).await
    }

    /// A database with the partitioned layout installed in `public`, with the current
    /// partition and three future ones made by `ensure_partitions`.
    pub async fn installed_partitioned(interval: PartitionInterval) -> Self {
        Self::installed_layout(Some(interval)).await
    }

    /// A copy of the layout's template, or (with `THREADLINE_TEST_TEMPLATE=off`) an empty
    /// database with the layout installed into it.
    async fn installed_layout(layout: Option<PartitionInterval>) -> Self {
        if templates_enabled() {
            let name = fresh_name();
            template::create_from(&name, layout).await;
            return Self::open(name).await;
        }
        let db = Self::empty().await;
        let options = template::install_options(layout);
        threadline_sqlx::install(&db.pool, &options)
            .await
            .expect("install threadline");
        if layout.is_some() {
            threadline_sqlx::ensure_partitions(
                &db.pool,
                &options,
                &threadline_sqlx::EnsureOptions::default(),
            )
            .await
            .expect("ensure partitions");
        }
        db
    }

    /// Runs SQL (several statements allowed), panicking with the database's message on error.
    pub async fn exec(&self, sql: &str) {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(&self.pool)
            .await
            .unwrap_or_else(|e| panic!("{e}\nSQL: {sql}"));
    }

    /// The `bigint` (or `int`) value of a one-row, one-column query, such as a `count(*)`,
    /// panicking with the database's message on error.
    pub async fn scalar(&self, sql: &str) -> i64 {
        scalar(&self.pool, sql).await
    }

    /// Attaches capture to `table` (audit tables in `public`) with `policy`.
    pub async fn audit(&self, table: &str, policy: &threadline_core::TableCapture) {
        let name = table.parse().expect("a valid table name");
        threadline_sqlx::audit_table(
            &self.pool,
            &threadline_core::InstallOptions::default(),
            &name,
            policy,
        )
        .await
        .unwrap_or_else(|e| panic!("audit {table}: {e}"));
    }

    /// A new single connection to the database.
    pub async fn connect(&self) -> PgConnection {
        PgConnection::connect(&self.url).await.expect("connect")
    }
}

/// The `bigint` value of a one-row, one-column query on `pool`, panicking with the database's
/// message on error; see [`TestDb::scalar`].
pub async fn scalar(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_one(pool)
        .await
        .unwrap_or_else(|e| panic!("{e}\nSQL: {sql}"))
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // Drop runs inside the test's runtime, which is blocked while we wait here, so the
        // pool cannot be closed gracefully: `WITH (FORCE)` ends its connections server-side.
        admin_exec_blocking(format!(
            "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
            self.name
        ));
    }
}

/// Runs one statement on the admin connection from a private runtime on a helper thread
/// (usable from `Drop` inside a test's runtime), ignoring errors.
fn admin_exec_blocking(sql: String) {
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
                let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                    .execute(&mut conn)
                    .await;
                let _ = conn.close().await;
            }
        });
    })
    .join();
}

/// A role created for one test, dropped when this value is dropped. Declare it before the
/// [`TestDb`]s that grant it privileges, so they are dropped first.
#[derive(Debug)]
pub struct TestRole {
    /// The role's name (unique to this test run).
    pub name: String,
}

impl TestRole {
    /// Creates `threadline_role_<pid>_<n>` with `attributes` (e.g. `LOGIN`).
    pub async fn new(attributes: &str) -> Self {
        let name = format!(
            "threadline_role_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let admin: PgConnectOptions = server_url().parse().expect("valid DATABASE_URL");
        let mut conn = admin.connect().await.expect("connect to the test server");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "CREATE ROLE \"{name}\" {attributes}"
        )))
        .execute(&mut conn)
        .await
        .expect("create test role");
        conn.close().await.ok();
        Self { name }
    }
}

impl Drop for TestRole {
    fn drop(&mut self) {
        admin_exec_blocking(format!("DROP ROLE IF EXISTS \"{}\"", self.name));
    }
}

/// Shape of the synthetic audit trail [`fill_synthetic`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Synthetic {
    /// Rows of `audit_changes`.
    pub changes: i64,
    /// Rows of `audit_transactions` (changes are spread evenly over them).
    pub transactions: i64,
    /// Audited tables (`public.table_0` ...), changes spread round-robin.
    pub tables: i64,
    /// Distinct rows per table; the first change of each row is its insert.
    pub rows_per_table: i64,
    /// Distinct actors (`user:0` ...), round-robin over transactions.
    pub actors: i64,
    /// Time between the starts of two consecutive transactions (1 second in the original
    /// trail; whole microseconds are used).
    pub transaction_spacing: std::time::Duration,
}

impl Synthetic {
    /// When the synthetic time line starts, 2026-01-01T00:00:00Z in Unix seconds: transaction
    /// `g` starts at this plus `g` times [`transaction_spacing`](Self::transaction_spacing).
    pub const EPOCH_SECONDS: i64 = 1_767_225_600;

    /// Changes per transaction.
    pub fn changes_per_transaction(&self) -> i64 {
        (self.changes / self.transactions).max(1)
    }

    /// The spacing in microseconds, as the fill's SQL uses it.
    fn spacing_micros(&self) -> i64 {
        i64::try_from(self.transaction_spacing.as_micros()).unwrap_or(i64::MAX)
    }

    /// When transaction `g` starts (its first change is captured then, the others 1 ms apart).
    pub fn transaction_start(&self, g: i64) -> DateTime<Utc> {
        DateTime::UNIX_EPOCH
            + chrono::Duration::seconds(Self::EPOCH_SECONDS)
            + chrono::Duration::microseconds(g.saturating_mul(self.spacing_micros()))
    }
}

/// Writes a synthetic audit trail straight into the audit tables of `schema` with set-based
/// `INSERT ... SELECT generate_series` (no triggers), in batches of `batch` changes, calling
/// `progress(done)` after each batch. Transaction `g` starts at 2026-01-01 + `g` times
/// `transaction_spacing` ([`Synthetic::transaction_start`]); its changes are 1 ms apart.
/// Change `g` touches table `g % tables`, row `(g / tables) % rows_per_table`; every 97th
/// later change is a delete, the rest updates.
/// Every tenth transaction has a correlation id `corr-<g / 10>`; every transaction has a
/// request id `req-<g>`; every fifth a trace id, `g` in 32 hex digits (`{g:032x}`). Each
/// change carries its transaction's `actor_key`, as capture would write it.
pub async fn fill_synthetic(
    pool: &PgPool,
    schema: &str,
    spec: Synthetic,
    batch: i64,
    mut progress: impl FnMut(i64),
) -> Result<(), sqlx::Error> {
    let s = format!("\"{}\"", schema.replace('"', "\"\""));
    // Transaction `g`'s actor, with the number of actors bound as `$n`.
    let actor =
        |g: &str, n: u8| format!("jsonb_build_object('type', 'user', 'id', ({g} % ${n})::text)");
    let transactions = format!(
        "INSERT INTO {s}.audit_transactions (id, txid, occurred_at, actor_ref, request_id, correlation_id, trace_id)
         OVERRIDING SYSTEM VALUE
         SELECT g, g, timestamptz '2026-01-01 00:00:00+00' + (g * $3) * interval '1 microsecond',
                {actor},
                'req-' || g,
                CASE WHEN g % 10 = 0 THEN 'corr-' || (g / 10) END,
                CASE WHEN g % 5 = 0 THEN lpad(to_hex(g), 32, '0') END
         FROM generate_series(1, $2) AS g",
        actor = actor("g", 1),
    );
    sqlx::query(sqlx::AssertSqlSafe(transactions))
        .bind(spec.actors)
        .bind(spec.transactions)
        .bind(spec.spacing_micros())
        .execute(pool)
        .await?;
    sqlx::query("SELECT setval(pg_get_serial_sequence($1, 'id'), $2)")
        .bind(format!("{s}.audit_transactions"))
        .bind(spec.transactions)
        .execute(pool)
        .await?;
    let changes = format!(
        "INSERT INTO {s}.audit_changes
            (transaction_id, table_schema, table_name, table_pk, op, data_after, data_before, changed_fields, captured_at, actor_key)
         SELECT x.txn, 'public', 'table_' || x.tbl, jsonb_build_object('id', x.pk), x.op,
                CASE WHEN x.op <> 'delete' THEN x.image END,
                CASE WHEN x.op = 'delete' THEN x.image END,
                CASE WHEN x.op = 'update' THEN ARRAY['title', 'views'] END,
                timestamptz '2026-01-01 00:00:00+00' + (x.txn * $6) * interval '1 microsecond'
                    + ((x.g - 1) % $3) * interval '1 millisecond',
                {key}
         FROM (
            SELECT g, (g - 1) / $3 + 1 AS txn, g % $1 AS tbl, (g / $1) % $2 AS pk,
                   CASE WHEN g / $1 < $2 THEN 'insert' WHEN g % 97 = 0 THEN 'delete' ELSE 'update' END AS op,
                   jsonb_build_object('id', (g / $1) % $2, 'title', 'Title ' || g, 'status', 'published',
                       'author_id', g % 1000, 'views', g, 'body', repeat('lorem ipsum ', 6)) AS image
            FROM generate_series($4::bigint, $5::bigint) AS g
         ) AS x",
        key = threadline_core::sql::actor_key_sql(&actor("x.txn", 7)),
    );
    let mut done = 0;
    while done < spec.changes {
        let end = (done + batch).min(spec.changes);
        sqlx::query(sqlx::AssertSqlSafe(changes.clone()))
            .bind(spec.tables)
            .bind(spec.rows_per_table)
            .bind(spec.changes_per_transaction())
            .bind(done + 1)
            .bind(end)
            .bind(spec.spacing_micros())
            .bind(spec.actors)
            .execute(pool)
            .await?;
        done = end;
        progress(done);
    }
    Ok(())
}
