//! Who may revert from the explorer, and as whom: [`AuthorizeRevert`].

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use http::request::Parts;
use threadline_core::{ActorRef, AuditContext};

/// Decides whether a request may revert transactions from the explorer, and names the actor
/// the revert runs under (its own audited transaction records that actor). `None` refuses
/// (403). This check is separate from, and comes after, the read check
/// ([`Authorize`](super::Authorize)): a viewer who may read the trail may not revert unless
/// this check says so.
///
/// Implemented for every `Fn(&Parts) -> Option<ActorRef>` (annotate a closure's argument as
/// `|parts: &Parts|`), for [`actor_may_revert`] (the
/// [`ThreadlineLayer`](crate::ThreadlineLayer)'s actor, when a predicate accepts it), and for
/// your own types, whose check may be asynchronous:
///
/// ```
/// use http::request::Parts;
/// use threadline_axum::ActorRef;
/// use threadline_axum::explorer::AuthorizeRevert;
///
/// #[derive(Clone)]
/// struct Supervisors; // holds a permission store in a real application
///
/// impl AuthorizeRevert for Supervisors {
///     async fn authorize_revert(&self, parts: &Parts) -> Option<ActorRef> {
///         let user = parts.headers.get("x-supervisor")?.to_str().ok()?;
///         // await a permission lookup here
///         ActorRef::admin(user).ok()
///     }
/// }
/// ```
pub trait AuthorizeRevert: Clone + Send + Sync + 'static {
    /// The actor to revert as, or `None` to refuse.
    fn authorize_revert(&self, parts: &Parts) -> impl Future<Output = Option<ActorRef>> + Send;
}

impl<F> AuthorizeRevert for F
where
    F: Fn(&Parts) -> Option<ActorRef> + Clone + Send + Sync + 'static,
{
    fn authorize_revert(&self, parts: &Parts) -> impl Future<Output = Option<ActorRef>> + Send {
        std::future::ready(self(parts))
    }
}

/// Lets the request's actor revert, as itself, when `predicate` accepts it. Made by
/// [`actor_may_revert`].
#[derive(Clone)]
pub struct ActorMayRevert<P>(P);

impl<P> fmt::Debug for ActorMayRevert<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ActorMayRevert")
    }
}

/// Reverts run as the request's actor, as resolved by the
/// [`ThreadlineLayer`](crate::ThreadlineLayer) (which must wrap the explorer's routes), when
/// `predicate` accepts it; requests without an actor are refused.
///
/// ```
/// use threadline_axum::{ActorRef, ActorType, explorer};
/// let admins = |actor: &ActorRef| actor.kind() == ActorType::Admin;
/// let options = explorer::ExplorerOptions::new(explorer::actor_is(admins))
///     .allow_revert(explorer::actor_may_revert(|actor: &ActorRef| actor.id() == Some("root")));
/// # let _ = options;
/// ```
pub fn actor_may_revert<P>(predicate: P) -> ActorMayRevert<P>
where
    P: Fn(&ActorRef) -> bool + Clone + Send + Sync + 'static,
{
    ActorMayRevert(predicate)
}

impl<P> AuthorizeRevert for ActorMayRevert<P>
where
    P: Fn(&ActorRef) -> bool + Clone + Send + Sync + 'static,
{
    fn authorize_revert(&self, parts: &Parts) -> impl Future<Output = Option<ActorRef>> + Send {
        let actor = parts
            .extensions
            .get::<AuditContext>()
            .and_then(|ctx| ctx.actor.as_ref())
            .filter(|actor| (self.0)(actor))
            .cloned();
        std::future::ready(actor)
    }
}

type BoxFuture<'a> = Pin<Box<dyn Future<Output = Option<ActorRef>> + Send + 'a>>;

trait ErasedAuthorizeRevert: Send + Sync {
    fn authorize_revert<'a>(&'a self, parts: &'a Parts) -> BoxFuture<'a>;
}

impl<A: AuthorizeRevert> ErasedAuthorizeRevert for A {
    fn authorize_revert<'a>(&'a self, parts: &'a Parts) -> BoxFuture<'a> {
        Box::pin(AuthorizeRevert::authorize_revert(self, parts))
    }
}

/// A type-erased [`AuthorizeRevert`].
#[derive(Clone)]
pub(super) struct DynAuthorizeRevert(Arc<dyn ErasedAuthorizeRevert>);

impl DynAuthorizeRevert {
    pub(super) fn new(authorize: impl AuthorizeRevert) -> Self {
        Self(Arc::new(authorize))
    }

    pub(super) async fn actor(&self, parts: &Parts) -> Option<ActorRef> {
        self.0.authorize_revert(parts).await
    }
}
