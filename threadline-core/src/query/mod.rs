//! The exploration queries, as SQL text plus bound values (no I/O).
//!
//! threadline-sqlx runs these statements; they are public so that other front ends (the CLI,
//! export, an operator's own tooling) reuse the same SQL, and so that their plans can be
//! inspected with `EXPLAIN`. Every identifier is quoted and every value is a `$n` parameter.
//!
//! ```
//! use threadline_core::{Ident, query::{self, Page, TimelineFilter}};
//! let schema = Ident::new("public")?;
//! let filter = TimelineFilter::new().table("posts".parse()?);
//! let paged = query::timeline(&schema, &filter, &Page::first())?;
//! assert!(paged.statement.sql.contains("ORDER BY c.captured_at DESC, c.id DESC"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod activity;
mod cursor;
mod filter;
mod key;

use chrono::{DateTime, Utc};
use serde_json::Value;

pub use activity::{ActivityBucket, ActivityWindow, activity};
pub use cursor::{Cursor, CursorError, Page, PageOf, PagePlan};
pub use filter::{MAX_FILTER_VALUE_BYTES, TimelineFilter};
pub use key::PrimaryKey;

use crate::sql::fnv1a;
use crate::{ActorRef, AuditChange, ChangeOp, Ident, TableName};
use cursor::PagedMethod;
use filter::where_sql;

/// Why a query was refused before it ran.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// The page size is out of range.
    #[error("page size {size} is out of range; use 1 to {max}", max = Page::MAX_SIZE)]
    PageSize {
        /// The size asked for.
        size: u32,
    },
    /// The cursor is not valid here.
    #[error(transparent)]
    Cursor(#[from] CursorError),
    /// A filter field is invalid.
    #[error("invalid filter {field}: {reason}")]
    Filter {
        /// The field.
        field: &'static str,
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// A scalar key was given for a table with a composite key.
    #[error(
        "table {table} has a composite key ({columns}); pass a JSON object with every key column, e.g. serde_json::json!({{...}})"
    )]
    CompositeKey {
        /// The table.
        table: String,
        /// Its key columns.
        columns: String,
    },
    /// An object key names other columns than the table's key.
    #[error(
        "table {table} is keyed by ({expected}), but the key object has ({given}); name exactly the key columns"
    )]
    KeyColumns {
        /// The table.
        table: String,
        /// Its key columns.
        expected: String,
        /// The keys given.
        given: String,
    },
    /// The key value cannot be a key.
    #[error("invalid primary key: {0}")]
    KeyValue(String),
}

impl QueryError {
    pub(crate) fn filter(field: &'static str, reason: impl Into<String>) -> Self {
        QueryError::Filter {
            field,
            reason: reason.into(),
        }
    }
}

/// The state of one row at a point in time ([`as_of`]).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum AsOf {
    /// The row existed: `image` is its (redacted) state, left by `change`.
    Existed {
        /// The row image.
        image: Value,
        /// The last change at or before that time (insert, update or snapshot).
        change: AuditChange,
    },
    /// The row had been deleted by then; `change.data_before` holds its last image.
    Deleted {
        /// The delete.
        change: AuditChange,
    },
    /// No retained change of the row is at or before that time: capture had not started for
    /// it (brownfield horizon), or retention purged its older changes.
    BeforeCapture {
        /// The row's first retained change after that time, if any. When it is an insert,
        /// the row was most likely created later.
        first_change: Option<AuditChange>,
    },
}

impl AsOf {
    /// Classifies the rows of an [`as_of`] statement (the last change at or before `at`, then
    /// the first change after it).
    pub fn from_changes(changes: Vec<AuditChange>, at: DateTime<Utc>) -> Self {
        let mut changes = changes.into_iter();
        match changes.next() {
            Some(change) if change.captured_at <= at => match change.op {
                ChangeOp::Delete => AsOf::Deleted { change },
                _ => AsOf::Existed {
                    image: change.data_after.clone().unwrap_or(Value::Null),
                    change,
                },
            },
            first_change => AsOf::BeforeCapture { first_change },
        }
    }

    /// The row image when the row existed.
    pub fn image(&self) -> Option<&Value> {
        match self {
            AsOf::Existed { image, .. } => Some(image),
            _ => None,
        }
    }
}

