//! Who may see the explorer: [`Authorize`], and the guard every request passes.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::extract::{NestedPath, Request, State};
use axum::middleware::Next;
use axum_core::response::{IntoResponse, Response};
use http::request::Parts;
use http::{HeaderName, HeaderValue, header};
use threadline_core::{ActorRef, AuditContext};

use super::error::ExplorerError;
use super::html::BasePath;

/// Decides whether a request may see the explorer. Runs before every page, JSON endpoint
/// and asset; `false` answers 403.
///
/// Implemented for every `Fn(&Parts) -> bool` (annotate a closure's argument as
/// `|parts: &Parts|`), for [`actor_is`] (the actor from the
/// [`ThreadlineLayer`](crate::ThreadlineLayer) passes a predicate), for [`async_authorize`],
/// and for your own types, for example one that looks a session up:
///
/// ```
/// use http::request::Parts;
/// use threadline_axum::explorer::Authorize;
///
/// #[derive(Clone)]
/// struct StaffOnly; // holds a session store in a real application
///
/// impl Authorize for StaffOnly {
///     async fn authorize(&self, parts: &Parts) -> bool {
///         let Some(cookie) = parts.headers.get("cookie") else { return false };
///         cookie.to_str().is_ok_and(|c| c.contains("role=staff")) // look the session up here
///     }
/// }
/// ```
pub trait Authorize: Clone + Send + Sync + 'static {
    /// `true` to let the request through.
    fn authorize(&self, parts: &Parts) -> impl Future<Output = bool> + Send;
}

impl<F> Authorize for F
where
    F: Fn(&Parts) -> bool + Clone + Send + Sync + 'static,
{
    fn authorize(&self, parts: &Parts) -> impl Future<Output = bool> + Send {
        std::future::ready(self(parts))
    }
}

/// Lets a request through when the [`ThreadlineLayer`](crate::ThreadlineLayer) found an
/// actor for it and `predicate` accepts that actor. Requests without the layer's context or
/// without an actor are denied. Made by [`actor_is`].
#[derive(Clone)]
pub struct ActorIs<P>(P);

impl<P> fmt::Debug for ActorIs<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ActorIs")
    }
}

/// Authorizes by the request's actor, as resolved by the
/// [`ThreadlineLayer`](crate::ThreadlineLayer) (which must wrap the explorer's routes):
///
/// ```
/// use threadline_axum::{ActorRef, ActorType, explorer};
/// let admins = explorer::actor_is(|actor: &ActorRef| actor.kind() == ActorType::Admin);
/// # let _ = explorer::ExplorerOptions::new(admins);
/// ```
pub fn actor_is<P>(predicate: P) -> ActorIs<P>
where
    P: Fn(&ActorRef) -> bool + Clone + Send + Sync + 'static,
{
    ActorIs(predicate)
}

impl<P> Authorize for ActorIs<P>
where
    P: Fn(&ActorRef) -> bool + Clone + Send + Sync + 'static,
{
    fn authorize(&self, parts: &Parts) -> impl Future<Output = bool> + Send {
        let actor = parts
            .extensions
            .get::<AuditContext>()
            .and_then(|ctx| ctx.actor.as_ref());
        std::future::ready(actor.is_some_and(&self.0))
    }
}

/// An asynchronous check made from a closure: see [`async_authorize`].
#[derive(Clone)]
pub struct AsyncAuthorize<F>(F);

impl<F> fmt::Debug for AsyncAuthorize<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AsyncAuthorize")
    }
}

/// Wraps a closure that returns a future. The future must own what it needs, so copy what
/// you use out of `parts` before the `async move` block:
///
/// ```
/// use http::request::Parts;
/// use threadline_axum::explorer::{ExplorerOptions, async_authorize};
///
/// let options = ExplorerOptions::new(async_authorize(|parts: &Parts| {
///     let token = parts.headers.get("authorization").cloned();
///     async move {
///         // await a session or permission lookup here
///         token.is_some_and(|t| t == "Bearer admin-token")
///     }
/// }));
/// # let _ = options;
/// ```
pub fn async_authorize<F, Fut>(f: F) -> AsyncAuthorize<F>
where
    F: Fn(&Parts) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send + 'static,
{
    AsyncAuthorize(f)
}

impl<F, Fut> Authorize for AsyncAuthorize<F>
where
    F: Fn(&Parts) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send + 'static,
{
    fn authorize(&self, parts: &Parts) -> impl Future<Output = bool> + Send {
        (self.0)(parts)
    }
}

type BoxFuture<'a> = Pin<Box<dyn Future<Output = bool> + Send + 'a>>;

trait ErasedAuthorize: Send + Sync {
    fn authorize<'a>(&'a self, parts: &'a Parts) -> BoxFuture<'a>;
}

impl<A: Authorize> ErasedAuthorize for A {
    fn authorize<'a>(&'a self, parts: &'a Parts) -> BoxFuture<'a> {
        Box::pin(Authorize::authorize(self, parts))
    }
}

/// A type-erased [`Authorize`], so that the options and router are not generic over it.
#[derive(Clone)]
pub(super) struct DynAuthorize(Arc<dyn ErasedAuthorize>);

impl DynAuthorize {
    pub(super) fn new(authorize: impl Authorize) -> Self {
        Self(Arc::new(authorize))
    }
}

/// The Content-Security-Policy of every response: nothing but the embedded stylesheet loads,
/// no script runs, forms only submit to this origin, and no other site may frame the pages.
pub(super) const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self'; \
    img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// Runs before every route: authorizes, works out the base path for links, and adds the
/// security headers to whatever the route answers (403, 400 and 404 pages included).
pub(super) async fn guard(State(state): State<super::State>, req: Request, next: Next) -> Response {
    let (mut parts, body) = req.into_parts();
    let mut response = if state.options.authorize.0.authorize(&parts).await {
        let base = match &state.options.base_path {
            Some(base) => base.clone(),
            None => parts
                .extensions
                .get::<NestedPath>()
                .map(|nested| super::url::normalize_base(nested.as_str()))
                .unwrap_or_default(),
        };
        parts.extensions.insert(BasePath(base));
        next.run(Request::from_parts(parts, body)).await
    } else {
        tracing::info!(path = %parts.uri.path(), "threadline explorer: request denied by `authorize`");
        ExplorerError::Forbidden.into_response()
    };
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        // Audit data must not linger in shared caches or leak through the Referer header
        // (URLs carry filter values).
        (header::CACHE_CONTROL, "no-store"),
        (header::REFERRER_POLICY, "no-referrer"),
        (
            HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        ),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}
