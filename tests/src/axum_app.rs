//! The blog API on axum.

use axum::extract::Path;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use threadline_axum::{ActorRef, AuditedTx, Threadline, ThreadlineLayer, audited};
use tower::ServiceExt;

use crate::{Req, Resp, Sender};

fn actor_fn(parts: &http::request::Parts) -> Option<ActorRef> {
    ActorRef::user(parts.headers.get("x-user-id")?.to_str().ok()?).ok()
}

fn internal(e: sqlx::Error) -> (StatusCode, String) {
    (StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

async fn create(
    mut tx: AuditedTx,
    Json(body): Json<Value>,
) -> Result<(StatusCode, Json<Value>), (StatusCode, String)> {
    let id: i64 = sqlx::query_scalar("INSERT INTO posts (title) VALUES ($1) RETURNING id")
        .persistent(false)
        .bind(body["title"].as_str().unwrap_or_default())
        .fetch_one(&mut *tx)
        .await
        .map_err(internal)?;
    tx.commit().await.map_err(internal)?;
    Ok((StatusCode::CREATED, Json(json!({ "id": id }))))
}

async fn create_then_forget(
    mut tx: AuditedTx,
    Json(body): Json<Value>,
) -> Result<StatusCode, (StatusCode, String)> {
    sqlx::query("INSERT INTO posts (title) VALUES ($1)")
        .persistent(false)
        .bind(body["title"].as_str().unwrap_or_default())
        .execute(&mut *tx)
        .await
        .map_err(internal)?;
    Ok(StatusCode::OK) // no commit: dropping the transaction rolls it back
}

#[audited("post.published")]
async fn publish(
    Path(id): Path<i64>,
    mut tx: AuditedTx,
    Json(_): Json<Value>,
) -> Result<StatusCode, (StatusCode, String)> {
    let updated = sqlx::query("UPDATE posts SET published = true WHERE id = $1")
        .persistent(false)
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(internal)?
        .rows_affected();
    if updated == 0 {
        return Err((StatusCode::NOT_FOUND, format!("no post {id}")));
    }
    tx.commit().await.map_err(internal)?;
    Ok(StatusCode::OK)
}

/// The router over the handle's pool and audit schema.
pub fn app(threadline: Threadline) -> Router {
    Router::new()
        .route("/posts", post(create))
        .route("/posts/rollback", post(create_then_forget))
        .route("/posts/{id}/publish", post(publish))
        .layer(ThreadlineLayer::new(actor_fn))
        .with_state(threadline)
}

/// Sends requests through [`app`] with `oneshot`.
pub fn sender(threadline: Threadline) -> Sender {
    router_sender(app(threadline))
}

/// Sends requests through any router with `oneshot`.
pub fn router_sender(app: Router) -> Sender {
    Box::new(move |req: Req| {
        let app = app.clone();
        Box::pin(async move {
            let mut builder = http::Request::builder().method(req.method).uri(req.path);
            for (name, value) in req.headers {
                builder = builder.header(name, value);
            }
            let body = match req.json {
                Some(json) => {
                    builder = builder.header("content-type", "application/json");
                    axum::body::Body::from(json.to_string())
                }
                None => axum::body::Body::empty(),
            };
            let request = builder.body(body).expect("valid request");
            let response = app.oneshot(request).await.expect("infallible");
            let status = response.status().as_u16();
            let body = response
                .into_body()
                .collect()
                .await
                .expect("read body")
                .to_bytes()
                .to_vec();
            Resp { status, body }
        })
    })
}
