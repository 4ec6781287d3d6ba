//! The layer and `Audit` extractor on a real axum router, driven with `oneshot`.

use std::net::SocketAddr;

use axum::Router;
use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::routing::get;
use http::request::Parts;
use http::{HeaderValue, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use threadline_axum::{ActorRef, Audit, ThreadlineLayer, TrustedProxies, async_resolver};
use tower::ServiceExt;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};

fn actor_fn(parts: &Parts) -> Option<ActorRef> {
    let id = parts.headers.get("x-user-id")?.to_str().ok()?;
    ActorRef::user(id).ok()
}

async fn show(Audit(ctx): Audit) -> axum::Json<Value> {
    axum::Json(json!({
        "actor": ctx.actor,
        "request_id": ctx.request_id,
        "correlation_id": ctx.correlation_id,
        "remote_ip": ctx.remote_ip,
        "source": ctx.source,
    }))
}

async fn show_optional(audit: Option<Audit>) -> String {
    format!("layer present: {}", audit.is_some())
}

fn routes() -> Router {
    Router::new()
        .route("/ctx", get(show))
        .route("/optional", get(show_optional))
}

fn peer() -> MockConnectInfo<SocketAddr> {
    MockConnectInfo(SocketAddr::from(([10, 0, 0, 2], 5555)))
}

async fn send(app: Router, req: Request<Body>) -> (StatusCode, http::HeaderMap, Vec<u8>) {
    let res = app.oneshot(req).await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let body = res.into_body().collect().await.unwrap().to_bytes().to_vec();
    (status, headers, body)
}

async fn context(app: Router, req: Request<Body>) -> Value {
    let (status, _, body) = send(app, req).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    serde_json::from_slice(&body).unwrap()
}

fn get_ctx() -> http::request::Builder {
    Request::get("/ctx")
}

#[tokio::test]
async fn headers_present_fill_the_context() {
    let app = routes()
        .layer(ThreadlineLayer::new(actor_fn).source("web"))
        .layer(peer());
    let req = get_ctx()
        .header("x-user-id", "42")
        .header("x-request-id", "req-1")
        .header("x-correlation-id", "order-9")
        .body(Body::empty())
        .unwrap();
    assert_eq!(
        context(app, req).await,
        json!({
            "actor": {"type": "user", "id": "42"},
            "request_id": "req-1",
            "correlation_id": "order-9",
            "remote_ip": "10.0.0.2",
            "source": "web",
        })
    );
}

#[tokio::test]
async fn headers_absent_leave_fields_empty() {
    let app = routes().layer(ThreadlineLayer::new(actor_fn));
    let ctx = context(app, get_ctx().body(Body::empty()).unwrap()).await;
    assert_eq!(
        ctx,
        json!({"actor": null, "request_id": null, "correlation_id": null, "remote_ip": null, "source": null})
    );
}

#[tokio::test]
async fn oversized_and_malformed_values_are_dropped_not_500() {
    let app = routes().layer(ThreadlineLayer::new(actor_fn));
    let req = get_ctx()
        .header("x-request-id", "r".repeat(257))
        .header("x-correlation-id", "c".repeat(256))
        .body(Body::empty())
        .unwrap();
    let ctx = context(app.clone(), req).await;
    assert_eq!(ctx["request_id"], Value::Null);
    assert_eq!(ctx["correlation_id"], json!("c".repeat(256)));

    // A tab is a legal header byte but a control character; 0xff is legal but not UTF-8.
    let req = get_ctx()
        .header("x-request-id", "a\tb")
        .header(
            "x-correlation-id",
            HeaderValue::from_bytes(b"caf\xff").unwrap(),
        )
        .body(Body::empty())
        .unwrap();
    let ctx = context(app, req).await;
    assert_eq!(ctx["request_id"], Value::Null);
    assert_eq!(ctx["correlation_id"], Value::Null);
}

