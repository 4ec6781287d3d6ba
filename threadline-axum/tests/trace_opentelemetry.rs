//! With the `opentelemetry` feature, the layer takes the trace id from the current
//! OpenTelemetry span (before the `traceparent` header), on a real axum router with `oneshot`.

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::Request;
use http_body_util::BodyExt;
use opentelemetry::Context;
use opentelemetry::context::FutureExt;
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use threadline_axum::{Audit, ThreadlineLayer};
use tower::ServiceExt;

const SPAN_TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
const HEADER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

async fn trace_id(Audit(ctx): Audit) -> String {
    ctx.trace_id.map(|t| t.to_string()).unwrap_or_default()
}

fn app() -> Router {
    Router::new()
        .route("/trace", get(trace_id))
        .layer(ThreadlineLayer::new(|_: &http::request::Parts| None))
}

/// A context whose current span is the (remote) span `trace_id`, as an OpenTelemetry
/// middleware in front of the layer would set it.
fn span(trace_id: &str) -> Context {
    Context::new().with_remote_span_context(SpanContext::new(
        TraceId::from_hex(trace_id).unwrap(),
        SpanId::from_hex("b7ad6b7169203331").unwrap(),
        TraceFlags::SAMPLED,
        true,
        TraceState::default(),
    ))
}

/// The trace id the handler saw, for a request with `traceparent` (if any), sent within `cx`.
async fn seen(cx: Context, traceparent: Option<&str>) -> String {
    let mut req = Request::get("/trace");
    if let Some(value) = traceparent {
        req = req.header("traceparent", value);
    }
    let res = app()
        .oneshot(req.body(Body::empty()).unwrap())
        .with_context(cx)
        .await
        .unwrap();
    assert!(res.status().is_success());
    let body = res.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(body.to_vec()).unwrap()
}

#[tokio::test]
async fn the_current_span_gives_the_trace_id() {
    assert_eq!(seen(span(SPAN_TRACE), None).await, SPAN_TRACE);
}

#[tokio::test]
async fn the_current_span_takes_precedence_over_the_header() {
    assert_eq!(seen(span(SPAN_TRACE), Some(TRACEPARENT)).await, SPAN_TRACE);
}

#[tokio::test]
async fn without_a_valid_span_the_header_gives_it() {
    assert_eq!(seen(Context::new(), Some(TRACEPARENT)).await, HEADER_TRACE);
    let invalid = Context::new().with_remote_span_context(SpanContext::empty_context());
    assert_eq!(seen(invalid, Some(TRACEPARENT)).await, HEADER_TRACE);
    assert_eq!(seen(Context::new(), None).await, "");
}
