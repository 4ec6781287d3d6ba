//! Runtime support for `#[audited]` on axum handlers (feature `sqlx`).

use std::sync::{Arc, Mutex};

use axum_core::extract::{FromRef, FromRequestParts};
use axum_core::response::{IntoResponse, Response};
use http::request::Parts;
use sqlx::PgPool;
use threadline_core::AuditContext;
use threadline_sqlx::ActionStatus;

use crate::MissingThreadlineLayer;

/// Where `AuditedTx::commit` leaves the id of the audit transaction it committed, so that the
/// action recorded after the handler links to those changes.
#[derive(Debug, Clone, Default)]
pub(crate) struct CommittedTransaction(Arc<Mutex<Option<i64>>>);

impl CommittedTransaction {
    pub(crate) fn set(&self, id: Option<i64>) {
        if let (Some(id), Ok(mut slot)) = (id, self.0.lock()) {
            *slot = Some(id);
        }
    }

    fn get(&self) -> Option<i64> {
        self.0.lock().ok().and_then(|slot| *slot)
    }
}

/// The hidden first argument that `#[audited]` adds to a handler. Needs the
/// [`ThreadlineLayer`](crate::ThreadlineLayer) and `PgPool: FromRef<S>` in the router state.
#[derive(Debug)]
pub struct ActionRecorder {
    ctx: AuditContext,
    pool: PgPool,
    committed: CommittedTransaction,
}

impl<S> FromRequestParts<S> for ActionRecorder
where
    PgPool: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = MissingThreadlineLayer;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let ctx = crate::extract::context(parts)?.clone();
        let committed = CommittedTransaction::default();
        parts.extensions.insert(committed.clone());
        Ok(Self {
            ctx,
            pool: PgPool::from_ref(state),
            committed,
        })
    }
}

impl ActionRecorder {
    /// Turns the handler's output into a response and records the action with its status.
    pub async fn finish(self, name: &'static str, output: impl IntoResponse) -> Response {
        let response = output.into_response();
        let status = response.status();
        let ok = status.is_success() || status.is_redirection();
        let status = if ok {
            ActionStatus::Ok
        } else {
            ActionStatus::Error
        };
        record(&self.pool, &self.ctx, name, status, self.committed.get()).await;
        response
    }
}

/// Records a request's action; a failure is logged, never turned into an error response,
/// because the handler's own writes have already committed.
async fn record(
    pool: &PgPool,
    ctx: &AuditContext,
    name: &str,
    status: ActionStatus,
    transaction_id: Option<i64>,
) {
    let recorded =
        threadline_sqlx::record_request_action(pool, ctx, name, status, transaction_id).await;
    if let Err(error) = recorded {
        tracing::error!(action = name, %error, "threadline: could not record the action");
    }
}
