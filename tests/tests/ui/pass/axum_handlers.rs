//! Audited handlers keep working as axum handlers: extractors before and after the hidden
//! one, a request body last, `?` in the body, early `return`, and `impl IntoResponse`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use threadline_axum::{ActorRef, Audit, AuditedTx, Threadline, ThreadlineLayer, audited};

#[derive(serde::Deserialize)]
struct NewPost {
    title: String,
}

/// Doc comments and attributes stay on the handler.
#[audited("post.created")]
#[allow(clippy::unused_async)]
pub async fn create(
    State(threadline): State<Threadline>,
    mut tx: AuditedTx,
    Json(post): Json<NewPost>,
) -> Result<(StatusCode, Json<i64>), StatusCode> {
    let _ = threadline;
    if post.title.is_empty() {
        return Err(StatusCode::UNPROCESSABLE_ENTITY);
    }
    let id: i64 = sqlx::query_scalar("INSERT INTO posts (title) VALUES ($1) RETURNING id")
        .bind(post.title)
        .fetch_one(&mut *tx)
        .await
        .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
    tx.commit().await.map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
    Ok((StatusCode::CREATED, Json(id)))
}

#[audited("post.viewed")]
async fn view(Path((a, b)): Path<(i64, String)>, Audit(ctx): Audit) -> impl IntoResponse {
    format!("{a} {b} {:?}", ctx.request_id)
}

#[audited("ping")]
async fn ping() -> &'static str {
    "pong"
}

fn actor_fn(_: &axum::http::request::Parts) -> Option<ActorRef> {
    None
}

fn app(pool: sqlx::PgPool) -> Router {
    Router::new()
        .route("/posts", post(create))
        .route("/posts/{a}/{b}", get(view))
        .route("/ping", get(ping))
        .layer(ThreadlineLayer::new(actor_fn))
        .with_state(Threadline::new(pool))
}

fn main() {
    let _ = app;
}
