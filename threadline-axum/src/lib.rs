//! Threadline for axum and Tower: attach *who* and *which request* to every audited write.
//!
//! * [`ThreadlineLayer`] builds an [`AuditContext`] per request (actor, request id,
//!   correlation id, client IP) and stores it in the request extensions. It never touches
//!   the database.
//! * [`Audit`] extracts that context; `Option<Audit>` when the layer may be absent.
//! * [`AuditedTx`] (feature `sqlx`, on by default) begins a transaction from the `PgPool` in
//!   the router state with the context already applied; the handler commits.

//!
//! ```
//! use axum::{Router, extract::Path, http::StatusCode, routing::post};
//! use http::request::Parts;
//! use threadline_axum::{ActorRef, AuditedTx, ThreadlineLayer};
//!
//! fn actor_fn(parts: &Parts) -> Option<ActorRef> {
//!     let id = parts.headers.get("x-user-id")?.to_str().ok()?;
//!     ActorRef::user(id).ok()
//! }
//!

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
//!         .with_state(pool)
//! }
//! ```

mod extract;
mod layer;
mod resolve;
#[cfg(feature = "sqlx")]
mod tx;

pub use extract::{Audit, MissingThreadlineLayer};
pub use layer::{ResponseFuture, ThreadlineLayer, ThreadlineService};
pub use resolve::{AsyncResolver, ResolveActor, async_resolver};
pub use threadline_core::{
    ActorRef, ActorType, AuditContext, ContextHeaders, IpNetwork, JobContext, TrustedProxies,
};
#[cfg(feature = "sqlx")]
pub use tx::{AuditedTx, AuditedTxRejection};
