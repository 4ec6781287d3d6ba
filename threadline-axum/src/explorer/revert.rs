//! Reverting a transaction from the explorer: the plan page, and the POST that executes it.

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum_core::response::Response;
use http::request::Parts;
use http::{HeaderValue, StatusCode, header};
use maud::{Markup, html};
use threadline_core::ActorRef;
use threadline_sqlx::{
    Error as ThreadlineError, PlannedRevert, RevertOutcome, RevertPlan, RevertTarget, StepStatus,
    TransactionExt,
};

use super::error::ExplorerError;
use super::html::{BasePath, View};
use super::params::{self, NoQuery, Params};
use super::{Explorer, RevertAccess, State as AppState, csrf};

/// The form field that carries the token.
const TOKEN_FIELD: &str = "token";

/// Whether this request may revert (for the transaction page's button).
pub(super) async fn may_revert(state: &Explorer, parts: &Parts) -> bool {
    match &state.revert {
        Some(access) => access.authorize.actor(parts).await.is_some(),
        None => false,
    }
}

/// The transaction page's "Revert this transaction…" button (a link to the plan).
pub(super) fn button(view: &View<'_>, id: i64) -> Markup {
    html! {
        p.revert {
            a.button.revert href=(view.link(&format!("/transactions/{id}/revert"), [])) {
                "Revert this transaction…"
            }
        }
    }
}

/// Checks that reverting is on and that the request may revert; returns the access and the
/// actor to revert as.
async fn access<'a>(
    state: &'a Explorer,
    parts: &Parts,
) -> Result<(&'a RevertAccess, ActorRef), ExplorerError> {
    let access = state.revert.as_ref().ok_or_else(|| {
        ExplorerError::NotFound(
            "Reverting from the audit explorer is not enabled (ExplorerOptions::allow_revert)."
                .to_owned(),
        )
    })?;
    let actor = access.authorize.actor(parts).await.ok_or_else(|| {
        tracing::info!(path = %parts.uri.path(), "threadline explorer: revert denied by `allow_revert`");
        ExplorerError::RevertDenied(
            "you may read this audit trail, but the explorer's `allow_revert` check does not let you revert".to_owned(),
        )
    })?;
    Ok((access, actor))
}

async fn plan(state: &Explorer, id: i64) -> Result<PlannedRevert, ExplorerError> {
    Ok(state
        .threadline
        .revert(RevertTarget::Transaction(id))
        .plan()
        .await?)
}

