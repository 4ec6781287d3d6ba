//! The Tower layer that builds an [`AuditContext`] for every request.

use std::fmt;
use std::future::Future;
#[cfg(feature = "connect-info")]
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::request::Parts;
use http::{HeaderName, Request};
use threadline_core::{AuditContext, ContextHeaders, TrustedProxies};
use tower_layer::Layer;
use tower_service::Service;

use crate::resolve::ResolveActor;

/// A Tower layer that puts an [`AuditContext`] into the request extensions.
///
/// The context holds the actor (from the resolver given to [`ThreadlineLayer::new`]), the
/// request id (`x-request-id`, else tower-http's `RequestId` extension), the correlation id
/// (`x-correlation-id`), the client address (`ConnectInfo<SocketAddr>`, or a trusted
/// `x-forwarded-for`) and the trace id (with the `opentelemetry` feature, the current
/// OpenTelemetry span's; else, or without a valid span, the W3C `traceparent` header's).
/// Header values over 256 bytes, with control characters or not UTF-8, and a `traceparent`
/// that breaks the W3C format are dropped and logged with `tracing`; they never fail the
/// request. The layer never
/// touches the database: [`Audit`](crate::Audit) reads the context and
/// [`AuditedTx`](crate::AuditedTx) applies it to a transaction.
///
/// ```
/// use axum::{Router, routing::get};
/// use http::request::Parts;
/// use threadline_axum::{ActorRef, Audit, ThreadlineLayer, TrustedProxies};
///
/// fn actor_fn(parts: &Parts) -> Option<ActorRef> {
///     let id = parts.headers.get("x-user-id")?.to_str().ok()?;
///     ActorRef::user(id).ok()
/// }
///
/// async fn whoami(Audit(ctx): Audit) -> String {
///     format!("{:?}", ctx.actor)
/// }
///
/// let app: Router = Router::new()
///     .route("/whoami", get(whoami))
///     .layer(ThreadlineLayer::new(actor_fn).trusted_proxies(TrustedProxies::Hops(1)));
/// ```
#[derive(Clone)]
pub struct ThreadlineLayer<R> {
    resolver: R,
    config: Arc<Config>,
}

#[derive(Debug, Clone, Default)]
struct Config {
    headers: ContextHeaders,
    source: Option<String>,
}

impl<R: ResolveActor> ThreadlineLayer<R> {
    /// A layer resolving the actor with `resolver`: a function or closure over
    /// `&http::request::Parts` returning `Option<ActorRef>`, or any [`ResolveActor`] (such as
    /// [`async_resolver`](crate::async_resolver) for lookups that await).
    pub fn new(resolver: R) -> Self {
        Self {
            resolver,
            config: Arc::default(),
        }
    }

    fn map_config(mut self, f: impl FnOnce(&mut Config)) -> Self {
        f(Arc::make_mut(&mut self.config));
        self
    }

    /// Sets all header settings at once.
    #[must_use]
    pub fn context_headers(self, headers: ContextHeaders) -> Self {
        self.map_config(|c| c.headers = headers)
    }

    /// Reads the request id from this header instead of `x-request-id`.
    #[must_use]
    pub fn request_id_header(self, name: HeaderName) -> Self {
        self.map_config(|c| c.headers = rename(&c.headers, |h| h.request_id_header(name.as_str())))
    }

    /// Reads the correlation id from this header instead of `x-correlation-id`.
    #[must_use]
    pub fn correlation_id_header(self, name: HeaderName) -> Self {
        self.map_config(|c| {
            c.headers = rename(&c.headers, |h| h.correlation_id_header(name.as_str()))
        })
    }

    /// Reads forwarded client addresses from this header instead of `x-forwarded-for`.
    #[must_use]
    pub fn forwarded_for_header(self, name: HeaderName) -> Self {
        self.map_config(|c| {
            c.headers = rename(&c.headers, |h| h.forwarded_for_header(name.as_str()))
        })
    }

    /// Believes `x-forwarded-for` from these proxies (by default it is ignored and the client
    /// address is the TCP peer from `ConnectInfo<SocketAddr>`).
    #[must_use]
    pub fn trusted_proxies(self, trusted: TrustedProxies) -> Self {
        self.map_config(|c| c.headers = c.headers.clone().with_trusted_proxies(trusted))
    }

    /// Sets the context's `source` label, such as `"web"`.
    #[must_use]
    pub fn source(self, source: impl Into<String>) -> Self {
        let source = source.into();
        self.map_config(|c| c.source = Some(source))
    }
}

