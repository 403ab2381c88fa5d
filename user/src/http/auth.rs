//! `POST /auth/register`, `/auth/login`, `/auth/refresh`, `/auth/logout` and
//! `GET /.well-known/jwks.json`.

use axum::{
    Json, Router,
    body::Bytes,
    extract::{State, rejection::JsonRejection},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use common::{
    auth::{AuthUser, Role},
    problem::ApiError,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{AppState, ClientIp, users::UserView};
use crate::{
    accounts,
    password::normalize_email,
    session::{self, Session},
};
use common::http::correlation_id;

/// Name of the refresh token cookie.
pub const REFRESH_COOKIE: &str = "refresh_token";
/// Path the refresh cookie is sent to: only the auth endpoints need it.
const COOKIE_PATH: &str = "/auth";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/auth/register", post(register))
        .route("/auth/login", post(login))
        .route("/auth/refresh", post(refresh))
        .route("/auth/logout", post(logout))
        .route("/.well-known/jwks.json", get(jwks))
}

/// A new account. Any other field (such as `role`) is ignored: registration makes a `user`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct RegisterRequest {
    pub email: String,
    pub password: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
}

/// For clients without cookies; browsers send the HttpOnly cookie instead.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct RefreshRequest {
    pub refresh_token: Option<String>,
}

/// A session: the refresh token is also set as an HttpOnly cookie.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    pub refresh_token: String,
    /// Seconds until the refresh token expires.
    pub refresh_expires_in: u64,
}

/// Create an account (always role `user`).
#[utoipa::path(post, path = "/auth/register", tag = "auth", request_body = RegisterRequest,
    responses((status = 201, body = UserView), (status = 409, description = "e-mail taken"),
              (status = 422, description = "invalid e-mail or password"),
              (status = 429, description = "too many registrations from this address; see Retry-After"),
              (status = 503, description = "password hashing at capacity (see Retry-After), or Redis unavailable")))]
pub async fn register(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    body: Result<Json<RegisterRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<UserView>), ApiError> {
    let Json(req) = body?;
    state.limiter.take_registration(ip).await?;
    let account = accounts::create(
        &state.db,
        &state.hashing,
        &req.email,
        &req.password,
        Role::User,
        &correlation_id(&headers),
    )
    .await?;
    state.outbox.notify();
    metrics::counter!("user_registrations_total").increment(1);
    tracing::info!(user.id = %account.id, "registered");
    Ok((StatusCode::CREATED, Json(UserView::from(account))))
}

/// Log in: an access token and a refresh token (body and HttpOnly cookie).
#[utoipa::path(post, path = "/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = TokenResponse), (status = 401, description = "wrong credentials"),
              (status = 422, description = "not an e-mail address"),
              (status = 429, description = "too many failed log-ins; see Retry-After"),
              (status = 503, description = "password hashing at capacity (see Retry-After), or Redis unavailable")))]
pub async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    body: Result<Json<LoginRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(req) = body?;
    let email = normalize_email(&req.email)?;
    // Counted before the password is checked (and given back on success): concurrent guesses
    // cannot all pass a check that none of them has been counted in yet.
    if let Err(limited) = state.limiter.take_login_attempt(&email, ip).await {
        metrics::counter!("user_logins_total", "outcome" => "limited").increment(1);
        return Err(limited);
    }
    let account = accounts::find_by_email(&state.db, &email).await?;
    let ok = state
        .hashing
        .verify(
            req.password,
            account.as_ref().map(|a| a.password_hash.clone()),
        )
        .await?;
    let Some(account) = account.filter(|_| ok) else {
        metrics::counter!("user_logins_total", "outcome" => "failure").increment(1);
        return Err(ApiError::Unauthorized("wrong e-mail or password".into()));
    };
    state.limiter.login_succeeded(&email, ip).await?;
    let session = session::start(
        &state.db,
        &state.signer,
        &account,
        None,
        state.settings.refresh_ttl,
    )
    .await?;
    metrics::counter!("user_logins_total", "outcome" => "success").increment(1);
    tracing::info!(user.id = %account.id, "logged in");
    Ok(session_response(&state, session))
}

