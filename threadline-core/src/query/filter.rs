//! [`TimelineFilter`]: the filter shared by `timeline`, `count` and export.

use chrono::{DateTime, Utc};

use super::{QueryError, SqlParam, bind};
use crate::audit::ChangeOp;
use crate::sql::{actor_key_sql, fnv1a};
use crate::{ActorRef, TableName, TraceId};

/// Longest accepted `correlation_id` or `request_id` filter value, in bytes.
pub const MAX_FILTER_VALUE_BYTES: usize = 1024;

/// Which changes to list. Every field is optional; set fields are combined with AND.
///
/// ```
/// use threadline_core::{ActorRef, ChangeOp, query::TimelineFilter};
/// let filter = TimelineFilter::new()
///     .table("posts".parse()?)
///     .actor(ActorRef::user("42")?)
///     .op(ChangeOp::Update);
/// let mut params = Vec::new();
/// let sql = filter.where_clause(&mut params)?;
/// assert_eq!(
///     sql,
///     "WHERE c.table_name = $1 AND c.table_schema = $2 AND c.op = $3 \
///      AND c.actor_key = hashtextextended($4::jsonb::text, 0) \
///      AND CASE WHEN t.actor_ref = $4 THEN true ELSE false END"
/// );
/// assert_eq!(params.len(), 4);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TimelineFilter {
    /// Changes of this table (schema-qualified; `posts` means `public.posts`).
    pub table: Option<TableName>,
    /// Changes made in transactions of this actor (exact match on the stored actor; served by
    /// the index on `audit_changes.actor_key`).
    pub actor: Option<ActorRef>,
    /// Changes captured at or after this time (inclusive).
    pub from: Option<DateTime<Utc>>,
    /// Changes captured at or before this time (inclusive).
    pub to: Option<DateTime<Utc>>,
    /// Changes of transactions with this correlation id.
    pub correlation_id: Option<String>,
    /// Changes of transactions with this request id.
    pub request_id: Option<String>,
    /// Changes with this operation.
    pub op: Option<ChangeOp>,
    /// Changes of transactions with this W3C trace id.
    pub trace_id: Option<TraceId>,
}

impl TimelineFilter {
    /// A filter that matches every change.
    pub fn new() -> Self {
        Self::default()
    }

    /// Only this table.
    #[must_use]
    pub fn table(mut self, table: TableName) -> Self {
        self.table = Some(table);
        self
    }

    /// Only this actor's transactions.
    #[must_use]
    pub fn actor(mut self, actor: ActorRef) -> Self {
        self.actor = Some(actor);
        self
    }

    /// Captured at or after `from`.
    #[must_use]
    pub fn from(mut self, from: DateTime<Utc>) -> Self {
        self.from = Some(from);
        self
    }

    /// Captured at or before `to`.
    #[must_use]
    pub fn to(mut self, to: DateTime<Utc>) -> Self {
        self.to = Some(to);
        self
    }

    /// Only this correlation id.
    #[must_use]
    pub fn correlation_id(mut self, id: impl Into<String>) -> Self {
        self.correlation_id = Some(id.into());
        self
    }

    /// Only this request id.
    #[must_use]
    pub fn request_id(mut self, id: impl Into<String>) -> Self {
        self.request_id = Some(id.into());
        self
    }

    /// Only this operation.
    #[must_use]
    pub fn op(mut self, op: ChangeOp) -> Self {
        self.op = Some(op);
        self
    }

    /// Only transactions of this trace (served by the partial index on
    /// `audit_transactions.trace_id`).
    #[must_use]
    pub fn trace_id(mut self, id: TraceId) -> Self {
        self.trace_id = Some(id);
        self
    }

    /// Whether the filter has a condition on the change's transaction (actor, correlation id,
    /// request id, trace id), so that a query of it must join `audit_transactions t`.
    pub fn reads_transactions(&self) -> bool {
        self.actor.is_some()
            || self.correlation_id.is_some()
            || self.request_id.is_some()
            || self.trace_id.is_some()
    }

