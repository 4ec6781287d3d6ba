//! The framework-neutral half of a web request's audited transaction and action, which
//! threadline-axum and threadline-actix adapt to their extractor traits.

use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex};

use sqlx::{PgConnection, Postgres, Transaction};
use threadline_core::{ActionOptions, ActionStatus, AuditContext};

use crate::action::current_audit_transaction_id;
use crate::context::PoolExt;
use crate::error::Result;
use crate::threadline::Threadline;

/// Where a request's [`RequestTransaction`] leaves the id of the audit transaction it
/// committed, so that the action recorded after the handler ([`RequestAction`]) links to
/// those changes. Clones share one slot.
#[derive(Debug, Clone, Default)]
pub struct ActionLink(Arc<Mutex<Option<i64>>>);

impl ActionLink {
    /// Keeps `id` (a `None` leaves the slot as it was).
    pub fn set(&self, id: Option<i64>) {
        if let (Some(id), Ok(mut slot)) = (id, self.0.lock()) {
            *slot = Some(id);
        }
    }

    /// The id kept, if any.
    pub fn get(&self) -> Option<i64> {
        self.0.lock().ok().and_then(|slot| *slot)
    }
}

/// A request's database transaction with its audit context already applied: what the web
/// crates' `AuditedTx` extractors hold. It derefs to `PgConnection`, so write with
/// `.execute(&mut *tx)`; [`commit`](Self::commit) keeps the writes, dropping it rolls them
/// back.
///
/// ```no_run
/// # async fn run(threadline: threadline_sqlx::Threadline) -> threadline_sqlx::Result<()> {
/// use threadline_sqlx::{ActorRef, AuditContext, RequestTransaction};
/// let ctx = AuditContext::for_actor(ActorRef::user("42")?).with_request_id("req-1");
/// let mut tx = RequestTransaction::begin(&threadline, &ctx, None).await?;
/// sqlx::query("UPDATE posts SET title = 'Hello' WHERE id = 1").execute(&mut *tx).await?;
/// tx.commit().await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct RequestTransaction {
    tx: Transaction<'static, Postgres>,
    link: Option<ActionLink>,
}

impl RequestTransaction {
    /// Begins a transaction on the handle's pool with `ctx` applied, in one round trip
    /// ([`PoolExt::begin_with_context`]). With a `link`, [`commit`](Self::commit) leaves the
    /// audit transaction's id there.
    pub async fn begin(
        threadline: &Threadline,
        ctx: &AuditContext,
        link: Option<ActionLink>,
    ) -> Result<Self> {
        let tx = threadline.pool().begin_with_context(ctx).await?;
        Ok(Self { tx, link })
    }

    /// Commits the writes (and their audit rows). With a link, it first reads the audit
    /// transaction's id (one more round trip) so that the request's action links to these
    /// changes; a failure there is logged and does not stop the commit.
    pub async fn commit(mut self) -> Result<(), sqlx::Error> {
        if let Some(link) = &self.link {
            match current_audit_transaction_id(&mut self.tx).await {
                Ok(id) => link.set(id),
                Err(error) => {
                    tracing::warn!(%error, "threadline: cannot link the action to this transaction")
                }
            }
        }
        self.tx.commit().await
    }

    /// Rolls back explicitly (dropping does the same, without waiting for the server).
    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        self.tx.rollback().await
    }

    /// The underlying sqlx transaction.
    pub fn into_inner(self) -> Transaction<'static, Postgres> {
        self.tx
    }

    /// The underlying sqlx transaction, for APIs that want `&mut Transaction`.
    pub fn transaction(&mut self) -> &mut Transaction<'static, Postgres> {
        &mut self.tx
    }
}

impl Deref for RequestTransaction {
    type Target = PgConnection;

    fn deref(&self) -> &PgConnection {
        &self.tx
    }
}

impl DerefMut for RequestTransaction {
    fn deref_mut(&mut self) -> &mut PgConnection {
        &mut self.tx
    }
}

/// The action a request records after its handler ran (what `#[audited]` expands to): the
/// request's actor (anonymous when none), request and correlation ids, the handler's outcome,
/// and the audit transaction its writes committed in, when a [`RequestTransaction`] sharing
/// the [`link`](Self::link) committed.
#[derive(Debug)]
pub struct RequestAction {
    threadline: Threadline,
    ctx: AuditContext,
    link: ActionLink,
}

impl RequestAction {
    /// An action for the request with context `ctx`.
    pub fn new(threadline: Threadline, ctx: AuditContext) -> Self {
        Self {
            threadline,
            ctx,
            link: ActionLink::default(),
        }
    }

    /// The slot to hand to the request's [`RequestTransaction`].
    pub fn link(&self) -> &ActionLink {
        &self.link
    }

    /// Records the action `name` with status ok when `succeeded`, else error. A failure is
    /// logged, never returned: the handler's own writes have already committed.
    pub async fn finish(self, name: &str, succeeded: bool) {
        let status = if succeeded {
            ActionStatus::Ok
        } else {
            ActionStatus::Error
        };
        let actor = self.ctx.effective_actor();
        let mut options = ActionOptions::from_context(&self.ctx).status(status);
        options.transaction_id = self.link.get();
        let recorded = self.threadline.record_action(name, &actor, options).await;
        if let Err(error) = recorded {
            tracing::error!(action = name, %error, "threadline: could not record the action");
        }
    }
}