/// A value bound to a `$n` placeholder.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlParam {
    /// `text`.
    Text(String),
    /// `jsonb`.
    Json(Value),
    /// `jsonb[]`.
    JsonArray(Vec<Value>),
    /// `timestamptz`.
    Timestamp(DateTime<Utc>),
    /// `bigint`.
    BigInt(i64),
}

/// SQL text with its parameters in `$1, $2, ...` order.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    /// The SQL.
    pub sql: String,
    /// The values of `$1, $2, ...`.
    pub params: Vec<SqlParam>,
}

/// A paged statement and the plan that turns its rows into a [`PageOf`].
#[derive(Debug, Clone, PartialEq)]
pub struct PagedQuery {
    /// The statement; it fetches one row more than the page size.
    pub statement: Statement,
    /// Builds the page from the fetched rows.
    pub plan: PagePlan,
}

/// Appends a parameter and returns its placeholder.
pub(crate) fn bind(params: &mut Vec<SqlParam>, param: SqlParam) -> String {
    params.push(param);
    format!("${}", params.len())
}

fn in_schema(template: &str, schema: &Ident) -> String {
    template.replace("@S", &schema.quoted())
}

/// Columns of an [`AuditChange`] row, in field order (aliases `c`, `t`).
pub const CHANGE_COLUMNS: &str = "c.id, c.transaction_id, c.table_schema, c.table_name, c.table_pk, c.op, \
     c.data_after, c.data_before, c.changed_fields, c.changed_from, c.captured_at, t.actor_ref";

/// Columns of an [`AuditTransaction`](crate::AuditTransaction) row, in field order (alias `t`);
/// `remote_ip` is the `inet` column itself, decoded as a network whose address is kept.
pub const TRANSACTION_COLUMNS: &str = "t.id, t.txid, t.occurred_at, t.actor_ref, t.request_id, t.correlation_id, \
     t.remote_ip, t.source, t.meta, t.trace_id";

/// How a change (`c`) reaches its transaction (`t`): by a join on the transaction id.
const JOIN_TRANSACTIONS: &str = " LEFT JOIN @S.audit_transactions t ON t.id = c.transaction_id";

/// How a change (`c`) reaches its transaction's actor (`t.actor_ref`), one change at a time: a
/// `LATERAL` lookup that first searches the transactions that began in the day up to the
/// change's capture, and all of them only when that finds none. On the partitioned layout
/// `audit_transactions` is partitioned by `occurred_at`, so the first lookup probes the one or
/// two partitions of that day (run-time pruning) instead of every partition; on the plain
/// layout it is the same primary-key probe as the join. A transaction starts before its
/// changes are captured (`now()` against `clock_timestamp()`), so the fallback runs only for a
/// transaction longer than a day or a clock set back.
const LOOKUP_ACTOR: &str = " LEFT JOIN LATERAL ((SELECT t.actor_ref FROM @S.audit_transactions t \
         WHERE t.id = c.transaction_id AND t.occurred_at <= c.captured_at \
           AND t.occurred_at > c.captured_at - interval '1 day') \
       UNION ALL \
       (SELECT t.actor_ref FROM @S.audit_transactions t WHERE t.id = c.transaction_id) \
       LIMIT 1) t ON true";

/// `SELECT <change columns> FROM audit_changes c LEFT JOIN audit_transactions t ...`, the
/// base that [`TimelineFilter::where_clause`] conditions apply to.
pub fn changes_select(schema: &Ident) -> String {
    in_schema(
        &format!("SELECT {CHANGE_COLUMNS} FROM @S.audit_changes c{JOIN_TRANSACTIONS}"),
        schema,
    )
}

/// `SELECT <change columns>` for changes found by an index of `audit_changes` (a row's
/// history, a timeline by time, table or actor), each change's actor looked up on its own.
fn per_change_select(schema: &Ident) -> String {
    in_schema(
        &format!("SELECT {CHANGE_COLUMNS} FROM @S.audit_changes c{LOOKUP_ACTOR}"),
        schema,
    )
}

/// Whether `filter` finds transactions first (by correlation, request or trace id): then the
/// changes are reached through the join, so that PostgreSQL can read those few transactions
/// and then their changes.
fn finds_transactions_first(filter: &TimelineFilter) -> bool {
    filter.correlation_id.is_some() || filter.request_id.is_some() || filter.trace_id.is_some()
}

