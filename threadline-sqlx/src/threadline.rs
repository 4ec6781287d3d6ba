//! The exploration handle: [`Threadline`].

use std::collections::BTreeMap;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::{Connection, PgConnection, PgPool, Postgres, Row, Transaction};
use threadline_core::query::{
    self, ActivityWindow, AsOf, Page, PageOf, PagedQuery, PreviousImage, PrimaryKey, SqlParam,
    Statement, TimelineFilter,
};
use threadline_core::{
    ActorRef, AuditChange, AuditTransaction, ChangeOp, Ident, InstallOptions, TableName,
};

use threadline_core::{ActionOptions, AuditAction};

use crate::action::{insert_action, transaction_actions};
use crate::error::{Error, Result};
use crate::pooling::StatementMode;
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

/// The query handle over the audit trail, and the one place Threadline's configuration lives:
/// the pool, the audit schema and the [`StatementMode`]. Cheap to clone (a pool and a shared
/// settings record), so an application keeps one in its state; the web crates' extractors and
/// the explorer take it from there.
///
/// Each method runs on a connection of its own. To read inside your own transaction (and see
/// its snapshot and its uncommitted writes), borrow the connection with [`on`](Self::on).
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
    settings: Arc<Settings>,
}

/// What a [`Threadline`] carries besides its pool.
#[derive(Debug, Clone)]
struct Settings {
    schema: Ident,
    statements: StatementMode,
}

impl Threadline {
    /// A handle over the audit tables in the `public` schema, with named statements.
    pub fn new(pool: PgPool) -> Self {
        Self::with_options(pool, &InstallOptions::default())
    }

    /// A handle over the audit tables installed with `options` (their schema).
    pub fn with_options(pool: PgPool, options: &InstallOptions) -> Self {
        Self {
            pool,
            settings: Arc::new(Settings {
                schema: options.schema.clone(),
                statements: StatementMode::default(),
            }),
        }
    }

    /// The same handle over the audit tables in another schema.
    ///
    /// ```
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// # let pool = sqlx::PgPool::connect_lazy("postgres://localhost/app")?;
    /// let audit = threadline_sqlx::Ident::new("audit")?;
    /// let threadline = threadline_sqlx::Threadline::new(pool).with_schema(audit);
    /// assert_eq!(threadline.schema().as_str(), "audit");
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn with_schema(mut self, schema: Ident) -> Self {
        Arc::make_mut(&mut self.settings).schema = schema;
        self
    }

    /// The same handle with another [`StatementMode`]; use [`StatementMode::Unnamed`] behind
    /// PgBouncer in transaction mode.
    ///
    /// ```
    /// # fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// use threadline_sqlx::{StatementMode, Threadline};
    /// # let pool = sqlx::PgPool::connect_lazy("postgres://localhost/app")?;
    /// let threadline = Threadline::new(pool).with_statement_mode(StatementMode::Unnamed);
    /// assert_eq!(threadline.statement_mode(), StatementMode::Unnamed);
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn with_statement_mode(mut self, mode: StatementMode) -> Self {
        Arc::make_mut(&mut self.settings).statements = mode;
        self
    }

    /// The pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The audit schema.
    pub fn schema(&self) -> &Ident {
        &self.settings.schema
    }

    /// How Threadline's own parameterized statements are prepared.
    pub fn statement_mode(&self) -> StatementMode {
        self.settings.statements
    }

