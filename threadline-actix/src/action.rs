//! Runtime support for `#[audited]` on actix-web handlers (feature `sqlx`).

use std::cell::Cell;
use std::future::{Ready, ready};
use std::rc::Rc;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpMessage, HttpRequest, HttpResponse, Responder};
use sqlx::PgPool;
use threadline_core::AuditContext;
use threadline_sqlx::ActionStatus;

use crate::tx::{AuditedTxError, pool};

/// Where `AuditedTx::commit` leaves the id of the audit transaction it committed, so that the
/// action recorded after the handler links to those changes.
#[derive(Debug, Clone, Default)]
pub(crate) struct CommittedTransaction(Rc<Cell<Option<i64>>>);

impl CommittedTransaction {
    pub(crate) fn set(&self, id: Option<i64>) {
        if id.is_some() {
            self.0.set(id);
        }
    }
}

/// The hidden first argument that `#[audited]` adds to a handler. Needs the
/// [`ThreadlineMiddleware`](crate::ThreadlineMiddleware) and `web::Data<PgPool>`.
#[derive(Debug)]
pub struct ActionRecorder {
    ctx: AuditContext,
    pool: PgPool,
    req: HttpRequest,
    committed: CommittedTransaction,
}

impl FromRequest for ActionRecorder {
    type Error = AuditedTxError;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready((|| {
            let ctx = crate::extract::context(req)?;
            let pool = pool(req)?;
            let committed = CommittedTransaction::default();
            // Inserted now, before the next arguments are extracted, so `AuditedTx` sees it.
            req.extensions_mut().insert(committed.clone());
            Ok(Self {
                ctx,
                pool,
                req: req.clone(),
                committed,
            })
        })())
    }
}

impl ActionRecorder {
    /// Turns the handler's output into a response and records the action with its status.
    pub async fn finish(self, name: &'static str, output: impl Responder) -> HttpResponse {
        let response = output.respond_to(&self.req).map_into_boxed_body();
        let status = response.status();
        let status = if status.is_success() || status.is_redirection() {
            ActionStatus::Ok
        } else {
            ActionStatus::Error
        };
        let recorded = threadline_sqlx::record_request_action(
            &self.pool,
            &self.ctx,
            name,
            status,
            self.committed.0.get(),
        )
        .await;
        if let Err(error) = recorded {
            tracing::error!(action = name, %error, "threadline: could not record the action");
        }
        response
    }
}
