//! The [`AuditedTx`] extractor (feature `sqlx`).

use std::ops::{Deref, DerefMut};

use axum_core::extract::{FromRef, FromRequestParts};
use axum_core::response::{IntoResponse, Response};
use http::StatusCode;
use http::request::Parts;
use sqlx::{PgConnection, Postgres, Transaction};
use threadline_sqlx::{ActionLink, RequestTransaction, Threadline};

use crate::MissingThreadlineLayer;

/// A database transaction that already carries the request's audit context.
///
/// Extracting it takes the [`Threadline`] handle from the router state
/// (`Threadline: FromRef<S>`), begins a transaction on its pool and applies the context in the
/// same round trip. It derefs to `PgConnection`, so write with `.execute(&mut *tx)`. Call
/// [`commit`](AuditedTx::commit) to keep the writes; dropping it rolls them back, and the
/// audit trail captures nothing.
///
/// ```
/// use axum::{Router, extract::Path, http::StatusCode, routing::post};
/// use threadline_axum::{ActorRef, AuditedTx, ThreadlineLayer};
/// use threadline_sqlx::Threadline;
///
/// async fn publish(Path(id): Path<i64>, mut tx: AuditedTx) -> Result<StatusCode, StatusCode> {
///     sqlx::query("UPDATE posts SET published = true WHERE id = $1")
///         .bind(id)
///         .execute(&mut *tx)
///         .await
///         .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
///     tx.commit().await.map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
///     Ok(StatusCode::NO_CONTENT)
/// }
///
/// # fn app(pool: sqlx::PgPool) -> Router {
/// Router::new()
///     .route("/posts/{id}/publish", post(publish))
///     .layer(ThreadlineLayer::new(|_: &http::request::Parts| ActorRef::user("42").ok()))
///     .with_state(Threadline::new(pool))
/// # }
/// ```
#[derive(Debug)]
pub struct AuditedTx(RequestTransaction);

impl AuditedTx {
    /// Commits the writes (and their audit rows). Under `#[audited]` it first notes the audit
    /// transaction's id (one more round trip) so that the action links to these changes.
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        self.0.commit().await
    }

    /// Rolls back explicitly (dropping does the same, without waiting for the server).
    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        self.0.rollback().await
    }

    /// The underlying sqlx transaction.
    pub fn into_inner(self) -> Transaction<'static, Postgres> {
        self.0.into_inner()
    }

    /// The underlying sqlx transaction, for APIs that want `&mut Transaction`.
    pub fn transaction(&mut self) -> &mut Transaction<'static, Postgres> {
        self.0.transaction()
    }
}

impl Deref for AuditedTx {
    type Target = PgConnection;

    fn deref(&self) -> &PgConnection {
        &self.0
    }
}

impl DerefMut for AuditedTx {
    fn deref_mut(&mut self) -> &mut PgConnection {
        &mut self.0
    }
}

impl<S> FromRequestParts<S> for AuditedTx
where
    Threadline: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = AuditedTxRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let ctx = crate::extract::context(parts)?;
        let link = parts.extensions.get::<ActionLink>().cloned();
        match RequestTransaction::begin(&Threadline::from_ref(state), ctx, link).await {
            Ok(tx) => Ok(AuditedTx(tx)),
            Err(error) => {
                tracing::error!(%error, "threadline: could not begin an audited transaction");
                Err(AuditedTxRejection::Begin(error))
            }
        }
    }
}

/// Why [`AuditedTx`] could not be extracted.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum AuditedTxRejection {
    /// No [`ThreadlineLayer`](crate::ThreadlineLayer) ran before the extractor (500).
    #[error(transparent)]
    MissingLayer(#[from] MissingThreadlineLayer),
    /// The transaction could not begin: 503 when the pool timed out, else 500. The database's
    /// message is logged, not sent to the client.
    #[error("could not begin an audited transaction")]
    Begin(#[source] threadline_sqlx::Error),
}

impl AuditedTxRejection {
    /// The status code of the response.
    pub fn status(&self) -> StatusCode {
        match self {
            AuditedTxRejection::MissingLayer(missing) => missing.status(),
            AuditedTxRejection::Begin(error) if error.is_pool_timeout() => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            AuditedTxRejection::Begin(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The body of the response (it never holds the database's message).
    pub fn body_text(&self) -> String {
        match self {
            AuditedTxRejection::MissingLayer(missing) => missing.body_text(),
            AuditedTxRejection::Begin(error) if error.is_pool_timeout() => {
                "database busy: no connection available, try again".to_owned()
            }
            AuditedTxRejection::Begin(_) => "could not begin the database transaction".to_owned(),
        }
    }
}

impl IntoResponse for AuditedTxRejection {
    fn into_response(self) -> Response {
        (self.status(), self.body_text()).into_response()
    }
}
