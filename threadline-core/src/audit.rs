//! Typed rows of the audit tables: [`AuditChange`] and [`AuditTransaction`].

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{ActorRef, ActorRefError};

/// What happened to a row (`audit_changes.op`).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeOp {
    /// The row was inserted; `data_after` holds it.
    Insert,
    /// The row was updated; `data_after`, `changed_fields` (and `changed_from` when stored).
    Update,
    /// The row was deleted; `data_before` holds its last image.
    Delete,
    /// A baseline image of a row that predates capture; `data_after` holds it.
    Snapshot,
    /// The table was truncated: `table_pk` is `{}` and `data_before` is `{"rows": N}`, the
    /// number of rows removed (see [`AuditChange::rows_removed`]).
    Truncate,
}

impl ChangeOp {
    /// Every operation, in the order above.
    pub const ALL: [ChangeOp; 5] = [
        ChangeOp::Insert,
        ChangeOp::Update,
        ChangeOp::Delete,
        ChangeOp::Snapshot,
        ChangeOp::Truncate,
    ];

    /// The stored name: `insert`, `update`, `delete`, `snapshot` or `truncate`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ChangeOp::Insert => "insert",
            ChangeOp::Update => "update",
            ChangeOp::Delete => "delete",
            ChangeOp::Snapshot => "snapshot",
            ChangeOp::Truncate => "truncate",
        }
    }
}

impl fmt::Display for ChangeOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An operation name that is not `insert`, `update`, `delete`, `snapshot` or `truncate`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown operation {0:?}; use one of insert, update, delete, snapshot, truncate")]
pub struct UnknownOp(pub String);

impl FromStr for ChangeOp {
    type Err = UnknownOp;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ChangeOp::ALL
            .into_iter()
            .find(|op| op.as_str() == s)
            .ok_or_else(|| UnknownOp(s.to_owned()))
    }
}

/// One captured row change (a row of `audit_changes`), with its transaction's actor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditChange {
    /// Row id; gives the total order of capture.
    pub id: i64,
    /// The owning `audit_transactions` row.
    pub transaction_id: i64,
    /// Schema of the changed table.
    pub table_schema: String,
    /// Name of the changed table.
    pub table_name: String,
    /// The row's primary key with native JSON types, e.g. `{"id": 42}`.
    pub table_pk: Value,
    /// What happened.
    pub op: ChangeOp,
    /// Redacted image after the change (`None` for deletes).
    pub data_after: Option<Value>,
    /// Redacted image before a delete (`None` otherwise).
    pub data_before: Option<Value>,
    /// Updates only: sorted names of the columns whose value changed.
    pub changed_fields: Option<Vec<String>>,
    /// Updates only, when the table stores them: prior values of `changed_fields`.
    pub changed_from: Option<Value>,
    /// When the change was captured (`clock_timestamp()`).
    pub captured_at: DateTime<Utc>,
    /// The actor of the owning transaction as stored (`None` when none was set).
    pub actor_ref: Option<Value>,
}

impl AuditChange {
    /// The actor of the owning transaction, parsed; `Ok(None)` when none was set.
    pub fn actor(&self) -> Result<Option<ActorRef>, ActorRefError> {
        self.actor_ref
            .as_ref()
            .map(ActorRef::from_value)
            .transpose()
    }

    /// The row image this change left behind (`data_after`), or the last image for a delete
    /// (`data_before`); `None` for a truncate, which has no row.
    pub fn image(&self) -> Option<&Value> {
        match self.op {
            ChangeOp::Delete => self.data_before.as_ref(),
            ChangeOp::Truncate => None,
            _ => self.data_after.as_ref(),
        }
    }

    /// For a truncate, the number of rows it removed (`data_before.rows`); `None` otherwise.
    pub fn rows_removed(&self) -> Option<i64> {
        match self.op {
            ChangeOp::Truncate => self.data_before.as_ref()?.get("rows")?.as_i64(),
            _ => None,
        }
    }
}

/// One audited database transaction (a row of `audit_transactions`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditTransaction {
    /// Row id.
    pub id: i64,
    /// `txid_current()` when it ran (informational; not unique across restores).
    pub txid: i64,
    /// Start of the database transaction (`now()`).
    pub occurred_at: DateTime<Utc>,
    /// The actor as stored (`None` when none was set); see [`AuditTransaction::actor`].
    pub actor_ref: Option<Value>,
    /// Request id.
    pub request_id: Option<String>,
    /// Correlation id.
    pub correlation_id: Option<String>,
    /// Client address.
    pub remote_ip: Option<IpAddr>,
    /// Source label.
    pub source: Option<String>,
    /// Free-form metadata.
    pub meta: Option<Value>,
    /// W3C trace id (32 lowercase hex digits) of the request or job.
    #[serde(default)]
    pub trace_id: Option<String>,
}

impl AuditTransaction {
    /// The actor, parsed; `Ok(None)` when none was set.
    pub fn actor(&self) -> Result<Option<ActorRef>, ActorRefError> {
        self.actor_ref
            .as_ref()
            .map(ActorRef::from_value)
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ops_round_trip_and_reject_unknown_names() {
        for op in ChangeOp::ALL {
            assert_eq!(op.as_str().parse::<ChangeOp>(), Ok(op));
            assert_eq!(serde_json::to_value(op).unwrap(), Value::from(op.as_str()));
        }
        assert_eq!("truncate".parse::<ChangeOp>(), Ok(ChangeOp::Truncate));
        assert_eq!(
            "truncated".parse::<ChangeOp>(),
            Err(UnknownOp("truncated".into()))
        );
        assert_eq!(
            "INSERT".parse::<ChangeOp>(),
            Err(UnknownOp("INSERT".into()))
        );
    }
}
