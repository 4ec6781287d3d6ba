//! With the `opentelemetry` feature, the middleware takes the trace id from the current
//! OpenTelemetry span (before the `traceparent` header), on a real actix-web app.

use actix_web::{App, HttpRequest, test, web};
use opentelemetry::Context;
use opentelemetry::context::FutureExt;
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use threadline_actix::{Audit, ThreadlineMiddleware};

const SPAN_TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
const HEADER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

async fn trace_id(audit: Audit) -> String {
    audit.trace_id.map(|t| t.to_string()).unwrap_or_default()
}

/// A context whose current span is the (remote) span `trace_id`, as an OpenTelemetry
/// middleware in front of this one would set it.
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
    let app = test::init_service(
        App::new()
            .wrap(ThreadlineMiddleware::new(|_: &HttpRequest| None))
            .route("/trace", web::get().to(trace_id)),
    )
    .await;
    let mut req = test::TestRequest::get().uri("/trace");
    if let Some(value) = traceparent {
        req = req.insert_header(("traceparent", value));
    }
    let body = test::call_and_read_body(&app, req.to_request())
        .with_context(cx)
        .await;
    String::from_utf8(body.to_vec()).unwrap()
}

#[actix_web::test]
async fn the_current_span_gives_the_trace_id() {
    assert_eq!(seen(span(SPAN_TRACE), None).await, SPAN_TRACE);
}

#[actix_web::test]
async fn the_current_span_takes_precedence_over_the_header() {
    assert_eq!(seen(span(SPAN_TRACE), Some(TRACEPARENT)).await, SPAN_TRACE);
}

#[actix_web::test]
async fn without_a_valid_span_the_header_gives_it() {
    assert_eq!(seen(Context::new(), Some(TRACEPARENT)).await, HEADER_TRACE);
    assert_eq!(seen(Context::new(), None).await, "");
}