    /// The same queries on a connection you hold: a transaction (`&mut *tx`), so that an
    /// admin route reads the trail inside its own snapshot, or a pooled connection. With
    /// [`StatementMode::Unnamed`] (PgBouncer), pass a transaction: an unnamed statement outside
    /// one may be split across server connections.
    ///
    /// ```no_run
    /// # async fn run(threadline: threadline_sqlx::Threadline) -> threadline_sqlx::Result<()> {
    /// use threadline_sqlx::{ActionOptions, ActorRef, TransactionExt};
    /// let admin = ActorRef::admin("7")?;
    /// let mut tx = threadline.pool().begin().await?;
    /// tx.with_actor(&admin).await?;
    /// sqlx::query("UPDATE posts SET hidden = true WHERE id = 42").execute(&mut *tx).await?;
    /// // Sees the uncommitted change, and links the action to this transaction.
    /// let versions = threadline.on(&mut *tx).history("posts", 42).await?;
    /// threadline.on(&mut *tx).record_action("post.hidden", &admin, ActionOptions::new()).await?;
    /// tx.commit().await?;
    /// # let _ = versions; Ok(()) }
    /// ```
    pub fn on<'c>(&'c self, conn: &'c mut PgConnection) -> ThreadlineConn<'c> {
        ThreadlineConn {
            threadline: self,
            conn,
        }
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
        let mut conn = self.conn().await?;
        let changes = self.on(&mut conn).history(table, pk).await?;
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
        let mut conn = self.conn().await?;
        let state = self.on(&mut conn).as_of(table, pk, at).await?;
        conn.finish().await?;
        Ok(state)
    }

    /// One page of the changes matching `filter`, newest first (`captured_at DESC, id DESC`).
    pub async fn timeline(
        &self,
        filter: &TimelineFilter,
        page: Page,
    ) -> Result<PageOf<AuditChange>> {
        let mut conn = self.conn().await?;
        let changes = self.on(&mut conn).timeline(filter, page).await?;
        conn.finish().await?;
        Ok(changes)
    }

    /// How many changes match `filter`. Exact: its cost grows with the number of matches.
    pub async fn count(&self, filter: &TimelineFilter) -> Result<u64> {
        let mut conn = self.conn().await?;
        let n = self.on(&mut conn).count(filter).await?;
        conn.finish().await?;
        Ok(n)
    }

    /// Changes matching `filter` per hour or day over `window` (see [`ActivityWindow`]),
    /// oldest first, every bucket listed (zero when empty). The window replaces the filter's
    /// `from` and `to`.
    pub async fn activity(
        &self,
        filter: &TimelineFilter,
        window: &ActivityWindow,
    ) -> Result<Vec<(DateTime<Utc>, i64)>> {
        let mut conn = self.conn().await?;
        let counts = self.on(&mut conn).activity(filter, window).await?;
        conn.finish().await?;
        Ok(counts)
    }

    /// For each of `changes`, the row's image before it, taken from the row's history (the
    /// `data_after` of the change before it), keyed by change id, in one query. A change
    /// whose row has no earlier image (nothing captured before it, or a delete before it) is
    /// absent. Shows what an update changed when its table does not store `changed_from`.
    pub async fn previous_images(
        &self,
        changes: &[&AuditChange],
    ) -> Result<BTreeMap<i64, PreviousImage>> {
        let mut conn = self.conn().await?;
        let images = self.on(&mut conn).previous_images(changes).await?;
        conn.finish().await?;
        Ok(images)
    }

    /// One page of an actor's transactions, newest first (`occurred_at DESC, id DESC`).
    /// The actor matches the stored `actor_ref` exactly.
    pub async fn actor_history(
        &self,
        actor: &ActorRef,
        page: Page,
    ) -> Result<PageOf<AuditTransaction>> {
        let mut conn = self.conn().await?;
        let transactions = self.on(&mut conn).actor_history(actor, page).await?;
        conn.finish().await?;
        Ok(transactions)
    }

    /// A transaction with its changes and linked actions; `None` when no such id.
    pub async fn transaction(&self, id: i64) -> Result<Option<TransactionDetail>> {
        let mut conn = self.conn().await?;
        let detail = self.on(&mut conn).transaction(id).await?;
        conn.finish().await?;
        Ok(detail)
    }

    /// Records an action outside any transaction. Set
    /// [`ActionOptions::transaction_id`] to link it to changes that already committed; inside
    /// a transaction, record it with [`on(&mut *tx)`](Self::on) so that it links to the
    /// changes it is causing.
    pub async fn record_action(
        &self,
        name: &str,
        actor: &ActorRef,
        options: ActionOptions,
    ) -> Result<AuditAction> {
        let mut conn = self.conn().await?;
        let action = insert_action(&mut conn, self, name, actor, &options, false).await?;
        conn.finish().await?;
        Ok(action)
    }

