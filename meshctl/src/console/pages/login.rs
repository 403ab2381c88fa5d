//! `/login` and `/logout`: the operator token opens a session (a cookie); log-out ends it.

use std::sync::Arc;

use askama::Template;
use axum::{
    Extension, Form,
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Redirect, Response},
};
use serde::Deserialize;

use crate::console::{
    Console,
    auth::{self, Login, Session},
    csrf,
    page::{PageError, render},
};

#[derive(Template)]
#[template(path = "console/login.html")]
struct Page {
    title: &'static str,
    signed_in: bool,
    csrf: &'static str,
    error: Option<&'static str>,
}

fn login_page(status: StatusCode, error: Option<&'static str>) -> Result<Response, PageError> {
    let mut response = render(&Page {
        title: "Log in",
        signed_in: false,
        csrf: "",
        error,
    })?;
    *response.status_mut() = status;
    Ok(response)
}

pub async fn form() -> Result<Response, PageError> {
    login_page(StatusCode::OK, None)
}

#[derive(Deserialize)]
pub struct Credentials {
    #[serde(default)]
    token: String,
}

pub async fn log_in(
    State(console): State<Arc<Console>>,
    Form(credentials): Form<Credentials>,
) -> Result<Response, PageError> {
    match console.auth.log_in(&credentials.token) {
        Login::Ok(id) => {
            tracing::info!("operator logged in to the console");
            Ok(with_cookie(
                Redirect::to("/streams"),
                &console.auth.cookie(&id),
            ))
        }
        Login::Wrong => {
            tracing::warn!("console log-in with a wrong token");
            login_page(
                StatusCode::UNAUTHORIZED,
                Some("That is not the operator token."),
            )
        }
        Login::TooMany => login_page(
            StatusCode::TOO_MANY_REQUESTS,
            Some("Too many failed log-ins: wait a minute."),
        ),
    }
}

#[derive(Deserialize)]
pub struct LogOut {
    csrf: Option<String>,
}

pub async fn log_out(
    State(console): State<Arc<Console>>,
    Extension(session): Extension<Session>,
    headers: HeaderMap,
    Form(form): Form<LogOut>,
) -> Result<Response, PageError> {
    csrf::check(&session, form.csrf.as_deref())?;
    if let Some(id) = auth::session_id(&headers) {
        console.auth.log_out(&id);
    }
    Ok(with_cookie(
        Redirect::to("/login"),
        &console.auth.cleared_cookie(),
    ))
}

fn with_cookie(redirect: Redirect, cookie: &str) -> Response {
    let mut response = redirect.into_response();
    if let Ok(value) = HeaderValue::from_str(cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}
