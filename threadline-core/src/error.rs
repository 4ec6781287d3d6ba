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
    /// A trace id or `traceparent` value is invalid.
    #[error(transparent)]
    Trace(#[from] crate::TraceContextError),
}

/// An error and its causes on one line (`outer: cause: root cause`), for reports that keep a
/// message as text. The error types of this crate show each cause once: a variant that wraps
/// another error returns it as its `source()` and leaves it out of its own message.
pub(crate) fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        text.push_str(": ");
        text.push_str(&e.to_string());
        cause = e.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Config, ConfigError, PolicyError};

    /// Each cause of a wrapped error is shown once when the chain is printed.
    #[test]
    fn wrapped_errors_show_each_cause_once() {
        let e = Config::from_toml("[capture.tables.posts]\nexclude = [\"bad name\\u0000\"]\n")
            .unwrap_err();
        assert!(matches!(e, ConfigError::Policy { .. }), "{e:?}");
        let chain = with_causes(&e);
        assert!(
            chain.starts_with(
                "invalid policy for table public.posts: invalid column name in `exclude`: "
            ),
            "{chain}"
        );
        let root = std::error::Error::source(&e)
            .and_then(std::error::Error::source)
            .map(ToString::to_string)
            .unwrap();
        assert_eq!(chain.matches(root.as_str()).count(), 1, "{chain}");
        assert!(matches!(
            std::error::Error::source(&e)
                .unwrap()
                .downcast_ref::<PolicyError>(),
            Some(PolicyError::InvalidColumn { .. })
        ));
        // The crate-wide error forwards to the same chain.
        assert_eq!(with_causes(&Error::from(e.clone())), chain);
    }
}