    /// A connection for one method call: a plain pooled connection, or a transaction with
    /// unnamed statements (behind PgBouncer, an unnamed statement must run inside one).
    pub(crate) async fn conn(&self) -> Result<Conn> {
        Ok(match self.statement_mode() {
            StatementMode::Named => Conn::Plain(self.pool.acquire().await?),
            StatementMode::Unnamed => Conn::Transaction(self.pool.begin().await?),
        })
    }

    /// A core statement with its parameters bound, prepared in this handle's mode.
    pub(crate) fn bind<'q>(
        &self,
        statement: &'q Statement,
    ) -> sqlx::query::Query<'q, Postgres, PgArguments> {
        let mut query = self.query(sql::generated(statement.sql.clone()));
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

    /// A query prepared in this handle's mode.
    pub(crate) fn query<'q>(
        &self,
        sql: impl sqlx::SqlSafeStr,
    ) -> sqlx::query::Query<'q, Postgres, PgArguments> {
        sqlx::query(sql).persistent(self.statement_mode() == StatementMode::Named)
    }

    /// Rows of a core statement that selects [`query::CHANGE_COLUMNS`].
    pub(crate) async fn fetch_changes(
        &self,
        conn: &mut PgConnection,
        statement: Statement,
    ) -> Result<Vec<AuditChange>> {
        let rows = self.bind(&statement).fetch_all(&mut *conn).await?;
        Ok(rows
            .iter()
            .map(change_from_row)
            .collect::<sqlx::Result<Vec<_>>>()?)
    }
}

/// A [`Threadline`] reading and recording through a connection you hold (see
/// [`Threadline::on`]). Its methods are the handle's, with the same results.
#[derive(Debug)]
#[must_use = "a borrowed view does nothing until one of its methods is awaited"]
pub struct ThreadlineConn<'c> {
    threadline: &'c Threadline,
    conn: &'c mut PgConnection,
}

