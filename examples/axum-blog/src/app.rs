//! The blog API: posts and comments, a fake login, and admin routes over the audit trail.

use axum::extract::{FromRef, Path, State};
use axum::http::{StatusCode, header, request::Parts};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use sqlx::PgPool;
use threadline_axum::{ActorRef, ActorType, Audit, AuditedTx, ThreadlineLayer, audited};
use threadline_sqlx::Threadline;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};

use crate::{admin, audit_ui};

/// Shared state: the Threadline handle, which `AuditedTx`, `#[audited]` and the admin routes
/// take from it (`Threadline: FromRef<AppState>`), and whose pool the plain handlers use.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The pool, the audit schema and the statement mode.
    pub threadline: Threadline,
}

impl FromRef<AppState> for Threadline {
    fn from_ref(state: &AppState) -> Threadline {
        state.threadline.clone()
    }
}

impl FromRef<AppState> for PgPool {
    fn from_ref(state: &AppState) -> PgPool {
        state.threadline.pool().clone()
    }
}

/// The whole application, with the Threadline layer and request ids.
pub(crate) fn router(pool: PgPool) -> Router {
    let state = AppState {
        threadline: Threadline::new(pool),
    };
    Router::new()
        .route("/login", post(login))
        .route("/posts", get(list_posts))
        .route(
            "/posts/{slug}",
            put(put_post).get(get_post).delete(delete_post),
        )
        .route("/posts/{slug}/publish", post(publish))
        .route("/posts/{slug}/comments", post(add_comment))
        .merge(admin::routes())
        .merge(audit_ui::routes(state.threadline.clone()))
        .layer(ThreadlineLayer::new(actor_fn).source("axum-blog"))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .with_state(state)
}

/// The fake login: the user name comes from the `x-user` header or the `user` cookie.
/// `admin` is an administrator; anyone else is a user.
pub(crate) fn actor_fn(parts: &Parts) -> Option<ActorRef> {
    let from_header = parts.headers.get("x-user").and_then(|v| v.to_str().ok());
    let from_cookie = || {
        parts
            .headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .find_map(|c| c.trim().strip_prefix("user="))
    };
    match from_header.or_else(from_cookie)? {
        "admin" => ActorRef::admin("admin").ok(),
        name => ActorRef::user(name).ok(),
    }
}

/// Errors as JSON: `{"error": "..."}`.
#[derive(Debug)]
pub(crate) struct AppError(StatusCode, String);

impl AppError {
    /// An error with a status and a message.
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self(status, message.into())
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl From<sqlx::Error> for AppError {
    fn from(e: sqlx::Error) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    }
}

impl From<threadline_sqlx::Error> for AppError {
    fn from(e: threadline_sqlx::Error) -> Self {
        Self::new(StatusCode::BAD_REQUEST, e.to_string())
    }
}

/// The signed-in user's name, or 401.
pub(crate) fn user_name(audit: &Audit) -> Result<String, AppError> {
    audit
        .actor
        .as_ref()
        .and_then(|a| a.id())
        .map(str::to_owned)
        .ok_or_else(|| {
            AppError::new(
                StatusCode::UNAUTHORIZED,
                "sign in first: POST /login {\"user\":\"alice\"}, or send `x-user: alice`",
            )
        })
}

/// 403 unless the actor is an administrator.
pub(crate) fn require_admin(audit: &Audit) -> Result<(), AppError> {
    match audit.actor.as_ref().map(ActorRef::kind) {
        Some(ActorType::Admin) => Ok(()),
        _ => Err(AppError::new(
            StatusCode::FORBIDDEN,
            "admin only: send `x-user: admin`",
        )),
    }
}

/// The sign-in request: `{"user": "alice"}`.
#[derive(Deserialize)]
pub(crate) struct Login {
    user: String,
}

/// Sets the `user` cookie.
pub(crate) async fn login(Json(login): Json<Login>) -> Result<Response, AppError> {
    let valid = (1..=64).contains(&login.user.len())
        && login
            .user
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !valid {
        return Err(AppError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "user: 1-64 letters, digits, '-' or '_'",
        ));
    }
    let cookie = format!("user={}; Path=/; HttpOnly; SameSite=Lax", login.user);
    Ok((
        [(header::SET_COOKIE, cookie)],
        Json(json!({ "user": login.user })),
    )
        .into_response())
}

async fn list_posts(State(pool): State<PgPool>) -> Result<Json<Value>, AppError> {
    let posts: Vec<(Value,)> = sqlx::query_as(
        "SELECT json_build_object('id', id, 'slug', slug, 'title', title, 'author', author,
                                  'published', published)
         FROM posts ORDER BY id DESC LIMIT 100",
    )
    .fetch_all(&pool)
    .await?;
    Ok(Json(posts.into_iter().map(|(p,)| p).collect()))
}

