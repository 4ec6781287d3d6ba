//! Request context attached to a database transaction.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::{ActorRef, TraceId};

/// The names of the transaction-local settings the capture triggers read.
pub mod settings {
    /// JSON actor reference (`{"type":"user","id":"42"}`).
    pub const ACTOR_REF: &str = "threadline.actor_ref";
    /// Request id of the HTTP request (or job run) that made the change.
    pub const REQUEST_ID: &str = "threadline.request_id";
    /// Correlation id that ties several requests and jobs together.
    pub const CORRELATION_ID: &str = "threadline.correlation_id";
    /// Client IP address (text form of `inet`).
    pub const REMOTE_IP: &str = "threadline.remote_ip";
    /// Free-form source label, such as `web` or `worker`.
    pub const SOURCE: &str = "threadline.source";
    /// Free-form JSON metadata.
    pub const META: &str = "threadline.meta";
    /// W3C trace id (32 lowercase hex digits) of the request or job that made the change.
    pub const TRACE_ID: &str = "threadline.trace_id";
    /// Internal cache of the current `audit_transactions` id; never set it yourself.
    pub const TRANSACTION_CACHE: &str = "threadline.txn";
}

/// Who and why, for every change made in one database transaction.
///
/// ```
/// use threadline_core::{ActorRef, AuditContext};
/// let ctx = AuditContext::new()
///     .with_actor(ActorRef::user("42")?)
///     .with_request_id("req-1")
///     .with_correlation_id("order-9");
/// assert_eq!(ctx.settings()[0], ("threadline.actor_ref", r#"{"type":"user","id":"42"}"#.to_string()));
/// # Ok::<(), threadline_core::ActorRefError>(())
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AuditContext {
    /// The actor; `None` is stored as the anonymous actor (see
    /// [`effective_actor`](Self::effective_actor)).
    pub actor: Option<ActorRef>,
    /// Request id (`x-request-id`).
    pub request_id: Option<String>,
    /// Correlation id (`x-correlation-id`).
    pub correlation_id: Option<String>,
    /// The client's address.
    pub remote_ip: Option<IpAddr>,
    /// A source label such as `web` or `worker`.
    pub source: Option<String>,
    /// Free-form JSON metadata.
    pub meta: Option<serde_json::Value>,
    /// The W3C trace id (`traceparent`, or the current OpenTelemetry span in the web
    /// integrations).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<TraceId>,
}

impl AuditContext {
    /// An empty context.
    pub fn new() -> Self {
        Self::default()
    }

    /// A context carrying only an actor.
    pub fn for_actor(actor: ActorRef) -> Self {
        Self::new().with_actor(actor)
    }

    /// Sets the actor.
    #[must_use]
    pub fn with_actor(mut self, actor: ActorRef) -> Self {
        self.actor = Some(actor);
        self
    }

    /// Sets the request id.
    #[must_use]
    pub fn with_request_id(mut self, id: impl Into<String>) -> Self {
        self.request_id = Some(id.into());
        self
    }

    /// Sets the correlation id.
    #[must_use]
    pub fn with_correlation_id(mut self, id: impl Into<String>) -> Self {
        self.correlation_id = Some(id.into());
        self
    }

    /// Sets the client address.
    #[must_use]
    pub fn with_remote_ip(mut self, ip: IpAddr) -> Self {
        self.remote_ip = Some(ip);
        self
    }