impl ThreadlineConn<'_> {
    /// See [`Threadline::history`].
    pub async fn history(
        mut self,
        table: impl IntoTableName,
        pk: impl Into<PrimaryKey>,
    ) -> Result<Vec<AuditChange>> {
        let table = table.into_table_name()?;
        let Some(candidates) = self.candidates(&table, &pk.into()).await? else {
            return Ok(Vec::new());
        };
        let statement = query::history(self.threadline.schema(), &table, candidates);
        self.threadline.fetch_changes(self.conn, statement).await
    }

    /// See [`Threadline::as_of`].
    pub async fn as_of(
        mut self,
        table: impl IntoTableName,
        pk: impl Into<PrimaryKey>,
        at: DateTime<Utc>,
    ) -> Result<AsOf> {
        let table = table.into_table_name()?;
        let Some(candidates) = self.candidates(&table, &pk.into()).await? else {
            return Ok(AsOf::from_changes(Vec::new(), at));
        };
        let statement = query::as_of(self.threadline.schema(), &table, candidates, at);
        let rows = self.threadline.fetch_changes(self.conn, statement).await?;
        Ok(AsOf::from_changes(rows, at))
    }

    /// See [`Threadline::timeline`].
    pub async fn timeline(
        self,
        filter: &TimelineFilter,
        page: Page,
    ) -> Result<PageOf<AuditChange>> {
        let PagedQuery { statement, plan } =
            query::timeline(self.threadline.schema(), filter, &page)?;
        let rows = self.threadline.fetch_changes(self.conn, statement).await?;
        Ok(plan.finish(rows, |c| (c.captured_at, c.id)))
    }

    /// See [`Threadline::count`].
    pub async fn count(self, filter: &TimelineFilter) -> Result<u64> {
        let statement = query::count(self.threadline.schema(), filter)?;
        let row = self
            .threadline
            .bind(&statement)
            .fetch_one(self.conn)
            .await?;
        let n: i64 = row.try_get(0)?;
        Ok(u64::try_from(n).unwrap_or_default())
    }

    /// See [`Threadline::activity`].
    pub async fn activity(
        self,
        filter: &TimelineFilter,
        window: &ActivityWindow,
    ) -> Result<Vec<(DateTime<Utc>, i64)>> {
        let statement = query::activity(self.threadline.schema(), filter, window)?;
        let rows = self
            .threadline
            .bind(&statement)
            .fetch_all(self.conn)
            .await?
            .iter()
            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
            .collect::<sqlx::Result<Vec<_>>>()?;
        Ok(window.fill(&rows))
    }

    /// See [`Threadline::previous_images`].
    pub async fn previous_images(
        self,
        changes: &[&AuditChange],
    ) -> Result<BTreeMap<i64, PreviousImage>> {
        if changes.is_empty() {
            return Ok(BTreeMap::new());
        }
        let statement = query::previous_changes(self.threadline.schema(), changes);
        let mut images = BTreeMap::new();
        for row in self
            .threadline
            .bind(&statement)
            .fetch_all(self.conn)
            .await?
        {
            let op: String = row.try_get("op")?;
            let image: Option<Value> = row.try_get("data_after")?;
            if let (false, Some(image)) = (op == ChangeOp::Delete.as_str(), image) {
                images.insert(
                    row.try_get("change_id")?,
                    PreviousImage {
                        change_id: row.try_get("id")?,
                        image,
                    },
                );
            }
        }
        Ok(images)
    }

    /// See [`Threadline::actor_history`].
    pub async fn actor_history(
        self,
        actor: &ActorRef,
        page: Page,
    ) -> Result<PageOf<AuditTransaction>> {
        let PagedQuery { statement, plan } =
            query::actor_history(self.threadline.schema(), actor, &page)?;
        let rows = self
            .threadline
            .bind(&statement)
            .fetch_all(self.conn)
            .await?;
        let rows = rows
            .iter()
            .map(transaction_from_row)
            .collect::<sqlx::Result<Vec<_>>>()?;
        Ok(plan.finish(rows, |t| (t.occurred_at, t.id)))
    }

    /// See [`Threadline::transaction`].
    pub async fn transaction(self, id: i64) -> Result<Option<TransactionDetail>> {
        let (threadline, conn) = (self.threadline, self.conn);
        let schema = threadline.schema();
        let Some(row) = threadline
            .bind(&query::transaction(schema, id))
            .fetch_optional(&mut *conn)
            .await?
        else {
            return Ok(None);
        };
        let transaction = transaction_from_row(&row)?;
        let changes = threadline
            .fetch_changes(conn, query::transaction_changes(schema, id))
            .await?;
        let actions = transaction_actions(conn, threadline, &[id]).await?;
        Ok(Some(TransactionDetail {
            transaction,
            changes,
            actions,
        }))
    }

    /// Records an action. Inside a transaction it is linked to that transaction's audit row
    /// (and takes its request and correlation ids when `options` has none); on a connection
    /// outside one it is standalone, like [`Threadline::record_action`].
    pub async fn record_action(
        self,
        name: &str,
        actor: &ActorRef,
        options: ActionOptions,
    ) -> Result<AuditAction> {
        let linked = self.conn.is_in_transaction();
        insert_action(self.conn, self.threadline, name, actor, &options, linked).await
    }

    /// The stored key values `pk` matches, or `None` when the table has no captured changes.
    pub(crate) async fn candidates(
        &mut self,
        table: &TableName,
        pk: &PrimaryKey,
    ) -> Result<Option<Vec<Value>>> {
        pk.validate()?;
        let row = self
            .threadline
            .bind(&query::table_key_sample(self.threadline.schema(), table))
            .fetch_one(&mut *self.conn)
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
        trace_id: row.try_get("trace_id")?,
    })
}
