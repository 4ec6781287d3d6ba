use actix_web::HttpResponse;
use threadline_actix::audited;

#[audited("post.published")]
fn publish() -> HttpResponse {
    HttpResponse::NoContent().finish()
}

#[audited]
async fn unnamed() -> HttpResponse {
    HttpResponse::NoContent().finish()
}

#[audited("")]
async fn empty() -> HttpResponse {
    HttpResponse::NoContent().finish()
}

fn main() {}