/// The select a timeline of `filter` starts from.
fn timeline_select(schema: &Ident, filter: &TimelineFilter) -> String {
    if finds_transactions_first(filter) {
        changes_select(schema)
    } else {
        per_change_select(schema)
    }
}

/// What a count of `filter` (`count`, the activity chart) adds after `audit_changes c` to
/// reach `t`: the join, the per-change actor lookup for an actor filter, or nothing without
/// a condition on transactions. Even a join PostgreSQL could remove keeps `transaction_id`
/// among the columns read, and on the partitioned layout (where `id` alone is not unique) it
/// is not removed at all, so that each change would probe every transaction partition.
pub(crate) fn transactions_for_count(filter: &TimelineFilter) -> &'static str {
    if finds_transactions_first(filter) {
        JOIN_TRANSACTIONS
    } else if filter.actor.is_some() {
        LOOKUP_ACTOR
    } else {
        ""
    }
}

/// Reads what `history` and `as_of` need to know about a table: one stored `table_pk` (its
/// keys are the key columns; a truncate's empty key is skipped) and whether the table exists
/// now. Returns one row
/// `(sample jsonb, table_exists bool)`.
pub fn table_key_sample(schema: &Ident, table: &TableName) -> Statement {
    Statement {
        sql: in_schema(
            "SELECT (SELECT c.table_pk FROM @S.audit_changes c \
                     WHERE c.table_name = $1 AND c.table_schema = $2 \
                       AND c.table_pk <> '{}'::jsonb \
                     ORDER BY c.table_pk LIMIT 1) AS sample, \
                    to_regclass($3) IS NOT NULL AS table_exists",
            schema,
        ),
        params: vec![
            SqlParam::Text(table.name().as_str().to_owned()),
            SqlParam::Text(table.schema().as_str().to_owned()),
            SqlParam::Text(table.to_string()),
        ],
    }
}

fn row_params(table: &TableName, candidates: Vec<Value>) -> Vec<SqlParam> {
    vec![
        SqlParam::Text(table.name().as_str().to_owned()),
        SqlParam::Text(table.schema().as_str().to_owned()),
        SqlParam::JsonArray(candidates),
    ]
}

const ROW: &str = "c.table_name = $1 AND c.table_schema = $2 AND c.table_pk = ANY ($3)";

/// The order of a row's history: newest first. The version before a change is the next one
/// in this order.
const NEWEST_FIRST: &str = "ORDER BY c.captured_at DESC, c.id DESC";

/// One row's changes, newest first. `candidates` come from [`PrimaryKey::candidates`].
pub fn history(schema: &Ident, table: &TableName, candidates: Vec<Value>) -> Statement {
    Statement {
        sql: format!("{} WHERE {ROW} {NEWEST_FIRST}", per_change_select(schema)),
        params: row_params(table, candidates),
    }
}

/// The last change of one row at or before `at`, then the first change after it (0 to 2
/// rows, in that order).
pub fn as_of(
    schema: &Ident,
    table: &TableName,
    candidates: Vec<Value>,
    at: DateTime<Utc>,
) -> Statement {
    let select = per_change_select(schema);
    let mut params = row_params(table, candidates);
    params.push(SqlParam::Timestamp(at));
    Statement {
        sql: format!(
            "({select} WHERE {ROW} AND c.captured_at <= $4 {NEWEST_FIRST} LIMIT 1) \
             UNION ALL \
             ({select} WHERE {ROW} AND c.captured_at > $4 \
               ORDER BY c.captured_at, c.id LIMIT 1)"
        ),
        params,
    }
}

/// The row image before a change, from the row's history (see [`previous_changes`]).
#[derive(Debug, Clone, PartialEq)]
pub struct PreviousImage {
    /// The earlier change the image comes from.
    pub change_id: i64,
    /// Its `data_after`: the row as that change left it.
    pub image: Value,
}

