//! Running behind a transaction-pooling connection pooler (PgBouncer).
//!
//! Threadline's context is transaction-local (`set_config(name, value, true)`), so it is safe
//! when PgBouncer hands each transaction a different server connection. What is not safe by
//! default is sqlx's use of *named* prepared statements: sqlx 0.9 names every parameterized
//! statement `sqlx_s_<n>` per client connection and, even with
//! `statement_cache_capacity(0)`, still prepares it under that name (and never closes it).
//! Behind PgBouncer older than 1.21 (or with `max_prepared_statements = 0`) two clients then
//! collide on one server connection (`prepared statement "sqlx_s_1" already exists`), or a
//! client binds a statement that lives on another server connection.
//!
//! [`StatementMode::Unnamed`] on the [`Threadline`](crate::Threadline) handle makes
//! Threadline's own parameterized statements (the handle's queries and action inserts)
//! unnamed, which PgBouncer supports inside a transaction; the handle then runs each of its
//! calls inside a transaction. The context statements (`tx.with_actor`, `begin_with_context`)
//! use the simple query protocol and need no setting. Do the same for your own queries with
//! `.persistent(false)`, and keep them inside transactions: an unnamed statement outside one
//! is parsed and executed in two protocol round trips that PgBouncer may send to different
//! servers. The cost is one extra round trip per statement, so keep the default when you
//! connect to PostgreSQL directly. `guides/production-checklist.md` has the full PgBouncer
//! setup.

/// How a [`Threadline`](crate::Threadline) prepares its own parameterized statements.
///
/// ```
/// # fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use threadline_sqlx::{StatementMode, Threadline};
/// // DATABASE_URL points at PgBouncer in transaction mode:
/// let pool = sqlx::PgPool::connect_lazy("postgres://localhost:6432/app")?;
/// let threadline = Threadline::new(pool).with_statement_mode(StatementMode::Unnamed);
/// # let _ = threadline; Ok(()) }
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum StatementMode {
    /// sqlx's named, cached prepared statements: one round trip per statement (the default).
    #[default]
    Named,
    /// Unnamed statements, each call inside a transaction: required behind PgBouncer in
    /// transaction mode without prepared-statement support.
    Unnamed,
}
