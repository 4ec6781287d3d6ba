//! The audit explorer (feature `explorer`): server-rendered pages over the audit trail, as an
//! axum [`Router`] that a host mounts under any path with
//! [`nest_service`](Router::nest_service), which routes the mount point with and without a
//! trailing slash (`/admin/audit` and `/admin/audit/`) to the timeline. ([`nest`](Router::nest)
//! works too, but axum then leaves `/admin/audit/` to the host's fallback.)
//!
//! * **Timeline** (`/`): changes newest first, filtered by table, actor, time range,
//!   operation, correlation id and request id, with keyset "newer" / "older" links, under an
//!   activity chart (changes per hour or day for the filter, inline SVG).
//! * **Transaction** (`/transactions/{id}`): its context, its actions, and every change with a
//!   per-field before/after diff. When the table does not store `changed_from`, an update's
//!   before-values come from the row's previous version, marked "derived".
//! * **Row history** (`/row?table=…&pk=…`): every version of one row, newest first, with the
//!   diff to the version before, and the row's state "as of" a chosen time.
//! * **Actor** (`/actor?actor=user:42`): the actor's transactions.
//! * **Export** (`/export?format=csv|ndjson&…`): the timeline's filter streamed as a download,
//!   every matching change with its transaction and actions (the CLI's export format), with
//!   no row limit; the timeline links to it.
//! * **JSON** (`/api/timeline`, `/api/transactions/{id}`, `/api/row`, `/api/actor`): the same
//!   data, same parameters.
//!
//! Every request, pages, JSON and the stylesheet alike, first goes through the
//! [`Authorize`] check you pass to [`ExplorerOptions::new`]; a denied request gets a 403.
//! There is no default that lets everyone in. Responses carry a strict Content-Security-Policy
//! (no scripts at all; the stylesheet is embedded in the binary and served by the router),
//! every value from the trail is HTML-escaped, and bad query parameters get a 400 page that
//! says what was wrong.
//!
//! ```
//! use axum::Router;
//! use threadline_axum::explorer::{self, ExplorerOptions};
//! use threadline_axum::{ActorRef, ActorType, ThreadlineLayer};
//!
//! fn app(pool: sqlx::PgPool) -> Router {
//!     let threadline = threadline_sqlx::Threadline::new(pool);
//!     // Only admins; the actor comes from the ThreadlineLayer below.
//!     let admins = explorer::actor_is(|actor: &ActorRef| actor.kind() == ActorType::Admin);
//!     Router::new()
//!         .nest_service("/admin/audit", explorer::router(threadline, ExplorerOptions::new(admins)))
//!         .layer(ThreadlineLayer::new(|parts: &http::request::Parts| {
//!             let id = parts.headers.get("x-admin-id")?.to_str().ok()?;
//!             ActorRef::admin(id).ok()
//!         }))
//! }
//! ```

mod auth;
mod chart;
mod csrf;
mod diff;
mod error;
mod export;
mod html;
mod json;
mod pages;
mod params;
mod revert;
mod revert_auth;
mod url;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use threadline_core::DEFAULT_MASK_PLACEHOLDER;
use threadline_sqlx::Threadline;

pub use auth::{ActorIs, AsyncAuthorize, Authorize, actor_is, async_authorize};
pub use error::ExplorerError;
pub use revert_auth::{ActorMayRevert, AuthorizeRevert, actor_may_revert};

/// Default number of rows per timeline and actor page.
pub const DEFAULT_PAGE_SIZE: u32 = 50;

/// Default time limit of the timeline's activity chart: see [`ExplorerOptions::chart_timeout`].
pub const DEFAULT_CHART_TIMEOUT: Duration = Duration::from_secs(2);

/// How the explorer is set up: who may see it, where it is mounted, and how it shows values.
///
/// ```
/// use threadline_axum::explorer::ExplorerOptions;
///
/// // Any closure over the request parts works; this one asks the ThreadlineLayer's context.
/// let options = ExplorerOptions::new(|parts: &http::request::Parts| {
///     parts.extensions.get::<threadline_axum::AuditContext>()
///         .and_then(|ctx| ctx.actor.as_ref())
///         .is_some_and(|actor| actor.id() == Some("root"))
/// })
/// .base_path("/admin/audit")
/// .page_size(25)
/// .title("Shop audit trail");
/// # let _ = options;
/// ```
#[derive(Clone)]
pub struct ExplorerOptions {
    authorize: auth::DynAuthorize,
    base_path: Option<String>,
    page_size: u32,
    mask_placeholders: Vec<String>,
    title: String,
    revert: Option<revert_auth::DynAuthorizeRevert>,
    revert_secret: Option<[u8; 32]>,
    chart_timeout: Duration,
    trace_url: Option<String>,
}

impl std::fmt::Debug for ExplorerOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExplorerOptions")
            .field("base_path", &self.base_path)
            .field("page_size", &self.page_size)
            .field("mask_placeholders", &self.mask_placeholders)
            .field("title", &self.title)
            .field("allow_revert", &self.revert.is_some())
            .field("chart_timeout", &self.chart_timeout)
            .field("trace_url", &self.trace_url)
            .finish_non_exhaustive()
    }
}

impl ExplorerOptions {
    /// Options with the one required part: the check every request must pass (see
    /// [`Authorize`]; [`actor_is`] covers the usual "is the actor an admin" case).
    pub fn new(authorize: impl Authorize) -> Self {
        Self {
            authorize: auth::DynAuthorize::new(authorize),
            base_path: None,
            page_size: DEFAULT_PAGE_SIZE,
            mask_placeholders: vec![DEFAULT_MASK_PLACEHOLDER.to_owned()],
            title: "Audit trail".to_owned(),
            revert: None,
            revert_secret: None,
            chart_timeout: DEFAULT_CHART_TIMEOUT,
            trace_url: None,
        }
    }

