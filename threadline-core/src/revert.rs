//! Revert (SPEC §11): the pure half. What a revert targets ([`RevertTarget`]), the statements
//! that read what planning needs, and the plan itself ([`RevertPlan`]): each captured change
//! of the target inverted, in reverse capture order, as SQL whose values are bound and cast
//! back to the column types through the table's row type (`jsonb_populate_record`).
//!
//! Execution (locking, re-checking conflicts, running the statements, recording the
//! `threadline.revert` action) lives in `threadline-sqlx`.
//!
//! ```
//! use threadline_core::revert::RevertTarget;
//! let target: RevertTarget = "transaction:42".parse()?;
//! assert_eq!(target, RevertTarget::Transaction(42));
//! assert_eq!(target.to_string(), "transaction 42");
//! # Ok::<(), threadline_core::revert::RevertError>(())
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::audit::{AuditChange, ChangeOp};
use crate::ident::{Ident, TableName, quote_ident};
use crate::query::{SqlParam, Statement, changes_select};
use crate::redaction::{DEFAULT_MASK_PLACEHOLDER, TableCapture};

/// The name of the action every executed revert records.
pub const REVERT_ACTION: &str = "threadline.revert";

/// Longest correlation or request id a target accepts, in bytes (the web layer's limit).
pub const MAX_TARGET_ID_BYTES: usize = 256;

/// What to revert.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RevertTarget {
    /// One captured change (`audit_changes.id`).
    Change(i64),
    /// Every change of one audited transaction (`audit_transactions.id`).
    Transaction(i64),
    /// Every change of the transactions carrying this correlation id.
    CorrelationId(String),
    /// Every change of the transactions carrying this request id.
    RequestId(String),
}

impl RevertTarget {
    /// Checks the target: ids are positive; correlation and request ids are 1 to
    /// [`MAX_TARGET_ID_BYTES`] bytes without control characters.
    pub fn validate(&self) -> Result<(), RevertError> {
        match self {
            RevertTarget::Change(id) | RevertTarget::Transaction(id) if *id <= 0 => Err(
                RevertError::InvalidTarget(format!("{self}: ids are positive integers")),
            ),
            RevertTarget::CorrelationId(s) | RevertTarget::RequestId(s) => {
                if s.is_empty() || s.len() > MAX_TARGET_ID_BYTES {
                    Err(RevertError::InvalidTarget(format!(
                        "{}: use 1 to {MAX_TARGET_ID_BYTES} bytes",
                        self.kind()
                    )))
                } else if s.chars().any(char::is_control) {
                    Err(RevertError::InvalidTarget(format!(
                        "{}: control characters are not allowed",
                        self.kind()
                    )))
                } else {
                    Ok(())
                }
            }
            _ => Ok(()),
        }
    }

    /// `change`, `transaction`, `correlation_id` or `request_id`.
    pub fn kind(&self) -> &'static str {
        match self {
            RevertTarget::Change(_) => "change",
            RevertTarget::Transaction(_) => "transaction",
            RevertTarget::CorrelationId(_) => "correlation_id",
            RevertTarget::RequestId(_) => "request_id",
        }
    }

    /// The statement selecting the target's changes ([`crate::query::CHANGE_COLUMNS`]) in
    /// capture order (`id`).
    pub fn changes_statement(&self, schema: &Ident) -> Statement {
        let base = changes_select(schema);
        let s = schema.quoted();
        let (filter, param) = match self {
            RevertTarget::Change(id) => ("c.id = $1".to_owned(), SqlParam::BigInt(*id)),
            RevertTarget::Transaction(id) => {
                ("c.transaction_id = $1".to_owned(), SqlParam::BigInt(*id))
            }
            RevertTarget::CorrelationId(v) => (
                format!(
                    "c.transaction_id IN (SELECT id FROM {s}.audit_transactions WHERE correlation_id = $1)"
                ),
                SqlParam::Text(v.clone()),
            ),
            RevertTarget::RequestId(v) => (
                format!(
                    "c.transaction_id IN (SELECT id FROM {s}.audit_transactions WHERE request_id = $1)"
                ),
                SqlParam::Text(v.clone()),
            ),
        };
        Statement {
            sql: format!("{base} WHERE {filter} ORDER BY c.id"),
            params: vec![param],
        }
    }
}

