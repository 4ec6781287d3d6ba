//! Turning a request into an actor.

use std::fmt;
use std::future::Future;

use http::request::Parts;
use threadline_core::ActorRef;

/// Finds the actor of a request. Runs once per request, before the handler.
///
/// Implemented for every `Fn(&Parts) -> Option<ActorRef>` (a synchronous function or closure;
/// annotate a closure's argument as `|parts: &Parts|`), for [`AsyncResolver`], and for your
/// own types, for example one that holds a pool and looks up a session:
///
/// ```
/// use http::request::Parts;
/// use threadline_axum::{ActorRef, ResolveActor};
///
/// #[derive(Clone)]
/// struct Sessions; // holds a pool or a cache in a real application
///
/// impl ResolveActor for Sessions {
///     async fn resolve(&self, parts: &Parts) -> Option<ActorRef> {
///         let token = parts.headers.get("authorization")?.to_str().ok()?;
///         let user_id = token.strip_prefix("Bearer ")?; // look the session up here
///         ActorRef::user(user_id).ok()
///     }
/// }
/// ```
pub trait ResolveActor: Clone + Send + Sync + 'static {
    /// The actor, or `None` for a request nobody is attributed to.
    fn resolve(&self, parts: &Parts) -> impl Future<Output = Option<ActorRef>> + Send;
}

impl<F> ResolveActor for F
where
    F: Fn(&Parts) -> Option<ActorRef> + Clone + Send + Sync + 'static,
{
    fn resolve(&self, parts: &Parts) -> impl Future<Output = Option<ActorRef>> + Send {
        std::future::ready(self(parts))
    }
}

/// An asynchronous resolver made from a closure: see [`async_resolver`].
#[derive(Clone)]
pub struct AsyncResolver<F>(F);

impl<F> fmt::Debug for AsyncResolver<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AsyncResolver")
    }
}

/// Wraps a closure that returns a future. The future must own what it needs, so copy the
/// headers you use out of `parts` before the `async move` block:
///
/// ```
/// use axum::Router;
/// use http::request::Parts;
/// use threadline_axum::{ActorRef, ThreadlineLayer, async_resolver};
///
/// let layer = ThreadlineLayer::new(async_resolver(|parts: &Parts| {
///     let token = parts.headers.get("authorization").cloned();
///     async move {
///         let token = token?; // await a session store here
///         ActorRef::user(token.to_str().ok()?).ok()
///     }
/// }));
/// let app: Router = Router::new().layer(layer);
/// ```
pub fn async_resolver<F, Fut>(f: F) -> AsyncResolver<F>
where
    F: Fn(&Parts) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Option<ActorRef>> + Send + 'static,
{
    AsyncResolver(f)
}

impl<F, Fut> ResolveActor for AsyncResolver<F>
where
    F: Fn(&Parts) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Option<ActorRef>> + Send + 'static,
{
    fn resolve(&self, parts: &Parts) -> impl Future<Output = Option<ActorRef>> + Send {
        (self.0)(parts)
    }
}
