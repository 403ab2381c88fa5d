//! The console's router and the layers every request crosses, outermost first: security headers
//! on every answer; the `Host` allow-list (421 for any other name, so a DNS-rebinding page cannot
//! talk to a console on loopback); a body limit; the same-origin check of state-changing requests
//! (`csrf::same_origin`); refusals of malformed requests as HTML pages (`page::html_refusals`);
//! and, on every page but log-in and the style sheet, a live session ([`require_session`]: a `GET`
//! without one is sent to `/login`, anything else gets 401).

use std::{collections::HashSet, net::SocketAddr, sync::Arc};

use axum::{
    Router,
    extract::{DefaultBodyLimit, Request, State},
    http::{HeaderName, HeaderValue, Method, StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
};

use super::{
    Console, auth, csrf,
    page::{self, PageError},
    pages,
};

/// Largest request body: a confirm form carries at most `pages::dead_letters::MAX_ACTION` ids.
pub const MAX_BODY: usize = 64 * 1024;

/// `default-src 'none'`: no script, frame, image or connection of any kind; the one style sheet
/// comes from the console itself; forms post only to it; no page may frame it.
const CSP: &str = "default-src 'none'; style-src 'self'; form-action 'self'; \
                   frame-ancestors 'none'; base-uri 'none'";

const STYLE: &str = include_str!("../../templates/console/console.css");

/// The `Host` values answered: those configured, else the loopback names with the port listened
/// on, and the listen address itself.
pub fn allowed_hosts(configured: &[String], local: SocketAddr) -> Arc<HashSet<String>> {
    let mut hosts: HashSet<String> = configured
        .iter()
        .map(|h| h.trim().to_ascii_lowercase())
        .filter(|h| !h.is_empty())
        .collect();
    if hosts.is_empty() {
        let port = local.port();
        hosts.extend([
            format!("127.0.0.1:{port}"),
            format!("localhost:{port}"),
            format!("[::1]:{port}"),
        ]);
        if !local.ip().is_unspecified() {
            hosts.insert(local.to_string());
        }
    }
    Arc::new(hosts)
}

pub fn router(console: Arc<Console>, hosts: Arc<HashSet<String>>) -> Router {
    let signed_in = Router::new()
        .route("/", get(|| async { Redirect::to("/streams") }))
        .route("/streams", get(pages::streams::page))
        .route("/groups", get(pages::groups::page))
        .route("/streams/{stream}/groups/{group}", get(pages::group::page))
        .route("/streams/{stream}/entries/{id}", get(pages::entry::page))
        .route("/dead-letters", get(pages::dead_letters::list))
        .route("/dead-letters/preview", get(pages::dead_letters::preview))
        .route("/dead-letters/apply", post(pages::dead_letters::apply))
        .route("/timeline", get(pages::timeline::page))
        .route("/logout", post(pages::login::log_out))
        .route_layer(middleware::from_fn_with_state(
            console.clone(),
            require_session,
        ));
    Router::new()
        .merge(signed_in)
        .route("/login", get(pages::login::form).post(pages::login::log_in))
        .route(
            "/static/console.css",
            get(|| async { ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE) }),
        )
        .fallback(|| async { PageError::new(StatusCode::NOT_FOUND, "no such page") })
        .with_state(console)
        .layer(middleware::from_fn(page::html_refusals))
        .layer(middleware::from_fn(csrf::same_origin))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(middleware::from_fn_with_state(hosts, check_host))
        .layer(middleware::from_fn(security_headers))
}

/// 421 unless the request's `Host` is one the console answers.
async fn check_host(
    State(hosts): State<Arc<HashSet<String>>>,
    request: Request,
    next: Next,
) -> Response {
    let mut values = request.headers().get_all(header::HOST).iter();
    let host = match (values.next(), values.next()) {
        (Some(v), None) => v.to_str().ok().map(str::to_ascii_lowercase),
        _ => None,
    };
    if host.is_some_and(|h| hosts.contains(&h)) {
        return next.run(request).await;
    }
    PageError::new(
        StatusCode::MISDIRECTED_REQUEST,
        "this console does not answer to that host name (see --allowed-host)",
    )
    .into_response()
}

/// The session of the request's cookie, as an extension for the handlers; without one a `GET`
/// goes to `/login` and anything else is 401.
async fn require_session(
    State(console): State<Arc<Console>>,
    mut request: Request,
    next: Next,
) -> Response {
    let session = auth::session_id(request.headers()).and_then(|id| console.auth.session(&id));
    match session {
        Some(session) => {
            request.extensions_mut().insert(session);
            next.run(request).await
        }
        None if matches!(*request.method(), Method::GET | Method::HEAD) => {
            Redirect::to("/login").into_response()
        }
        None => PageError::new(StatusCode::UNAUTHORIZED, "log in first").into_response(),
    }
}

async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "same-origin"),
        (header::CACHE_CONTROL, "no-store"),
        (
            HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        ),
    ] {
        h.insert(name, HeaderValue::from_static(value));
    }
    response
}
