//! Turning a request into an actor.

use std::fmt;
use std::future::Future;

use actix_web::HttpRequest;
use threadline_core::ActorRef;

/// Finds the actor of a request. Runs once per request, before the handler.
///
/// Implemented for every `Fn(&HttpRequest) -> Option<ActorRef>` (annotate a closure's
/// argument as `|req: &HttpRequest|`), for [`AsyncResolver`], and for your own types, for
/// example one that holds a pool and looks up a session.
pub trait ResolveActor: Clone + 'static {
    /// The actor, or `None` for a request nobody is attributed to.
    fn resolve(&self, req: &HttpRequest) -> impl Future<Output = Option<ActorRef>>;
}

impl<F> ResolveActor for F
where
    F: Fn(&HttpRequest) -> Option<ActorRef> + Clone + 'static,
{
    fn resolve(&self, req: &HttpRequest) -> impl Future<Output = Option<ActorRef>> {
        std::future::ready(self(req))
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

/// Wraps a closure that returns a future (clone what it needs from the request first):
///
/// ```
/// use actix_web::HttpRequest;
/// use threadline_actix::{ActorRef, ThreadlineMiddleware, async_resolver};
///
/// let middleware = ThreadlineMiddleware::new(async_resolver(|req: &HttpRequest| {
///     let token = req.headers().get("authorization").cloned();
///     async move { ActorRef::user(token?.to_str().ok()?).ok() }
/// }));
/// ```
pub fn async_resolver<F, Fut>(f: F) -> AsyncResolver<F>
where
    F: Fn(&HttpRequest) -> Fut + Clone + 'static,
    Fut: Future<Output = Option<ActorRef>> + 'static,
{
    AsyncResolver(f)
}

impl<F, Fut> ResolveActor for AsyncResolver<F>
where
    F: Fn(&HttpRequest) -> Fut + Clone + 'static,
    Fut: Future<Output = Option<ActorRef>> + 'static,
{
    fn resolve(&self, req: &HttpRequest) -> impl Future<Output = Option<ActorRef>> {
        (self.0)(req)
    }
}