/// For each of `changes`, the change before it in its row's [`history`] (the same table and
/// `table_pk`, earlier in history order), in one statement: a `LATERAL` lookup per change on
/// the row index, so a page of changes costs one round trip. Rows
/// `(change_id bigint, id bigint, op text, data_after jsonb)`; a change whose row has no
/// earlier change is left out. Truncates (key `{}`) are never looked up. The redundant
/// `captured_at <= p.captured_at` lets the partitioned layout skip the partitions after each
/// change (run-time pruning; the row comparison alone prunes nothing).
pub fn previous_changes(schema: &Ident, changes: &[&AuditChange]) -> Statement {
    let pages: Vec<Value> = changes
        .iter()
        .filter(|c| c.op != ChangeOp::Truncate)
        .map(|c| {
            serde_json::json!({
                "id": c.id,
                "table_schema": c.table_schema,
                "table_name": c.table_name,
                "table_pk": c.table_pk,
                "captured_at": c.captured_at,
            })
        })
        .collect();
    Statement {
        sql: in_schema(
            &format!(
                "SELECT p.id AS change_id, c.id, c.op, c.data_after \
                 FROM jsonb_to_recordset($1) AS p(id bigint, table_schema text, table_name text, \
                      table_pk jsonb, captured_at timestamptz) \
                 CROSS JOIN LATERAL (SELECT c.id, c.op, c.data_after FROM @S.audit_changes c \
                     WHERE c.table_name = p.table_name AND c.table_schema = p.table_schema \
                       AND c.table_pk = p.table_pk AND c.captured_at <= p.captured_at \
                       AND (c.captured_at, c.id) < (p.captured_at, p.id) \
                     {NEWEST_FIRST} LIMIT 1) AS c"
            ),
            schema,
        ),
        params: vec![SqlParam::Json(Value::Array(pages))],
    }
}

/// The keyset condition and order for a page over `(time, id)` columns.
fn page_sql(
    plan: &PagePlan,
    time: &str,
    id: &str,
    conditions: &mut Vec<String>,
    params: &mut Vec<SqlParam>,
) -> String {
    let (cmp, dir) = if plan.reads_newer() {
        (">", "ASC")
    } else {
        ("<", "DESC")
    };
    if let Some((at, last_id)) = plan.position() {
        let at = bind(params, SqlParam::Timestamp(at));
        let last_id = bind(params, SqlParam::BigInt(last_id));
        conditions.push(format!("({time}, {id}) {cmp} ({at}, {last_id})"));
    }
    let limit = bind(params, SqlParam::BigInt(plan.fetch_limit()));
    format!(
        "{} ORDER BY {time} {dir}, {id} {dir} LIMIT {limit}",
        where_sql(conditions)
    )
}

/// One page of changes matching `filter`, newest first (`captured_at DESC, id DESC`).
pub fn timeline(
    schema: &Ident,
    filter: &TimelineFilter,
    page: &Page,
) -> Result<PagedQuery, QueryError> {
    let plan = page.plan(PagedMethod::Timeline, filter.fingerprint())?;
    let mut params = Vec::new();
    let mut conditions = Vec::new();
    filter.push_conditions(&mut conditions, &mut params)?;
    let tail = page_sql(&plan, "c.captured_at", "c.id", &mut conditions, &mut params);
    Ok(PagedQuery {
        statement: Statement {
            sql: format!("{} {tail}", timeline_select(schema, filter)),
            params,
        },
        plan,
    })
}

/// The number of changes matching `filter` (one `bigint` row).
pub fn count(schema: &Ident, filter: &TimelineFilter) -> Result<Statement, QueryError> {
    let mut params = Vec::new();
    let where_clause = filter.where_clause(&mut params)?;
    Ok(Statement {
        sql: in_schema(
            &format!(
                "SELECT count(*) FROM @S.audit_changes c{} {where_clause}",
                transactions_for_count(filter)
            ),
            schema,
        ),
        params,
    })
}

/// One page of an actor's transactions, newest first (`occurred_at DESC, id DESC`).
pub fn actor_history(
    schema: &Ident,
    actor: &ActorRef,
    page: &Page,
) -> Result<PagedQuery, QueryError> {
    let actor_json = actor.to_value();
    let plan = page.plan(
        PagedMethod::ActorHistory,
        fnv1a(actor_json.to_string().as_bytes()),
    )?;
    let mut params = Vec::new();
    let mut conditions = vec![format!(
        "t.actor_ref = {}",
        bind(&mut params, SqlParam::Json(actor_json))
    )];
    let tail = page_sql(&plan, "t.occurred_at", "t.id", &mut conditions, &mut params);
    Ok(PagedQuery {
        statement: Statement {
            sql: in_schema(
                &format!("SELECT {TRANSACTION_COLUMNS} FROM @S.audit_transactions t {tail}"),
                schema,
            ),
            params,
        },
        plan,
    })
}

