//! Installing the audit schema and attaching capture to tables.

use sqlx::{Acquire, Postgres};
use threadline_core::{CapturePlan, Ident, InstallOptions, TableCapture, TableName, install_sql};

use crate::error::{Error, Result};
use crate::sql;

/// Creates (or updates) the audit tables, indexes and shared functions. Idempotent. Runs in
/// one transaction: on a pool or a connection, its own; inside a transaction you pass (such
/// as a migration's), a savepoint of it, like sqlx's `Migrator::run`.
///
/// ```no_run
/// # async fn run(pool: sqlx::PgPool) -> threadline_sqlx::Result<()> {
/// use threadline_sqlx::{InstallOptions, install};
/// install(&pool, &InstallOptions::default()).await?;
/// // Or inside a transaction of your own, next to your schema changes:
/// let mut tx = pool.begin().await?;
/// sqlx::query("CREATE TABLE posts (id bigint PRIMARY KEY, title text)").execute(&mut *tx).await?;
/// install(&mut *tx, &InstallOptions::default()).await?;
/// tx.commit().await?;
/// # Ok(()) }
/// ```
pub async fn install<'c, A>(conn: A, options: &InstallOptions) -> Result<()>
where
    A: Acquire<'c, Database = Postgres>,
{
    let mut tx = conn.begin().await?;
    sqlx::raw_sql(sql::generated(install_sql(options)))
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// What the catalog says about a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableInfo {
    /// The table.
    pub table: TableName,
    /// Primary key columns in key order (empty when the table has none).
    pub primary_key: Vec<Ident>,
    /// All live columns in column order.
    pub columns: Vec<Ident>,
    /// Whether the primary key's uniqueness check can be deferred (`DEFERRABLE`), so that a
    /// statement may end with duplicate keys.
    pub primary_key_deferrable: bool,
}

/// Reads a table's primary key and columns from the catalog.
pub async fn describe_table<'c, A>(conn: A, table: &TableName) -> Result<TableInfo>
where
    A: Acquire<'c, Database = Postgres>,
{
    let mut conn = conn.acquire().await?;
    let rows: Vec<(String, Option<i32>, bool)> = sqlx::query_as(
        "SELECT a.attname::text, array_position(i.indkey::int2[], a.attnum),
                COALESCE(NOT i.indimmediate, false)
         FROM pg_class c
         JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
         LEFT JOIN pg_index i ON i.indrelid = c.oid AND i.indisprimary
         WHERE c.oid = to_regclass($1) AND c.relkind IN ('r', 'p')
         ORDER BY a.attnum",
    )
    .bind(table.to_string())
    .fetch_all(&mut *conn)
    .await?;
    if rows.is_empty() {
        return Err(Error::TableNotFound(table.display_name()));
    }
    let mut key: Vec<(i32, Ident)> = Vec::new();
    let mut columns = Vec::with_capacity(rows.len());
    let mut primary_key_deferrable = false;
    for (name, key_pos, deferrable) in rows {
        primary_key_deferrable |= deferrable;
        let ident = Ident::new(name)?;
        if let Some(pos) = key_pos {
            key.push((pos, ident.clone()));
        }
        columns.push(ident);
    }
    key.sort();
    Ok(TableInfo {
        table: table.clone(),
        primary_key: key.into_iter().map(|(_, k)| k).collect(),
        columns,
        primary_key_deferrable,
    })
}

/// Builds the capture plan for a table from the catalog (primary key and columns).
///
/// A deferrable primary key can hold duplicates at the end of a statement, so pairing old
/// and new rows by key is unsafe there: such a table is captured as if its key had been given
/// with `key_columns`, which pairs every UPDATE row-by-row.
pub async fn plan_capture<'c, A>(
    conn: A,
    options: &InstallOptions,
    table: &TableName,
    capture: &TableCapture,
) -> Result<CapturePlan>
where
    A: Acquire<'c, Database = Postgres>,
{
    let info = describe_table(conn, table).await?;
    let mut capture = capture.clone();
    if info.primary_key_deferrable && capture.key_columns.is_none() {
        capture.key_columns = Some(
            info.primary_key
                .iter()
                .map(|k| k.as_str().to_owned())
                .collect(),
        );
    }
    let key = (!info.primary_key.is_empty()).then_some(info.primary_key);
    Ok(CapturePlan::new(
        options,
        info.table,
        key,
        Some(info.columns),
        &capture,
    )?)
}

/// Attaches capture to a table (reading its primary key from the catalog), replacing any
/// capture triggers it already has. Runs in one transaction, or a savepoint of the one you
/// pass (see [`install`]).
///
/// ```no_run
/// # async fn run(pool: sqlx::PgPool) -> threadline_sqlx::Result<()> {
/// use threadline_sqlx::{InstallOptions, TableCapture, audit_table};
/// let policy = TableCapture::default().exclude(["password_hash"]).mask(["email"]);
/// audit_table(&pool, &InstallOptions::default(), &"users".parse()?, &policy).await?;
/// # Ok(()) }
/// ```
pub async fn audit_table<'c, A>(
    conn: A,
    options: &InstallOptions,
    table: &TableName,
    capture: &TableCapture,
) -> Result<CapturePlan>
where
    A: Acquire<'c, Database = Postgres>,
{
    let mut tx = conn.begin().await?;
    let plan = plan_capture(&mut *tx, options, table, capture).await?;
    sqlx::raw_sql(sql::generated(plan.sql()))
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(plan)
}
