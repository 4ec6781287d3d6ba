//! The [`AuditedTx`] extractor (feature `sqlx`).

use std::future::Future;
use std::ops::{Deref, DerefMut};
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::{FromRequest, HttpMessage, HttpRequest, HttpResponse, ResponseError, web};
use sqlx::{PgConnection, PgPool, Postgres, Transaction};
use threadline_sqlx::PoolExt;

use crate::MissingThreadlineMiddleware;
use crate::action::CommittedTransaction;

/// A database transaction that already carries the request's audit context.
///
/// Extracting it takes the pool from `web::Data<PgPool>`, begins a transaction and applies
/// the context with one statement of transaction-local `set_config` calls. It derefs to
/// `PgConnection`, so write with `.execute(&mut *tx)`. Call [`commit`](AuditedTx::commit) to
/// keep the writes; dropping it rolls them back, and the audit trail captures nothing.
#[derive(Debug)]
pub struct AuditedTx(Transaction<'static, Postgres>, Option<CommittedTransaction>);

impl AuditedTx {
    /// Commits the writes (and their audit rows). Under `#[audited]` it first notes the audit
    /// transaction's id (one more round trip) so that the action links to these changes.
    pub async fn commit(mut self) -> Result<(), sqlx::Error> {
        if let Some(committed) = &self.1 {
            match threadline_sqlx::current_audit_transaction_id(&mut self.0).await {
                Ok(id) => committed.set(id),
                Err(error) => {
                    tracing::warn!(%error, "threadline: cannot link the action to this transaction")
                }
            }
        }
        self.0.commit().await
    }

    /// Rolls back explicitly (dropping does the same, without waiting for the server).
    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        self.0.rollback().await
    }

    /// The underlying sqlx transaction.
    pub fn into_inner(self) -> Transaction<'static, Postgres> {
        self.0
    }

    /// The underlying sqlx transaction, for APIs that want `&mut Transaction`.
    pub fn transaction(&mut self) -> &mut Transaction<'static, Postgres> {
        &mut self.0
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

/// The pool registered with `App::app_data(web::Data::new(pool))`.
pub(crate) fn pool(req: &HttpRequest) -> Result<PgPool, AuditedTxError> {
    req.app_data::<web::Data<PgPool>>()
        .map(|data| data.get_ref().clone())
        .ok_or_else(|| {
            tracing::error!("threadline: no web::Data<PgPool> in the app data");
            AuditedTxError::MissingPool
        })
}

impl FromRequest for AuditedTx {
    type Error = AuditedTxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let ready = crate::extract::context(req)
            .map_err(AuditedTxError::from)
            .and_then(|ctx| Ok((ctx, pool(req)?)));
        let committed = req.extensions().get::<CommittedTransaction>().cloned();
        Box::pin(async move {
            let (ctx, pool) = ready?;
            match pool.begin_with_context(&ctx).await {
                Ok(tx) => Ok(AuditedTx(tx, committed)),
                Err(error) => {
                    tracing::error!(%error, "threadline: could not begin an audited transaction");
                    Err(AuditedTxError::Begin(error))
                }
            }
        })
    }
}

/// Why [`AuditedTx`] (or `#[audited]`) could not get what it needs.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum AuditedTxError {
    /// No [`ThreadlineMiddleware`](crate::ThreadlineMiddleware) ran before the extractor (500).
    #[error(transparent)]
    MissingMiddleware(#[from] MissingThreadlineMiddleware),
    /// The app has no `web::Data<PgPool>` (500).
    #[error(
        "Threadline: no PgPool in the app data; register it with `App::new().app_data(web::Data::new(pool))`"
    )]
    MissingPool,
    /// The transaction could not begin: 503 when the pool timed out, else 500. The database's
    /// message is logged, not sent to the client.
    #[error("could not begin an audited transaction: {0}")]
    Begin(threadline_sqlx::Error),
}

impl ResponseError for AuditedTxError {
    fn status_code(&self) -> StatusCode {
        match self {
            AuditedTxError::Begin(threadline_sqlx::Error::Database(sqlx::Error::PoolTimedOut)) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let body = match self {
            AuditedTxError::Begin(threadline_sqlx::Error::Database(sqlx::Error::PoolTimedOut)) => {
                "database busy: no connection available, try again".to_owned()
            }
            AuditedTxError::Begin(_) => "could not begin the database transaction".to_owned(),
            other => other.to_string(),
        };
        HttpResponse::build(self.status_code()).body(body)
    }
}