impl fmt::Display for RevertTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RevertTarget::Change(id) => write!(f, "change {id}"),
            RevertTarget::Transaction(id) => write!(f, "transaction {id}"),
            RevertTarget::CorrelationId(v) => write!(f, "correlation id {v:?}"),
            RevertTarget::RequestId(v) => write!(f, "request id {v:?}"),
        }
    }
}

/// Parses `change:N`, `transaction:N`, `correlation_id:X` or `request_id:X`.
impl FromStr for RevertTarget {
    type Err = RevertError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            RevertError::InvalidTarget(format!(
                "{s:?}: use change:N, transaction:N, correlation_id:X or request_id:X"
            ))
        };
        let (kind, value) = s.split_once(':').ok_or_else(bad)?;
        let id = || value.parse::<i64>().map_err(|_| bad());
        let target = match kind {
            "change" => RevertTarget::Change(id()?),
            "transaction" => RevertTarget::Transaction(id()?),
            "correlation_id" => RevertTarget::CorrelationId(value.to_owned()),
            "request_id" => RevertTarget::RequestId(value.to_owned()),
            _ => return Err(bad()),
        };
        target.validate()?;
        Ok(target)
    }
}

/// Why a revert cannot be planned or was refused.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RevertError {
    /// The target is malformed.
    #[error("invalid revert target {0}")]
    InvalidTarget(String),
    /// The target names no captured change.
    #[error(
        "{0} has no captured changes: check the id (the explorer and `Threadline::transaction` show change and transaction ids)"
    )]
    NothingToRevert(String),
    /// Some rows conflict or cannot be restored, and conflicts are not skipped.
    #[error(
        "revert of {target} refused: {conflicts} conflicting and {not_revertible} not revertible row(s); nothing was changed (see the plan, or skip them with --skip-conflicts / skip_conflicts())"
    )]
    Refused {
        /// The target.
        target: String,
        /// Steps whose row a later change touched.
        conflicts: usize,
        /// Steps that cannot be restored.
        not_revertible: usize,
    },
    /// A row was not in the state the plan expected when its statement ran.
    #[error(
        "revert of change {change_id} on {table} found the row changed since it was planned (no row matched key {key}); nothing was changed: plan again"
    )]
    RowChanged {
        /// The change being reverted.
        change_id: i64,
        /// Its table.
        table: String,
        /// Its key.
        key: String,
    },
}

/// A column of the table as it is now (from the catalog).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnInfo {
    /// The column's name.
    pub name: String,
    /// A generated column (`GENERATED ALWAYS AS (...) STORED`): never written.
    pub generated: bool,
    /// An identity column `GENERATED ALWAYS`: written with `OVERRIDING SYSTEM VALUE`.
    pub identity_always: bool,
}

/// What planning knows about a table of the target.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TableState {
    /// Its columns in order; empty when the table no longer exists.
    pub columns: Vec<ColumnInfo>,
    /// Whether it has capture triggers now.
    pub audited: bool,
    /// The policy stored with its capture (`None` when unknown: not audited now, capture
    /// older than stored policies, or unreadable). Without one, a value equal to the default
    /// placeholder is taken as masked.
    pub policy: Option<TableCapture>,
}

/// The statement that reads a table's columns: `$1` is the quoted qualified name.
pub const TABLE_COLUMNS_SQL: &str = "SELECT a.attname::text AS name, a.attgenerated <> '' AS generated, \
     a.attidentity = 'a' AS identity_always FROM pg_attribute a \
     WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum";

/// A change outside the target that touched a row after the target did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LaterChange {
    /// Its id.
    pub change_id: i64,
    /// Its transaction.
    pub transaction_id: i64,
    /// What it did.
    pub op: ChangeOp,
    /// The actor of its transaction, as stored.
    pub actor_ref: Option<Value>,
    /// When it was captured.
    pub captured_at: DateTime<Utc>,
}

