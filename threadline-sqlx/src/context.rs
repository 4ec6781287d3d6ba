//! Attaching context to a transaction: `tx.with_actor`, `tx.with_context`, `tx.record_action`.

use sqlx::{Connection, PgConnection, PgPool, Postgres, Transaction};
use threadline_core::{ActorRef, AuditContext, InstallOptions};

use crate::action::{ActionOptions, AuditAction, insert_action};
use crate::error::{Error, Result};

const SET_CONTEXT: &str = "SELECT set_config('threadline.actor_ref', $1, true), \
     set_config('threadline.request_id', $2, true), \
     set_config('threadline.correlation_id', $3, true), \
     set_config('threadline.remote_ip', $4, true), \
     set_config('threadline.source', $5, true), \
     set_config('threadline.meta', $6, true)";

mod sealed {
    pub trait Sealed {}
    impl Sealed for sqlx::PgConnection {}
}

/// Audit context on a transaction. Implemented for `PgConnection`, so it works on
/// `sqlx::Transaction<'_, Postgres>` (by deref) and on `&mut *tx`.
///
/// Every method refuses to run outside a transaction, where a transaction-local setting
/// would apply to one statement only.
///
/// ```no_run
/// # async fn run(pool: sqlx::PgPool) -> threadline_sqlx::Result<()> {
/// use threadline_sqlx::{ActorRef, TransactionExt};
/// let mut tx = pool.begin().await?;
/// tx.with_actor(&ActorRef::user("42")?).await?;
/// sqlx::query("UPDATE posts SET title = 'Hello' WHERE id = 1").execute(&mut *tx).await?;
/// tx.commit().await?;
/// # Ok(()) }
/// ```
pub trait TransactionExt: sealed::Sealed {
    /// Sets the actor for this transaction (one `set_config(..., true)` statement; other
    /// context fields are cleared).
    fn with_actor(&mut self, actor: &ActorRef) -> impl Future<Output = Result<()>> + Send;

    /// Sets the whole context for this transaction in one statement of transaction-local
    /// `set_config` calls. Set it before the first audited write: the transaction row reads it once.
    fn with_context(&mut self, ctx: &AuditContext) -> impl Future<Output = Result<()>> + Send;

    /// Records an action linked to this transaction's audit row (in the `public` audit schema).
    fn record_action(
        &mut self,
        name: &str,
        actor: &ActorRef,
        options: ActionOptions,
    ) -> impl Future<Output = Result<AuditAction>> + Send;

    /// Like [`record_action`](Self::record_action) for an audit schema other than `public`.
    fn record_action_in(
        &mut self,
        install: &InstallOptions,
        name: &str,
        actor: &ActorRef,
        options: ActionOptions,
    ) -> impl Future<Output = Result<AuditAction>> + Send;
}

impl TransactionExt for PgConnection {
    async fn with_actor(&mut self, actor: &ActorRef) -> Result<()> {
        self.with_context(&AuditContext::for_actor(actor.clone()))
            .await
    }

    async fn with_context(&mut self, ctx: &AuditContext) -> Result<()> {
        if !self.is_in_transaction() {
            return Err(Error::NotInTransaction);
        }
        apply_context(self, ctx).await
    }

    async fn record_action(
        &mut self,
        name: &str,
        actor: &ActorRef,
        options: ActionOptions,
    ) -> Result<AuditAction> {
        self.record_action_in(&InstallOptions::default(), name, actor, options)
            .await
    }

    async fn record_action_in(
        &mut self,
        install: &InstallOptions,
        name: &str,
        actor: &ActorRef,
        options: ActionOptions,
    ) -> Result<AuditAction> {
        if !self.is_in_transaction() {
            return Err(Error::NotInTransaction);
        }
        insert_action(self, &install.schema, name, actor, &options, true).await
    }
}

