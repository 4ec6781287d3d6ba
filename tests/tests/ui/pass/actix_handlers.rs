//! Audited handlers keep working as actix-web handlers, also under a routing attribute.

use actix_web::{App, HttpResponse, Responder, post, web};
use threadline_actix::{Audit, AuditedTx, audited};

#[audited("post.published")]
#[post("/posts/{id}/publish")]
async fn publish(
    id: web::Path<i64>,
    mut tx: AuditedTx,
    body: web::Json<serde_json::Value>,
) -> actix_web::Result<HttpResponse> {
    let _ = body;
    sqlx::query("UPDATE posts SET published = true WHERE id = $1")
        .bind(id.into_inner())
        .execute(&mut *tx)
        .await
        .map_err(actix_web::error::ErrorInternalServerError)?;
    tx.commit()
        .await
        .map_err(actix_web::error::ErrorInternalServerError)?;
    Ok(HttpResponse::NoContent().finish())
}

#[audited("post.viewed")]
async fn view(audit: Audit) -> impl Responder {
    format!("{:?}", audit.request_id)
}

fn main() {
    let _app = App::new()
        .service(publish)
        .route("/view", web::get().to(view));
}
