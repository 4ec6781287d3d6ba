//! Small helpers several suites had each declared for themselves.

use serde_json::Value;
use sqlx::{PgConnection, Row};
use threadline_core::{ActorRef, AuditContext};
use threadline_sqlx::{PoolExt, TransactionExt};

use crate::TestDb;

/// One captured change, as the tests look at it: a row of `audit_changes` (in `public`).
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// `audit_changes.transaction_id`.
    pub transaction_id: i64,
    /// The audited table's schema.
    pub table_schema: String,
    /// The audited table's name.
    pub table_name: String,
    /// The row's key as JSON.
    pub table_pk: Value,
    /// `insert`, `update` or `delete`.
    pub op: String,
    /// The row after the change (none for a delete).
    pub data_after: Option<Value>,
    /// The row before the change (deletes only).
    pub data_before: Option<Value>,
    /// The changed columns of an update, sorted.
    pub changed_fields: Option<Vec<String>>,
    /// The changed columns' old values, when the policy stores them.
    pub changed_from: Option<Value>,
}

/// Every row of `public.audit_changes`, in capture (`id`) order.
pub async fn changes(db: &TestDb) -> Vec<Change> {
    sqlx::query(
        "SELECT transaction_id, table_schema, table_name, table_pk, op, data_after, data_before,
                changed_fields, changed_from
         FROM audit_changes ORDER BY id",
    )
    .fetch_all(&db.pool)
    .await
    .expect("read audit_changes")
    .into_iter()
    .map(|r| Change {
        transaction_id: r.get(0),
        table_schema: r.get(1),
        table_name: r.get(2),
        table_pk: r.get(3),
        op: r.get(4),
        data_after: r.get(5),
        data_before: r.get(6),
        changed_fields: r.get(7),
        changed_from: r.get(8),
    })
    .collect()
}

/// `ActorRef::user(id)`, for ids known to be valid.
pub fn user(id: &str) -> ActorRef {
    ActorRef::user(id).expect("a valid user id")
}

/// Runs `sql` (several statements allowed) in one transaction with `actor` set through
/// `tx.with_actor`, and commits.
pub async fn write(db: &TestDb, actor: &ActorRef, sql: &str) {
    let mut tx = db.pool.begin().await.expect("begin");
    tx.with_actor(actor).await.expect("with_actor");
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&mut *tx)
        .await
        .unwrap_or_else(|e| panic!("{e}\nSQL: {sql}"));
    tx.commit().await.expect("commit");
}

/// Runs `sql` in one transaction begun with a whole context (`begin_with_context`), and
/// commits.
pub async fn write_ctx(db: &TestDb, ctx: &AuditContext, sql: &str) {
    let mut tx = db
        .pool
        .begin_with_context(ctx)
        .await
        .expect("begin_with_context");
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&mut *tx)
        .await
        .unwrap_or_else(|e| panic!("{e}\nSQL: {sql}"));
    tx.commit().await.expect("commit");
}

/// The server process id behind `conn` (unprepared, so that it also works through PgBouncer
/// in transaction mode).
pub async fn backend_pid(conn: &mut PgConnection) -> i32 {
    sqlx::query_scalar("SELECT pg_backend_pid()")
        .persistent(false)
        .fetch_one(conn)
        .await
        .expect("pid")
}
