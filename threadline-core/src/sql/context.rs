//! The one-round-trip `BEGIN` that applies an [`AuditContext`].

use crate::AuditContext;

/// SQL that applies `ctx` and opens a transaction block, sent as one simple-protocol query:
/// one round trip instead of two (`BEGIN`, then a statement of `set_config` calls).
///
/// Each setting is a `SET LOCAL` (transaction-local, like `set_config(..., true)`; a utility
/// statement, so the server neither plans nor caches anything for it). The settings run first,
/// in the implicit transaction of the multi-statement query, and the trailing `BEGIN` turns that
/// transaction into an explicit one, so they last until `COMMIT` or `ROLLBACK`; if one failed,
/// nothing would be left open.
///
/// A new transaction starts with no transaction-local values, so only the fields `ctx` holds
/// are written, plus the actor always (`''` when there is none), so that an actor left behind
/// by a session-level `SET` can never be recorded for this transaction. Each written setting
/// costs the server a statement; clearing six of them measured about 6% of a small request's
/// throughput (guides/performance.md).
///
/// Values are escape-string literals (`E'...'` with `\` and `'` doubled), which mean the same
/// whatever `standard_conforming_strings` says; a value holding a NUL byte must be refused before
/// calling this (PostgreSQL text cannot hold one).
///
/// ```
/// use threadline_core::{ActorRef, AuditContext, sql::begin_with_context_sql};
/// let ctx = AuditContext::for_actor(ActorRef::user("o'brien").unwrap());
/// let sql = begin_with_context_sql(&ctx);
/// assert!(sql.starts_with(r#"SET LOCAL threadline.actor_ref = E'{"type":"user","id":"o''brien"}'; "#));
/// assert!(sql.ends_with("'; BEGIN") && !sql.contains("threadline.meta"));
/// let none = begin_with_context_sql(&AuditContext::new());
/// assert_eq!(none, r#"SET LOCAL threadline.actor_ref = E'{"type":"anonymous"}'; BEGIN"#);
/// ```
pub fn begin_with_context_sql(ctx: &AuditContext) -> String {
    begin_with_settings_sql(&ctx.settings())
}

/// [`begin_with_context_sql`] for settings already taken from a context with
/// [`AuditContext::settings`], so that a caller that also checks them computes them once.
pub fn begin_with_settings_sql(values: &[(&str, String)]) -> String {
    let mut sql = String::with_capacity(320);
    for (name, value) in values {
        if value.is_empty() {
            continue;
        }
        push_set_local(&mut sql, name, value);
    }
    sql.push_str("BEGIN");
    sql
}

/// SQL that applies settings taken with [`AuditContext::settings`] inside a transaction that
/// is already open, as one simple-protocol query of `SET LOCAL` statements. Unlike
/// [`begin_with_settings_sql`], every setting is written (an unset one as `''`), so applying a
/// context also clears what an earlier one set in the same transaction. Values are escaped as
/// in [`begin_with_context_sql`]; refuse NUL bytes first.
///
/// ```
/// use threadline_core::{ActorRef, AuditContext, sql::set_settings_sql};
/// let ctx = AuditContext::for_actor(ActorRef::user("7").unwrap());
/// let sql = set_settings_sql(&ctx.settings());
/// assert!(sql.starts_with(r#"SET LOCAL threadline.actor_ref = E'{"type":"user","id":"7"}'; "#));
/// assert!(sql.ends_with("SET LOCAL threadline.trace_id = E''; "));
/// assert_eq!(sql.matches("SET LOCAL").count(), 7);
/// ```
pub fn set_settings_sql(values: &[(&str, String)]) -> String {
    let mut sql = String::with_capacity(320);
    for (name, value) in values {
        push_set_local(&mut sql, name, value);
    }
    sql
}

/// Appends `SET LOCAL name = E'value'; `. `name` is one of the constant `threadline.*` setting
/// names (plain identifiers); `value` is written as an escape-string literal.
fn push_set_local(sql: &mut String, name: &str, value: &str) {
    sql.push_str("SET LOCAL ");
    sql.push_str(name);
    sql.push_str(" = E'");
    for c in value.chars() {
        match c {
            '\'' => sql.push_str("''"),
            '\\' => sql.push_str("\\\\"),
            c => sql.push(c),
        }
    }
    sql.push_str("'; ");
}
