//! The span of one HTTP request: method, route template (`/orders/{id}`, never the path a client
//! sent), request id and response status. When traces are exported it is an OpenTelemetry span
//! of kind server, a child of the request's `traceparent` header if that is valid (anything else
//! is ignored), and the events the request publishes carry its context (`Envelope::new`).

use std::time::Duration;

use axum::{
    extract::{MatchedPath, Request},
    http::HeaderMap,
    response::Response,
};
use tracing::field::Empty;

use super::{request_id::REQUEST_ID, request_metrics::UNMATCHED};
use crate::telemetry::{
    self,
    trace_context::{self, TRACEPARENT, TRACESTATE, TraceContext},
};

/// Opens the span of `request` (for `TraceLayer::make_span_with`).
pub fn open<B>(request: &Request<B>) -> tracing::Span {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or(UNMATCHED, |p| p.as_str());
    let request_id = request
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let span = tracing::info_span!(
        "request",
        http.request.method = %request.method(),
        http.route = route,
        request.id = request_id,
        http.response.status_code = Empty,
        trace_id = Empty,
        otel.name = Empty,
        otel.kind = Empty,
        otel.status_code = Empty,
    );
    if telemetry::tracing_enabled() {
        span.record("otel.name", format!("{} {route}", request.method()));
        span.record("otel.kind", "server");
    }
    trace_context::adopt(&span, incoming(request.headers()).as_ref());
    span
}

/// Records the response status (for `TraceLayer::on_response`); a 5xx is an error.
pub fn record_status<B>(response: &Response<B>, _latency: Duration, span: &tracing::Span) {
    let status = response.status();
    span.record("http.response.status_code", status.as_u16());
    if status.is_server_error() && telemetry::tracing_enabled() {
        span.record("otel.status_code", "ERROR");
    }
}

/// The request's trace context: exactly one `traceparent` header that is valid, and the
/// `tracestate` if there is exactly one.
fn incoming(headers: &HeaderMap) -> Option<TraceContext> {
    let one = |name: &str| {
        let mut values = headers.get_all(name).iter();
        match (values.next(), values.next()) {
            (Some(value), None) => Some(value.as_bytes()),
            _ => None,
        }
    };
    TraceContext::parse(one(TRACEPARENT), one(TRACESTATE))
}
