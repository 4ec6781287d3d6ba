//! The exploration handle: [`Threadline`].

use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::{PgConnection, PgPool, Postgres, Row, Transaction};
use threadline_core::query::{
    self, AsOf, Page, PageOf, PagedQuery, PrimaryKey, SqlParam, Statement, TimelineFilter,
};
use threadline_core::{ActorRef, AuditChange, AuditTransaction, Ident, InstallOptions, TableName};

use crate::action::{ActionOptions, AuditAction, insert_action, transaction_actions};
use crate::error::{Error, Result};
use crate::sql;

/// A table argument: a `&str` parsed like the CLI's `--tables` (`posts`, `sales.orders`,
/// `"Mixed Case"`; unqualified means `public`), or a [`TableName`].
pub trait IntoTableName {
    /// Parses or clones the name.
    fn into_table_name(self) -> Result<TableName>;
}

impl IntoTableName for &str {
    fn into_table_name(self) -> Result<TableName> {
        Ok(self.parse::<TableName>()?)
    }
}

impl IntoTableName for &String {
    fn into_table_name(self) -> Result<TableName> {
        self.as_str().into_table_name()
    }
}

impl IntoTableName for TableName {
    fn into_table_name(self) -> Result<TableName> {
        Ok(self)
    }
}

impl IntoTableName for &TableName {
    fn into_table_name(self) -> Result<TableName> {
        Ok(self.clone())
    }
}

/// A transaction with everything recorded in it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TransactionDetail {
    /// The transaction and its context.
    pub transaction: AuditTransaction,
    /// Its changes in capture order.
    pub changes: Vec<AuditChange>,
    /// Actions recorded in it (`tx.record_action`), in the order they were recorded.
    pub actions: Vec<AuditAction>,
}

/// The query handle over the audit trail: cheap to clone (a pool and a shared schema name),
/// so an application keeps one in its state.
///
/// ```no_run
/// # async fn run(pool: sqlx::PgPool) -> threadline_sqlx::Result<()> {
/// use threadline_sqlx::{ActorRef, Page, Threadline, TimelineFilter};
/// let threadline = Threadline::new(pool);
/// for change in threadline.history("posts", 42).await? {
///     println!("{} {} by {:?}", change.captured_at, change.op, change.actor_ref);
/// }
/// let filter = TimelineFilter::new().actor(ActorRef::user("42")?);
/// let page = threadline.timeline(&filter, Page::first()).await?;
/// if let Some(next) = page.next {
///     let _older = threadline.timeline(&filter, Page::at(next)).await?;
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Threadline {
    pool: PgPool,
    schema: Arc<Ident>,
}

impl Threadline {
    /// A handle over the audit tables in the `public` schema.
    pub fn new(pool: PgPool) -> Self {
        Self::with_options(pool, &InstallOptions::default())
    }

    /// A handle over the audit tables installed with `options`.
    pub fn with_options(pool: PgPool, options: &InstallOptions) -> Self {
        Self {
            pool,
            schema: Arc::new(options.schema.clone()),
        }
    }

    /// The same handle over the audit tables in another schema.
    pub fn with_schema(mut self, schema: Ident) -> Self {
        self.schema = Arc::new(schema);
        self
    }

    /// The pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The audit schema.
    pub fn schema(&self) -> &Ident {
        &self.schema
    }

    /// One row's changes, newest first (`captured_at DESC, id DESC`).
    ///
    /// `pk` is a scalar for a single-column key (`42`, `"abc"`, a UUID string) or a JSON
    /// object naming every key column. An integer and its decimal string match the same row
    /// (`history("posts", 42)` and `history("posts", "42")` are equal); see [`PrimaryKey`].
    /// A table that exists but has no captured changes gives an empty list; a table that
    /// neither exists nor has history is [`Error::TableNotFound`].
    pub async fn history(
        &self,
        table: impl IntoTableName,
        pk: impl Into<PrimaryKey>,
    ) -> Result<Vec<AuditChange>> {
        let table = table.into_table_name()?;
        let mut conn = self.conn().await?;
        let Some(candidates) = self.candidates(&mut conn, &table, &pk.into()).await? else {
            return Ok(Vec::new());
        };
        let changes =
            fetch_changes(&mut conn, query::history(&self.schema, &table, candidates)).await?;
        conn.finish().await?;
        Ok(changes)
    }