async fn get_post(
    State(pool): State<PgPool>,
    Path(slug): Path<String>,
) -> Result<Json<Value>, AppError> {
    let post: Option<(Value,)> = sqlx::query_as(
        "SELECT to_jsonb(p) || jsonb_build_object('comments', COALESCE(
                    (SELECT jsonb_agg(to_jsonb(c) ORDER BY c.id) FROM comments c
                     WHERE c.post_id = p.id), '[]'))
         FROM posts p WHERE slug = $1",
    )
    .bind(&slug)
    .fetch_optional(&pool)
    .await?;
    post.map(|(p,)| Json(p)).ok_or_else(|| not_found(&slug))
}

fn not_found(slug: &str) -> AppError {
    AppError::new(StatusCode::NOT_FOUND, format!("no post {slug:?}"))
}

#[derive(Deserialize)]
struct PostBody {
    title: String,
    #[serde(default)]
    body: String,
}

/// Creates or updates a post (only its author may update it).
async fn put_post(
    audit: Audit,
    Path(slug): Path<String>,
    mut tx: AuditedTx,
    Json(input): Json<PostBody>,
) -> Result<(StatusCode, Json<Value>), AppError> {
    let author = user_name(&audit)?;
    // `xmax = 0` tells an inserted row from an updated one.
    let row: Option<(Value, bool)> = sqlx::query_as(
        "INSERT INTO posts (slug, title, body, author) VALUES ($1, $2, $3, $4)
         ON CONFLICT (slug) DO UPDATE SET title = excluded.title, body = excluded.body,
             updated_at = now()
         WHERE posts.author = excluded.author
         RETURNING to_jsonb(posts), xmax = 0",
    )
    .bind(&slug)
    .bind(&input.title)
    .bind(&input.body)
    .bind(&author)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((post, created)) = row else {
        return Err(AppError::new(
            StatusCode::FORBIDDEN,
            format!("{slug:?} belongs to another author"),
        ));
    };
    tx.commit().await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(post)))
}

/// Publishes a post. `#[audited]` records a `post.published` action: `ok` on success,
/// `error` when the post is missing or belongs to someone else.
#[audited("post.published")]
async fn publish(
    audit: Audit,
    Path(slug): Path<String>,
    mut tx: AuditedTx,
) -> Result<Json<Value>, AppError> {
    let author = user_name(&audit)?;
    let owner: Option<(String,)> = sqlx::query_as("SELECT author FROM posts WHERE slug = $1")
        .bind(&slug)
        .fetch_optional(&mut *tx)
        .await?;
    match owner {
        None => return Err(not_found(&slug)),
        Some((owner,)) if owner != author => {
            return Err(AppError::new(
                StatusCode::FORBIDDEN,
                format!("only {owner} may publish {slug:?}"),
            ));
        }
        Some(_) => {}
    }
    sqlx::query("UPDATE posts SET published = true, updated_at = now() WHERE slug = $1")
        .bind(&slug)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Json(json!({ "slug": slug, "published": true })))
}

#[derive(Deserialize)]
struct CommentBody {
    body: String,
}

async fn add_comment(
    audit: Audit,
    Path(slug): Path<String>,
    mut tx: AuditedTx,
    Json(input): Json<CommentBody>,
) -> Result<(StatusCode, Json<Value>), AppError> {
    let author = user_name(&audit)?;
    let comment: Option<(Value,)> = sqlx::query_as(
        "INSERT INTO comments (post_id, author, body)
         SELECT id, $2, $3 FROM posts WHERE slug = $1
         RETURNING to_jsonb(comments)",
    )
    .bind(&slug)
    .bind(&author)
    .bind(&input.body)
    .fetch_optional(&mut *tx)
    .await?;
    let (comment,) = comment.ok_or_else(|| not_found(&slug))?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(comment)))
}

/// Deletes a post (its author or an admin).
async fn delete_post(
    audit: Audit,
    Path(slug): Path<String>,
    mut tx: AuditedTx,
) -> Result<StatusCode, AppError> {
    let name = user_name(&audit)?;
    let is_admin = require_admin(&audit).is_ok();
    let deleted = sqlx::query("DELETE FROM posts WHERE slug = $1 AND (author = $2 OR $3)")
        .bind(&slug)
        .bind(&name)
        .bind(is_admin)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if deleted == 0 {
        return Err(not_found(&slug));
    }
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
