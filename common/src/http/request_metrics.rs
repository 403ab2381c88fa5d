//! `mesh_http_request_duration_seconds{method, route, status}`: how long each request took, by
//! the route template it matched (`/orders/{id}`, never the path a client sent, so the labels stay
//! bounded), `unmatched` when no route did, and the response status.

use std::{sync::Once, time::Instant};

use axum::{
    extract::{MatchedPath, Request},
    http::Method,
    middleware::Next,
    response::Response,
};

/// The histogram's name.
pub const REQUEST_DURATION: &str = "mesh_http_request_duration_seconds";
/// The `route` of a request no route matched.
pub const UNMATCHED: &str = "unmatched";

/// Records the request's duration once the handler has answered (the body is streamed after).
pub async fn record_request(request: Request, next: Next) -> Response {
    static DESCRIBED: Once = Once::new();
    DESCRIBED.call_once(|| {
        metrics::describe_histogram!(
            REQUEST_DURATION,
            metrics::Unit::Seconds,
            "Time from a request to its response head, by route template and status."
        );
    });
    let started = Instant::now();
    let method = method_label(request.method());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| UNMATCHED.to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    metrics::histogram!(
        REQUEST_DURATION,
        "method" => method,
        "route" => route,
        "status" => response.status().as_u16().to_string(),
    )
    .record(started.elapsed().as_secs_f64());
    response
}

/// The method as a label: one of the standard ones, `other` for an extension method (input: the
/// label stays bounded).
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}