    /// The row's state at `at`: its image, deleted, or before capture began (see [`AsOf`]).
    pub async fn as_of(
        &self,
        table: impl IntoTableName,
        pk: impl Into<PrimaryKey>,
        at: DateTime<Utc>,
    ) -> Result<AsOf> {
        let table = table.into_table_name()?;
        let mut conn = self.conn().await?;
        let Some(candidates) = self.candidates(&mut conn, &table, &pk.into()).await? else {
            return Ok(AsOf::from_changes(Vec::new(), at));
        };
        let statement = query::as_of(&self.schema, &table, candidates, at);
        let rows = fetch_changes(&mut conn, statement).await?;
        conn.finish().await?;
        Ok(AsOf::from_changes(rows, at))
    }

    /// One page of the changes matching `filter`, newest first (`captured_at DESC, id DESC`).
    pub async fn timeline(
        &self,
        filter: &TimelineFilter,
        page: Page,
    ) -> Result<PageOf<AuditChange>> {
        let PagedQuery { statement, plan } = query::timeline(&self.schema, filter, &page)?;
        let mut conn = self.conn().await?;
        let rows = fetch_changes(&mut conn, statement).await?;
        conn.finish().await?;
        Ok(plan.finish(rows, |c| (c.captured_at, c.id)))
    }

    /// How many changes match `filter`. Exact: its cost grows with the number of matches.
    pub async fn count(&self, filter: &TimelineFilter) -> Result<u64> {
        let statement = query::count(&self.schema, filter)?;
        let mut conn = self.conn().await?;
        let n: i64 = bind(&statement).fetch_one(&mut *conn).await?.try_get(0)?;
        conn.finish().await?;
        Ok(u64::try_from(n).unwrap_or_default())
    }

    /// One page of an actor's transactions, newest first (`occurred_at DESC, id DESC`).
    /// The actor matches the stored `actor_ref` exactly.
    pub async fn actor_history(
        &self,
        actor: &ActorRef,
        page: Page,
    ) -> Result<PageOf<AuditTransaction>> {
        let PagedQuery { statement, plan } = query::actor_history(&self.schema, actor, &page)?;
        let mut conn = self.conn().await?;
        let rows = bind(&statement).fetch_all(&mut *conn).await?;
        conn.finish().await?;
        let rows = rows
            .iter()
            .map(transaction_from_row)
            .collect::<sqlx::Result<Vec<_>>>()?;
        Ok(plan.finish(rows, |t| (t.occurred_at, t.id)))
    }

    /// A transaction with its changes and linked actions; `None` when no such id.
    pub async fn transaction(&self, id: i64) -> Result<Option<TransactionDetail>> {
        let mut conn = self.conn().await?;
        let Some(row) = bind(&query::transaction(&self.schema, id))
            .fetch_optional(&mut *conn)
            .await?
        else {
            return Ok(None);
        };
        let transaction = transaction_from_row(&row)?;
        let changes =
            fetch_changes(&mut conn, query::transaction_changes(&self.schema, id)).await?;
        let actions = transaction_actions(&mut conn, &self.schema, &[id]).await?;
        conn.finish().await?;
        Ok(Some(TransactionDetail {
            transaction,
            changes,
            actions,
        }))
    }

    /// Records an action outside any transaction. Set
    /// [`ActionOptions::transaction_id`] to link it to changes that already committed; inside a
    /// transaction, use [`TransactionExt::record_action`](crate::TransactionExt::record_action)
    /// so that the action links to the changes it is causing.
    pub async fn record_action(
        &self,
        name: &str,
        actor: &ActorRef,
        options: ActionOptions,
    ) -> Result<AuditAction> {
        let mut conn = self.conn().await?;
        let action = insert_action(&mut conn, &self.schema, name, actor, &options, false).await?;
        conn.finish().await?;
        Ok(action)
    }

    /// A connection for one method call: a plain pooled connection, or a transaction when named
    /// statements are off (behind PgBouncer, an unnamed statement must run inside one; see
    /// [`set_named_statements`](crate::set_named_statements)).
    pub(crate) async fn conn(&self) -> Result<Conn> {
        Ok(if crate::named_statements() {
            Conn::Plain(self.pool.acquire().await?)
        } else {
            Conn::Transaction(self.pool.begin().await?)
        })
    }

