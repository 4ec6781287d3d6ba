//! The [`Audit`] extractor.

use std::convert::Infallible;
use std::ops::{Deref, DerefMut};

use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
use axum_core::response::{IntoResponse, Response};
use http::StatusCode;
use http::request::Parts;
use threadline_core::AuditContext;

/// The request's [`AuditContext`], as built by [`ThreadlineLayer`](crate::ThreadlineLayer).
///
/// Rejects with a 500 ([`MissingThreadlineLayer`]) when the layer is not installed;
/// `Option<Audit>` yields `None` instead.
///
/// ```
/// use threadline_axum::Audit;
///
/// async fn handler(Audit(ctx): Audit) -> String {
///     ctx.request_id.unwrap_or_default()
/// }
/// ```
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

/// The context the layer stored, or the missing-layer rejection.
pub(crate) fn context(parts: &Parts) -> Result<&AuditContext, MissingThreadlineLayer> {
    parts.extensions.get().ok_or(MissingThreadlineLayer)
}

impl<S: Send + Sync> FromRequestParts<S> for Audit {
    type Rejection = MissingThreadlineLayer;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        context(parts).cloned().map(Audit)
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Audit {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, Infallible> {
        Ok(parts.extensions.get::<AuditContext>().cloned().map(Audit))
    }
}

const MISSING_LAYER: &str = "Threadline: this request has no audit context. Add \
    `.layer(ThreadlineLayer::new(actor_fn))` to the router, after the routes that use \
    `Audit`, `AuditedTx` or `#[audited]` so that it wraps them.";

/// Rejection when no [`ThreadlineLayer`](crate::ThreadlineLayer) ran before the extractor:
/// a 500 whose body says how to fix it.
///
/// Like axum's own rejections, it is logged when turned into a response, at `TRACE` level
/// with target `axum::rejection` (enable it with `RUST_LOG=axum::rejection=trace`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct MissingThreadlineLayer;

impl MissingThreadlineLayer {
    /// The response body text used for this rejection.
    pub fn body_text(&self) -> String {
        MISSING_LAYER.to_owned()
    }

    /// The status code used for this rejection (500).
    pub fn status(&self) -> StatusCode {
        StatusCode::INTERNAL_SERVER_ERROR
    }
}

impl std::fmt::Display for MissingThreadlineLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(MISSING_LAYER)
    }
}

impl std::error::Error for MissingThreadlineLayer {}

impl IntoResponse for MissingThreadlineLayer {
    fn into_response(self) -> Response {
        let status = self.status();
        tracing::trace!(
            target: "axum::rejection",
            status = status.as_u16(),
            body = MISSING_LAYER,
            rejection_type = std::any::type_name::<Self>(),
            "rejecting request",
        );
        (status, MISSING_LAYER).into_response()
    }
}
