//! Threadline for actix-web: attach *who* and *which request* to every audited write.
//!
//! * [`ThreadlineMiddleware`] builds an [`AuditContext`] per request (actor, request id,
//!   correlation id, client IP) and stores it in the request extensions. It never touches
//!   the database.
//! * [`Audit`] extracts that context; `Option<Audit>` when the middleware may be absent.
//! * [`AuditedTx`] (feature `sqlx`, on by default) begins a transaction on the pool of the
//!   [`Threadline`] handle in the `web::Data<Threadline>` app
//!   data with the context already applied; the handler commits.
//! * [`audited`] (feature `sqlx`) records a semantic action in `audit_actions` after the
//!   handler runs: status `ok` for 2xx/3xx, else `error`, with the request's actor, request
//!   id and correlation id, linked to the transaction an [`AuditedTx`] committed. Put it
//!   above routing attributes such as `#[post(..)]`; actions go to the handle's audit schema.
//!
//! ```
//! use actix_web::{App, HttpRequest, HttpResponse, web};
//! use threadline_actix::{ActorRef, AuditedTx, ThreadlineMiddleware, audited};
//!
//! fn actor_fn(req: &HttpRequest) -> Option<ActorRef> {
//!     // DEMO ONLY: any client can send `x-user`. Read what your authentication stored.
//!     ActorRef::user(req.headers().get("x-user")?.to_str().ok()?).ok()
//! }
//!
//! #[audited("post.published")]
//! async fn publish(id: web::Path<i64>, mut tx: AuditedTx) -> actix_web::Result<HttpResponse> {
//!     let oops = actix_web::error::ErrorInternalServerError;
//!     sqlx::query("UPDATE posts SET published = true WHERE id = $1")
//!         .bind(id.into_inner())
//!         .execute(&mut *tx)
//!         .await
//!         .map_err(oops)?;
//!     tx.commit().await.map_err(oops)?;
//!     Ok(HttpResponse::NoContent().finish())
//! }
//!
//! # fn app(pool: sqlx::PgPool) {
//! let app = App::new()
//!     .app_data(web::Data::new(threadline_actix::Threadline::new(pool)))
//!     .wrap(ThreadlineMiddleware::new(actor_fn))
//!     .route("/posts/{id}/publish", web::post().to(publish));
//! # }
//! ```

#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "sqlx")]
mod action;
mod extract;
mod middleware;
mod resolve;
#[cfg(feature = "sqlx")]
mod tx;

pub use extract::{Audit, MissingThreadlineMiddleware};
pub use middleware::{ThreadlineMiddleware, ThreadlineService};
pub use resolve::{AsyncResolver, ResolveActor, async_resolver};
pub use threadline_core::{
    ActorRef, ActorType, AuditContext, ContextHeaders, IpNet, JobContext, TrustedProxies,
};
#[cfg(feature = "sqlx")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlx")))]
pub use threadline_macros::audited_actix as audited;
#[cfg(feature = "sqlx")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlx")))]
pub use threadline_sqlx::Threadline;
#[cfg(feature = "sqlx")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlx")))]
pub use tx::{AuditedTx, AuditedTxError};

/// Support for the code `#[audited]` expands to; not a public API.
#[cfg(feature = "sqlx")]
#[doc(hidden)]
pub mod __private {
    pub use crate::action::ActionRecorder;
    pub use actix_web::HttpResponse as Response;
}
