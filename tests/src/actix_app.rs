//! The blog API on actix-web.

use std::rc::Rc;

use actix_web::http::StatusCode;
use actix_web::{App, HttpRequest, HttpResponse, test, web};
use serde_json::{Value, json};
use threadline_actix::{ActorRef, AuditedTx, Threadline, ThreadlineMiddleware, audited};

use crate::{Req, Resp, Sender};

fn actor_fn(req: &HttpRequest) -> Option<ActorRef> {
    ActorRef::user(req.headers().get("x-user-id")?.to_str().ok()?).ok()
}

type Result<T> = std::result::Result<T, actix_web::Error>;

fn internal(e: sqlx::Error) -> actix_web::Error {
    actix_web::error::ErrorInternalServerError(e)
}

async fn create(mut tx: AuditedTx, body: web::Json<Value>) -> Result<HttpResponse> {
    let id: i64 = sqlx::query_scalar("INSERT INTO posts (title) VALUES ($1) RETURNING id")
        .persistent(false)
        .bind(body["title"].as_str().unwrap_or_default())
        .fetch_one(&mut *tx)
        .await
        .map_err(internal)?;
    tx.commit().await.map_err(internal)?;
    Ok(HttpResponse::Created().json(json!({ "id": id })))
}

async fn create_then_forget(mut tx: AuditedTx, body: web::Json<Value>) -> Result<HttpResponse> {
    sqlx::query("INSERT INTO posts (title) VALUES ($1)")
        .persistent(false)
        .bind(body["title"].as_str().unwrap_or_default())
        .execute(&mut *tx)
        .await
        .map_err(internal)?;
    Ok(HttpResponse::Ok().finish()) // no commit: dropping the transaction rolls it back
}

#[audited("post.published")]
async fn publish(
    id: web::Path<i64>,
    mut tx: AuditedTx,
    _body: web::Json<Value>,
) -> Result<HttpResponse> {
    let id = id.into_inner();
    let updated = sqlx::query("UPDATE posts SET published = true WHERE id = $1")
        .persistent(false)
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(internal)?
        .rows_affected();
    if updated == 0 {
        return Ok(HttpResponse::build(StatusCode::NOT_FOUND).body(format!("no post {id}")));
    }
    tx.commit().await.map_err(internal)?;
    Ok(HttpResponse::Ok().finish())
}

/// Sends requests through the app with `actix_web::test`.
pub async fn sender(threadline: Threadline) -> Sender {
    let app = test::init_service(
        App::new()
            .app_data(web::Data::new(threadline))
            .wrap(ThreadlineMiddleware::new(actor_fn))
            .route("/posts", web::post().to(create))
            .route("/posts/rollback", web::post().to(create_then_forget))
            .route("/posts/{id}/publish", web::post().to(publish)),
    )
    .await;
    let app = Rc::new(app);
    Box::new(move |req: Req| {
        let app = app.clone();
        Box::pin(async move {
            let mut request = test::TestRequest::default()
                .method(req.method.parse().expect("method"))
                .uri(&req.path);
            for (name, value) in req.headers {
                request = request.insert_header((name, value));
            }
            if let Some(json) = req.json {
                request = request.set_json(json);
            }
            let response = test::call_service(&*app, request.to_request()).await;
            let status = response.status().as_u16();
            let body = test::read_body(response).await.to_vec();
            Resp { status, body }
        })
    })
}