/// The statement that finds the first change, outside the target's changes, that touched the
/// row (`key`) after `change`: `$1` schema, `$2` table, `$3` key, `$4` the change id, `$5`
/// the target's change ids (a JSON array). A key-changing update counts for its old key too
/// (when `changed_from` is stored).
pub fn later_change_statement(
    schema: &Ident,
    change: &AuditChange,
    key: &Value,
    target_changes: &[i64],
) -> Statement {
    let s = schema.quoted();
    Statement {
        sql: format!(
            "SELECT c.id, c.transaction_id, c.op, t.actor_ref, c.captured_at \
             FROM {s}.audit_changes c LEFT JOIN {s}.audit_transactions t ON t.id = c.transaction_id \
             WHERE c.table_schema = $1 AND c.table_name = $2 AND c.id > $4 \
             AND (c.table_pk = $3 OR (c.op = 'update' AND c.changed_from IS NOT NULL \
             AND (c.table_pk || c.changed_from) @> $3)) \
             AND c.id <> ALL (ARRAY(SELECT jsonb_array_elements_text($5)::bigint)) \
             ORDER BY c.id LIMIT 1"
        ),
        params: vec![
            SqlParam::Text(change.table_schema.clone()),
            SqlParam::Text(change.table_name.clone()),
            SqlParam::Json(key.clone()),
            SqlParam::BigInt(change.id),
            SqlParam::Json(Value::from(target_changes.to_vec())),
        ],
    }
}

/// The statement that reads the row's image before `change` (for an update stored without
/// `changed_from`): `id`, `op`, `data_after`, `data_before` of the latest earlier change on the key.
pub fn prior_image_statement(schema: &Ident, change: &AuditChange) -> Statement {
    let s = schema.quoted();
    Statement {
        sql: format!(
            "SELECT c.id, c.op, c.data_after, c.data_before FROM {s}.audit_changes c \
             WHERE c.table_schema = $1 AND c.table_name = $2 AND c.table_pk = $3 AND c.id < $4 \
             ORDER BY c.id DESC LIMIT 1"
        ),
        params: vec![
            SqlParam::Text(change.table_schema.clone()),
            SqlParam::Text(change.table_name.clone()),
            SqlParam::Json(change.table_pk.clone()),
            SqlParam::BigInt(change.id),
        ],
    }
}

/// The advisory-lock statement that serializes reverts of the same transactions: one
/// transaction-scoped lock per reverted transaction id (`$1`, a JSON array), taken in order.
pub const LOCK_SQL: &str = "SELECT count(pg_advisory_xact_lock(hashtextextended('threadline.revert:' || s.t, 0))) \
     FROM (SELECT jsonb_array_elements_text($1)::bigint AS t ORDER BY 1) AS s";

/// What a step does to the row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StepAction {
    /// Deletes the row an insert created.
    Delete,
    /// Inserts the row a delete removed.
    Insert,
    /// Sets the columns an update changed back.
    Update,
}

impl fmt::Display for StepAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StepAction::Delete => "delete",
            StepAction::Insert => "insert",
            StepAction::Update => "update",
        })
    }
}

/// Whether a step can run.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum StepStatus {
    /// It will run.
    Ready,
    /// A later change outside the target touched the row.
    Conflict {
        /// The first such change.
        later: LaterChange,
    },
    /// The row cannot be restored.
    NotRevertible {
        /// Why, naming the column.
        reason: String,
    },
    /// It ran.
    Applied,
    /// Skipped (`skip_conflicts`): it conflicted or could not be restored.
    Skipped {
        /// Why.
        reason: String,
    },
}

/// One inverted change.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RevertStep {
    /// The change it inverts.
    pub change_id: i64,
    /// Its transaction.
    pub transaction_id: i64,
    /// Its table, as `schema.table` (quoted only where needed).
    pub table: String,
    /// The row's key as the change left it (`table_pk`).
    pub key: Value,
    /// What the change did.
    pub op: ChangeOp,
    /// What the step does.
    pub action: StepAction,
    /// The values it writes (insert: the row; update: the columns set back), or the key it
    /// deletes.
    pub values: Value,
    /// The statement; `None` when the step cannot run.
    #[serde(skip)]
    pub statement: Option<Statement>,
    /// Whether it can run.
    pub status: StepStatus,
    /// Notes (columns that take their default, ...).
    pub notes: Vec<String>,
}

/// `schema.table` for messages, quoting only the parts that need it.
fn display_table(schema: &str, name: &str) -> String {
    match (Ident::new(schema), Ident::new(name)) {
        (Ok(s), Ok(n)) => TableName::new(s, n).display_name(),
        _ => format!("{}.{}", quote_ident(schema), quote_ident(name)),
    }
}