#[tokio::test]
async fn dropped_values_are_logged_with_the_header_and_the_reason() {
    let recorder = threadline_test_support::logs::Recorder::default();
    // Current-thread runtime: the layer runs on this thread, under this subscriber.
    let _guard = tracing::subscriber::set_default(recorder.clone());
    let app = routes().layer(ThreadlineLayer::new(actor_fn));
    let req = get_ctx()
        .header("x-request-id", "r".repeat(257))
        .header("x-correlation-id", "a\tb")
        .body(Body::empty())
        .unwrap();
    let ctx = context(app, req).await;
    assert_eq!(ctx["request_id"], Value::Null);
    let lines = recorder.lines();
    let warned = |header: &str, reason: &str| {
        lines.iter().any(|l| {
            l.starts_with("WARN")
                && l.contains(&format!("header={header}"))
                && l.contains(&format!("reason={reason}"))
                && l.contains("ignoring header value")
        })
    };
    assert!(
        warned("x-request-id", "257 bytes, over the 256-byte limit"),
        "{lines:?}"
    );
    assert!(
        warned("x-correlation-id", "contains a control character"),
        "{lines:?}"
    );
    // The values themselves are not logged (they are untrusted input).
    assert!(!lines.iter().any(|l| l.contains("rrrr")), "{lines:?}");
}

#[tokio::test]
async fn header_names_are_configurable() {
    let app = routes().layer(
        ThreadlineLayer::new(actor_fn)
            .request_id_header("x-trace-id".parse().unwrap())
            .correlation_id_header("x-saga".parse().unwrap()),
    );
    let req = get_ctx()
        .header("x-request-id", "ignored")
        .header("x-trace-id", "trace-7")
        .header("x-saga", "saga-3")
        .body(Body::empty())
        .unwrap();
    let ctx = context(app, req).await;
    assert_eq!(ctx["request_id"], json!("trace-7"));
    assert_eq!(ctx["correlation_id"], json!("saga-3"));
}

#[tokio::test]
async fn set_request_id_layer_outside_provides_the_request_id() {
    // SetRequestIdLayer is added last, so it runs first and sets both the header and the
    // `RequestId` extension; PropagateRequestIdLayer echoes it in the response.
    let app = routes()
        .layer(ThreadlineLayer::new(actor_fn))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid));
    let (status, headers, body) = send(app, get_ctx().body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    let ctx: Value = serde_json::from_slice(&body).unwrap();
    let echoed = headers["x-request-id"].to_str().unwrap();
    assert_eq!(echoed.len(), 36, "a UUID: {echoed}");
    assert_eq!(ctx["request_id"], json!(echoed));
}

#[tokio::test]
async fn request_id_extension_is_used_when_header_names_differ() {
    // tower-http writes `x-amzn-trace-id`; the layer still looks for `x-request-id` and falls
    // back to the `RequestId` extension.
    let app = routes()
        .layer(ThreadlineLayer::new(actor_fn))
        .layer(SetRequestIdLayer::new(
            "x-amzn-trace-id".parse().unwrap(),
            MakeRequestUuid,
        ));
    let ctx = context(app, get_ctx().body(Body::empty()).unwrap()).await;
    assert_eq!(ctx["request_id"].as_str().map(str::len), Some(36));
}

fn forwarded(xff: &str) -> Request<Body> {
    get_ctx()
        .header("x-forwarded-for", xff)
        .body(Body::empty())
        .unwrap()
}

