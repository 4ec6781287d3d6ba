//! Recording and reading semantic actions (`audit_actions`). What an action is, and its
//! rules, live in threadline-core.

use sqlx::PgConnection;
use sqlx::postgres::PgRow;
use threadline_core::{ActionOptions, ActionStatus, ActorRef, AuditAction};

use crate::error::Result;
use crate::sql;
use crate::threadline::Threadline;

/// Columns of an [`AuditAction`] row.
macro_rules! action_columns {
    () => {
        "id, name, actor_ref, status, verb, category, reason, comment, correlation_id, request_id, job_id, trace_id, transaction_id, inserted_at"
    };
}

/// Maps a row selected with `action_columns!()`.
fn action_from_row(row: &PgRow) -> sqlx::Result<AuditAction> {
    use sqlx::Row;
    let status: String = row.try_get("status")?;
    Ok(AuditAction {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        actor_ref: row.try_get("actor_ref")?,
        status: ActionStatus::from_stored(&status),
        verb: row.try_get("verb")?,
        category: row.try_get("category")?,
        reason: row.try_get("reason")?,
        comment: row.try_get("comment")?,
        correlation_id: row.try_get("correlation_id")?,
        request_id: row.try_get("request_id")?,
        job_id: row.try_get("job_id")?,
        trace_id: row.try_get("trace_id")?,
        transaction_id: row.try_get("transaction_id")?,
        inserted_at: row.try_get("inserted_at")?,
    })
}

/// The actions linked to the audited transactions `ids`, by transaction, in the order they
/// were recorded.
pub(crate) async fn transaction_actions(
    conn: &mut PgConnection,
    threadline: &Threadline,
    ids: &[i64],
) -> Result<Vec<AuditAction>> {
    const SQL: &str = concat!(
        "SELECT ",
        action_columns!(),
        " FROM @S.audit_actions WHERE transaction_id = ANY ($1) ORDER BY transaction_id, inserted_at, id"
    );
    let rows = threadline
        .query(sql::in_schema(SQL, threadline.schema()))
        .bind(ids)
        .fetch_all(conn)
        .await?;
    Ok(rows
        .iter()
        .map(action_from_row)
        .collect::<sqlx::Result<_>>()?)
}

/// Inserts an action; `linked` decides whether it is tied to the current audited transaction.
pub(crate) async fn insert_action(
    conn: &mut PgConnection,
    threadline: &Threadline,
    name: &str,
    actor: &ActorRef,
    opts: &ActionOptions,
    linked: bool,
) -> Result<AuditAction> {
    threadline_core::validate_action_name(name)?;
    opts.validate()?;
    // The install's threadline_record_action function writes the row: a hardened install
    // denies direct INSERT on audit_actions to the application role.
    const RECORD: &str = concat!(
        "SELECT ",
        action_columns!(),
        " FROM @S.threadline_record_action($1, $2::jsonb, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
    );
    let row = threadline
        .query(sql::in_schema(RECORD, threadline.schema()))
        .bind(name)
        .bind(actor.to_json())
        .bind(opts.status.as_str())
        .bind(&opts.verb)
        .bind(&opts.category)
        .bind(&opts.reason)
        .bind(&opts.comment)
        .bind(&opts.correlation_id)
        .bind(&opts.request_id)
        .bind(&opts.job_id)
        .bind(linked)
        .bind(opts.transaction_id.filter(|_| !linked))
        .bind(opts.trace_id.map(|t| t.to_string()))
        .fetch_one(conn)
        .await?;
    Ok(action_from_row(&row)?)
}

/// The `audit_transactions` id of the current transaction, if it has captured a change yet.
/// Call it just before committing to link a later standalone action to these changes. It
/// binds nothing and uses the simple query protocol, so it is safe behind PgBouncer.
pub async fn current_audit_transaction_id(conn: &mut PgConnection) -> Result<Option<i64>> {
    use sqlx::Row;
    // The cache is '<txid>:<id>:<actor key>'; it only counts when its txid is this transaction's.
    let row = sqlx::raw_sql(
        "SELECT CASE WHEN split_part(c, ':', 1) = txid_current_if_assigned()::text
                     THEN split_part(c, ':', 2)::bigint END
         FROM current_setting('threadline.txn', true) AS c",
    )
    .fetch_one(conn)
    .await?;
    Ok(row.try_get(0)?)
}
