//! Template databases: the install runs once per server, then each test copies it.
//!
//! [`TestDb::installed`](crate::TestDb::installed) asks [`ensure`] for the template of its
//! layout and creates its database with `CREATE DATABASE ... TEMPLATE`. The template is named
//! `threadline_template_<key>`, where the key is an MD5 of the layout's install SQL (and, for a
//! partitioned layout, of the SQL and range of the current partition), so:
//!
//! - a change to the install SQL makes a new template: a stale one is never reused;
//! - a partitioned template is remade when the current partition changes (its partitions run
//!   from the partition of its creation time onwards);
//! - test binaries that run at the same time (other checkouts, other `cargo test`s) share a
//!   template when their install SQL is the same, and keep apart when it differs.
//!
//! A template is built under the name `<name>_build` while a session-level advisory lock is
//! held on the admin database, so that only one process (and one test of it) builds it; the
//! others wait and then find it. It is closed for connections (`ALLOW_CONNECTIONS false`)
//! before it gets its final name, as `CREATE DATABASE ... TEMPLATE` refuses a template with
//! open connections: no test, and no one browsing the server, can hold one.
//!
//! Templates made more than [`STALE_AFTER_SECS`] ago under another key are dropped when a new
//! template is built. A test that loses the race with such a drop (its template vanished
//! between [`ensure`] and the copy) builds it again.

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgConnection};
use threadline_core::InstallOptions;
use threadline_core::partition::{PartitionInterval, PartitionRange, PartitionedTable};

/// Every template's name starts with this.
pub(crate) const PREFIX: &str = "threadline_template_";

/// Templates under another key older than this (two days) are dropped when one is built.
const STALE_AFTER_SECS: i64 = 2 * 24 * 60 * 60;

/// The advisory lock (on the admin database) held while a template is built.
const LOCK_KEY: i64 = 0x7468_7265_6164; // "thread"

/// Bumped when the way a template is built changes, so that older templates are not reused.
const BUILD_VERSION: &str = "threadline-test-support template v1";

/// The install options of `layout`.
pub(crate) fn install_options(layout: Option<PartitionInterval>) -> InstallOptions {
    match layout {
        None => InstallOptions::default(),
        Some(interval) => InstallOptions::default().with_partitioning(interval),
    }
}

/// What the template of `layout` is made from; its MD5 is the template's key.
fn fingerprint(layout: Option<PartitionInterval>) -> String {
    let options = install_options(layout);
    let mut text = format!(
        "{BUILD_VERSION}\nlayout: {}\n{}",
        layout.map_or("plain", PartitionInterval::as_str),
        threadline_core::install_sql(&options)
    );
    if let Some(interval) = layout {
        let current =
            PartitionRange::containing(PartitionedTable::Changes, interval, chrono::Utc::now());
        let sample = threadline_core::partition::create_partition_sql(
            &options.schema,
            &current,
            &threadline_core::Ident::new("owner").expect("a valid name"),
        );
        text.push_str(&format!(
            "\ncurrent partition: {}\n{sample}",
            current.name()
        ));
    }
    text
}

/// The name of the template of `layout`, building it first when it does not exist yet.
pub(crate) async fn ensure(admin: &mut PgConnection, layout: Option<PartitionInterval>) -> String {
    let md5: String = sqlx::query_scalar("SELECT md5($1)")
        .bind(fingerprint(layout))
        .fetch_one(&mut *admin)
        .await
        .expect("hash the install SQL");
    let name = format!("{PREFIX}{}", &md5[..16]);
    if exists(admin, &name).await {
        return name;
    }
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(LOCK_KEY)
        .execute(&mut *admin)
        .await
        .expect("take the template lock");
    // Another process or test may have built it while this one waited.
    if !exists(admin, &name).await {
        drop_stale(admin, &name).await;
        build(admin, &name, layout).await;
    }
    sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(LOCK_KEY)
        .execute(&mut *admin)
        .await
        .expect("release the template lock");
    name
}

async fn exists(admin: &mut PgConnection, name: &str) -> bool {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1 AND datistemplate)",
    )
    .bind(name)
    .fetch_one(&mut *admin)
    .await
    .expect("look the template up")
}

/// Runs one statement on the admin connection, panicking with the statement on error.
async fn admin_exec(admin: &mut PgConnection, sql: String) {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.clone()))
        .execute(&mut *admin)
        .await
        .unwrap_or_else(|e| panic!("{e}\nSQL: {sql}"));
}