    /// Sets the source label.
    #[must_use]
    pub fn with_source(mut self, source: impl Into<String>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// Sets the metadata.
    #[must_use]
    pub fn with_meta(mut self, meta: serde_json::Value) -> Self {
        self.meta = Some(meta);
        self
    }

    /// Sets the trace id.
    #[must_use]
    pub fn with_trace_id(mut self, id: TraceId) -> Self {
        self.trace_id = Some(id);
        self
    }

    /// The actor this context records: its actor, or [`ActorRef::anonymous`] when it has none.
    ///
    /// "No actor" has one meaning everywhere: a change or action made under a Threadline context
    /// without an actor belongs to the anonymous actor, so `actor_history(&ActorRef::anonymous())`
    /// and the `anonymous` filters find both. A NULL `actor_ref` is left only by writes made
    /// outside any Threadline context (raw SQL on the pool, `psql`, a migration); `doctor`
    /// reports those as unattributed.
    ///
    /// ```
    /// use threadline_core::{ActorRef, AuditContext};
    /// assert_eq!(AuditContext::new().effective_actor(), ActorRef::anonymous());
    /// ```
    pub fn effective_actor(&self) -> ActorRef {
        self.actor.clone().unwrap_or_else(ActorRef::anonymous)
    }

    /// Every setting name with its value, in a fixed order. Unset fields map to `""`, which the
    /// triggers read as NULL, so applying a context also clears earlier values; the actor is
    /// always set (the [`effective_actor`](Self::effective_actor)).
    pub fn settings(&self) -> [(&'static str, String); 7] {
        let text = |v: &Option<String>| v.clone().unwrap_or_default();
        [
            (settings::ACTOR_REF, self.effective_actor().to_json()),
            (settings::REQUEST_ID, text(&self.request_id)),
            (settings::CORRELATION_ID, text(&self.correlation_id)),
            (
                settings::REMOTE_IP,
                self.remote_ip.map(|ip| ip.to_string()).unwrap_or_default(),
            ),
            (settings::SOURCE, text(&self.source)),
            (
                settings::META,
                self.meta
                    .as_ref()
                    .map(|m| m.to_string())
                    .unwrap_or_default(),
            ),
            (
                settings::TRACE_ID,
                self.trace_id.map(|t| t.to_string()).unwrap_or_default(),
            ),
        ]
    }
}

/// Context to carry into a background job's payload and restore in the worker.
///
/// The trace id travels with it, so the job's changes link to the trace of the request that
/// enqueued it.
///
/// ```
/// use threadline_core::{ActorRef, JobContext};
/// let trace = "4bf92f3577b34da6a3ce929d0e0e4736".parse()?;
/// let job = JobContext::new(ActorRef::job("mailer")?)
///     .with_correlation_id("req-1")
///     .with_job_id("42")
///     .with_trace_id(trace);
/// let payload = serde_json::to_string(&job).unwrap();
/// let restored: JobContext = serde_json::from_str(&payload).unwrap();
/// assert_eq!(restored.to_context().correlation_id.as_deref(), Some("req-1"));
/// assert_eq!(restored.to_context().trace_id, Some(trace));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobContext {
    /// The actor the job runs as.
    pub actor: ActorRef,
    /// Correlation id inherited from the request that enqueued the job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    /// The job's own id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    /// Trace id inherited from the request that enqueued the job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<TraceId>,
}

impl JobContext {
    /// A job context for an actor.
    pub fn new(actor: ActorRef) -> Self {
        Self {
            actor,
            correlation_id: None,
            job_id: None,
            trace_id: None,
        }
    }

    /// Sets the correlation id.
    #[must_use]
    pub fn with_correlation_id(mut self, id: impl Into<String>) -> Self {
        self.correlation_id = Some(id.into());
        self
    }

    /// Sets the job id.
    #[must_use]
    pub fn with_job_id(mut self, id: impl Into<String>) -> Self {
        self.job_id = Some(id.into());
        self
    }

    /// Sets the trace id (usually the enqueuing request's `AuditContext::trace_id`).
    #[must_use]
    pub fn with_trace_id(mut self, id: TraceId) -> Self {
        self.trace_id = Some(id);
        self
    }

    /// The context to apply in the worker's transaction (source `job`, job id as request id).
    pub fn to_context(&self) -> AuditContext {
        AuditContext {
            actor: Some(self.actor.clone()),
            request_id: self.job_id.clone(),
            correlation_id: self.correlation_id.clone(),
            remote_ip: None,
            source: Some("job".into()),
            meta: None,
            trace_id: self.trace_id,
        }
    }
}
