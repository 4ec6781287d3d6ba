//! Threadline on actix-web: posts written through `AuditedTx`, a `#[audited]` publish action,
//! and an admin route over the trail. `cargo run -p actix-blog` serves on
//! <http://localhost:3001> (`PORT` to change) against `DATABASE_URL` (default
//! `postgres://localhost/threadline_actix_demo`, created when missing).
//! `cargo run -p actix-blog -- --smoke` serves on a free port, sends the demo requests itself,
//! and exits 0 when the trail is attributed correctly.

mod smoke;

use actix_web::dev::Server;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, error, get, post, put, web};
use serde::Deserialize;
use serde_json::{Value, json};
use sqlx::migrate::MigrateDatabase;
use sqlx::{PgPool, Postgres};
use threadline_actix::{ActorRef, ActorType, Audit, AuditedTx, ThreadlineMiddleware, audited};
use threadline_sqlx::{InstallOptions, TableCapture, Threadline};

/// The fake login: `x-user: alice` is a user, `x-user: admin` an administrator.
fn actor_fn(req: &HttpRequest) -> Option<ActorRef> {
    match req.headers().get("x-user")?.to_str().ok()? {
        "admin" => ActorRef::admin("admin").ok(),
        name => ActorRef::user(name).ok(),
    }
}

fn author(audit: &Audit) -> actix_web::Result<String> {
    audit
        .actor
        .as_ref()
        .and_then(ActorRef::id)
        .map(str::to_owned)
        .ok_or_else(|| error::ErrorUnauthorized("send `x-user: alice`"))
}

#[derive(Deserialize)]
struct PostBody {
    title: String,
    #[serde(default)]
    body: String,
}

/// Creates or updates a post through a transaction that carries the request's context.
#[put("/posts/{slug}")]
async fn put_post(
    audit: Audit,
    slug: web::Path<String>,
    mut tx: AuditedTx,
    input: web::Json<PostBody>,
) -> actix_web::Result<HttpResponse> {
    let author = author(&audit)?;
    let post: Option<Value> = sqlx::query_scalar(
        "INSERT INTO posts (slug, title, body, author) VALUES ($1, $2, $3, $4)
         ON CONFLICT (slug) DO UPDATE SET title = excluded.title, body = excluded.body
         WHERE posts.author = excluded.author
         RETURNING to_jsonb(posts)",
    )
    .bind(slug.as_str())
    .bind(&input.title)
    .bind(&input.body)
    .bind(&author)
    .fetch_optional(&mut *tx)
    .await
    .map_err(error::ErrorInternalServerError)?;
    let post = post.ok_or_else(|| error::ErrorForbidden("another author's post"))?;
    tx.commit().await.map_err(error::ErrorInternalServerError)?;
    Ok(HttpResponse::Ok().json(post))
}

/// Publishes a post; `#[audited]` records `post.published` as ok or error.
#[audited("post.published")]
#[post("/posts/{slug}/publish")]
async fn publish(
    audit: Audit,
    slug: web::Path<String>,
    mut tx: AuditedTx,
) -> actix_web::Result<HttpResponse> {
    let author = author(&audit)?;
    let updated = sqlx::query("UPDATE posts SET published = true WHERE slug = $1 AND author = $2")
        .bind(slug.as_str())
        .bind(&author)
        .execute(&mut *tx)
        .await
        .map_err(error::ErrorInternalServerError)?
        .rows_affected();
    if updated == 0 {
        return Err(error::ErrorNotFound(format!("no post {slug} by {author}")));
    }
    tx.commit().await.map_err(error::ErrorInternalServerError)?;
    Ok(HttpResponse::Ok().json(json!({ "slug": slug.as_str(), "published": true })))
}

/// The post's changes, newest first (admins only).
#[get("/admin/posts/{slug}/history")]
async fn history(
    audit: Audit,
    slug: web::Path<String>,
    threadline: web::Data<Threadline>,
) -> actix_web::Result<HttpResponse> {
    if audit.actor.as_ref().map(ActorRef::kind) != Some(ActorType::Admin) {
        return Err(error::ErrorForbidden("admin only: send `x-user: admin`"));
    }
    let id: i64 = sqlx::query_scalar("SELECT id FROM posts WHERE slug = $1")
        .bind(slug.as_str())
        .fetch_optional(threadline.pool())
        .await
        .map_err(error::ErrorInternalServerError)?
        .ok_or_else(|| error::ErrorNotFound(format!("no post {slug}")))?;
    let changes = threadline
        .history("posts", id)
        .await
        .map_err(error::ErrorBadRequest)?;
    Ok(HttpResponse::Ok().json(changes))
}

async fn prepare(url: &str) -> Result<PgPool, Box<dyn std::error::Error>> {
    if !Postgres::database_exists(url).await? {
        Postgres::create_database(url).await?;
    }
    let pool = PgPool::connect(url).await?;
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS posts (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            slug text NOT NULL UNIQUE, title text NOT NULL, body text NOT NULL DEFAULT '',
            author text NOT NULL, published boolean NOT NULL DEFAULT false)",
    )
    .execute(&pool)
    .await?;
    let install = InstallOptions::default();
    threadline_sqlx::install(&pool, &install).await?;
    threadline_sqlx::audit_table(&pool, &install, &"posts".parse()?, &TableCapture::default())
        .await?;
    Ok(pool)
}

/// The demo server on `listener`, with the Threadline middleware around every route.
fn server(pool: PgPool, listener: std::net::TcpListener) -> std::io::Result<Server> {
    let threadline = web::Data::new(Threadline::new(pool));
    Ok(HttpServer::new(move || {
        App::new()
            .app_data(threadline.clone())
            .wrap(ThreadlineMiddleware::new(actor_fn).source("actix-blog"))
            .service(put_post)
            .service(publish)
            .service(history)
    })
    .listen(listener)?
    .run())
}

#[actix_web::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut smoke = false;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--smoke" => smoke = true,
            other => {
                return Err(format!(
                    "unknown argument {other:?}; usage: actix-blog [--smoke] (env DATABASE_URL, PORT)"
                )
                .into());
            }
        }
    }
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://localhost/threadline_actix_demo".to_owned());
    let pool = prepare(&url)
        .await
        .map_err(|e| format!("cannot prepare the database at {url}: {e}"))?;
    if smoke {
        return smoke::run(pool).await;
    }
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(3001);
    let base = format!("http://localhost:{port}");
    println!("actix-blog listening on {base}\n");
    println!(
        "curl -s -X PUT {base}/posts/hello -H 'x-user: alice' -H 'content-type: application/json' -d '{{\"title\":\"Hello\"}}'"
    );
    println!("curl -s -X POST {base}/posts/hello/publish -H 'x-user: alice'");
    println!("curl -s {base}/admin/posts/hello/history -H 'x-user: admin'");
    server(pool, std::net::TcpListener::bind(("127.0.0.1", port))?)?.await?;
    Ok(())
}
