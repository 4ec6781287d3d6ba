//! Layout and small components. maud escapes every interpolated value, so text from the
//! audit trail can never become markup.

use axum_core::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use http::{StatusCode, header};
use maud::{DOCTYPE, Markup, html};
use serde_json::Value;
use threadline_core::{ActorRef, AuditChange, ChangeOp, DiffValue, FieldDiff};

use super::diff::Derived;
use super::params::{pk_param, time_param};
use super::url::link;

/// The prefix of the explorer's links, worked out per request by the guard.
#[derive(Debug, Clone)]
pub(super) struct BasePath(pub(super) String);

/// Where the embedded stylesheet is served, relative to the mount point.
pub(super) const STYLESHEET_PATH: &str = "/assets/explorer.css";

const STYLESHEET: &str = include_str!("explorer.css");

pub(super) async fn stylesheet() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        STYLESHEET,
    )
        .into_response()
}

pub(super) fn html_response(status: StatusCode, page: Markup) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        page.into_string(),
    )
        .into_response()
}

/// What rendering needs from the request and the options.
pub(super) struct View<'a> {
    pub(super) base: &'a str,
    pub(super) title: &'a str,
    pub(super) masks: &'a [String],
    /// `ExplorerOptions::trace_url`'s template.
    pub(super) trace_url: Option<&'a str>,
}

impl View<'_> {
    pub(super) fn link<'b>(
        &self,
        path: &str,
        query: impl IntoIterator<Item = (&'b str, &'b str)>,
    ) -> String {
        link(self.base, path, query)
    }

    /// A whole page.
    pub(super) fn page(&self, status: StatusCode, heading: &str, body: Markup) -> Response {
        let page = html! {
            (DOCTYPE)
            html lang="en" {
                head {
                    meta charset="utf-8";
                    meta name="viewport" content="width=device-width, initial-scale=1";
                    meta name="referrer" content="no-referrer";
                    title { (heading) " · " (self.title) }
                    link rel="stylesheet" href=(self.link(STYLESHEET_PATH, []));
                }
                body {
                    header.top {
                        a.brand href=(self.link("", [])) { (self.title) }
                        nav { a href=(self.link("", [])) { "Timeline" } }
                    }
                    main {
                        h1 { (heading) }
                        (body)
                    }
                }
            }
        };
        html_response(status, page)
    }

    /// An error page with the message and a way back.
    pub(super) fn error(&self, error: &super::ExplorerError) -> Response {
        let status = error.status();
        let body = html! {
            p.error role="alert" { (error.public_message()) }
            p { a href=(self.link("", [])) { "Back to the timeline" } }
        };
        self.page(status, &status.to_string(), body)
    }

    /// A JSON value from the trail: text as text, masked values as a "masked" badge, null
    /// and structured values as code.
    pub(super) fn value(&self, value: &Value) -> Markup {
        match value {
            Value::String(s) if self.masks.contains(s) => html! {
                span.masked title={ "masked by the capture policy (stored as " (s) ")" } { "masked" }
            },
            Value::String(s) => html! { span.text { (s) } },
            Value::Null => html! { span.null { "null" } },
            other => html! { code { (other.to_string()) } },
        }
    }

    pub(super) fn diff_value(&self, value: &DiffValue) -> Markup {
        match value {
            DiffValue::Value(v) => self.value(v),
            DiffValue::NotCaptured => html! {
                span.missing title="the table does not store changed_from, and no earlier version of the row was captured" {
                    "not captured"
                }
            },
            _ => html! { span.missing title="the row did not exist on this side" { "—" } },
        }
    }

    pub(super) fn diff_table(&self, diff: &[FieldDiff]) -> Markup {
        self.diff_table_derived(diff, None)
    }

    /// A diff whose before-values may be partly [`Derived`] from the row's previous image:
    /// those are marked, with where they came from.
    pub(super) fn diff_table_derived(
        &self,
        diff: &[FieldDiff],
        derived: Option<&Derived>,
    ) -> Markup {
        let is_derived = |i: usize| derived.is_some_and(|d| d.fields.get(i) == Some(&true));
        html! {
            @if diff.is_empty() {
                p.muted { "No field values recorded." }
            } @else {
                table.diff {
                    thead { tr { th { "Field" } th { "Before" } th { "After" } } }
                    tbody {
                        @for (i, field) in diff.iter().enumerate() {
                            tr {
                                th scope="row" { (field.name) }
                                @if let (true, Some(d)) = (is_derived(i), derived) {
                                    td.before.derived title={ "derived: the value in the row's previous version (change #" (d.from_change) "); the table does not store changed_from" } {
                                        (self.diff_value(&field.before)) " " span.derived-mark { "derived" }
                                    }
                                } @else {
                                    td.before { (self.diff_value(&field.before)) }
                                }
                                td.after { (self.diff_value(&field.after)) }
                            }
                        }
                    }
                }
            }
        }
    }

    /// A whole row image as a field/value table.
    pub(super) fn image_table(&self, image: &Value) -> Markup {
        html! {
            @if let Some(object) = image.as_object() {
                table.diff {
                    thead { tr { th { "Field" } th { "Value" } } }
                    tbody {
                        @for (name, value) in object {
                            tr { th scope="row" { (name) } td { (self.value(value)) } }
                        }
                    }
                }
            } @else {
                p { (self.value(image)) }
            }
        }
    }

    /// A stored actor (`actor_ref`), linked to its page.
    pub(super) fn actor(&self, stored: Option<&Value>) -> Markup {
        match stored.map(ActorRef::from_value) {
            None => html! { span.muted { "no actor" } },
            Some(Ok(actor)) => self.actor_link(&actor),
            Some(Err(_)) => {
                html! { code title="not a valid actor" { (stored.map(Value::to_string).unwrap_or_default()) } }
            }
        }
    }

    pub(super) fn actor_link(&self, actor: &ActorRef) -> Markup {
        let short = actor.to_string();
        html! { a.actor href=(self.link("/actor", [("actor", short.as_str())])) { (short) } }
    }

    /// A trace id: linked to the tracing backend when a `trace_url` is set, and to the
    /// timeline of its changes.
    pub(super) fn trace(&self, trace_id: Option<&str>) -> Markup {
        let Some(id) = trace_id else {
            return opt(None);
        };
        // Only a well-formed id goes into a URL (the column can be written by hand).
        let url = self
            .trace_url
            .filter(|_| id.parse::<threadline_core::TraceId>().is_ok())
            .map(|template| template.replace("{trace_id}", id));
        html! {
            @match url {
                Some(url) => a.trace href=(url) rel="noopener noreferrer" { code { (id) } },
                None => code { (id) },
            }
            " "
            a href=(self.link("", [("trace_id", id)])) { "its changes" }
        }
    }

    pub(super) fn transaction_link(&self, id: i64) -> Markup {
        html! { a.tx href=(self.link(&format!("/transactions/{id}"), [])) { "#" (id) } }
    }

    /// The row's key, linked to its history.
    pub(super) fn row_link(&self, change: &AuditChange) -> Markup {
        if change.op == ChangeOp::Truncate {
            // A truncate has no row: its key is `{}`.
            return html! { span.muted { "all rows" } };
        }
        let table = table_display(change);
        let pk = pk_param(&change.table_pk);
        html! {
            a.pk href=(self.link("/row", [("table", table.as_str()), ("pk", pk.as_str())])) {
                (key_text(&change.table_pk))
            }
        }
    }

    /// A link to the row's state right after `change`: "as of" the change's full capture time
    /// (microseconds, as stored), which includes the change itself.
    pub(super) fn as_of_link(&self, change: &AuditChange) -> Markup {
        if change.op == ChangeOp::Truncate {
            return changed_fields(change);
        }
        let table = table_display(change);
        let pk = pk_param(&change.table_pk);
        let at = time_param(change.captured_at);
        html! {
            a.as-of href=(self.link("/row", [("table", table.as_str()), ("pk", pk.as_str()), ("at", at.as_str())]))
                title={ "the row as of " (at) ", this change included" } {
                "state after this change"
            }
        }
    }

    pub(super) fn table_link(&self, change: &AuditChange) -> Markup {
        let table = table_display(change);
        html! { a.table href=(self.link("", [("table", table.as_str())])) { (table) } }
    }

    /// A heading line for one change: operation, table, key, time.
    pub(super) fn change_heading(&self, change: &AuditChange) -> Markup {
        html! {
            (op(change.op)) " " (self.table_link(change)) " " (self.row_link(change))
            " · " (time(change.captured_at))
        }
    }
}

