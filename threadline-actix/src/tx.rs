//! The [`AuditedTx`] extractor (feature `sqlx`).

use std::future::Future;
use std::ops::{Deref, DerefMut};
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::{FromRequest, HttpMessage, HttpRequest, HttpResponse, ResponseError, web};
use sqlx::{PgConnection, Postgres, Transaction};
use threadline_sqlx::{ActionLink, RequestTransaction, Threadline};

use crate::MissingThreadlineMiddleware;

/// A database transaction that already carries the request's audit context.
///
/// Extracting it takes the [`Threadline`] handle from `web::Data<Threadline>`, begins a
/// transaction on its pool and applies the context in the same round trip. It derefs to
/// `PgConnection`, so write with `.execute(&mut *tx)`. Call [`commit`](AuditedTx::commit) to
/// keep the writes; dropping it rolls them back, and the audit trail captures nothing.
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

/// The handle registered with `App::app_data(web::Data::new(threadline))`.
pub(crate) fn threadline(req: &HttpRequest) -> Result<Threadline, AuditedTxError> {
    req.app_data::<web::Data<Threadline>>()
        .map(|data| data.get_ref().clone())
        .ok_or_else(|| {
            tracing::error!("threadline: no web::Data<Threadline> in the app data");
            AuditedTxError::MissingThreadline
        })
}

impl FromRequest for AuditedTx {
    type Error = AuditedTxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let ready = crate::extract::context(req)
            .map_err(AuditedTxError::from)
            .and_then(|ctx| Ok((ctx, threadline(req)?)));
        let link = req.extensions().get::<ActionLink>().cloned();
        Box::pin(async move {
            let (ctx, threadline) = ready?;
            match RequestTransaction::begin(&threadline, &ctx, link).await {
                Ok(tx) => Ok(AuditedTx(tx)),
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
    /// The app has no `web::Data<Threadline>` (500).
    #[error(
        "Threadline: no Threadline handle in the app data; register it with `App::new().app_data(web::Data::new(Threadline::new(pool)))`"
    )]
    MissingThreadline,
    /// The transaction could not begin: 503 when the pool timed out, else 500. The database's
    /// message is logged, not sent to the client.
    #[error("could not begin an audited transaction")]
    Begin(#[source] threadline_sqlx::Error),
}

impl AuditedTxError {
    /// The status code of the response.
    pub fn status(&self) -> StatusCode {
        match self {
            AuditedTxError::Begin(error) if error.is_pool_timeout() => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The body of the response (it never holds the database's message).
    pub fn body_text(&self) -> String {
        match self {
            AuditedTxError::Begin(error) if error.is_pool_timeout() => {
                "database busy: no connection available, try again".to_owned()
            }
            AuditedTxError::Begin(_) => "could not begin the database transaction".to_owned(),
            other => other.to_string(),
        }
    }
}

impl ResponseError for AuditedTxError {
    fn status_code(&self) -> StatusCode {
        self.status()
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status()).body(self.body_text())
    }
}