    /// The public path the explorer is served under, used to build its links, e.g.
    /// `/admin/audit`. Unset (the default), the explorer uses the path it was
    /// mounted at; set it when a proxy in front changes the prefix.
    #[must_use]
    pub fn base_path(mut self, path: impl Into<String>) -> Self {
        self.base_path = Some(url::normalize_base(&path.into()));
        self
    }

    /// Rows per timeline and actor page when the request does not say (`size=`); 1 to
    /// 1,000, default [`DEFAULT_PAGE_SIZE`]. Out-of-range values are clamped.
    #[must_use]
    pub fn page_size(mut self, size: u32) -> Self {
        self.page_size = size.clamp(1, threadline_sqlx::Page::MAX_SIZE);
        self
    }

    /// Adds a mask placeholder (a table's `mask_placeholder`): values equal to it are shown
    /// as masked. `[REDACTED]`, the default placeholder, is always known.
    #[must_use]
    pub fn mask_placeholder(mut self, placeholder: impl Into<String>) -> Self {
        let placeholder = placeholder.into();
        if !self.mask_placeholders.contains(&placeholder) {
            self.mask_placeholders.push(placeholder);
        }
        self
    }

    /// The heading shown on every page (default "Audit trail").
    #[must_use]
    pub fn title(mut self, title: impl Into<String>) -> Self {
        self.title = title.into();
        self
    }

    /// How long the timeline's activity chart may take to count its changes (default
    /// [`DEFAULT_CHART_TIMEOUT`]), as the `statement_timeout` of its query; past it, the
    /// timeline shows without the chart and says why. `Duration::ZERO` turns the chart off.
    #[must_use]
    pub fn chart_timeout(mut self, limit: Duration) -> Self {
        self.chart_timeout = limit;
        self
    }

    /// Enables reverting a transaction from its page, for the requests `authorize` accepts
    /// (see [`AuthorizeRevert`]; it also names the actor the revert runs under). Off by
    /// default. The transaction page then shows a "Revert this transaction…" button, which
    /// leads to the revert's plan (its rows, SQL and conflicts); the revert runs only on that
    /// page's POST, which carries an anti-forgery token bound to the viewer's session (a
    /// cookie the explorer sets), the transaction and the actor.
    #[must_use]
    pub fn allow_revert(mut self, authorize: impl AuthorizeRevert) -> Self {
        self.revert = Some(revert_auth::DynAuthorizeRevert::new(authorize));
        self
    }

    /// The server secret that signs the revert form's anti-forgery tokens. Unset (the
    /// default), each [`router`] draws a random one, so a token is valid only on the process
    /// that served the form: set the same secret (32 random bytes, kept like any other key)
    /// on every instance behind a load balancer.
    #[must_use]
    pub fn revert_secret(mut self, secret: [u8; 32]) -> Self {
        self.revert_secret = Some(secret);
        self
    }

    /// Links each trace id to your tracing backend: `{trace_id}` in `template` is replaced
    /// by the transaction's trace id (32 hex digits), e.g.
    /// `"https://tempo.example/trace/{trace_id}"` or Jaeger's `".../trace/{trace_id}"`.
    /// Unset (the default), trace ids are shown without a link to a backend.
    #[must_use]
    pub fn trace_url(mut self, template: impl Into<String>) -> Self {
        self.trace_url = Some(template.into());
        self
    }
}

/// What reverting needs: the check, and the secret that signs tokens.
struct RevertAccess {
    authorize: revert_auth::DynAuthorizeRevert,
    secret: [u8; 32],
}

/// What every handler shares.
struct Explorer {
    threadline: Threadline,
    options: ExplorerOptions,
    /// `None` unless [`ExplorerOptions::allow_revert`] was set (and a secret could be had).
    revert: Option<RevertAccess>,
}

type State = Arc<Explorer>;

/// The explorer's routes, ready to mount under any path with
/// [`nest_service`](Router::nest_service) (which also routes the path with a trailing slash
/// to the timeline) or [`nest`](Router::nest) (into a router with any state `S`). Every route
/// checks `options`' [`Authorize`] first.
///
/// Routes (relative to the mount point): `/` timeline, `/transactions/{id}` (and, with
/// [`ExplorerOptions::allow_revert`], `/transactions/{id}/revert`), `/row`,
/// `/actor`, the same under `/api/` as JSON, `/export`, and `/assets/explorer.css`.
pub fn router<S>(threadline: Threadline, options: ExplorerOptions) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let revert = options.revert.clone().and_then(|authorize| {
        let secret = options.revert_secret.or_else(csrf::random::<32>);
        if secret.is_none() {
            tracing::error!(
                "threadline explorer: reverting is disabled, the system has no random bytes for its token secret; set ExplorerOptions::revert_secret"
            );
        }
        secret.map(|secret| RevertAccess { authorize, secret })
    });
    let state: State = Arc::new(Explorer {
        threadline,
        options,
        revert,
    });
    Router::new()
        .route("/", get(pages::timeline))
        .route("/transactions/{id}", get(pages::transaction))
        .route(
            "/transactions/{id}/revert",
            get(revert::plan_page).post(revert::execute),
        )
        .route("/row", get(pages::row))
        .route("/actor", get(pages::actor))
        .route("/export", get(export::export))
        .route("/api/timeline", get(json::timeline))
        .route("/api/transactions/{id}", get(json::transaction))
        .route("/api/row", get(json::row))
        .route("/api/actor", get(json::actor))
        .route(html::STYLESHEET_PATH, get(html::stylesheet))
        .fallback(pages::not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::guard,
        ))
        .with_state(state)
}