pub(super) fn table_display(change: &AuditChange) -> String {
    use threadline_core::{Ident, TableName};
    match (
        Ident::new(change.table_schema.as_str()),
        Ident::new(change.table_name.as_str()),
    ) {
        (Ok(schema), Ok(name)) => TableName::new(schema, name).display_name(),
        _ => format!("{}.{}", change.table_schema, change.table_name),
    }
}

/// `id=42`, or `tenant_id=7, sku=A-1`.
pub(super) fn key_text(pk: &Value) -> String {
    match pk.as_object() {
        Some(object) => object
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => format!("{k}={s}"),
                other => format!("{k}={other}"),
            })
            .collect::<Vec<_>>()
            .join(", "),
        None => pk.to_string(),
    }
}

pub(super) fn op(op: ChangeOp) -> Markup {
    html! { span class={ "op op-" (op.as_str()) } { (op.as_str()) } }
}

/// A time as captured: to the microsecond (PostgreSQL's precision), so two changes a few
/// microseconds apart never look simultaneous.
pub(super) fn time(t: DateTime<Utc>) -> Markup {
    html! {
        time datetime=(time_param(t)) { (t.format("%Y-%m-%d %H:%M:%S%.6f UTC")) }
    }
}

/// What a timeline row shows as its changed fields.
pub(super) fn changed_fields(change: &AuditChange) -> Markup {
    match (change.op, &change.changed_fields) {
        (ChangeOp::Update, Some(fields)) => html! { (fields.join(", ")) },
        (ChangeOp::Insert, _) => html! { span.muted { "new row" } },
        (ChangeOp::Delete, _) => html! { span.muted { "row deleted" } },
        (ChangeOp::Snapshot, _) => html! { span.muted { "baseline snapshot" } },
        (ChangeOp::Truncate, _) => match change.rows_removed() {
            Some(n) => html! { span.muted { "table truncated (" (n) " rows removed)" } },
            None => html! { span.muted { "table truncated" } },
        },
        _ => html! { span.muted { "—" } },
    }
}

/// An optional text value, or a muted dash.
pub(super) fn opt(value: Option<&str>) -> Markup {
    match value {
        Some(v) => html! { (v) },
        None => html! { span.muted { "—" } },
    }
}
