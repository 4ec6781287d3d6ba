//! [`ExplorerError`]: why a page or JSON endpoint could not answer.

use axum_core::response::{IntoResponse, Response};
use http::StatusCode;

/// Why the explorer could not answer a request. Each kind has its HTTP status
/// ([`status`](Self::status)) and the text shown to the user ([`body_text`](Self::body_text));
/// pages show the text, JSON endpoints send `{"error": text, "status": code}`.
///
/// Like axum's rejections, client errors (4xx) are logged at `TRACE` level with target
/// `axum::rejection`; server errors (5xx) are logged at `ERROR` level with their details,
/// which the response leaves out.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum ExplorerError {
    /// The [`Authorize`](super::Authorize) check denied the request (403).
    #[error(
        "access denied: the audit explorer's `authorize` check refused this request; sign in as a user it accepts"
    )]
    Forbidden,
    /// A revert from the explorer was refused (403): the `allow_revert` check refused the
    /// request, or its anti-forgery token is missing or wrong. The text says which.
    #[error("revert refused: {0}")]
    RevertDenied(String),
    /// A query or path parameter is invalid (400).
    #[error("invalid parameter `{param}`: {reason}")]
    Param {
        /// The parameter's name.
        param: String,
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// No such transaction or page (404).
    #[error("{0}")]
    NotFound(String),
    /// The query handle refused the request (400 for invalid input such as a cursor from
    /// another filter, 404 for an unknown table, 500 for a database error).
    #[error(transparent)]
    Threadline(#[from] threadline_sqlx::Error),
}

impl ExplorerError {
    pub(super) fn param(param: impl Into<String>, reason: impl Into<String>) -> Self {
        ExplorerError::Param {
            param: param.into(),
            reason: reason.into(),
        }
    }

    /// The HTTP status this error answers with.
    pub fn status(&self) -> StatusCode {
        use threadline_sqlx::Error as E;
        match self {
            ExplorerError::Forbidden | ExplorerError::RevertDenied(_) => StatusCode::FORBIDDEN,
            ExplorerError::Param { .. } => StatusCode::BAD_REQUEST,
            ExplorerError::NotFound(_) | ExplorerError::Threadline(E::TableNotFound(_)) => {
                StatusCode::NOT_FOUND
            }
            ExplorerError::Threadline(E::RevertRefused(_) | E::RevertStep { .. }) => {
                StatusCode::CONFLICT
            }
            ExplorerError::Threadline(E::Database(_) | E::NotInTransaction) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
            ExplorerError::Threadline(_) => StatusCode::BAD_REQUEST,
        }
    }

    /// The text shown to the user: the error itself, except for server-side failures, whose
    /// details go to the log instead.
    pub fn body_text(&self) -> String {
        if self.status().is_server_error() {
            "The audit trail could not be read (a database error); the server log has the details."
                .to_owned()
        } else {
            self.to_string()
        }
    }

    /// Logs the error (see the type's documentation) and returns [`body_text`](Self::body_text),
    /// for a response.
    pub(super) fn public_message(&self) -> String {
        let status = self.status();
        let body = self.body_text();
        if status.is_server_error() {
            tracing::error!(error = %self, "threadline explorer: query failed");
        } else {
            tracing::trace!(
                target: "axum::rejection",
                status = status.as_u16(),
                body = body.as_str(),
                rejection_type = std::any::type_name::<Self>(),
                "rejecting request",
            );
        }
        body
    }
}

/// A bare page with the message (no stylesheet or navigation: used where the request has
/// not been authorized). Inside the explorer, errors render with the full layout.
impl IntoResponse for ExplorerError {
    fn into_response(self) -> Response {
        let status = self.status();
        let page = maud::html! {
            (maud::DOCTYPE)
            html lang="en" {
                head { meta charset="utf-8"; title { (status.as_u16()) " · audit explorer" } }
                body { h1 { (status) } p { (self.public_message()) } }
            }
        };
        super::html::html_response(status, page)
    }
}