/// A revert, planned: the steps in the order they run, what blocks them, and warnings.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RevertPlan {
    /// The target.
    pub target: RevertTarget,
    /// The transactions whose changes it inverts, ascending.
    pub transactions: Vec<i64>,
    /// The target's change ids, ascending.
    pub change_ids: Vec<i64>,
    /// The steps, in reverse capture order.
    pub steps: Vec<RevertStep>,
    /// Warnings (a table no longer audited, an unreadable policy).
    pub warnings: Vec<String>,
}

impl RevertPlan {
    /// Steps whose row a later change touched.
    pub fn conflicts(&self) -> impl Iterator<Item = &RevertStep> {
        self.steps
            .iter()
            .filter(|s| matches!(s.status, StepStatus::Conflict { .. }))
    }

    /// Steps that cannot be restored.
    pub fn not_revertible(&self) -> impl Iterator<Item = &RevertStep> {
        self.steps
            .iter()
            .filter(|s| matches!(s.status, StepStatus::NotRevertible { .. }))
    }

    /// True when every step can run.
    pub fn is_clean(&self) -> bool {
        self.steps.iter().all(|s| s.status == StepStatus::Ready)
    }

    /// The refusal for this plan when it is not clean.
    pub fn refusal(&self) -> Option<RevertError> {
        (!self.is_clean()).then(|| RevertError::Refused {
            target: self.target.to_string(),
            conflicts: self.conflicts().count(),
            not_revertible: self.not_revertible().count(),
        })
    }

    /// The plan as text: one block per step with its status and SQL, then the warnings.
    pub fn render(&self) -> String {
        use fmt::Write as _;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "Revert of {}: {} change(s) in transaction(s) {}",
            self.target,
            self.change_ids.len(),
            join(&self.transactions)
        );
        for step in &self.steps {
            let key = step.key.to_string();
            let status = match &step.status {
                StepStatus::Ready => "ready".to_owned(),
                StepStatus::Applied => "applied".to_owned(),
                StepStatus::Conflict { later } => format!(
                    "CONFLICT: changed later by change {} (transaction {}, {} by {})",
                    later.change_id,
                    later.transaction_id,
                    later.op,
                    later
                        .actor_ref
                        .as_ref()
                        .map_or_else(|| "no actor".to_owned(), actor_label)
                ),
                StepStatus::NotRevertible { reason } => format!("NOT REVERTIBLE: {reason}"),
                StepStatus::Skipped { reason } => format!("skipped: {reason}"),
            };
            let _ = writeln!(
                out,
                "\n#{} {} {} {key} -> {} [{status}]",
                step.change_id, step.op, step.table, step.action
            );
            for note in &step.notes {
                let _ = writeln!(out, "  note: {note}");
            }
            if let Some(statement) = &step.statement {
                let _ = writeln!(out, "  {}", statement.sql);
                for (i, p) in statement.params.iter().enumerate() {
                    let _ = writeln!(out, "  ${} = {}", i + 1, param_text(p));
                }
            }
        }
        for w in &self.warnings {
            let _ = writeln!(out, "\nwarning: {w}");
        }
        out
    }
}

