//! The HTML pages, and the loaders they share with the JSON endpoints.

use std::collections::BTreeMap;

use axum::Extension;
use axum::extract::{Path, RawQuery, State};
use axum_core::response::Response;
use chrono::{DateTime, Utc};
use http::StatusCode;
use http::request::Parts;
use maud::{Markup, html};
use threadline_core::{ActorRef, AuditChange, AuditTransaction, ChangeOp};
use threadline_sqlx::{AsOf, PageOf, PreviousImage, TransactionDetail};

use super::chart::{activity_chart, load_activity};
use super::diff::{diff_with_previous, version_diffs};
use super::error::ExplorerError;
use super::html::{BasePath, View, changed_fields, op, opt, time};
use super::params::{self, ActorQuery, FilterFields, NoQuery, Params, RowQuery, TimelineQuery};
use super::{Explorer, State as AppState, revert};

impl Explorer {
    pub(super) fn view<'a>(&'a self, base: &'a str) -> View<'a> {
        View {
            base,
            title: &self.options.title,
            masks: &self.options.mask_placeholders,
            trace_url: self.options.trace_url.as_deref(),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Loaders (shared with the JSON endpoints)

pub(super) async fn load_timeline(
    state: &Explorer,
    query: &TimelineQuery,
) -> Result<PageOf<AuditChange>, ExplorerError> {
    let filter = params::filter(query.filter())?;
    let page = params::page(
        query.cursor.as_deref(),
        query.size.as_deref(),
        state.options.page_size,
    )?;
    Ok(state.threadline.timeline(&filter, page).await?)
}

pub(super) async fn load_transaction(
    state: &Explorer,
    id: &str,
    raw: Option<&str>,
) -> Result<TransactionDetail, ExplorerError> {
    Params::<NoQuery>::parse(raw)?;
    let id = params::transaction_id(id)?;
    state.threadline.transaction(id).await?.ok_or_else(|| {
        ExplorerError::NotFound(format!(
            "No audit transaction #{id}: it never existed or retention purged it."
        ))
    })
}

/// One row's history, and its state at `at` when asked.
pub(super) struct RowData {
    pub(super) table: String,
    pub(super) pk: String,
    pub(super) history: Vec<AuditChange>,
    pub(super) as_of: Option<(DateTime<Utc>, AsOf)>,
}

pub(super) async fn load_row(state: &Explorer, query: &RowQuery) -> Result<RowData, ExplorerError> {
    let table = params::table_name(&query.table)?;
    let pk_text = query.pk.as_str();
    let pk = params::primary_key(pk_text)?;
    let at = query
        .at
        .as_deref()
        .map(|v| params::time("at", v))
        .transpose()?;
    let history = state.threadline.history(&table, pk.clone()).await?;
    let as_of = match at {
        Some(at) => Some((at, state.threadline.as_of(&table, pk, at).await?)),
        None => None,
    };
    Ok(RowData {
        table: table.display_name(),
        pk: pk_text.to_owned(),
        history,
        as_of,
    })
}

pub(super) async fn load_actor(
    state: &Explorer,
    query: &ActorQuery,
) -> Result<(ActorRef, PageOf<AuditTransaction>), ExplorerError> {
    let actor = params::actor_ref(&query.actor)?;
    let page = params::page(
        query.cursor.as_deref(),
        query.size.as_deref(),
        state.options.page_size,
    )?;
    let transactions = state.threadline.actor_history(&actor, page).await?;
    Ok((actor, transactions))
}

// ---------------------------------------------------------------------------------------
// Pages

/// The timeline: filter form, one page of changes, newer/older links.
pub(super) async fn timeline(
    State(state): State<AppState>,
    Extension(BasePath(base)): Extension<BasePath>,
    RawQuery(raw): RawQuery,
) -> Response {
    let view = state.view(&base);
    let (params, result) = match Params::<TimelineQuery>::parse(raw.as_deref()) {
        Ok(params) => {
            // The rows and the chart, on two connections at once.
            let (page, activity) = futures_util::future::join(
                load_timeline(&state, &params.query),
                load_activity(&state, &params.query),
            )
            .await;
            let result = page.and_then(|page| activity.map(|activity| (page, activity)));
            (params, result)
        }
        Err(e) => (Params::default(), Err(e)),
    };
    let status = result
        .as_ref()
        .err()
        .map_or(StatusCode::OK, ExplorerError::status);
    let body = html! {
        (filter_form(&view, &params))
        @match &result {
            Ok((page, activity)) => {
                @if let Some(activity) = activity {
                    (activity_chart(&view, &params, activity))
                }
                (changes_table(&view, &params, page))
            }
            Err(e) => p.error role="alert" { (e.public_message()) },
        }
    };
    view.page(status, "Timeline", body)
}

fn filter_form(view: &View<'_>, params: &Params<TimelineQuery>) -> Markup {
    let query = &params.query;
    let text = |name: &'static str,
                value: &Option<String>,
                label: &'static str,
                hint: &'static str| {
        html! {
            label {
                span { (label) }
                input type="text" name=(name) value=(value.as_deref().unwrap_or_default()) placeholder=(hint);
            }
        }
    };
    let when = |name: &'static str, value: &Option<String>, label: &'static str| {
        // A datetime-local field cannot show an offset: show what was asked, in UTC.
        let value = value
            .as_deref()
            .and_then(|v| params::time(name, v).ok())
            .map(params::time_field)
            .unwrap_or_default();
        html! {
            label {
                span { (label) " (UTC)" }
                input type="datetime-local" step="0.001" name=(name) value=(value);
            }
        }
    };
    html! {
        form.filters method="get" action=(view.link("", [])) {
            (text("table", &query.table, "Table", "public.posts"))
            (text("actor", &query.actor, "Actor", "user:42"))
            (when("from", &query.from, "From"))
            (when("to", &query.to, "To"))
            label {
                span { "Operation" }
                select name="op" {
                    option value="" { "any" }
                    @for o in ChangeOp::ALL {
                        option value=(o.as_str()) selected[query.op.as_deref() == Some(o.as_str())] { (o.as_str()) }
                    }
                }
            }
            (text("correlation_id", &query.correlation_id, "Correlation id", ""))
            (text("request_id", &query.request_id, "Request id", ""))
            (text("trace_id", &query.trace_id, "Trace id", "32 hex digits"))
            @if let Some(size) = &query.size {
                input type="hidden" name="size" value=(size);
            }
            div.actions {
                button type="submit" { "Filter" }
                a href=(view.link("", [])) { "Clear" }
                span.export {
                    "Export this filter:"
                    @for format in &super::export::FORMATS {
                        " "
                        a href=(view.link("/export", super::export::link_params(params, format))) download { (format.label) }
                    }
                }
            }
        }
    }
}

fn pager<Q, T>(view: &View<'_>, path: &str, params: &Params<Q>, page: &PageOf<T>) -> Markup {
    let link = |cursor: &threadline_sqlx::Cursor| {
        let cursor = cursor.to_string();
        view.link(
            path,
            params
                .without(&["cursor"])
                .chain([("cursor", cursor.as_str())]),
        )
    };
    html! {
        nav.pager aria-label="pages" {
            @if let Some(prev) = &page.prev {
                a rel="prev" href=(link(prev)) { "← Newer" }
            } @else {
                span.muted { "← Newer" }
            }
            @if let Some(next) = &page.next {
                a rel="next" href=(link(next)) { "Older →" }
            } @else {
                span.muted { "Older →" }
            }
        }
    }
}

fn changes_table(
    view: &View<'_>,
    params: &Params<TimelineQuery>,
    page: &PageOf<AuditChange>,
) -> Markup {
    let filtered = params
        .pairs()
        .any(|(n, _)| FilterFields::NAMES.contains(&n));
    html! {
        @if page.items.is_empty() {
            p.empty {
                @if filtered { "No changes match this filter." } @else { "No changes captured yet." }
            }
        } @else {
            (pager(view, "", params, page))
            table.changes {
                thead {
                    tr {
                        th { "Time" } th { "Actor" } th { "Table" } th { "Key" } th { "Op" }
                        th { "Changed fields" } th { "Transaction" }
                    }
                }
                tbody {
                    @for change in &page.items {
                        tr data-change=(change.id) {
                            td { (time(change.captured_at)) }
                            td { (view.actor(change.actor_ref.as_ref())) }
                            td { (view.table_link(change)) }
                            td { (view.row_link(change)) }
                            td { (op(change.op)) }
                            td { (changed_fields(change)) }
                            td { (view.transaction_link(change.transaction_id)) }
                        }
                    }
                }
            }
            (pager(view, "", params, page))
        }
    }
}

/// One transaction: context, actions, changes with diffs.
pub(super) async fn transaction(
    State(state): State<AppState>,
    Extension(BasePath(base)): Extension<BasePath>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    parts: Parts,
) -> Response {
    let view = state.view(&base);
    let loaded = match load_transaction(&state, &id, raw.as_deref()).await {
        Ok(detail) => previous_images(&state, &detail)
            .await
            .map(|previous| (detail, previous)),
        Err(e) => Err(e),
    };
    match loaded {
        Ok((detail, previous)) => {
            let heading = format!("Transaction #{}", detail.transaction.id);
            let revert = revert::may_revert(&state, &parts).await;
            let body = html! {
                @if revert { (revert::button(&view, detail.transaction.id)) }
                (transaction_body(&view, &detail, &previous))
            };
            view.page(StatusCode::OK, &heading, body)
        }
        Err(e) => view.error(&e),
    }
}

/// The previous image of each update stored without `changed_from` (one query for the
/// page), from which its before-values are derived.
async fn previous_images(
    state: &Explorer,
    detail: &TransactionDetail,
) -> Result<BTreeMap<i64, PreviousImage>, ExplorerError> {
    let updates: Vec<&AuditChange> = detail
        .changes
        .iter()
        .filter(|c| c.op == ChangeOp::Update && c.changed_from.is_none())
        .collect();
    Ok(state.threadline.previous_images(&updates).await?)
}

fn transaction_body(
    view: &View<'_>,
    detail: &TransactionDetail,
    previous: &BTreeMap<i64, PreviousImage>,
) -> Markup {
    let tx = &detail.transaction;
    let filter_link = |name: &str, value: Option<&str>| match value {
        Some(v) => html! { a href=(view.link("", [(name, v)])) { (v) } },
        None => opt(None),
    };
    let ip = tx.remote_ip.map(|ip| ip.to_string());
    html! {
        section.context {
            h2 { "Context" }
            dl {
                dt { "Time" } dd { (time(tx.occurred_at)) }
                dt { "Actor" } dd { (view.actor(tx.actor_ref.as_ref())) }
                dt { "Request id" } dd { (filter_link("request_id", tx.request_id.as_deref())) }
                dt { "Correlation id" } dd { (filter_link("correlation_id", tx.correlation_id.as_deref())) }
                dt { "Trace id" } dd { (view.trace(tx.trace_id.as_deref())) }
                dt { "Remote IP" } dd { (opt(ip.as_deref())) }
                dt { "Source" } dd { (opt(tx.source.as_deref())) }
                dt { "Database txid" } dd { (tx.txid) }
                @if let Some(meta) = &tx.meta {
                    dt { "Meta" } dd { (view.value(meta)) }
                }
            }
        }
        section.tx-actions {
            h2 { "Actions (" (detail.actions.len()) ")" }
            @if detail.actions.is_empty() {
                p.muted { "No action was recorded in this transaction." }
            } @else {
                table {
                    thead { tr { th { "Name" } th { "Status" } th { "Actor" } th { "Reason" } th { "Comment" } th { "Recorded" } } }
                    tbody {
                        @for action in &detail.actions {
                            tr {
                                td { (action.name) }
                                td { span class={ "status status-" (action.status.as_str()) } { (action.status.as_str()) } }
                                td { (view.actor(Some(&action.actor_ref))) }
                                td { (opt(action.reason.as_deref())) }
                                td { (opt(action.comment.as_deref())) }
                                td { (time(action.inserted_at)) }
                            }
                        }
                    }
                }
            }
        }
        section.changes {
            h2 { "Changes (" (detail.changes.len()) ")" }
            @if !previous.is_empty() {
                p.legend {
                    span.derived-mark { "derived" }
                    " Before-values so marked were not stored with the change (the table does not store "
                    code { "changed_from" } "): they are the row's values in its previous captured version."
                }
            }
            @for change in &detail.changes {
                @let (diff, derived) = diff_with_previous(change, previous.get(&change.id));
                article.change {
                    h3 { (view.change_heading(change)) }
                    p.meta { (view.as_of_link(change)) }
                    // A truncate has no field values: its meta line says how many rows went.
                    @if change.op != ChangeOp::Truncate {
                        (view.diff_table_derived(&diff, derived.as_ref()))
                    }
                }
            }
        }
    }
}

/// One row's versions with diffs, and its state "as of" a time.
pub(super) async fn row(
    State(state): State<AppState>,
    Extension(BasePath(base)): Extension<BasePath>,
    RawQuery(raw): RawQuery,
) -> Response {
    let view = state.view(&base);
    let result = match Params::<RowQuery>::parse(raw.as_deref()) {
        Ok(params) => load_row(&state, &params.query).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(data) => {
            let key = data
                .history
                .first()
                .map_or_else(|| data.pk.clone(), |c| super::html::key_text(&c.table_pk));
            let heading = format!("Row {} {key}", data.table);
            view.page(StatusCode::OK, &heading, row_body(&view, &data))
        }
        Err(e) => view.error(&e),
    }
}

fn row_body(view: &View<'_>, data: &RowData) -> Markup {
    let at_value = data
        .as_of
        .as_ref()
        .map(|(at, _)| params::time_param(*at))
        .unwrap_or_default();
    let diffs = version_diffs(&data.history);
    html! {
        section.as-of {
            h2 { "As of" }
            form.as-of method="get" action=(view.link("/row", [])) {
                input type="hidden" name="table" value=(data.table);
                input type="hidden" name="pk" value=(data.pk);
                // Text, not datetime-local: that field stops at milliseconds, and captured
                // times have microseconds.
                label {
                    span { "Time (UTC unless it has an offset; to the microsecond)" }
                    input type="text" name="at" value=(at_value)
                        placeholder="2026-11-26T14:30:00.123456Z" required;
                }
                div.actions { button type="submit" { "Show the row at that time" } }
                p.muted { "Changes captured at exactly that time are included: the row as it was right after them." }
            }
            @if let Some((at, as_of)) = &data.as_of {
                (as_of_result(view, *at, as_of))
            }
        }
        section.versions {
            h2 { "Versions, newest first (" (data.history.len()) ")" }
            @if data.history.is_empty() {
                p.empty { "No captured changes for this row." }
            }
            @for (change, diff) in data.history.iter().zip(&diffs) {
                article.change {
                    h3 { (view.change_heading(change)) }
                    p.meta {
                        "by " (view.actor(change.actor_ref.as_ref()))
                        " in transaction " (view.transaction_link(change.transaction_id))
                        " · " (view.as_of_link(change))
                    }
                    (view.diff_table(diff))
                }
            }
        }
    }
}

fn as_of_result(view: &View<'_>, at: DateTime<Utc>, as_of: &AsOf) -> Markup {
    html! {
        div.as-of-result {
            @match as_of {
                AsOf::Existed { image, change } => {
                    p { "At " (time(at)) " the row looked like this: its state after the "
                        (change.op.as_str()) " captured at " (time(change.captured_at)) " in "
                        (view.transaction_link(change.transaction_id))
                        ", the last change at or before that time:" }
                    (view.image_table(image))
                }
                AsOf::Deleted { change } => {
                    p { "At " (time(at)) " the row had been deleted (at " (time(change.captured_at))
                        ", in " (view.transaction_link(change.transaction_id)) ")." }
                }
                AsOf::BeforeCapture { first_change } => {
                    p { "No captured change of this row is at or before " (time(at))
                        ": capture had not started for it yet, or retention removed its older changes." }
                    @if let Some(first) = first_change {
                        p { "Its first retained change is the " (first.op.as_str()) " at " (time(first.captured_at)) "." }
                    }
                }
                _ => p.muted { "Unknown state." },
            }
        }
    }
}

/// An actor's transactions.
pub(super) async fn actor(
    State(state): State<AppState>,
    Extension(BasePath(base)): Extension<BasePath>,
    RawQuery(raw): RawQuery,
) -> Response {
    let view = state.view(&base);
    let loaded = match Params::<ActorQuery>::parse(raw.as_deref()) {
        Ok(params) => load_actor(&state, &params.query).await.map(|r| (params, r)),
        Err(e) => Err(e),
    };
    match loaded {
        Ok((params, (actor, page))) => {
            let heading = format!("Actor {actor}");
            view.page(
                StatusCode::OK,
                &heading,
                actor_body(&view, &params, &actor, &page),
            )
        }
        Err(e) => view.error(&e),
    }
}

fn actor_body(
    view: &View<'_>,
    params: &Params<ActorQuery>,
    actor: &ActorRef,
    page: &PageOf<AuditTransaction>,
) -> Markup {
    let short = actor.to_string();
    html! {
        p { a href=(view.link("", [("actor", short.as_str())])) { "All changes by " (short) " in the timeline" } }
        @if page.items.is_empty() {
            p.empty { "No transactions by this actor." }
        } @else {
            (pager(view, "/actor", params, page))
            table.transactions {
                thead { tr { th { "Time" } th { "Transaction" } th { "Request id" } th { "Correlation id" } th { "Remote IP" } th { "Source" } } }
                tbody {
                    @for tx in &page.items {
                        @let ip = tx.remote_ip.map(|ip| ip.to_string());
                        tr {
                            td { (time(tx.occurred_at)) }
                            td { (view.transaction_link(tx.id)) }
                            td { (opt(tx.request_id.as_deref())) }
                            td { (opt(tx.correlation_id.as_deref())) }
                            td { (opt(ip.as_deref())) }
                            td { (opt(tx.source.as_deref())) }
                        }
                    }
                }
            }
            (pager(view, "/actor", params, page))
        }
    }
}

/// Unknown paths under the explorer (after authorization, so they reveal nothing).
pub(super) async fn not_found(
    State(state): State<AppState>,
    Extension(BasePath(base)): Extension<BasePath>,
) -> Response {
    state.view(&base).error(&ExplorerError::NotFound(
        "No such page in the audit explorer.".to_owned(),
    ))
}