    /// Checks the filter: `from` not after `to`; ids non-empty, at most
    /// [`MAX_FILTER_VALUE_BYTES`] and without NUL bytes.
    pub fn validate(&self) -> Result<(), QueryError> {
        if let (Some(from), Some(to)) = (self.from, self.to)
            && from > to
        {
            return Err(QueryError::filter(
                "from",
                format!("{from} is after `to` ({to}); swap them or widen the range"),
            ));
        }
        for (field, value) in [
            ("correlation_id", &self.correlation_id),
            ("request_id", &self.request_id),
        ] {
            let Some(value) = value else { continue };
            if value.is_empty() {
                return Err(QueryError::filter(
                    field,
                    "empty; leave the filter unset instead",
                ));
            }
            if value.len() > MAX_FILTER_VALUE_BYTES {
                return Err(QueryError::filter(
                    field,
                    format!(
                        "{} bytes; the limit is {MAX_FILTER_VALUE_BYTES}",
                        value.len()
                    ),
                ));
            }
            if value.contains('\0') {
                return Err(QueryError::filter(field, "contains a NUL byte"));
            }
        }
        Ok(())
    }

    /// Validates the filter and appends its conditions to `conditions`, binding every value
    /// in `params` (placeholders `$n` continue from `params.len()`).
    ///
    /// The conditions refer to `c` (`audit_changes`) and `t` (`audit_transactions`, joined on
    /// `t.id = c.transaction_id`); see [`changes_select`](super::changes_select).
    pub fn push_conditions(
        &self,
        conditions: &mut Vec<String>,
        params: &mut Vec<SqlParam>,
    ) -> Result<(), QueryError> {
        self.validate()?;
        if let Some(table) = &self.table {
            let name = bind(params, SqlParam::Text(table.name().as_str().to_owned()));
            let schema = bind(params, SqlParam::Text(table.schema().as_str().to_owned()));
            conditions.push(format!(
                "c.table_name = {name} AND c.table_schema = {schema}"
            ));
        }
        if let Some(from) = self.from {
            conditions.push(format!(
                "c.captured_at >= {}",
                bind(params, SqlParam::Timestamp(from))
            ));
        }
        if let Some(to) = self.to {
            conditions.push(format!(
                "c.captured_at <= {}",
                bind(params, SqlParam::Timestamp(to))
            ));
        }
        if let Some(op) = self.op {
            conditions.push(format!(
                "c.op = {}",
                bind(params, SqlParam::Text(op.as_str().to_owned()))
            ));
        }
        if let Some(actor) = &self.actor {
            // The key finds the actor's changes on the `actor_key` index; the actor itself is
            // then checked on the transaction row, since a hash can collide. The check is a
            // CASE so that the planner takes it for the near-certain recheck it is: as a plain
            // `=` it would count it as a second 1-in-N condition, expect a handful of rows,
            // and sort every change of the actor instead of reading one page off the index.
            let actor = bind(params, SqlParam::Json(actor.to_value()));
            conditions.push(format!(
                "c.actor_key = {} AND CASE WHEN t.actor_ref = {actor} THEN true ELSE false END",
                actor_key_sql(&format!("{actor}::jsonb"))
            ));
        }
        if let Some(id) = &self.correlation_id {
            conditions.push(format!(
                "t.correlation_id = {}",
                bind(params, SqlParam::Text(id.clone()))
            ));
        }
        if let Some(id) = &self.request_id {
            conditions.push(format!(
                "t.request_id = {}",
                bind(params, SqlParam::Text(id.clone()))
            ));
        }
        if let Some(id) = self.trace_id {
            conditions.push(format!(
                "t.trace_id = {}",
                bind(params, SqlParam::Text(id.to_string()))
            ));
        }
        Ok(())
    }

    /// The filter as a `WHERE ...` clause (empty when nothing is set); see
    /// [`push_conditions`](Self::push_conditions).
    pub fn where_clause(&self, params: &mut Vec<SqlParam>) -> Result<String, QueryError> {
        let mut conditions = Vec::new();
        self.push_conditions(&mut conditions, params)?;
        Ok(where_sql(&conditions))
    }

    /// A fingerprint of the filter, which binds cursors to it.
    pub(crate) fn fingerprint(&self) -> u64 {
        let micros = |t: Option<DateTime<Utc>>| t.map(|t| t.timestamp_micros());
        let mut canonical = serde_json::json!([
            self.table
                .as_ref()
                .map(|t| [t.schema().as_str(), t.name().as_str()]),
            self.actor.as_ref().map(ActorRef::to_value),
            micros(self.from),
            micros(self.to),
            self.correlation_id,
            self.request_id,
            self.op.map(ChangeOp::as_str),
        ]);
        // Appended only when set, so that cursors issued before the field existed stay valid.
        if let (Some(id), Some(list)) = (self.trace_id, canonical.as_array_mut()) {
            list.push(id.to_string().into());
        }
        fnv1a(canonical.to_string().as_bytes())
    }
}