fn join(ids: &[i64]) -> String {
    ids.iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn actor_label(v: &Value) -> String {
    match (
        v.get("type").and_then(Value::as_str),
        v.get("id").and_then(Value::as_str),
    ) {
        (Some(t), Some(id)) => format!("{t}:{id}"),
        (Some(t), None) => t.to_owned(),
        _ => v.to_string(),
    }
}

fn param_text(p: &SqlParam) -> String {
    match p {
        SqlParam::Text(s) => format!("{s:?}"),
        SqlParam::Json(v) => v.to_string(),
        SqlParam::JsonArray(v) => Value::from(v.clone()).to_string(),
        SqlParam::Timestamp(t) => t.to_rfc3339(),
        SqlParam::BigInt(n) => n.to_string(),
    }
}

/// The values an update step sets back, when they are known.
#[derive(Debug, Clone, PartialEq)]
pub enum PriorValues {
    /// From the change's `changed_from`.
    ChangedFrom,
    /// From the row's image before the change (its history): the earlier change and its
    /// `data_after`.
    Image {
        /// The earlier change whose `data_after` holds the values.
        change_id: i64,
        /// That image (for the plan's display; the statement reads it from the trail).
        image: Value,
    },
    /// No earlier image of the row exists.
    Missing,
}

/// Inverts one change: the step with its statement, or the reason it cannot run.
/// `prior` matters for updates stored without `changed_from` only.
///
/// Values never pass through the client: each statement reads the image it restores from
/// `audit_changes` by id and casts it with `jsonb_populate_record`, so numerics keep every
/// digit. The client binds only ids and column names.
pub fn plan_step(
    schema: &Ident,
    change: &AuditChange,
    table: &TableState,
    prior: &PriorValues,
) -> RevertStep {
    let audit = format!("{}.audit_changes", schema.quoted());
    let name = display_table(&change.table_schema, &change.table_name);
    let (action, image) = match change.op {
        ChangeOp::Insert | ChangeOp::Snapshot => (StepAction::Delete, change.data_after.as_ref()),
        ChangeOp::Delete => (StepAction::Insert, change.data_before.as_ref()),
        ChangeOp::Update => (StepAction::Update, change.data_after.as_ref()),
        // The rows come back from their `delete` images (`truncate = "images"`), which are
        // steps of their own; the truncate record itself holds only a count.
        ChangeOp::Truncate => (StepAction::Insert, None),
    };
    let mut step = RevertStep {
        change_id: change.id,
        transaction_id: change.transaction_id,
        table: name.clone(),
        key: change.table_pk.clone(),
        op: change.op,
        action,
        values: Value::Null,
        statement: None,
        status: StepStatus::Ready,
        notes: Vec::new(),
    };
    let fail = |mut step: RevertStep, reason: String| {
        step.status = StepStatus::NotRevertible { reason };
        step
    };
    if change.op == ChangeOp::Truncate {
        return fail(
            step,
            format!(
                "a TRUNCATE of {name} records only how many rows it removed; with truncate = \"images\" the removed rows are separate delete changes, which revert (skip this step to restore them)"
            ),
        );
    }
    if table.columns.is_empty() {
        return fail(step, format!("table {} no longer exists", name));
    }
    let empty = Map::new();
    let image = image.and_then(Value::as_object).unwrap_or(&empty);
    let key = change.table_pk.as_object().cloned().unwrap_or_default();
    let exists: BTreeSet<&str> = table.columns.iter().map(|c| c.name.as_str()).collect();
    let generated: BTreeSet<&str> = table
        .columns
        .iter()
        .filter(|c| c.generated)
        .map(|c| c.name.as_str())
        .collect();
    let (masked, excluded, except): (BTreeSet<&str>, BTreeSet<&str>, BTreeSet<&str>) =
        match &table.policy {
            Some(p) => (
                p.mask.iter().map(String::as_str).collect(),
                p.exclude.iter().map(String::as_str).collect(),
                p.except_columns.iter().map(String::as_str).collect(),
            ),
            None => (
                image
                    .iter()
                    .filter(|(_, v)| v.as_str() == Some(DEFAULT_MASK_PLACEHOLDER))
                    .map(|(k, _)| k.as_str())
                    .collect(),
                BTreeSet::new(),
                BTreeSet::new(),
            ),
        };
    if let Some(missing) = key.keys().find(|k| !exists.contains(k.as_str())) {
        return fail(
            step,
            format!(
                "key column {missing:?} no longer exists in {} (dropped or renamed)",
                name
            ),
        );
    }
    // The row as the change left it, minus what capture cannot vouch for: the guard.
    let guard = |image: &Map<String, Value>| -> Value {
        image
            .keys()
            .filter(|k| {
                let k = k.as_str();
                exists.contains(k)
                    && !masked.contains(k)
                    && !except.contains(k)
                    && !generated.contains(k)
            })
            .map(|k| Value::from(k.as_str()))
            .collect()
    };
    let t = format!(
        "{}.{}",
        quote_ident(&change.table_schema),
        quote_ident(&change.table_name)
    );
    let key_match = |alias: &str| -> String {
        key.keys()
            .map(|k| format!("x.{q} = {alias}.{q}", q = quote_ident(k)))
            .collect::<Vec<_>>()
            .join(" AND ")
    };
    // The row is as the reverted change left it, on the columns capture vouches for.
    let guard_sql = |param: usize| {
        format!(
            "NOT EXISTS (SELECT 1 FROM jsonb_each(c.data_after) AS g(col, val) WHERE g.col IN (SELECT jsonb_array_elements_text(${param})) AND to_jsonb(x.*) -> g.col IS DISTINCT FROM g.val)"
        )
    };
    match action {
        StepAction::Delete => {
            step.values = change.table_pk.clone();
            step.statement = Some(Statement {
                sql: format!(
                    "DELETE FROM {t} AS x USING {audit} AS c, jsonb_populate_record(NULL::{t}, c.table_pk) AS k WHERE c.id = $1 AND {} AND {}",
                    key_match("k"),
                    guard_sql(2)
                ),
                params: vec![SqlParam::BigInt(change.id), SqlParam::Json(guard(image))],
            });
        }
        StepAction::Insert => {
            if let Some(gone) = image.keys().find(|k| !exists.contains(k.as_str())) {
                return fail(
                    step,
                    format!(
                        "column {gone:?} no longer exists in {} (dropped or renamed)",
                        name
                    ),
                );
            }
            let blocked: Vec<&str> = table
                .columns
                .iter()
                .map(|c| c.name.as_str())
                .filter(|c| masked.contains(c) || excluded.contains(c))
                .collect();
            if !blocked.is_empty() {
                return fail(step, redacted_reason(&blocked, &masked));
            }
            let mut cols = Vec::new();
            let mut overriding = false;
            for c in &table.columns {
                if c.generated {
                    continue;
                }
                if image.contains_key(&c.name) {
                    overriding |= c.identity_always;
                    cols.push(quote_ident(&c.name));
                } else {
                    step.notes.push(format!(
                        "column {:?} is not in the captured image (added since); it takes its default",
                        c.name
                    ));
                }
            }
            let values: Map<String, Value> = image
                .iter()
                .filter(|(k, _)| !generated.contains(k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            step.values = Value::Object(values.clone());
            step.statement = Some(Statement {
                sql: format!(
                    "INSERT INTO {t} ({}){} SELECT {} FROM {audit} AS c, jsonb_populate_record(NULL::{t}, c.data_before) AS r WHERE c.id = $1",
                    cols.join(", "),
                    if overriding {
                        " OVERRIDING SYSTEM VALUE"
                    } else {
                        ""
                    },
                    cols.iter()
                        .map(|c| format!("r.{c}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                params: vec![SqlParam::BigInt(change.id)],
            });
        }
        StepAction::Update => {
            let fields: Vec<&str> = change
                .changed_fields
                .iter()
                .flatten()
                .map(String::as_str)
                .filter(|f| !generated.contains(f))
                .collect();
            if let Some(gone) = fields.iter().find(|f| !exists.contains(**f)) {
                return fail(
                    step,
                    format!(
                        "column {gone:?} no longer exists in {} (dropped or renamed)",
                        name
                    ),
                );
            }
            let blocked: Vec<&str> = fields
                .iter()
                .copied()
                .filter(|f| masked.contains(f))
                .collect();
            if !blocked.is_empty() {
                return fail(step, redacted_reason(&blocked, &masked));
            }
            let (from, source) = match (&change.changed_from, prior) {
                (Some(Value::Object(from)), _) => (from.clone(), (change.id, "changed_from")),
                (
                    _,
                    PriorValues::Image {
                        change_id,
                        image: Value::Object(before),
                    },
                ) => (before.clone(), (*change_id, "data_after")),
                _ => {
                    let reason = if fields.iter().any(|f| key.contains_key(*f)) {
                        "its key changed and `changed_from` is not stored, so the old key is unknown (turn on store_changed_from)".to_owned()
                    } else {
                        "no earlier image of the row is captured and `changed_from` is not stored"
                            .to_owned()
                    };
                    return fail(step, reason);
                }
            };
            if change.changed_from.is_none() && fields.iter().any(|f| key.contains_key(*f)) {
                return fail(
                    step,
                    "its key changed and `changed_from` is not stored, so the old key is unknown (turn on store_changed_from)".to_owned(),
                );
            }
            if let Some(unknown) = fields.iter().find(|f| !from.contains_key(**f)) {
                return fail(
                    step,
                    format!("the prior value of column {unknown:?} is not captured"),
                );
            }
            if let Some(p) = table.policy.as_ref().filter(|p| !p.exclude.is_empty()) {
                step.notes.push(format!(
                    "excluded column(s) {} are not captured: if this update changed them, they keep their current value",
                    p.exclude.join(", ")
                ));
            }
            let values: Map<String, Value> = fields
                .iter()
                .map(|f| ((*f).to_owned(), from[*f].clone()))
                .collect();
            step.values = Value::Object(values.clone());
            if fields.is_empty() {
                step.notes
                    .push("only generated columns changed: nothing to set".to_owned());
            }
            let set = fields
                .iter()
                .map(|f| format!("{q} = r.{q}", q = quote_ident(f)))
                .collect::<Vec<_>>()
                .join(", ");
            let set = if set.is_empty() {
                // Still checks that the row is there, unchanged.
                key.keys()
                    .map(|k| format!("{q} = x.{q}", q = quote_ident(k)))
                    .collect::<Vec<_>>()
                    .join(", ")
            } else {
                set
            };
            step.statement = Some(Statement {
                sql: format!(
                    "UPDATE {t} AS x SET {set} FROM {audit} AS c, {audit} AS p, jsonb_populate_record(NULL::{t}, p.{column}) AS r, jsonb_populate_record(NULL::{t}, c.table_pk) AS k WHERE c.id = $1 AND p.id = $2 AND {} AND {}",
                    key_match("k"),
                    guard_sql(3),
                    column = source.1,
                ),
                params: vec![
                    SqlParam::BigInt(change.id),
                    SqlParam::BigInt(source.0),
                    SqlParam::Json(guard(image)),
                ],
            });
        }
    }
    step
}

fn redacted_reason(columns: &[&str], masked: &BTreeSet<&str>) -> String {
    let list = columns
        .iter()
        .map(|c| {
            let how = if masked.contains(c) {
                "masked"
            } else {
                "excluded"
            };
            format!("{c:?} ({how})")
        })
        .collect::<Vec<_>>()
        .join(", ");
    format!("column(s) {list} were not captured, so their value cannot be restored")
}

/// Builds the plan from the target's changes (capture order), the tables' states, the prior
/// values of updates without `changed_from` (by change id) and the later changes found (by
/// change id). Snapshot rows are baselines, not changes: they are left out.
pub fn build_plan(
    schema: &Ident,
    target: RevertTarget,
    changes: &[AuditChange],
    tables: &BTreeMap<(String, String), TableState>,
    priors: &BTreeMap<i64, PriorValues>,
    later: &BTreeMap<i64, LaterChange>,
) -> Result<RevertPlan, RevertError> {
    let changes: Vec<&AuditChange> = changes
        .iter()
        .filter(|c| c.op != ChangeOp::Snapshot)
        .collect();
    if changes.is_empty() {
        return Err(RevertError::NothingToRevert(target.to_string()));
    }
    let unknown = TableState::default();
    let mut warnings = Vec::new();
    let mut warned = BTreeSet::new();
    let mut steps = Vec::with_capacity(changes.len());
    for change in changes.iter().rev() {
        let tkey = (change.table_schema.clone(), change.table_name.clone());
        let table = tables.get(&tkey).unwrap_or(&unknown);
        if !table.columns.is_empty() && !table.audited && warned.insert(tkey.clone()) {
            warnings.push(format!(
                "table {} is no longer audited: its revert is not captured",
                display_table(&tkey.0, &tkey.1)
            ));
        }
        let prior = priors.get(&change.id).unwrap_or(&PriorValues::Missing);
        let mut step = plan_step(schema, change, table, prior);
        if step.status == StepStatus::Ready
            && let Some(l) = later.get(&change.id)
        {
            step.status = StepStatus::Conflict { later: l.clone() };
        }
        steps.push(step);
    }
    let transactions: BTreeSet<i64> = changes.iter().map(|c| c.transaction_id).collect();
    Ok(RevertPlan {
        target,
        transactions: transactions.into_iter().collect(),
        change_ids: changes.iter().map(|c| c.id).collect(),
        steps,
        warnings,
    })
}

/// The `comment` of the `threadline.revert` action: the target and the reverted
/// transaction ids as one line of JSON, the list shortened to fit the action field limit.
pub fn action_comment(plan: &RevertPlan) -> String {
    let mut ids = plan.transactions.clone();
    loop {
        let mut v = serde_json::json!({
            "target": plan.target,
            "transactions": ids,
        });
        if ids.len() < plan.transactions.len() {
            v["more_transactions"] = Value::from(plan.transactions.len() - ids.len());
        }
        let s = v.to_string();
        if s.len() <= crate::MAX_ACTION_FIELD_BYTES || ids.is_empty() {
            return s;
        }
        ids.truncate(ids.len() / 2);
    }
}