    /// The stored key values `pk` matches, or `None` when the table has no captured changes.
    async fn candidates(
        &self,
        conn: &mut PgConnection,
        table: &TableName,
        pk: &PrimaryKey,
    ) -> Result<Option<Vec<Value>>> {
        pk.validate()?;
        let row = bind(&query::table_key_sample(&self.schema, table))
            .fetch_one(&mut *conn)
            .await?;
        let sample: Option<Value> = row.try_get("sample")?;
        let exists: bool = row.try_get("table_exists")?;
        let Some(sample) = sample else {
            return if exists {
                Ok(None)
            } else {
                Err(Error::TableNotFound(table.display_name()))
            };
        };
        let columns: Vec<String> = sample
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default();
        Ok(Some(pk.candidates(&table.display_name(), &columns)?))
    }
}

/// The connection of one method call (see [`Threadline::conn`]).
pub(crate) enum Conn {
    Plain(PoolConnection<Postgres>),
    Transaction(Transaction<'static, Postgres>),
}

impl Conn {
    /// Ends the call (commits its transaction, if any).
    pub(crate) async fn finish(self) -> Result<()> {
        if let Conn::Transaction(tx) = self {
            tx.commit().await?;
        }
        Ok(())
    }
}

impl Deref for Conn {
    type Target = PgConnection;

    fn deref(&self) -> &PgConnection {
        match self {
            Conn::Plain(c) => c,
            Conn::Transaction(t) => t,
        }
    }
}

impl DerefMut for Conn {
    fn deref_mut(&mut self) -> &mut PgConnection {
        match self {
            Conn::Plain(c) => c,
            Conn::Transaction(t) => t,
        }
    }
}

/// Binds a core statement's parameters.
pub(crate) fn bind(statement: &Statement) -> sqlx::query::Query<'_, Postgres, PgArguments> {
    let mut query =
        sqlx::query(sql::generated(statement.sql.clone())).persistent(crate::named_statements());
    for param in &statement.params {
        query = match param {
            SqlParam::Text(s) => query.bind(s.as_str()),
            SqlParam::Json(v) => query.bind(sqlx::types::Json(v)),
            SqlParam::JsonArray(v) => {
                query.bind(v.iter().map(sqlx::types::Json).collect::<Vec<_>>())
            }
            SqlParam::Timestamp(t) => query.bind(*t),
            SqlParam::BigInt(n) => query.bind(*n),
        };
    }
    query
}

pub(crate) async fn fetch_changes(
    conn: &mut PgConnection,
    statement: Statement,
) -> Result<Vec<AuditChange>> {
    let rows = bind(&statement).fetch_all(&mut *conn).await?;
    Ok(rows
        .iter()
        .map(change_from_row)
        .collect::<sqlx::Result<Vec<_>>>()?)
}

fn column_error(index: &str, e: impl std::error::Error + Send + Sync + 'static) -> sqlx::Error {
    sqlx::Error::ColumnDecode {
        index: index.into(),
        source: Box::new(e),
    }
}

/// Maps a row selected with [`query::CHANGE_COLUMNS`].
pub(crate) fn change_from_row(row: &PgRow) -> sqlx::Result<AuditChange> {
    let op: String = row.try_get("op")?;
    Ok(AuditChange {
        id: row.try_get("id")?,
        transaction_id: row.try_get("transaction_id")?,
        table_schema: row.try_get("table_schema")?,
        table_name: row.try_get("table_name")?,
        table_pk: row.try_get("table_pk")?,
        op: op.parse().map_err(|e| column_error("op", e))?,
        data_after: row.try_get("data_after")?,
        data_before: row.try_get("data_before")?,
        changed_fields: row.try_get("changed_fields")?,
        changed_from: row.try_get("changed_from")?,
        captured_at: row.try_get("captured_at")?,
        actor_ref: row.try_get("actor_ref")?,
    })
}

/// Maps a row selected with [`query::TRANSACTION_COLUMNS`].
pub(crate) fn transaction_from_row(row: &PgRow) -> sqlx::Result<AuditTransaction> {
    // An `inet` may carry a netmask (`10.0.0.1/8`) when set by hand; the address is the client.
    let remote_ip: Option<threadline_core::IpNet> = row.try_get("remote_ip")?;
    Ok(AuditTransaction {
        id: row.try_get("id")?,
        txid: row.try_get("txid")?,
        occurred_at: row.try_get("occurred_at")?,
        actor_ref: row.try_get("actor_ref")?,
        request_id: row.try_get("request_id")?,
        correlation_id: row.try_get("correlation_id")?,
        remote_ip: remote_ip.map(|net| net.addr()),
        source: row.try_get("source")?,
        meta: row.try_get("meta")?,
    })
}
