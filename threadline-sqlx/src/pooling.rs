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
//! [`set_named_statements(false)`](set_named_statements) makes Threadline's own parameterized
//! statements (the context statement and action inserts) unnamed, which PgBouncer supports
//! inside a transaction. Do the same for your own queries with `.persistent(false)`, and keep
//! them inside transactions: an unnamed statement outside one is parsed and executed in two
//! protocol round trips that PgBouncer may send to different servers. The cost is one extra
//! round trip per statement, so leave it on when you connect to PostgreSQL directly.
//! `guides/production-checklist.md` has the full PgBouncer setup.

use std::sync::atomic::{AtomicBool, Ordering};

static NAMED_STATEMENTS: AtomicBool = AtomicBool::new(true);

/// Chooses, for the whole process, whether Threadline's own parameterized statements use
/// sqlx's named, cached prepared statements (`true`, the default: one round trip) or unnamed
/// ones (`false`: required behind PgBouncer transaction pooling without prepared-statement
/// support).
///
/// ```
/// // At start-up, when DATABASE_URL points at PgBouncer in transaction mode:
/// threadline_sqlx::set_named_statements(false);
/// assert!(!threadline_sqlx::named_statements());
/// # threadline_sqlx::set_named_statements(true);
/// ```
pub fn set_named_statements(enabled: bool) {
    NAMED_STATEMENTS.store(enabled, Ordering::Relaxed);
}

/// Whether Threadline's own parameterized statements are named (see [`set_named_statements`]).
pub fn named_statements() -> bool {
    NAMED_STATEMENTS.load(Ordering::Relaxed)
}
