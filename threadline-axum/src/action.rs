//! Runtime support for `#[audited]` on axum handlers (feature `sqlx`).

use axum_core::extract::{FromRef, FromRequestParts};
use axum_core::response::{IntoResponse, Response};
use http::request::Parts;
use threadline_sqlx::{RequestAction, Threadline};

use crate::MissingThreadlineLayer;

/// The hidden first argument that `#[audited]` adds to a handler. Needs the
/// [`ThreadlineLayer`](crate::ThreadlineLayer) and `Threadline: FromRef<S>` in the router
/// state; the action goes to that handle's audit schema.
#[derive(Debug)]
pub struct ActionRecorder(RequestAction);

impl<S> FromRequestParts<S> for ActionRecorder
where
    Threadline: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = MissingThreadlineLayer;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let ctx = crate::extract::context(parts)?.clone();
        let action = RequestAction::new(Threadline::from_ref(state), ctx);
        // Inserted before the next arguments are extracted, so `AuditedTx` links to it.
        parts.extensions.insert(action.link().clone());
        Ok(Self(action))
    }
}

impl ActionRecorder {
    /// Turns the handler's output into a response and records the action with its status
    /// (ok for 2xx and 3xx, else error).
    pub async fn finish(self, name: &'static str, output: impl IntoResponse) -> Response {
        let response = output.into_response();
        let status = response.status();
        self.0
            .finish(name, status.is_success() || status.is_redirection())
            .await;
        response
    }
}
