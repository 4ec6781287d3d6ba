//! Admin routes over the audit trail, through `threadline_sqlx::Threadline`.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use threadline_axum::{ActorRef, Audit};
use threadline_sqlx::{Page, TimelineFilter};

use crate::app::{AppError, AppState, require_admin};

/// `/admin/...`: history, timeline and as-of views. Admins only (`x-user: admin`).
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/posts/{key}/history", get(history))
        .route("/admin/posts/{key}/as_of", get(as_of))
        .route("/admin/timeline", get(timeline))
}

/// A post's id from its id or its slug (ids also work after the post was deleted).
async fn post_id(state: &AppState, key: &str) -> Result<i64, AppError> {
    if let Ok(id) = key.parse() {
        return Ok(id);
    }
    let id: Option<(i64,)> = sqlx::query_as("SELECT id FROM posts WHERE slug = $1")
        .bind(key)
        .fetch_optional(state.threadline.pool())
        .await?;
    id.map(|(id,)| id).ok_or_else(|| {
        AppError::new(
            StatusCode::NOT_FOUND,
            format!("no post {key:?}; use its numeric id if it was deleted"),
        )
    })
}

/// Every change of one post, newest first.
async fn history(
    audit: Audit,
    State(state): State<AppState>,
    Path(key): Path<String>,
) -> Result<Json<Value>, AppError> {
    require_admin(&audit)?;
    let id = post_id(&state, &key).await?;
    let changes = state.threadline.history("posts", id).await?;
    Ok(Json(json!({ "post_id": id, "changes": changes })))
}

#[derive(Deserialize)]
struct AsOfParams {
    at: DateTime<Utc>,
}

/// The post as it was at `?at=<RFC 3339 time>`.
async fn as_of(
    audit: Audit,
    State(state): State<AppState>,
    Path(key): Path<String>,
    Query(params): Query<AsOfParams>,
) -> Result<Json<Value>, AppError> {
    require_admin(&audit)?;
    let id = post_id(&state, &key).await?;
    let state_then = state.threadline.as_of("posts", id, params.at).await?;
    Ok(Json(
        json!({ "post_id": id, "at": params.at, "as_of": state_then }),
    ))
}

#[derive(Deserialize)]
struct TimelineParams {
    table: Option<String>,
    /// `user:alice`, `admin:admin`, `anonymous`.
    actor: Option<String>,
    request_id: Option<String>,
    correlation_id: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

/// Recent changes across tables, filtered, with a cursor for the next page.
async fn timeline(
    audit: Audit,
    State(state): State<AppState>,
    Query(params): Query<TimelineParams>,
) -> Result<Json<Value>, AppError> {
    require_admin(&audit)?;
    let bad = |e: String| AppError::new(StatusCode::BAD_REQUEST, e);
    let mut filter = TimelineFilter::new();
    if let Some(table) = params.table {
        filter = filter.table(table.parse().map_err(|e| bad(format!("table: {e}")))?);
    }
    if let Some(actor) = params.actor {
        filter =
            filter.actor(ActorRef::parse_short(&actor).map_err(|e| bad(format!("actor: {e}")))?);
    }
    if let Some(id) = params.request_id {
        filter = filter.request_id(id);
    }
    if let Some(id) = params.correlation_id {
        filter = filter.correlation_id(id);
    }
    let page =
        Page::parse(params.limit, params.cursor.as_deref()).map_err(|e| bad(e.to_string()))?;
    let page = state.threadline.timeline(&filter, page).await?;
    Ok(Json(json!({ "changes": page.items, "next": page.next })))
}
