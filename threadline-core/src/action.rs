//! Semantic actions (rows of `audit_actions`): what they hold and the rules they follow.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::{ActorRef, ActorRefError, AuditContext, TraceId, export_timestamp};

/// Longest accepted action name, in bytes.
pub const MAX_ACTION_NAME_BYTES: usize = 256;

/// Longest accepted value of an optional action field, in bytes.
pub const MAX_ACTION_FIELD_BYTES: usize = 1024;

/// Why an action was refused before any SQL ran.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActionError {
    /// The name is empty, too long or holds a control character.
    #[error("invalid action name: {0}")]
    Name(String),
    /// An optional field is too long or holds a NUL byte.
    #[error("invalid action {field}: {reason}")]
    Field {
        /// Which field.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
}

/// Checks an action name: non-empty, at most [`MAX_ACTION_NAME_BYTES`], no control characters.
/// The `#[audited]` macro applies the same rule at compile time.
///
/// ```
/// use threadline_core::validate_action_name;
/// assert!(validate_action_name("post.published").is_ok());
/// assert!(validate_action_name(" ").is_err());
/// assert!(validate_action_name(&"x".repeat(257)).is_err());
/// ```
pub fn validate_action_name(name: &str) -> Result<(), ActionError> {
    let problem = if name.trim().is_empty() {
        "empty; use a dotted name such as \"post.published\"".to_owned()
    } else if name.len() > MAX_ACTION_NAME_BYTES {
        format!("{} bytes; the limit is {MAX_ACTION_NAME_BYTES}", name.len())
    } else if name.chars().any(char::is_control) {
        "contains a control character".to_owned()
    } else {
        return Ok(());
    };
    Err(ActionError::Name(problem))
}

/// Outcome of an action.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActionStatus {
    /// It succeeded.
    #[default]
    Ok,
    /// It failed.
    Error,
}

impl ActionStatus {
    /// `"ok"` or `"error"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ActionStatus::Ok => "ok",
            ActionStatus::Error => "error",
        }
    }

    /// The status stored in `audit_actions.status` (`error`, else ok: the column's check
    /// constraint allows only the two).
    pub fn from_stored(s: &str) -> Self {
        if s == "error" {
            ActionStatus::Error
        } else {
            ActionStatus::Ok
        }
    }
}

/// Optional fields of an action. Inside a transaction, unset `request_id`, `correlation_id`
/// and `trace_id` default to the transaction's context.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
#[must_use]
pub struct ActionOptions {
    /// Outcome (default ok).
    pub status: ActionStatus,
    /// Verb, such as `publish`.
    pub verb: Option<String>,
    /// Category, such as `content`.
    pub category: Option<String>,
    /// Why it was done.
    pub reason: Option<String>,
    /// Free-text comment.
    pub comment: Option<String>,
    /// Correlation id.
    pub correlation_id: Option<String>,
    /// Request id.
    pub request_id: Option<String>,
    /// Job id.
    pub job_id: Option<String>,
    /// W3C trace id of the request or job that recorded the action.
    pub trace_id: Option<TraceId>,
    /// Standalone actions only: the audited transaction the action belongs to, when it was
    /// recorded after that transaction committed (as `#[audited]` does). Ignored inside a
    /// transaction, where the current one is linked.
    pub transaction_id: Option<i64>,
}

impl ActionOptions {
    /// Default options (status ok, no fields).
    pub fn new() -> Self {
        Self::default()
    }

    /// Options carrying a request's request id, correlation id and trace id, so that the
    /// action links to the changes made under the same context.
    pub fn from_context(ctx: &AuditContext) -> Self {
        Self {
            request_id: ctx.request_id.clone(),
            correlation_id: ctx.correlation_id.clone(),
            trace_id: ctx.trace_id,
            ..Self::default()
        }
    }

    /// Links a standalone action to an audited transaction.
    pub fn transaction_id(mut self, id: i64) -> Self {
        self.transaction_id = Some(id);
        self
    }

    /// Sets the status.
    pub fn status(mut self, status: ActionStatus) -> Self {
        self.status = status;
        self
    }

    /// Sets the verb.
    pub fn verb(mut self, v: impl Into<String>) -> Self {
        self.verb = Some(v.into());
        self
    }

    /// Sets the category.
    pub fn category(mut self, v: impl Into<String>) -> Self {
        self.category = Some(v.into());
        self
    }

