//! Threadline for axum and Tower: attach *who* and *which request* to every audited write.
//!
//! * [`ThreadlineLayer`] builds an [`AuditContext`] per request (actor, request id,
//!   correlation id, client IP) and stores it in the request extensions. It never touches
//!   the database.
//! * [`Audit`] extracts that context; `Option<Audit>` when the layer may be absent.
//! * [`AuditedTx`] (feature `sqlx`, on by default) begins a transaction on the pool of the
//!   [`Threadline`] handle in the router state
//!   (`Threadline: FromRef<S>`) with the context already applied; the handler commits.
//! * [`audited`] (feature `sqlx`) records a semantic action in `audit_actions` after the
//!   handler runs: status `ok` for 2xx/3xx, else `error`, with the request's actor, request
//!   id and correlation id, linked to the transaction an [`AuditedTx`] committed, in the
//!   handle's audit schema.

//!
//! ```
//! use axum::{Router, extract::Path, http::StatusCode, routing::post};
//! use http::request::Parts;
//! use threadline_axum::{ActorRef, AuditedTx, ThreadlineLayer, audited};
//!
//! // DEMO ONLY: any client can send `x-user`. Read what your authentication layer stored.
//! fn actor_fn(parts: &Parts) -> Option<ActorRef> {
//!     let id = parts.headers.get("x-user")?.to_str().ok()?;
//!     ActorRef::user(id).ok()
//! }
//!
//! #[audited("post.published")]
//! async fn publish(Path(id): Path<i64>, mut tx: AuditedTx) -> Result<StatusCode, StatusCode> {
//!     let oops = |_| StatusCode::INTERNAL_SERVER_ERROR;
//!     sqlx::query("UPDATE posts SET published = true WHERE id = $1")
//!         .bind(id)
//!         .execute(&mut *tx)
//!         .await
//!         .map_err(oops)?;
//!     tx.commit().await.map_err(oops)?;
//!     Ok(StatusCode::NO_CONTENT)
//! }
//!
//! fn app(pool: sqlx::PgPool) -> Router {
//!     Router::new()
//!         .route("/posts/{id}/publish", post(publish))
//!         .layer(ThreadlineLayer::new(actor_fn))
//!         .with_state(threadline_axum::Threadline::new(pool))
//! }
//! ```

#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "sqlx")]
mod action;
#[cfg(feature = "explorer")]
#[cfg_attr(docsrs, doc(cfg(feature = "explorer")))]
pub mod explorer;
mod extract;
mod layer;
mod resolve;
#[cfg(feature = "sqlx")]
mod tx;

pub use extract::{Audit, MissingThreadlineLayer};
pub use layer::{ResponseFuture, ThreadlineLayer, ThreadlineService};
pub use resolve::{AsyncResolver, ResolveActor, async_resolver};
pub use threadline_core::{
    ActorRef, ActorType, AuditContext, ContextHeaders, IpNet, JobContext, TrustedProxies,
};
#[cfg(feature = "sqlx")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlx")))]
pub use threadline_macros::audited_axum as audited;
#[cfg(feature = "sqlx")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlx")))]
pub use threadline_sqlx::Threadline;
#[cfg(feature = "sqlx")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlx")))]
pub use tx::{AuditedTx, AuditedTxRejection};

/// Support for the code `#[audited]` expands to; not a public API.
#[cfg(feature = "sqlx")]
#[doc(hidden)]
pub mod __private {
    pub use crate::action::ActionRecorder;
    pub use axum_core::response::Response;
}
