//! Semantic actions (`audit_actions`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use threadline_core::ActorRef;

use crate::error::{Error, Result};

/// Longest accepted action name, in bytes.
pub const MAX_ACTION_NAME_BYTES: usize = 256;

/// Longest accepted value of an optional action field, in bytes.
pub const MAX_ACTION_FIELD_BYTES: usize = 1024;

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

    pub(crate) fn from_db(s: &str) -> Self {
        if s == "error" {
            ActionStatus::Error
        } else {
            ActionStatus::Ok
        }
    }
}

/// Optional fields of an action. Inside a transaction, unset `request_id` and
/// `correlation_id` default to the transaction's context.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
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

    /// Options carrying a request's request id and correlation id, so that the action links
    /// to the changes made under the same context.
    pub fn from_context(ctx: &threadline_core::AuditContext) -> Self {
        Self {
            request_id: ctx.request_id.clone(),
            correlation_id: ctx.correlation_id.clone(),
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

    pub(crate) fn validate(&self) -> Result<()> {
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
            if let Some(v) = value {
                if v.len() > MAX_ACTION_FIELD_BYTES {
                    return Err(Error::invalid(
                        field,
                        format!("{} bytes; the limit is {MAX_ACTION_FIELD_BYTES}", v.len()),
                    ));
                }
                if v.contains('\0') {
                    return Err(Error::invalid(field, "contains a NUL byte"));
                }
            }
        }
        Ok(())
    }
}

/// Checks an action name: non-empty, at most 256 bytes, no control characters.
pub fn validate_action_name(name: &str) -> Result<()> {
    if name.trim().is_empty() {
        return Err(Error::invalid(
            "action name",
            "empty; use a dotted name such as \"post.published\"",
        ));
    }
    if name.len() > MAX_ACTION_NAME_BYTES {
        return Err(Error::invalid(
            "action name",
            format!("{} bytes; the limit is {MAX_ACTION_NAME_BYTES}", name.len()),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(Error::invalid(
            "action name",
            "contains a control character",
        ));
    }
    Ok(())
}

/// A recorded action (a row of `audit_actions`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditAction {
    /// Row id.
    pub id: i64,
    /// Action name, such as `post.published`.
    pub name: String,
    /// Actor as stored (wire format); see [`AuditAction::actor`].
    pub actor_ref: serde_json::Value,
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
    /// The audited transaction it was recorded in, if any.
    pub transaction_id: Option<i64>,
    /// When it was recorded.
    pub inserted_at: DateTime<Utc>,
}

impl AuditAction {
    /// The actor, parsed from the stored wire format.
    pub fn actor(&self) -> Result<ActorRef> {
        Ok(ActorRef::from_value(&self.actor_ref)?)
    }
}

impl<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> for AuditAction {
    fn from_row(row: &'r sqlx::postgres::PgRow) -> sqlx::Result<Self> {
        use sqlx::Row;
        let status: String = row.try_get("status")?;
        Ok(Self {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            actor_ref: row.try_get("actor_ref")?,
            status: ActionStatus::from_db(&status),
            verb: row.try_get("verb")?,
            category: row.try_get("category")?,
            reason: row.try_get("reason")?,
            comment: row.try_get("comment")?,
            correlation_id: row.try_get("correlation_id")?,
            request_id: row.try_get("request_id")?,
            job_id: row.try_get("job_id")?,
            transaction_id: row.try_get("transaction_id")?,
            inserted_at: row.try_get("inserted_at")?,
        })
    }
}

/// Columns of an [`AuditAction`] row.
macro_rules! action_columns {
    () => {
        "id, name, actor_ref, status, verb, category, reason, comment, correlation_id, request_id, job_id, transaction_id, inserted_at"
    };
}

/// The actions linked to the audited transactions `ids`, by transaction, in the order they
/// were recorded.
pub(crate) async fn transaction_actions(
    conn: &mut sqlx::PgConnection,
    schema: &threadline_core::Ident,
    ids: &[i64],
) -> Result<Vec<AuditAction>> {
    const SQL: &str = concat!(
        "SELECT ",
        action_columns!(),
        " FROM @S.audit_actions WHERE transaction_id = ANY ($1) ORDER BY transaction_id, inserted_at, id"
    );
    Ok(
        sqlx::query_as::<_, AuditAction>(crate::sql::in_schema(SQL, schema))
            .persistent(crate::named_statements())
            .bind(ids)
            .fetch_all(conn)
            .await?,
    )
}

/// Inserts an action; `linked` decides whether it is tied to the current audited transaction.
pub(crate) async fn insert_action(
    conn: &mut sqlx::PgConnection,
    schema: &threadline_core::Ident,
    name: &str,
    actor: &ActorRef,
    opts: &ActionOptions,
    linked: bool,
) -> Result<AuditAction> {
    validate_action_name(name)?;
    opts.validate()?;
    // The install's threadline_record_action function writes the row: a hardened install
    // denies direct INSERT on audit_actions to the application role.
    const RECORD: &str = concat!(
        "SELECT ",
        action_columns!(),
        " FROM @S.threadline_record_action($1, $2::jsonb, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
    );
    let action = sqlx::query_as::<_, AuditAction>(crate::sql::in_schema(RECORD, schema))
        .persistent(crate::named_statements())
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
        .fetch_one(conn)
        .await?;
    Ok(action)
}

/// Records the action of a web request after its handler ran: the request's actor (anonymous
/// when none), request id and correlation id, the handler's outcome, and the audit
/// transaction its writes committed in (when known). Used by `#[audited]`.
pub async fn record_request_action(
    pool: &sqlx::PgPool,
    ctx: &threadline_core::AuditContext,
    name: &str,
    status: ActionStatus,
    transaction_id: Option<i64>,
) -> Result<AuditAction> {
    let actor = ctx.actor.clone().unwrap_or_else(ActorRef::anonymous);
    let mut options = ActionOptions::from_context(ctx).status(status);
    options.transaction_id = transaction_id;
    crate::Threadline::new(pool.clone())
        .record_action(name, &actor, options)
        .await
}

/// The `audit_transactions` id of the current transaction, if it has captured a change yet.
/// Call it just before committing to link a later standalone action to these changes.
pub async fn current_audit_transaction_id(conn: &mut sqlx::PgConnection) -> Result<Option<i64>> {
    // The cache is '<txid>:<id>'; it only counts when its txid is this transaction's.
    let id: Option<i64> = sqlx::query_scalar(
        "SELECT CASE WHEN split_part(c, ':', 1) = txid_current_if_assigned()::text
                     THEN split_part(c, ':', 2)::bigint END
         FROM current_setting('threadline.txn', true) AS c",
    )
    .persistent(crate::named_statements())
    .fetch_one(conn)
    .await?;
    Ok(id)
}