/// One transaction by id (0 or 1 row).
pub fn transaction(schema: &Ident, id: i64) -> Statement {
    Statement {
        sql: in_schema(
            &format!("SELECT {TRANSACTION_COLUMNS} FROM @S.audit_transactions t WHERE t.id = $1"),
            schema,
        ),
        params: vec![SqlParam::BigInt(id)],
    }
}

/// The changes of one transaction, in capture order (`captured_at, id`).
pub fn transaction_changes(schema: &Ident, id: i64) -> Statement {
    Statement {
        sql: format!(
            "{} WHERE c.transaction_id = $1 ORDER BY c.captured_at, c.id",
            changes_select(schema)
        ),
        params: vec![SqlParam::BigInt(id)],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn public() -> Ident {
        Ident::new("public").unwrap()
    }

    #[test]
    fn timeline_pages_use_the_keyset_in_both_directions() {
        let filter = TimelineFilter::new().table("posts".parse().unwrap());
        let first = timeline(&public(), &filter, &Page::first()).unwrap();
        assert!(first.statement.sql.ends_with(
            "WHERE c.table_name = $1 AND c.table_schema = $2 \
             ORDER BY c.captured_at DESC, c.id DESC LIMIT $3"
        ));
        assert_eq!(first.statement.params[2], SqlParam::BigInt(101));

        let t = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let page = first.plan.finish(vec![(t, 5), (t, 4)], |r| *r);
        assert!(page.next.is_none());
        let older = first
            .plan
            .finish((0..102).map(|i| (t, 200 - i)).collect(), |r| *r);
        let next = timeline(&public(), &filter, &Page::at(older.next.unwrap())).unwrap();
        assert!(next.statement.sql.ends_with(
            "AND (c.captured_at, c.id) < ($3, $4) ORDER BY c.captured_at DESC, c.id DESC LIMIT $5"
        ));
        assert_eq!(next.statement.params[3], SqlParam::BigInt(101));
        let back = next.plan.finish(vec![(t, 100)], |r| *r);
        let prev = timeline(&public(), &filter, &Page::at(back.prev.unwrap())).unwrap();
        assert!(prev.statement.sql.ends_with(
            "AND (c.captured_at, c.id) > ($3, $4) ORDER BY c.captured_at ASC, c.id ASC LIMIT $5"
        ));
    }

    #[test]
    fn cursors_do_not_cross_filters_or_methods() {
        let t = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let posts = TimelineFilter::new().table("posts".parse().unwrap());
        let q = timeline(&public(), &posts, &Page::first().with_size(1)).unwrap();
        let cursor = q.plan.finish(vec![(t, 2), (t, 1)], |r| *r).next.unwrap();
        let other = TimelineFilter::new().table("users".parse().unwrap());
        assert_eq!(
            timeline(&public(), &other, &Page::at(cursor.clone())).unwrap_err(),
            QueryError::Cursor(CursorError::WrongFilter)
        );
        let actor = ActorRef::user("1").unwrap();
        assert!(matches!(
            actor_history(&public(), &actor, &Page::at(cursor)).unwrap_err(),
            QueryError::Cursor(CursorError::WrongMethod { .. })
        ));
    }

    #[test]
    fn schema_is_quoted_everywhere() {
        let schema = Ident::new("Audit \"Log\"").unwrap();
        let table: TableName = "posts".parse().unwrap();
        let actor = ActorRef::user("1").unwrap();
        let filter = TimelineFilter::new();
        let sqls = [
            history(&schema, &table, vec![]).sql,
            as_of(&schema, &table, vec![], Utc::now()).sql,
            table_key_sample(&schema, &table).sql,
            timeline(&schema, &filter, &Page::first())
                .unwrap()
                .statement
                .sql,
            count(&schema, &filter).unwrap().sql,
            actor_history(&schema, &actor, &Page::first())
                .unwrap()
                .statement
                .sql,
            transaction(&schema, 1).sql,
            transaction_changes(&schema, 1).sql,
        ];
        for sql in sqls {
            assert!(sql.contains(r#""Audit ""Log"""."#), "{sql}");
            assert!(!sql.contains("@S"), "{sql}");
        }
    }
}
