//! Database setup: create the database if missing, then the blog tables, the audit schema
//! and the capture triggers. Every step is idempotent, so the demo starts the same way on a
//! fresh machine and on the tenth run.

use sqlx::migrate::MigrateDatabase;
use sqlx::{PgPool, Postgres};
use threadline_sqlx::{InstallOptions, TableCapture};

/// Where the demo keeps its data unless `DATABASE_URL` says otherwise.
pub(crate) const DEFAULT_URL: &str = "postgres://localhost/threadline_demo";

const TABLES: &str = "
CREATE TABLE IF NOT EXISTS posts (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    slug text NOT NULL UNIQUE,
    title text NOT NULL,
    body text NOT NULL DEFAULT '',
    author text NOT NULL,
    published boolean NOT NULL DEFAULT false,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS comments (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    post_id bigint NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
    author text NOT NULL,
    body text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
";

/// A URL without a user name connects as `PGUSER`, else as the login user (`USER`, `LOGNAME`),
/// like psql; when none is set, as `postgres`. (sqlx asks the OS for the login name, which some
/// sandboxes and containers do not answer.)
pub(crate) fn with_login_user(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.contains('@') {
        return url.to_owned();
    }
    let user = ["PGUSER", "USER", "LOGNAME"]
        .iter()
        .filter_map(|name| std::env::var(name).ok())
        .find(|user| !user.is_empty())
        .unwrap_or_else(|| "postgres".to_owned());
    format!("{scheme}://{user}@{rest}")
}

/// Connects, creating the database and the schema when they are missing.
pub(crate) async fn prepare(url: &str) -> Result<PgPool, Box<dyn std::error::Error>> {
    let url = &with_login_user(url);
    if !Postgres::database_exists(url).await? {
        Postgres::create_database(url).await?;
        println!("created database {url}");
    }
    let pool = PgPool::connect(url).await?;
    sqlx::raw_sql(TABLES).execute(&pool).await?;
    let install = InstallOptions::default();
    threadline_sqlx::install(&pool, &install).await?;
    // `updated_at` changes on every write; leave it out of changed_fields.
    let posts = TableCapture::default().except_columns(["updated_at"]);
    threadline_sqlx::audit_table(&pool, &install, &"posts".parse()?, &posts).await?;
    threadline_sqlx::audit_table(
        &pool,
        &install,
        &"comments".parse()?,
        &TableCapture::default(),
    )
    .await?;
    Ok(pool)
}
