//! The crate's error type.

use threadline_core::query::QueryError;
use threadline_core::{
    ActionError, ActorRefError, CaptureError, ConfigError, IdentError, PolicyError, RetentionError,
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
    RetentionError
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
