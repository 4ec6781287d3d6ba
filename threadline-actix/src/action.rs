//! Runtime support for `#[audited]` on actix-web handlers (feature `sqlx`).

use std::future::{Ready, ready};

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpMessage, HttpRequest, HttpResponse, Responder};
use threadline_sqlx::RequestAction;

use crate::tx::{AuditedTxError, threadline};

/// The hidden first argument that `#[audited]` adds to a handler. Needs the
/// [`ThreadlineMiddleware`](crate::ThreadlineMiddleware) and `web::Data<Threadline>`; the
/// action goes to that handle's audit schema.
#[derive(Debug)]
pub struct ActionRecorder {
    action: RequestAction,
    req: HttpRequest,
}

impl FromRequest for ActionRecorder {
    type Error = AuditedTxError;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready((|| {
            let action = RequestAction::new(threadline(req)?, crate::extract::context(req)?);
            // Inserted now, before the next arguments are extracted, so `AuditedTx` links to it.
            req.extensions_mut().insert(action.link().clone());
            Ok(Self {
                action,
                req: req.clone(),
            })
        })())
    }
}

impl ActionRecorder {
    /// Turns the handler's output into a response and records the action with its status
    /// (ok for 2xx and 3xx, else error).
    pub async fn finish(self, name: &'static str, output: impl Responder) -> HttpResponse {
        let response = output.respond_to(&self.req).map_into_boxed_body();
        let status = response.status();
        self.action
            .finish(name, status.is_success() || status.is_redirection())
            .await;
        response
    }
}