/// Exchange a refresh token (cookie or body) for a new session; the old token stops working,
/// and presenting it again revokes the whole session family.
#[utoipa::path(post, path = "/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses((status = 200, body = TokenResponse), (status = 401, description = "invalid, expired or reused refresh token")))]
pub async fn refresh(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let presented = refresh_token_of(&headers, &body)?
        .ok_or_else(|| ApiError::Unauthorized("missing refresh token".into()))?;
    let session = session::rotate(
        &state.db,
        &state.signer,
        &state.revoker,
        &presented,
        state.settings.refresh_ttl,
        &correlation_id(&headers),
    )
    .await?;
    Ok(session_response(&state, session))
}

/// Log out: the access token is revoked on every service (a `token-revoked` event) and its
/// session's refresh tokens are revoked.
#[utoipa::path(post, path = "/auth/logout", tag = "auth", security(("bearer" = [])),
    responses((status = 204, description = "logged out"), (status = 401, description = "no valid access token")))]
pub async fn logout(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    // The session is found through the access token; a refresh cookie (say, of an older log-in
    // in the same browser) is revoked as well.
    let presented = refresh_token_of(&headers, &Bytes::new())?;
    let txn = common::db::begin(&state.db).await?;
    for family in session::family_of(&txn, claims.sub, &claims.jti, presented.as_deref()).await? {
        session::revoke_family(&txn, family).await?;
    }
    let revoked = state
        .revoker
        .token(&txn, &claims, &correlation_id(&headers))
        .await?;
    txn.commit().await?;
    state.revoker.committed(&revoked);
    tracing::info!(user.id = %claims.sub, "logged out");
    let mut response = StatusCode::NO_CONTENT.into_response();
    set_cookie(&mut response, &cookie(&state, "", 0));
    Ok(response)
}

/// The public key(s) access tokens are signed with.
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "auth",
    responses((status = 200, description = "JSON Web Key Set (Ed25519)")))]
pub async fn jwks(State(state): State<AppState>) -> Response {
    (
        [(header::CACHE_CONTROL, "public, max-age=300")],
        Json(state.signer.verifier().jwks()),
    )
        .into_response()
}

/// The refresh token of the body (`refresh_token`), else of the cookie.
fn refresh_token_of(headers: &HeaderMap, body: &Bytes) -> Result<Option<String>, ApiError> {
    if !body.iter().all(u8::is_ascii_whitespace) {
        let req: RefreshRequest = serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?;
        if let Some(token) = req.refresh_token.filter(|t| !t.is_empty()) {
            return Ok(Some(token));
        }
    }
    Ok(headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, value)| *name == REFRESH_COOKIE && !value.is_empty())
        .map(|(_, value)| value.to_owned()))
}

fn cookie(state: &AppState, value: &str, max_age: u64) -> String {
    let secure = if state.settings.cookie_secure {
        "; Secure"
    } else {
        ""
    };
    format!(
        "{REFRESH_COOKIE}={value}; HttpOnly; SameSite=Strict; Path={COOKIE_PATH}; Max-Age={max_age}{secure}"
    )
}

fn set_cookie(response: &mut Response, cookie: &str) {
    if let Ok(value) = HeaderValue::from_str(cookie) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
}

fn session_response(state: &AppState, session: Session) -> Response {
    let refresh_secs = session.refresh_ttl.as_secs();
    let body = TokenResponse {
        expires_in: session.claims.remaining_secs(),
        access_token: session.access_token,
        token_type: "Bearer",
        refresh_token: session.refresh_token.clone(),
        refresh_expires_in: refresh_secs,
    };
    let mut response = ([(header::CACHE_CONTROL, "no-store")], Json(body)).into_response();
    set_cookie(
        &mut response,
        &cookie(state, &session.refresh_token, refresh_secs),
    );
    response
}