#[tokio::test]
async fn forwarded_for_is_ignored_unless_the_proxy_is_trusted() {
    let untrusted = routes().layer(ThreadlineLayer::new(actor_fn)).layer(peer());
    let ctx = context(untrusted, forwarded("203.0.113.9")).await;
    assert_eq!(ctx["remote_ip"], json!("10.0.0.2"));

    let trusted = routes()
        .layer(
            ThreadlineLayer::new(actor_fn)
                .trusted_proxies(TrustedProxies::networks(["10.0.0.0/8"]).unwrap()),
        )
        .layer(peer());
    let ctx = context(trusted.clone(), forwarded("198.51.100.7, 203.0.113.9")).await;
    assert_eq!(ctx["remote_ip"], json!("203.0.113.9"));

    let ctx = context(trusted, forwarded("not-an-ip")).await;
    assert_eq!(ctx["remote_ip"], json!("10.0.0.2"), "malformed falls back");

    let other_peer = routes()
        .layer(
            ThreadlineLayer::new(actor_fn)
                .trusted_proxies(TrustedProxies::networks(["192.168.0.0/16"]).unwrap()),
        )
        .layer(peer());
    let ctx = context(other_peer, forwarded("203.0.113.9")).await;
    assert_eq!(
        ctx["remote_ip"],
        json!("10.0.0.2"),
        "peer is not a trusted proxy"
    );

    let hops =
        routes().layer(ThreadlineLayer::new(actor_fn).trusted_proxies(TrustedProxies::Hops(1)));
    let ctx = context(hops, forwarded("198.51.100.7, 203.0.113.9")).await;
    assert_eq!(ctx["remote_ip"], json!("203.0.113.9"));
}

#[tokio::test]
async fn async_resolver_can_await() {
    let layer = ThreadlineLayer::new(async_resolver(|parts: &Parts| {
        let token = parts.headers.get("authorization").cloned();
        async move {
            tokio::task::yield_now().await;
            let token = token?.to_str().ok()?.strip_prefix("Bearer ")?.to_owned();
            ActorRef::service_account(token).ok()
        }
    }));
    let app = routes().layer(layer);
    let req = get_ctx()
        .header("authorization", "Bearer svc-billing")
        .body(Body::empty())
        .unwrap();
    let ctx = context(app, req).await;
    assert_eq!(
        ctx["actor"],
        json!({"type": "service_account", "id": "svc-billing"})
    );
}

#[tokio::test]
async fn missing_layer_is_a_500_that_names_the_fix() {
    let (status, _, body) = send(routes(), get_ctx().body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    let body = String::from_utf8(body).unwrap();
    assert!(
        body.contains(".layer(ThreadlineLayer::new(actor_fn))"),
        "{body}"
    );

    let optional = Request::get("/optional").body(Body::empty()).unwrap();
    let (status, _, body) = send(routes(), optional).await;
    assert_eq!(
        (status, body.as_slice()),
        (StatusCode::OK, &b"layer present: false"[..])
    );

    let optional = Request::get("/optional").body(Body::empty()).unwrap();
    let app = routes().layer(ThreadlineLayer::new(actor_fn));
    let (_, _, body) = send(app, optional).await;
    assert_eq!(body.as_slice(), b"layer present: true");
}

#[tokio::test]
async fn audited_tx_without_the_layer_is_the_same_500() {
    use threadline_axum::AuditedTx;
    async fn write(_tx: AuditedTx) -> &'static str {
        "unreachable"
    }
    // The rejection comes before any connection is made, so a lazy pool to nowhere is fine.
    let pool = sqlx::PgPool::connect_lazy("postgres://nobody@127.0.0.1:1/none").unwrap();
    let app = Router::new()
        .route("/w", get(write))
        .with_state(threadline_axum::Threadline::new(pool));
    let (status, _, body) = send(app, Request::get("/w").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(String::from_utf8(body).unwrap().contains("ThreadlineLayer"));
}

#[tokio::test]
async fn missing_layer_rejection_is_shaped_and_logged_like_axums() {
    use axum_core::response::IntoResponse;
    use threadline_axum::MissingThreadlineLayer;

    let rejection = MissingThreadlineLayer::default();
    assert_eq!(rejection.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(rejection.body_text(), rejection.to_string());

    let recorder = threadline_test_support::logs::Recorder::default();
    let _guard = tracing::subscriber::set_default(recorder.clone());
    let response = rejection.into_response();
    assert_eq!(response.status(), rejection.status());
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, rejection.body_text().as_bytes());
    let lines = recorder.lines();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with("TRACE axum::rejection: message=rejecting request status=500"),
        "{lines:?}"
    );
    assert!(
        lines[0].contains("rejection_type=\"threadline_axum::extract::MissingThreadlineLayer\""),
        "{lines:?}"
    );
}