/// Installs `layout` into `<name>_build`, closes it for connections and renames it `name`.
async fn build(admin: &mut PgConnection, name: &str, layout: Option<PartitionInterval>) {
    let building = format!("{name}_build");
    // Left over by a build that was interrupted.
    admin_exec(
        admin,
        format!("DROP DATABASE IF EXISTS \"{building}\" WITH (FORCE)"),
    )
    .await;
    admin_exec(admin, format!("CREATE DATABASE \"{building}\"")).await;
    let options: PgConnectOptions = crate::server_url().parse().expect("valid DATABASE_URL");
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(options.database(&building))
        .await
        .expect("connect to the template being built");
    let install = install_options(layout);
    threadline_sqlx::install(&pool, &install)
        .await
        .expect("install threadline into the template");
    if layout.is_some() {
        threadline_sqlx::ensure_partitions(
            &pool,
            &install,
            &threadline_sqlx::EnsureOptions::default(),
        )
        .await
        .expect("ensure partitions in the template");
    }
    pool.close().await;
    let created = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    admin_exec(
        admin,
        format!(
            "ALTER DATABASE \"{building}\" WITH IS_TEMPLATE true ALLOW_CONNECTIONS false;
             COMMENT ON DATABASE \"{building}\" IS 'threadline test template, created {created}'"
        ),
    )
    .await;
    // A closed connection's backend may take a moment to exit; none can connect any more.
    admin_exec(
        admin,
        format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{building}'"
        ),
    )
    .await;
    let rename = format!("ALTER DATABASE \"{building}\" RENAME TO \"{name}\"");
    for attempt in 0.. {
        match sqlx::raw_sql(sqlx::AssertSqlSafe(rename.clone()))
            .execute(&mut *admin)
            .await
        {
            Ok(_) => break,
            Err(e) if attempt < 100 && is_object_in_use(&e) => {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            Err(e) => panic!("{e}\nSQL: {rename}"),
        }
    }
}

/// Drops the templates under another key than `current` made more than
/// [`STALE_AFTER_SECS`] ago, ignoring errors (one may be being copied right now).
async fn drop_stale(admin: &mut PgConnection, current: &str) {
    let stale: Vec<String> = sqlx::query_scalar(
        "SELECT datname::text FROM pg_database
         WHERE datistemplate AND starts_with(datname, $1) AND datname <> $2
           AND coalesce(substring(shobj_description(oid, 'pg_database')
                                  FROM 'created ([0-9]+)')::bigint, 0)
               < extract(epoch FROM now())::bigint - $3",
    )
    .bind(PREFIX)
    .bind(current)
    .bind(STALE_AFTER_SECS)
    .fetch_all(&mut *admin)
    .await
    .expect("list stale templates");
    for name in stale {
        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "ALTER DATABASE \"{name}\" WITH IS_TEMPLATE false"
        )))
        .execute(&mut *admin)
        .await;
        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS \"{name}\""
        )))
        .execute(&mut *admin)
        .await;
    }
}

/// `55006`: the database is being accessed by other users.
pub(crate) fn is_object_in_use(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(|e| e.code())
        .is_some_and(|code| code == "55006")
}

/// `3D000`: the database (here: the template) does not exist.
pub(crate) fn is_missing_database(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(|e| e.code())
        .is_some_and(|code| code == "3D000")
}

/// Creates `name` as a copy of the template of `layout`: the template is built first if
/// needed, and again if it was dropped in between.
pub(crate) async fn create_from(name: &str, layout: Option<PartitionInterval>) {
    let admin: PgConnectOptions = crate::server_url().parse().expect("valid DATABASE_URL");
    let mut conn = admin.connect().await.expect("connect to the test server");
    for attempt in 0.. {
        let template = ensure(&mut conn, layout).await;
        let sql = format!("CREATE DATABASE \"{name}\" TEMPLATE \"{template}\"");
        match sqlx::raw_sql(sqlx::AssertSqlSafe(sql.clone()))
            .execute(&mut conn)
            .await
        {
            Ok(_) => break,
            Err(e) if attempt < 5 && (is_missing_database(&e) || is_object_in_use(&e)) => {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            Err(e) => panic!("{e}\nSQL: {sql}"),
        }
    }
    conn.close().await.ok();
}