/// `WHERE a AND b` for a list of conditions, or an empty string.
pub(crate) fn where_sql(conditions: &[String]) -> String {
    if conditions.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conditions.join(" AND "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_becomes_a_bound_condition() {
        let at = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let filter = TimelineFilter::new()
            .table("Sales.\"Orders\"".parse().unwrap())
            .actor(ActorRef::user("7").unwrap())
            .from(at)
            .to(at)
            .correlation_id("corr")
            .request_id("req")
            .op(ChangeOp::Delete)
            .trace_id("4bf92f3577b34da6a3ce929d0e0e4736".parse().unwrap());
        let mut params = vec![SqlParam::BigInt(0)];
        let sql = filter.where_clause(&mut params).unwrap();
        assert_eq!(
            sql,
            "WHERE c.table_name = $2 AND c.table_schema = $3 AND c.captured_at >= $4 \
             AND c.captured_at <= $5 AND c.op = $6 \
             AND c.actor_key = hashtextextended($7::jsonb::text, 0) \
             AND CASE WHEN t.actor_ref = $7 THEN true ELSE false END \
             AND t.correlation_id = $8 AND t.request_id = $9 AND t.trace_id = $10"
        );
        assert_eq!(
            params[9],
            SqlParam::Text("4bf92f3577b34da6a3ce929d0e0e4736".into())
        );
        assert_eq!(params[1], SqlParam::Text("Orders".into()));
        assert_eq!(params[2], SqlParam::Text("sales".into()));
        assert_eq!(params[5], SqlParam::Text("delete".into()));
        assert_eq!(
            params[6],
            SqlParam::Json(serde_json::json!({"type": "user", "id": "7"}))
        );
        assert_eq!(TimelineFilter::new().where_clause(&mut params).unwrap(), "");
    }

    #[test]
    fn invalid_filters_are_refused_with_the_field_name() {
        let at = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let later = at + chrono::Duration::seconds(1);
        let err = TimelineFilter::new()
            .from(later)
            .to(at)
            .validate()
            .unwrap_err();
        assert!(
            matches!(err, QueryError::Filter { field: "from", .. }),
            "{err}"
        );
        assert!(TimelineFilter::new().from(at).to(at).validate().is_ok());
        let err = TimelineFilter::new().request_id("").validate().unwrap_err();
        assert!(matches!(
            err,
            QueryError::Filter {
                field: "request_id",
                ..
            }
        ));
        let err = TimelineFilter::new()
            .correlation_id("x".repeat(1025))
            .validate()
            .unwrap_err();
        assert!(matches!(
            err,
            QueryError::Filter {
                field: "correlation_id",
                ..
            }
        ));
        let err = TimelineFilter::new()
            .request_id("a\0b")
            .validate()
            .unwrap_err();
        assert!(matches!(
            err,
            QueryError::Filter {
                field: "request_id",
                ..
            }
        ));
    }

    #[test]
    fn fingerprints_differ_per_filter() {
        let a = TimelineFilter::new().table("posts".parse().unwrap());
        let b = TimelineFilter::new().table("other.posts".parse().unwrap());
        assert_eq!(a.fingerprint(), a.clone().fingerprint());
        assert_ne!(a.fingerprint(), b.fingerprint());
        assert_ne!(a.fingerprint(), TimelineFilter::new().fingerprint());
        assert_ne!(
            TimelineFilter::new().request_id("x").fingerprint(),
            TimelineFilter::new().correlation_id("x").fingerprint()
        );
        let trace = "4bf92f3577b34da6a3ce929d0e0e4736".parse().unwrap();
        assert_ne!(a.clone().trace_id(trace).fingerprint(), a.fingerprint());
    }

    /// A filter without a trace id keeps the fingerprint it had before the field existed, so
    /// cursors issued then stay valid.
    #[test]
    fn fingerprints_without_trace_id_are_unchanged() {
        let old = fnv1a(b"[null,null,null,null,null,\"req\",null]");
        assert_eq!(TimelineFilter::new().request_id("req").fingerprint(), old);
    }
}