/// The context's settings, refusing values PostgreSQL text cannot hold before any SQL runs.
fn checked_settings(ctx: &AuditContext) -> Result<[(&'static str, String); 6]> {
    let settings = ctx.settings();
    match settings.iter().find(|(_, v)| v.contains('\0')) {
        Some((name, _)) => Err(Error::invalid(
            name,
            "contains a NUL byte, which PostgreSQL text cannot hold; remove it",
        )),
        None => Ok(settings),
    }
}

async fn apply_context(conn: &mut PgConnection, ctx: &AuditContext) -> Result<()> {
    let mut query = sqlx::query(SET_CONTEXT).persistent(crate::named_statements());
    for (_, value) in checked_settings(ctx)? {
        query = query.bind(value);
    }
    query.execute(conn).await?;
    Ok(())
}

/// Starting a transaction with context already applied.
pub trait PoolExt {
    /// Begins a transaction with `ctx` applied, in one round trip: `SET LOCAL` statements and
    /// `BEGIN` go out as one simple-protocol query (see
    /// [`begin_with_context_sql`](threadline_core::sql::begin_with_context_sql)). Values are
    /// escape-string literals; no prepared statement is involved, so this is also safe behind
    /// PgBouncer in transaction mode. A value holding a NUL byte is refused with
    /// [`Error::InvalidInput`] before anything is sent.
    ///
    /// ```no_run
    /// # async fn run(pool: sqlx::PgPool) -> threadline_sqlx::Result<()> {
    /// use threadline_sqlx::{ActorRef, AuditContext, PoolExt};
    /// let ctx = AuditContext::for_actor(ActorRef::user("42")?).with_request_id("req-1");
    /// let tx = pool.begin_with_context(&ctx).await?;
    /// tx.commit().await?;
    /// # Ok(()) }
    /// ```
    fn begin_with_context(
        &self,
        ctx: &AuditContext,
    ) -> impl Future<Output = Result<Transaction<'static, Postgres>>> + Send;
}

impl PoolExt for PgPool {
    async fn begin_with_context(
        &self,
        ctx: &AuditContext,
    ) -> Result<Transaction<'static, Postgres>> {
        Ok(self.begin_with(begin_statement(ctx)?).await?)
    }
}

/// Starting a transaction with context applied on a connection already held, such as a
/// `PoolConnection` (which derefs to `PgConnection`) kept by a worker.
pub trait ConnectionExt: sealed::Sealed {
    /// Begins a transaction on this connection with `ctx` applied, in one round trip, exactly
    /// as [`PoolExt::begin_with_context`] does. Fails with [`Error::Database`] when the
    /// connection is already inside a transaction (apply the context there with
    /// [`TransactionExt::with_context`]); nothing is sent then.
    ///
    /// ```no_run
    /// # async fn run(pool: sqlx::PgPool) -> threadline_sqlx::Result<()> {
    /// use threadline_sqlx::{ActorRef, AuditContext, ConnectionExt};
    /// let mut conn = pool.acquire().await?;
    /// let ctx = AuditContext::for_actor(ActorRef::job("nightly-sync")?);
    /// let tx = conn.begin_with_context(&ctx).await?;
    /// tx.commit().await?;
    /// # Ok(()) }
    /// ```
    fn begin_with_context(
        &mut self,
        ctx: &AuditContext,
    ) -> impl Future<Output = Result<Transaction<'_, Postgres>>> + Send;
}

impl ConnectionExt for PgConnection {
    async fn begin_with_context(
        &mut self,
        ctx: &AuditContext,
    ) -> Result<Transaction<'_, Postgres>> {
        Ok(self.begin_with(begin_statement(ctx)?).await?)
    }
}

/// The `SET LOCAL ...; BEGIN` message for `ctx`, after the NUL check.
fn begin_statement(ctx: &AuditContext) -> Result<sqlx::AssertSqlSafe<String>> {
    let sql = threadline_core::sql::begin_with_settings_sql(&checked_settings(ctx)?);
    // Safe: constant SQL and setting names; every value is an escaped E'' literal.
    Ok(sqlx::AssertSqlSafe(sql))
}
