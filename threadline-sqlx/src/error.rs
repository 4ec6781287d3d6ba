//! The crate's error type.

use threadline_core::query::QueryError;
use threadline_core::{
    ActionError, ActorRefError, CaptureError, ConfigError, IdentError, PolicyError, RetentionError,
    revert::RevertError,
};

/// Any error from threadline-sqlx.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database reported an error (connection, SQL, constraint, trigger).
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// Invalid input caught before any SQL ran.
    #[error(transparent)]
    Core(#[from] threadline_core::Error),
    /// Context or an action was applied on a connection that is not inside a transaction.
    #[error(
        "not inside a transaction: transaction-local settings would vanish after one statement; call this on a `Transaction` (pool.begin()) instead"
    )]
    NotInTransaction,
    /// The table does not exist (or is not a plain or partitioned table).
    #[error(
        "table {0} does not exist or is not a table; check the name (`schema.table`, quote mixed case as \"Name\")"
    )]
    TableNotFound(String),
    /// The table exists but its capture is not installed, enabled and current.
    #[error("table {table} is not capture-ready ({status}): {detail}")]
    NotCaptureReady {
        /// The table.
        table: String,
        /// Its coverage status (uncovered, disabled or stale).
        status: threadline_core::CoverageStatus,
        /// What is wrong and how to fix it.
        detail: String,
    },
    /// A live purge was asked for while the retention policy is disabled.
    #[error(
        "retention is disabled: set `enabled = true` under [retention] in threadline.toml to allow live purges (dry runs always work)"
    )]
    RetentionDisabled,
    /// A revert was refused: rows conflict or cannot be restored (the plan, made under the
    /// revert's lock, says which). Nothing was changed.
    #[error("{}", .0.refusal().map(|e| e.to_string()).unwrap_or_default())]
    RevertRefused(Box<threadline_core::revert::RevertPlan>),
    /// A statement of a revert failed (a constraint, a type that no longer accepts the
    /// value); the transaction is aborted: roll it back.
    #[error("revert of change {change_id} on {table} failed: {source}")]
    RevertStep {
        /// The change being reverted.
        change_id: i64,
        /// Its table.
        table: String,
        /// The database's error.
        source: sqlx::Error,
    },
    /// An erasure named a key column of the row.
    #[error(
        "key column(s) {columns} of {table} cannot be erased: the key identifies the row in every image and in the seals; erase the other columns, or see guides/compliance.md for the alternatives"
    )]
    EraseKeyColumn {
        /// The table.
        table: String,
        /// The key columns named.
        columns: String,
    },
    /// An argument is invalid.
    #[error("invalid {field}: {reason}")]
    InvalidInput {
        /// Which argument.
        field: &'static str,
        /// What is wrong and how to fix it.
        reason: String,
    },
}

impl Error {
    /// Whether this is the pool's timeout waiting for a connection (a web layer answers 503).
    pub fn is_pool_timeout(&self) -> bool {
        matches!(self, Error::Database(sqlx::Error::PoolTimedOut))
    }

    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Error::InvalidInput {
            field,
            reason: reason.into(),
        }
    }
}

macro_rules! from_core {
    ($($t:ty),*) => {$(
        impl From<$t> for Error {
            fn from(e: $t) -> Self {
                Error::Core(e.into())
            }
        }
    )*};
}
from_core!(
    ActorRefError,
    IdentError,
    PolicyError,
    ConfigError,
    CaptureError,
    QueryError,
    RetentionError,
    RevertError
);

/// An invalid action is an invalid argument, named as core names it.
impl From<ActionError> for Error {
    fn from(e: ActionError) -> Self {
        match e {
            ActionError::Name(reason) => Error::invalid("action name", reason),
            ActionError::Field { field, reason } => Error::invalid(field, reason),
            other => Error::Core(other.into()),
        }
    }
}

/// Shorthand for `Result<T, threadline_sqlx::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;