    /// Sets the reason.
    pub fn reason(mut self, v: impl Into<String>) -> Self {
        self.reason = Some(v.into());
        self
    }

    /// Sets the comment.
    pub fn comment(mut self, v: impl Into<String>) -> Self {
        self.comment = Some(v.into());
        self
    }

    /// Sets the correlation id.
    pub fn correlation_id(mut self, v: impl Into<String>) -> Self {
        self.correlation_id = Some(v.into());
        self
    }

    /// Sets the request id.
    pub fn request_id(mut self, v: impl Into<String>) -> Self {
        self.request_id = Some(v.into());
        self
    }

    /// Sets the job id.
    pub fn job_id(mut self, v: impl Into<String>) -> Self {
        self.job_id = Some(v.into());
        self
    }

    /// Sets the trace id.
    pub fn trace_id(mut self, id: TraceId) -> Self {
        self.trace_id = Some(id);
        self
    }

    /// Checks every optional field: at most [`MAX_ACTION_FIELD_BYTES`], no NUL byte.
    ///
    /// ```
    /// use threadline_core::ActionOptions;
    /// assert!(ActionOptions::new().reason("launch").validate().is_ok());
    /// assert!(ActionOptions::new().reason("a\0b").validate().is_err());
    /// ```
    pub fn validate(&self) -> Result<(), ActionError> {
        let fields = [
            ("verb", &self.verb),
            ("category", &self.category),
            ("reason", &self.reason),
            ("comment", &self.comment),
            ("correlation_id", &self.correlation_id),
            ("request_id", &self.request_id),
            ("job_id", &self.job_id),
        ];
        for (field, value) in fields {
            let Some(v) = value else { continue };
            let reason = if v.len() > MAX_ACTION_FIELD_BYTES {
                format!("{} bytes; the limit is {MAX_ACTION_FIELD_BYTES}", v.len())
            } else if v.contains('\0') {
                "contains a NUL byte".to_owned()
            } else {
                continue;
            };
            return Err(ActionError::Field { field, reason });
        }
        Ok(())
    }
}

/// A recorded action (a row of `audit_actions`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditAction {
    /// Row id.
    pub id: i64,
    /// Action name, such as `post.published`.
    pub name: String,
    /// Actor as stored (wire format); see [`AuditAction::actor`].
    pub actor_ref: Value,
    /// Outcome.
    pub status: ActionStatus,
    /// Verb.
    pub verb: Option<String>,
    /// Category.
    pub category: Option<String>,
    /// Reason.
    pub reason: Option<String>,
    /// Comment.
    pub comment: Option<String>,
    /// Correlation id.
    pub correlation_id: Option<String>,
    /// Request id.
    pub request_id: Option<String>,
    /// Job id.
    pub job_id: Option<String>,
    /// W3C trace id (32 lowercase hex digits).
    #[serde(default)]
    pub trace_id: Option<String>,
    /// The audited transaction it was recorded in, if any.
    pub transaction_id: Option<i64>,
    /// When it was recorded.
    pub inserted_at: DateTime<Utc>,
}

impl AuditAction {
    /// The actor, parsed from the stored wire format.
    pub fn actor(&self) -> Result<ActorRef, ActorRefError> {
        ActorRef::from_value(&self.actor_ref)
    }

    /// The action as it appears in an export, nested under its transaction (so without
    /// `transaction_id`; timestamps in the export's format).
    pub fn to_export_json(&self) -> Value {
        json!({
            "id": self.id,
            "name": self.name,
            "actor_ref": self.actor_ref,
            "status": self.status.as_str(),
            "verb": self.verb,
            "category": self.category,
            "reason": self.reason,
            "comment": self.comment,
            "correlation_id": self.correlation_id,
            "request_id": self.request_id,
            "job_id": self.job_id,
            "trace_id": self.trace_id,
            "inserted_at": export_timestamp(self.inserted_at),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_documented_rule() {
        assert!(validate_action_name(&"x".repeat(MAX_ACTION_NAME_BYTES)).is_ok());
        let err = validate_action_name("a\nb").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid action name: contains a control character"
        );
    }

    #[test]
    fn fields_name_the_offender() {
        let long = "x".repeat(MAX_ACTION_FIELD_BYTES + 1);
        let err = ActionOptions::new().job_id(long).validate().unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid action job_id: 1025 bytes; the limit is 1024"
        );
    }
}