/// `GET /transactions/{id}/revert`: the plan, its conflicts, and (when it can run) the form
/// that executes it.
pub(super) async fn plan_page(
    State(state): State<AppState>,
    Extension(BasePath(base)): Extension<BasePath>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    parts: Parts,
) -> Response {
    let view = state.view(&base);
    let result = async {
        Params::<NoQuery>::parse(raw.as_deref())?;
        let id = params::transaction_id(&id)?;
        let (access, actor) = access(&state, &parts).await?;
        let planned = plan(&state, id).await?;
        Ok::<_, ExplorerError>((id, access, actor, planned))
    }
    .await;
    let (id, access, actor, planned) = match result {
        Ok(found) => found,
        Err(e) => return view.error(&e),
    };
    let existing = csrf::session(&parts.headers);
    let Some(session) = existing.clone().or_else(csrf::new_session) else {
        return view.error(&ExplorerError::RevertDenied(
            "the server has no random bytes to start a session with; try again".to_owned(),
        ));
    };
    let token = csrf::token(&access.secret, &session, id, &actor);
    let body = html! {
        (plan_summary(&view, &planned))
        @if planned.is_clean() {
            form.revert method="post" action=(view.link(&format!("/transactions/{id}/revert"), [])) {
                input type="hidden" name=(TOKEN_FIELD) value=(token);
                p { "The revert runs in one transaction, as " (view.actor_link(&actor)) ", and is recorded in the audit trail with the action " code { "threadline.revert" } "." }
                div.actions {
                    button.danger type="submit" { "Revert transaction #" (id) }
                    a href=(view.link(&format!("/transactions/{id}"), [])) { "Cancel" }
                }
            }
        } @else {
            (refusal(&view, id, &planned))
        }
    };
    let mut response = view.page(StatusCode::OK, &format!("Revert transaction #{id}"), body);
    if existing.is_none()
        && let Ok(cookie) = HeaderValue::from_str(&csrf::set_cookie(&session, &base))
    {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

/// `POST /transactions/{id}/revert`: checks the revert authorization and the token, then
/// executes the revert under the authorized actor.
pub(super) async fn execute(
    State(state): State<AppState>,
    Extension(BasePath(base)): Extension<BasePath>,
    Path(id): Path<String>,
    parts: Parts,
    body: Bytes,
) -> Response {
    let view = state.view(&base);
    let checked = async {
        let id = params::transaction_id(&id)?;
        let (access, actor) = access(&state, &parts).await?;
        let token = form_token(&body)?;
        let session = csrf::session(&parts.headers).ok_or_else(|| {
            ExplorerError::RevertDenied(
                "the request has no explorer session cookie, so its anti-forgery token cannot be checked; open the revert page again and submit its form".to_owned(),
            )
        })?;
        if !csrf::verify(&access.secret, &session, id, &actor, &token) {
            return Err(ExplorerError::RevertDenied(
                "the anti-forgery token is not valid for this session, transaction and user; open the revert page again and submit its form".to_owned(),
            ));
        }
        Ok((id, actor))
    }
    .await;
    let (id, actor) = match checked {
        Ok(checked) => checked,
        Err(e) => return view.error(&e),
    };
    match run(&state, &parts, id, &actor).await {
        Ok(outcome) => view.page(
            StatusCode::OK,
            &format!("Transaction #{id} reverted"),
            done(&view, id, &outcome),
        ),
        Err(ExplorerError::Threadline(ThreadlineError::RevertRefused(plan))) => view.page(
            StatusCode::CONFLICT,
            &format!("Revert transaction #{id}"),
            html! { (plan_summary(&view, &plan)) (refusal(&view, id, &plan)) },
        ),
        Err(e) => view.error(&e),
    }
}

/// The form's token: exactly one `token` field.
fn form_token(body: &[u8]) -> Result<String, ExplorerError> {
    let mut tokens = form_urlencoded::parse(body).filter(|(name, _)| name == TOKEN_FIELD);
    match (tokens.next(), tokens.next()) {
        (Some((_, token)), None) if !token.is_empty() => Ok(token.into_owned()),
        _ => Err(ExplorerError::RevertDenied(
            "the request carries no anti-forgery token: a revert runs only from the form on its plan page".to_owned(),
        )),
    }
}

/// Plans and executes the revert in one transaction under `actor` (with the request's other
/// audit context, when the ThreadlineLayer set one), and commits it.
async fn run(
    state: &Explorer,
    parts: &Parts,
    id: i64,
    actor: &ActorRef,
) -> Result<RevertOutcome, ExplorerError> {
    let planned = plan(state, id).await?;
    let mut context = parts
        .extensions
        .get::<threadline_core::AuditContext>()
        .cloned()
        .unwrap_or_default();
    context.actor = Some(actor.clone());
    let mut tx = state
        .threadline
        .pool()
        .begin()
        .await
        .map_err(ThreadlineError::from)?;
    tx.with_context(&context).await?;
    let outcome = planned.execute(&mut tx).await?;
    tx.commit().await.map_err(ThreadlineError::from)?;
    Ok(outcome)
}

fn plan_summary(view: &View<'_>, plan: &RevertPlan) -> Markup {
    let conflicts = plan.conflicts().count();
    let not_revertible = plan.not_revertible().count();
    html! {
        section.revert-plan {
            p {
                (plan.steps.len()) " row(s) to restore, in reverse capture order: "
                (conflicts) " conflicting, " (not_revertible) " not revertible."
            }
            @for warning in &plan.warnings {
                p.warning role="note" { "Warning: " (warning) }
            }
            table.steps {
                thead { tr { th { "Change" } th { "Table" } th { "Key" } th { "Was" } th { "Revert does" } th { "Status" } } }
                tbody {
                    @for step in &plan.steps {
                        tr class={ "step step-" (status_class(&step.status)) } {
                            td { "#" (step.change_id) }
                            td { (step.table) }
                            td { code { (step.key.to_string()) } }
                            td { (super::html::op(step.op)) }
                            td { (step.action.to_string()) }
                            td { (status(view, &step.status)) }
                        }
                    }
                }
            }
            details.sql open {
                summary { "The plan, with its SQL" }
                pre { (plan.render()) }
            }
        }
    }
}

fn status_class(status: &StepStatus) -> &'static str {
    match status {
        StepStatus::Ready => "ready",
        StepStatus::Conflict { .. } => "conflict",
        StepStatus::NotRevertible { .. } => "not-revertible",
        StepStatus::Applied => "applied",
        StepStatus::Skipped { .. } => "skipped",
    }
}

fn status(view: &View<'_>, status: &StepStatus) -> Markup {
    match status {
        StepStatus::Ready => html! { "ready" },
        StepStatus::Conflict { later } => html! {
            strong { "conflict" } ": changed later by change #" (later.change_id) " in "
            (view.transaction_link(later.transaction_id)) " by " (view.actor(later.actor_ref.as_ref()))
        },
        StepStatus::NotRevertible { reason } => html! { strong { "not revertible" } ": " (reason) },
        StepStatus::Applied => html! { "applied" },
        StepStatus::Skipped { reason } => html! { "skipped: " (reason) },
    }
}

fn refusal(view: &View<'_>, id: i64, plan: &RevertPlan) -> Markup {
    html! {
        p.error role="alert" {
            "This revert cannot run: "
            @if let Some(refusal) = plan.refusal() { (refusal.to_string()) }
            " To revert the other rows and leave these, use the command line: "
            code { "threadline revert --transaction " (id) " --actor kind:id --skip-conflicts --execute" } "."
        }
        p { a href=(view.link(&format!("/transactions/{id}"), [])) { "Back to transaction #" (id) } }
    }
}

fn done(view: &View<'_>, id: i64, outcome: &RevertOutcome) -> Markup {
    html! {
        p.done role="status" {
            (outcome.applied().len()) " row(s) of transaction " (view.transaction_link(id)) " restored"
            @match outcome.transaction_id {
                Some(revert) => {
                    ", in the revert's own audited transaction " (view.transaction_link(revert)) "."
                }
                None => ".",
            }
        }
        @if let Some(revert) = outcome.transaction_id {
            p { a.revert-transaction href=(view.link(&format!("/transactions/{revert}"), [])) { "See the revert's transaction #" (revert) } }
        }
    }
}
