//! The [`Audit`] extractor.

use std::future::{Ready, ready};
use std::ops::{Deref, DerefMut};

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::{FromRequest, HttpMessage, HttpRequest, HttpResponse, ResponseError};
use threadline_core::AuditContext;

/// The request's [`AuditContext`], as built by
/// [`ThreadlineMiddleware`](crate::ThreadlineMiddleware).
///
/// Fails with a 500 ([`MissingThreadlineMiddleware`]) when the middleware is not installed;
/// `Option<Audit>` yields `None` instead.
#[derive(Debug, Clone, PartialEq)]
pub struct Audit(pub AuditContext);

impl Deref for Audit {
    type Target = AuditContext;

    fn deref(&self) -> &AuditContext {
        &self.0
    }
}

impl DerefMut for Audit {
    fn deref_mut(&mut self) -> &mut AuditContext {
        &mut self.0
    }
}

/// The context the middleware stored, or the missing-middleware error.
pub(crate) fn context(req: &HttpRequest) -> Result<AuditContext, MissingThreadlineMiddleware> {
    req.extensions().get().cloned().ok_or_else(|| {
        // Where actix-web logs its own extractors' failures (such as a missing `Data<T>`).
        tracing::debug!(
            status = StatusCode::INTERNAL_SERVER_ERROR.as_u16(),
            path = req.path(),
            "{MISSING}"
        );
        MissingThreadlineMiddleware
    })
}

impl FromRequest for Audit {
    type Error = MissingThreadlineMiddleware;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(context(req).map(Audit))
    }
}

const MISSING: &str = "Threadline: this request has no audit context. Add \
    `.wrap(ThreadlineMiddleware::new(actor_fn))` to the App or scope that serves the handlers \
    using `Audit`, `AuditedTx` or `#[audited]`.";

/// Error when no [`ThreadlineMiddleware`](crate::ThreadlineMiddleware) ran before the
/// extractor: a 500 whose body says how to fix it.
///
/// Logged at `DEBUG` level when the extractor fails, as actix-web logs its own extractors'
/// failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, thiserror::Error)]
#[error("{MISSING}")]
#[non_exhaustive]
pub struct MissingThreadlineMiddleware;

impl MissingThreadlineMiddleware {
    /// The response body text used for this error.
    pub fn body_text(&self) -> String {
        MISSING.to_owned()
    }

    /// The status code used for this error (500).
    pub fn status(&self) -> StatusCode {
        StatusCode::INTERNAL_SERVER_ERROR
    }
}

impl ResponseError for MissingThreadlineMiddleware {
    fn status_code(&self) -> StatusCode {
        self.status()
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status()).body(self.body_text())
    }
}
