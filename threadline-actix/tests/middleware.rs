//! The middleware and `Audit` extractor on a real actix-web app, driven with `actix_web::test`.

use std::net::SocketAddr;

use actix_web::http::StatusCode;
use actix_web::http::header::HeaderValue;
use actix_web::{App, HttpRequest, HttpResponse, test, web};
use serde_json::{Value, json};
use threadline_actix::{ActorRef, Audit, ThreadlineMiddleware, TrustedProxies, async_resolver};

fn actor_fn(req: &HttpRequest) -> Option<ActorRef> {
    ActorRef::user(req.headers().get("x-user-id")?.to_str().ok()?).ok()
}

async fn show(audit: Audit) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "actor": audit.actor,
        "request_id": audit.request_id,
        "correlation_id": audit.correlation_id,
        "remote_ip": audit.remote_ip,
        "source": audit.source,
    }))
}

async fn show_optional(audit: Option<Audit>) -> String {
    format!("middleware present: {}", audit.is_some())
}

macro_rules! app {
    ($middleware:expr) => {
        test::init_service(
            App::new()
                .wrap($middleware)
                .route("/ctx", web::get().to(show))
                .route("/optional", web::get().to(show_optional)),
        )
        .await
    };
}

fn peer() -> SocketAddr {
    SocketAddr::from(([10, 0, 0, 2], 5555))
}

fn get_ctx() -> test::TestRequest {
    test::TestRequest::get().uri("/ctx").peer_addr(peer())
}

#[actix_web::test]
async fn headers_present_fill_the_context() {
    let app = app!(ThreadlineMiddleware::new(actor_fn).source("web"));
    let req = get_ctx()
        .insert_header(("x-user-id", "42"))
        .insert_header(("x-request-id", "req-1"))
        .insert_header(("x-correlation-id", "order-9"))
        .to_request();
    let ctx: Value = test::call_and_read_body_json(&app, req).await;
    assert_eq!(
        ctx,
        json!({
            "actor": {"type": "user", "id": "42"},
            "request_id": "req-1",
            "correlation_id": "order-9",
            "remote_ip": "10.0.0.2",
            "source": "web",
        })
    );
}

#[actix_web::test]
async fn headers_absent_leave_fields_empty() {
    let app = app!(ThreadlineMiddleware::new(actor_fn));
    let req = test::TestRequest::get().uri("/ctx").to_request();
    let ctx: Value = test::call_and_read_body_json(&app, req).await;
    assert_eq!(
        ctx,
        json!({"actor": null, "request_id": null, "correlation_id": null, "remote_ip": null, "source": null})
    );
}

#[actix_web::test]
async fn oversized_and_malformed_values_are_dropped_not_500() {
    let app = app!(ThreadlineMiddleware::new(actor_fn));
    let req = get_ctx()
        .insert_header(("x-request-id", "r".repeat(257)))
        .insert_header(("x-correlation-id", "c".repeat(256)))
        .to_request();
    let ctx: Value = test::call_and_read_body_json(&app, req).await;
    assert_eq!(ctx["request_id"], Value::Null);
    assert_eq!(ctx["correlation_id"], json!("c".repeat(256)));

    let req = get_ctx()
        .insert_header(("x-request-id", "a\tb"))
        .insert_header((
            "x-correlation-id",
            HeaderValue::from_bytes(b"caf\xff").unwrap(),
        ))
        .to_request();
    let res = test::call_service(&app, req).await;
    assert_eq!(res.status(), StatusCode::OK);
    let ctx: Value = test::read_body_json(res).await;
    assert_eq!(ctx["request_id"], Value::Null);
    assert_eq!(ctx["correlation_id"], Value::Null);
}

#[actix_web::test]
async fn header_names_are_configurable() {
    let app = app!(
        ThreadlineMiddleware::new(actor_fn)
            .request_id_header("x-trace-id".parse().unwrap())
            .correlation_id_header("x-saga".parse().unwrap())
    );
    let req = get_ctx()
        .insert_header(("x-request-id", "ignored"))
        .insert_header(("x-trace-id", "trace-7"))
        .insert_header(("x-saga", "saga-3"))
        .to_request();
    let ctx: Value = test::call_and_read_body_json(&app, req).await;
    assert_eq!(ctx["request_id"], json!("trace-7"));
    assert_eq!(ctx["correlation_id"], json!("saga-3"));
}