/// Applies a rename that cannot fail for a valid `HeaderName`; keeps the old settings otherwise.
fn rename(
    headers: &ContextHeaders,
    f: impl FnOnce(ContextHeaders) -> Result<ContextHeaders, threadline_core::HeaderConfigError>,
) -> ContextHeaders {
    f(headers.clone()).unwrap_or_else(|_| headers.clone())
}

impl<R: fmt::Debug> fmt::Debug for ThreadlineLayer<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThreadlineLayer")
            .field("resolver", &self.resolver)
            .field("headers", &self.config.headers)
            .field("source", &self.config.source)
            .finish()
    }
}

impl<S, R: Clone> Layer<S> for ThreadlineLayer<R> {
    type Service = ThreadlineService<S, R>;

    fn layer(&self, inner: S) -> Self::Service {
        ThreadlineService {
            inner,
            resolver: self.resolver.clone(),
            config: self.config.clone(),
        }
    }
}

/// The service made by [`ThreadlineLayer`].
///
/// Named `ThreadlineService` rather than tower-http's usual `Threadline<S>` so that it does
/// not clash with `threadline_sqlx::Threadline`, the query handle used in the same handlers.
#[derive(Clone)]
pub struct ThreadlineService<S, R> {
    inner: S,
    resolver: R,
    config: Arc<Config>,
}

impl<S: fmt::Debug, R: fmt::Debug> fmt::Debug for ThreadlineService<S, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThreadlineService")
            .field("inner", &self.inner)
            .field("resolver", &self.resolver)
            .finish_non_exhaustive()
    }
}

impl Config {
    fn context(&self, parts: &Parts) -> AuditContext {
        let peer = peer_ip(parts);
        let extracted = self.headers.extract(
            |name| {
                parts
                    .headers
                    .get_all(name)
                    .iter()
                    .map(|v| v.as_bytes())
                    .collect()
            },
            peer,
            extension_request_id(parts),
        );
        for dropped in &extracted.dropped {
            tracing::warn!(
                header = %dropped.header,
                reason = %dropped.reason,
                "threadline: ignoring header value"
            );
        }
        // The current span, when there is one, is the trace the application records.
        #[cfg(feature = "opentelemetry")]
        if let Some(id) = threadline_core::current_span_trace_id() {
            return extracted.to_context(self.source.clone()).with_trace_id(id);
        }
        extracted.to_context(self.source.clone())
    }
}

/// The TCP peer from axum's `ConnectInfo<SocketAddr>` (or `MockConnectInfo` in tests).
#[cfg(feature = "connect-info")]
fn peer_ip(parts: &Parts) -> Option<std::net::IpAddr> {
    use axum::extract::connect_info::{ConnectInfo, MockConnectInfo};
    let ext = &parts.extensions;
    ext.get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .or_else(|| ext.get::<MockConnectInfo<SocketAddr>>().map(|c| c.0.ip()))
}

#[cfg(not(feature = "connect-info"))]
fn peer_ip(_: &Parts) -> Option<std::net::IpAddr> {
    None
}

#[cfg(feature = "tower-http")]
fn extension_request_id(parts: &Parts) -> Option<&[u8]> {
    parts
        .extensions
        .get::<tower_http::request_id::RequestId>()
        .map(|id| id.header_value().as_bytes())
}

#[cfg(not(feature = "tower-http"))]
fn extension_request_id(_: &Parts) -> Option<&[u8]> {
    None
}

impl<S, R, B> Service<Request<B>> for ThreadlineService<S, R>
where
    S: Service<Request<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    R: ResolveActor,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Response, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        // The clone is the one that was not polled ready; keep it for the next call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let resolver = self.resolver.clone();
        let config = self.config.clone();
        ResponseFuture {
            inner: Box::pin(async move {
                let (mut parts, body) = req.into_parts();
                let mut ctx = config.context(&parts);
                ctx.actor = resolver.resolve(&parts).await;
                parts.extensions.insert(ctx);
                inner.call(Request::from_parts(parts, body)).await
            }),
        }
    }
}

/// The response future of [`ThreadlineService`].
pub struct ResponseFuture<T, E> {
    inner: Pin<Box<dyn Future<Output = Result<T, E>> + Send>>,
}

impl<T, E> Future for ResponseFuture<T, E> {
    type Output = Result<T, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx)
    }
}

impl<T, E> fmt::Debug for ResponseFuture<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
