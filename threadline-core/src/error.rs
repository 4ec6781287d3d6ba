//! The crate-wide error type.

/// Any error from threadline-core.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// An action is invalid.
    #[error(transparent)]
    Action(#[from] crate::ActionError),
    /// An actor reference is invalid.
    #[error(transparent)]
    Actor(#[from] crate::ActorRefError),
    /// A name is invalid.
    #[error(transparent)]
    Ident(#[from] crate::IdentError),
    /// A capture policy is invalid.
    #[error(transparent)]
    Policy(#[from] crate::PolicyError),
    /// The configuration file is invalid.
    #[error(transparent)]
    Config(#[from] crate::ConfigError),
    /// Capture SQL cannot be generated.
    #[error(transparent)]
    Capture(#[from] crate::CaptureError),
    /// A web header configuration is invalid.
    #[error(transparent)]
    Header(#[from] crate::HeaderConfigError),
    /// An exploration query is invalid (page, cursor, filter or key).
    #[error(transparent)]
    Query(#[from] crate::query::QueryError),
    /// A retention policy is invalid.
    #[error(transparent)]
    Retention(#[from] crate::RetentionError),
    /// A revert cannot be planned or was refused.
    #[error(transparent)]
    Revert(#[from] crate::revert::RevertError),
    /// The capture policy stored with a table's capture cannot be read.
    #[error(transparent)]
    StoredPolicy(#[from] crate::StoredPolicyError),
}
