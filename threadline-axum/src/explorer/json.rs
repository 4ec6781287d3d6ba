//! JSON endpoints: the pages' data, same parameters, same authorization.

use axum::extract::{Path, RawQuery, State};
use axum_core::response::{IntoResponse, Response};
use http::{StatusCode, header};
use serde::Serialize;
use serde_json::json;
use threadline_core::change_diff;

use super::State as AppState;
use super::error::ExplorerError;
use super::pages;
use super::params::{ActorQuery, Params, RowQuery, TimelineQuery};

fn respond<T: Serialize>(result: Result<T, ExplorerError>) -> Response {
    let (status, body) = match result.map(|value| serde_json::to_vec(&value)) {
        Ok(Ok(body)) => (StatusCode::OK, body),
        // Unreachable with these types (string keys only); answered rather than panicking.
        Ok(Err(e)) => {
            tracing::error!(error = %e, "threadline explorer: cannot encode JSON");
            let body = json!({"error": "cannot encode the response", "status": 500});
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                body.to_string().into_bytes(),
            )
        }
        Err(e) => error_body(&e),
    };
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn error_body(e: &ExplorerError) -> (StatusCode, Vec<u8>) {
    let status = e.status();
    let body = json!({"error": e.public_message(), "status": status.as_u16()});
    (status, body.to_string().into_bytes())
}

/// `{"items": [change…], "next": cursor|null, "prev": cursor|null}`.
pub(super) async fn timeline(State(state): State<AppState>, RawQuery(raw): RawQuery) -> Response {
    let result = match Params::<TimelineQuery>::parse(raw.as_deref()) {
        Ok(params) => pages::load_timeline(&state, &params.query).await,
        Err(e) => Err(e),
    };
    respond(result)
}

/// `{"transaction": …, "actions": […], "changes": [{"change": …, "diff": [field…]}]}`.
pub(super) async fn transaction(
    State(state): State<AppState>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    respond(
        pages::load_transaction(&state, &id, raw.as_deref())
            .await
            .map(|detail| {
                let changes: Vec<_> = detail
                    .changes
                    .iter()
                    .map(|change| json!({"change": change, "diff": change_diff(change)}))
                    .collect();
                json!({
                    "transaction": detail.transaction,
                    "actions": detail.actions,
                    "changes": changes,
                })
            }),
    )
}

/// `{"table": …, "pk": …, "history": [change…], "as_of": {"at": …, "state": …}|null}`.
pub(super) async fn row(State(state): State<AppState>, RawQuery(raw): RawQuery) -> Response {
    let result = match Params::<RowQuery>::parse(raw.as_deref()) {
        Ok(params) => pages::load_row(&state, &params.query).await,
        Err(e) => Err(e),
    };
    respond(result.map(|data| {
        json!({
            "table": data.table,
            "pk": data.pk,
            "history": data.history,
            "as_of": data.as_of.map(|(at, state)| json!({"at": at, "state": state})),
        })
    }))
}

/// `{"actor": …, "items": [transaction…], "next": …, "prev": …}`.
pub(super) async fn actor(State(state): State<AppState>, RawQuery(raw): RawQuery) -> Response {
    let result = match Params::<ActorQuery>::parse(raw.as_deref()) {
        Ok(params) => pages::load_actor(&state, &params.query).await,
        Err(e) => Err(e),
    };
    respond(result.map(|(actor, page)| {
        json!({"actor": actor, "items": page.items, "next": page.next, "prev": page.prev})
    }))
}
