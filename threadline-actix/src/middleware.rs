//! The middleware that builds an [`AuditContext`] for every request.

use std::fmt;
use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::rc::Rc;

use actix_web::HttpMessage;
use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::http::header::HeaderName;
use threadline_core::{AuditContext, ContextHeaders, HeaderConfigError, TrustedProxies};

use crate::resolve::ResolveActor;

/// Middleware that puts an [`AuditContext`] into the request extensions.
///
/// The context holds the actor (from the resolver), the request id (`x-request-id`), the
/// correlation id (`x-correlation-id`), the client address (the peer, or a trusted
/// `x-forwarded-for`) and the trace id (with the `opentelemetry` feature, the current
/// OpenTelemetry span's; else, or without a valid span, the W3C `traceparent` header's).
/// Header values over 256 bytes, with control characters or not UTF-8, and a `traceparent`
/// that breaks the W3C format are dropped and logged with `tracing`; they never fail the
/// request. It never touches the database.
///
/// ```
/// use actix_web::{App, HttpRequest, web};
/// use threadline_actix::{ActorRef, Audit, ThreadlineMiddleware};
///
/// fn actor_fn(req: &HttpRequest) -> Option<ActorRef> {
///     ActorRef::user(req.headers().get("x-user-id")?.to_str().ok()?).ok()
/// }
///
/// async fn whoami(audit: Audit) -> String {
///     format!("{:?}", audit.actor)
/// }
///
/// let app = App::new()
///     .wrap(ThreadlineMiddleware::new(actor_fn))
///     .route("/whoami", web::get().to(whoami));
/// ```
#[derive(Clone)]
pub struct ThreadlineMiddleware<R> {
    resolver: R,
    config: Rc<Config>,
}

#[derive(Debug, Clone, Default)]
struct Config {
    headers: ContextHeaders,
    source: Option<String>,
}

impl<R: ResolveActor> ThreadlineMiddleware<R> {
    /// Middleware resolving the actor with `resolver`: a function or closure over
    /// `&HttpRequest` returning `Option<ActorRef>`, or any [`ResolveActor`].
    pub fn new(resolver: R) -> Self {
        Self {
            resolver,
            config: Rc::default(),
        }
    }

    fn map_headers(
        mut self,
        f: impl FnOnce(ContextHeaders) -> Result<ContextHeaders, HeaderConfigError>,
    ) -> Self {
        let config = Rc::make_mut(&mut self.config);
        if let Ok(headers) = f(config.headers.clone()) {
            config.headers = headers;
        }
        self
    }

    /// Sets all header settings at once.
    #[must_use]
    pub fn context_headers(self, headers: ContextHeaders) -> Self {
        self.map_headers(|_| Ok(headers))
    }

    /// Reads the request id from this header instead of `x-request-id`.
    #[must_use]
    pub fn request_id_header(self, name: HeaderName) -> Self {
        self.map_headers(|h| h.request_id_header(name.as_str()))
    }

    /// Reads the correlation id from this header instead of `x-correlation-id`.
    #[must_use]
    pub fn correlation_id_header(self, name: HeaderName) -> Self {
        self.map_headers(|h| h.correlation_id_header(name.as_str()))
    }

    /// Reads forwarded client addresses from this header instead of `x-forwarded-for`.
    #[must_use]
    pub fn forwarded_for_header(self, name: HeaderName) -> Self {
        self.map_headers(|h| h.forwarded_for_header(name.as_str()))
    }

    /// Believes `x-forwarded-for` from these proxies (by default it is ignored and the client
    /// address is the TCP peer).
    #[must_use]
    pub fn trusted_proxies(self, trusted: TrustedProxies) -> Self {
        self.map_headers(|h| Ok(h.with_trusted_proxies(trusted)))
    }

    /// Sets the context's `source` label, such as `"web"`.
    #[must_use]
    pub fn source(mut self, source: impl Into<String>) -> Self {
        Rc::make_mut(&mut self.config).source = Some(source.into());
        self
    }
}

impl<R: fmt::Debug> fmt::Debug for ThreadlineMiddleware<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThreadlineMiddleware")
            .field("resolver", &self.resolver)
            .field("headers", &self.config.headers)
            .field("source", &self.config.source)
            .finish()
    }
}

impl<S, B, R> Transform<S, ServiceRequest> for ThreadlineMiddleware<R>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
    R: ResolveActor,
{
    type Response = ServiceResponse<B>;
    type Error = actix_web::Error;
    type Transform = ThreadlineService<S, R>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(ThreadlineService {
            service: Rc::new(service),
            resolver: self.resolver.clone(),
            config: self.config.clone(),
        }))
    }
}

/// The service made by [`ThreadlineMiddleware`].
pub struct ThreadlineService<S, R> {
    service: Rc<S>,
    resolver: R,
    config: Rc<Config>,
}

impl<S, R> fmt::Debug for ThreadlineService<S, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThreadlineService").finish_non_exhaustive()
    }
}

impl Config {
    fn context(&self, req: &ServiceRequest) -> AuditContext {
        let headers = req.headers();
        let extracted = self.headers.extract(
            |name| headers.get_all(name).map(|v| v.as_bytes()).collect(),
            req.peer_addr().map(|a| a.ip()),
            None,
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

impl<S, B, R> Service<ServiceRequest> for ThreadlineService<S, R>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
    R: ResolveActor,
{
    type Response = ServiceResponse<B>;
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>>>>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let service = self.service.clone();
        let resolver = self.resolver.clone();
        let mut ctx = self.config.context(&req);
        Box::pin(async move {
            ctx.actor = resolver.resolve(req.request()).await;
            req.extensions_mut().insert(ctx);
            service.call(req).await
        })
    }
}
