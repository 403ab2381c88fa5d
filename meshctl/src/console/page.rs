//! Rendering: a template becomes a `text/html` response; an error becomes an HTML error page
//! whose status follows meshctl's exit codes (unknown stream, group or entry → 404, bad input →
//! 400, Redis unreachable → 503). A 5xx is logged once and its detail hidden.

use askama::Template;
use axum::{
    body::to_bytes,
    extract::Request,
    http::{StatusCode, header},
    middleware::Next,
    response::{Html, IntoResponse, Response},
};

use crate::ctx::exit;

/// Longest stream, group or consumer name, filter text or id taken from a request.
pub const MAX_INPUT_LEN: usize = 200;

#[derive(Template)]
#[template(path = "console/error.html")]
struct ErrorPage<'a> {
    title: &'a str,
    message: &'a str,
    signed_in: bool,
    csrf: &'a str,
}

/// A page that could not be made.
#[derive(Debug)]
pub struct PageError {
    pub status: StatusCode,
    pub message: String,
}

impl PageError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }
}

impl From<anyhow::Error> for PageError {
    fn from(error: anyhow::Error) -> Self {
        let status = match exit::code_of(&error) {
            exit::NOT_FOUND => StatusCode::NOT_FOUND,
            exit::BAD_INPUT | exit::USAGE => StatusCode::BAD_REQUEST,
            exit::UNREACHABLE => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status.is_server_error() {
            tracing::error!(error = format!("{error:#}"), "console page failed");
            return Self::new(status, "the page could not be made; see the console's log");
        }
        Self::new(status, format!("{error:#}"))
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let title = self.status.canonical_reason().unwrap_or("Error");
        let page = ErrorPage {
            title,
            message: &self.message,
            signed_in: false,
            csrf: "",
        };
        match page.render() {
            Ok(html) => (self.status, Html(html)).into_response(),
            Err(_) => (self.status, self.message).into_response(),
        }
    }
}

/// Turns axum's plain-text refusals of a request (a query string, path or form that does not
/// parse, a body too large or of the wrong type) into the console's HTML error page.
pub async fn html_refusals(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let plain = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/plain"));
    if !response.status().is_client_error() || !plain {
        return response;
    }
    let status = response.status();
    let text = to_bytes(response.into_body(), 4096)
        .await
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    PageError::new(status, text).into_response()
}

/// A rendered template as a response.
pub fn render<T: Template>(page: &T) -> Result<Response, PageError> {
    let html = page.render().map_err(|e| {
        tracing::error!(error = %e, "template failed");
        PageError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the page could not be rendered",
        )
    })?;
    Ok(([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response())
}

/// `text` as a name or id from a request: at most [`MAX_INPUT_LEN`] bytes.
pub fn bounded<'a>(what: &str, text: &'a str) -> Result<&'a str, PageError> {
    if text.len() > MAX_INPUT_LEN {
        return Err(PageError::bad_request(format!(
            "{what} is longer than {MAX_INPUT_LEN} bytes"
        )));
    }
    Ok(text)
}

/// An optional filter from a query string: empty is none, longer than [`MAX_INPUT_LEN`] refused.
pub fn filter(what: &str, text: &Option<String>) -> Result<Option<String>, PageError> {
    match text.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(t) => Ok(Some(bounded(what, t)?.to_owned())),
    }
}
