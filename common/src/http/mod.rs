//! HTTP plumbing every service shares: `/healthz`, `/readyz`, `/metrics`, request ids, tracing,
//! request durations by route ([`request_metrics`]), what every OpenAPI document shares
//! ([`openapi`]), and (in [`server`]) serving with time limits and graceful drain on shutdown.

pub mod openapi;
pub mod request_metrics;
mod server;

pub use server::serve;

use std::time::Duration;

use axum::{
    Json, Router,
    extract::{Request, State},
    http::{HeaderName, StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::get,
};
use redis::aio::ConnectionManager;
use sea_orm::DatabaseConnection;
use serde_json::json;

use crate::monitoring::Monitor;
use tower_http::{
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    trace::TraceLayer,
};

/// The request id header, accepted from the client or generated.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// What `/readyz` checks.
#[derive(Clone)]
pub struct Readiness {
    pub service: &'static str,
    pub redis: ConnectionManager,
    pub db: Option<DatabaseConnection>,
}

/// `/healthz`, `/readyz` and `/metrics` (the `monitor`'s page: see `crate::monitoring`).
pub fn ops_router(readiness: Readiness, monitor: Monitor) -> Router {
    Router::new()
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/readyz", get(readyz).with_state(readiness))
        .route(
            "/metrics",
            get(move || {
                let monitor = monitor.clone();
                async move {
                    (
                        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                        monitor.render(),
                    )
                }
            }),
        )
}

async fn readyz(State(r): State<Readiness>) -> Response {
    let redis_ok = tokio::time::timeout(Duration::from_secs(2), async {
        redis::cmd("PING")
            .query_async::<String>(&mut r.redis.clone())
            .await
            .is_ok()
    })
    .await
    .unwrap_or(false);
    let db_ok = match &r.db {
        Some(db) => tokio::time::timeout(Duration::from_secs(2), crate::db::ping(db))
            .await
            .unwrap_or(false),
        None => true,
    };
    // Ready means "can take requests": the database answers. Redis being away degrades the
    // service (events wait in the outbox, tokens are checked against the revocations read so
    // far) but does not stop it, so a balancer must keep sending it traffic.
    let body = json!({
        "service": r.service,
        "redis": redis_ok,
        "database": db_ok,
        "degraded": !redis_ok,
    });
    if db_ok {
        (StatusCode::OK, Json(body)).into_response()
    } else {
        let problem = json!({
            "type": format!("{}not-ready", crate::problem::PROBLEM_BASE),
            "title": "Service not ready",
            "status": 503,
            "detail": format!("redis reachable: {redis_ok}, database reachable: {db_ok}"),
            "checks": body,
        });
        (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::CONTENT_TYPE, "application/problem+json")],
            problem.to_string(),
        )
            .into_response()
    }
}

/// Longest client-sent request id kept; it becomes the `correlation_id` of every event the
/// request causes, so it is bounded like any other input.
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// Whether a client's `x-request-id` is kept: 1 to [`MAX_REQUEST_ID_LEN`] characters of
/// `A-Z a-z 0-9 - _ . :` (UUIDs, ULIDs, trace ids). Anything else is replaced by a new id.
pub fn is_acceptable_request_id(value: &[u8]) -> bool {
    (1..=MAX_REQUEST_ID_LEN).contains(&value.len())
        && value
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// Drops a client's request id that [`is_acceptable_request_id`] refuses, so the next layer
/// generates one.
async fn drop_unacceptable_request_id(mut request: Request, next: Next) -> Response {
    if request
        .headers()
        .get_all(&REQUEST_ID)
        .iter()
        .enumerate()
        .any(|(i, v)| i > 0 || !is_acceptable_request_id(v.as_bytes()))
    {
        request.headers_mut().remove(&REQUEST_ID);
    }
    next.run(request).await
}

/// Adds request ids (accepted when [`is_acceptable_request_id`], else generated; echoed back)
/// and a request span. (Request durations are recorded by [`serve`], outside its time limit.)
pub fn with_common_layers(router: Router) -> Router {
    router
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &axum::http::Request<_>| {
            let request_id = req
                .headers()
                .get(&REQUEST_ID)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            tracing::info_span!("request", method = %req.method(), uri = %req.uri(), request.id = %request_id)
        }))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .layer(middleware::from_fn(drop_unacceptable_request_id))
}