#[actix_web::test]
async fn forwarded_for_is_ignored_unless_the_proxy_is_trusted() {
    let forwarded = |xff: &str| {
        get_ctx()
            .insert_header(("x-forwarded-for", xff.to_owned()))
            .to_request()
    };
    let untrusted = app!(ThreadlineMiddleware::new(actor_fn));
    let ctx: Value = test::call_and_read_body_json(&untrusted, forwarded("203.0.113.9")).await;
    assert_eq!(ctx["remote_ip"], json!("10.0.0.2"));

    let trusted = app!(
        ThreadlineMiddleware::new(actor_fn)
            .trusted_proxies(TrustedProxies::networks(["10.0.0.0/8"]).unwrap())
    );
    let ctx: Value =
        test::call_and_read_body_json(&trusted, forwarded("198.51.100.7, 203.0.113.9")).await;
    assert_eq!(ctx["remote_ip"], json!("203.0.113.9"));
    let ctx: Value = test::call_and_read_body_json(&trusted, forwarded("not-an-ip")).await;
    assert_eq!(ctx["remote_ip"], json!("10.0.0.2"), "malformed falls back");

    let other_peer = app!(
        ThreadlineMiddleware::new(actor_fn)
            .trusted_proxies(TrustedProxies::networks(["192.168.0.0/16"]).unwrap())
    );
    let ctx: Value = test::call_and_read_body_json(&other_peer, forwarded("203.0.113.9")).await;
    assert_eq!(
        ctx["remote_ip"],
        json!("10.0.0.2"),
        "peer is not a trusted proxy"
    );
}

#[actix_web::test]
async fn async_resolver_can_await() {
    let app = app!(ThreadlineMiddleware::new(async_resolver(
        |req: &HttpRequest| {
            let token = req.headers().get("authorization").cloned();
            async move {
                tokio::task::yield_now().await;
                let token = token?.to_str().ok()?.strip_prefix("Bearer ")?.to_owned();
                ActorRef::service_account(token).ok()
            }
        }
    )));
    let req = get_ctx()
        .insert_header(("authorization", "Bearer svc-billing"))
        .to_request();
    let ctx: Value = test::call_and_read_body_json(&app, req).await;
    assert_eq!(
        ctx["actor"],
        json!({"type": "service_account", "id": "svc-billing"})
    );
}

#[actix_web::test]
async fn missing_middleware_is_a_500_that_names_the_fix() {
    let app = test::init_service(
        App::new()
            .route("/ctx", web::get().to(show))
            .route("/optional", web::get().to(show_optional)),
    )
    .await;
    let res = test::call_service(&app, get_ctx().to_request()).await;
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body = String::from_utf8(test::read_body(res).await.to_vec()).unwrap();
    assert!(
        body.contains(".wrap(ThreadlineMiddleware::new(actor_fn))"),
        "{body}"
    );

    let req = test::TestRequest::get().uri("/optional").to_request();
    let body = test::call_and_read_body(&app, req).await;
    assert_eq!(&body[..], b"middleware present: false");

    let with = app!(ThreadlineMiddleware::new(actor_fn));
    let req = test::TestRequest::get().uri("/optional").to_request();
    let body = test::call_and_read_body(&with, req).await;
    assert_eq!(&body[..], b"middleware present: true");
}

#[cfg(feature = "sqlx")]
#[actix_web::test]
async fn audited_tx_without_handle_or_middleware_is_a_500_that_names_the_fix() {
    use threadline_actix::AuditedTx;
    async fn write(_tx: AuditedTx) -> &'static str {
        "unreachable"
    }
    let app = test::init_service(App::new().route("/w", web::get().to(write))).await;
    let res = test::call_service(&app, test::TestRequest::get().uri("/w").to_request()).await;
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body = String::from_utf8(test::read_body(res).await.to_vec()).unwrap();
    assert!(body.contains("ThreadlineMiddleware"), "{body}");

    let app = test::init_service(
        App::new()
            .wrap(ThreadlineMiddleware::new(actor_fn))
            .route("/w", web::get().to(write)),
    )
    .await;
    let res = test::call_service(&app, test::TestRequest::get().uri("/w").to_request()).await;
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body = String::from_utf8(test::read_body(res).await.to_vec()).unwrap();
    assert!(
        body.contains("web::Data::new(Threadline::new(pool))"),
        "{body}"
    );
}

#[actix_web::test]
async fn missing_middleware_error_reports_its_status_and_body_text() {
    use actix_web::ResponseError;
    use threadline_actix::MissingThreadlineMiddleware;

    let error = MissingThreadlineMiddleware::default();
    assert_eq!(error.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(error.status_code(), error.status());
    assert_eq!(error.body_text(), error.to_string());
    let response = error.error_response();
    assert_eq!(response.status(), error.status());
    let body = actix_web::body::to_bytes(response.into_body())
        .await
        .unwrap();
    assert_eq!(body, error.body_text().as_bytes());
}
