//! `POST /auth/password-reset` (always 202: no account enumeration) and
//! `POST /auth/password-reset/confirm`. The request row and its `password-reset-requested` event
//! are written in one transaction; the worker mails the link.

use anyhow::Context as _;
use axum::{
    Json, Router,
    extract::{State, rejection::JsonRejection},
    http::{HeaderMap, StatusCode, header},
    response::{Html, IntoResponse},
    routing::post,
};
use chrono::Utc;
use common::{
    Envelope,
    db::outbox,
    events::{PasswordResetRequested, RevocationReason},
    problem::ApiError,
};
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, sea_query::Expr};
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{AppState, ClientIp};
use crate::{
    SERVICE, accounts,
    entity::{password_reset, user},
    password::{normalize_email, validate_password},
    rate_limit::allow_password_reset,
    session,
};
use common::http::correlation_id;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/auth/password-reset", post(request_reset))
        .route(
            "/auth/password-reset/confirm",
            post(confirm_reset).get(confirm_page),
        )
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ResetRequest {
    pub email: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ResetConfirm {
    /// The secret from the mailed link.
    pub token: String,
    pub new_password: String,
}

/// Ask for a reset link. Answers 202 whether or not the account exists.
#[utoipa::path(post, path = "/auth/password-reset", tag = "auth", request_body = ResetRequest,
    responses((status = 202, description = "a link is mailed if the account exists"),
              (status = 429, description = "too many reset requests from this address; see Retry-After"),
              (status = 503, description = "Redis unavailable")))]
pub async fn request_reset(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    body: Result<Json<ResetRequest>, JsonRejection>,
) -> Result<StatusCode, ApiError> {
    let Json(req) = body?;
    // Per address, before anything else: the answer is the same for known and unknown e-mails.
    state.limiter.take_reset_request(ip).await?;
    let Ok(email) = normalize_email(&req.email) else {
        return Ok(StatusCode::ACCEPTED);
    };
    let Some(account) = accounts::find_by_email(&state.db, &email).await? else {
        return Ok(StatusCode::ACCEPTED);
    };
    let allowed = allow_password_reset(
        &state.redis,
        &state.keys,
        &email,
        state.settings.password_reset_max_requests,
        state.settings.password_reset_ttl.as_secs(),
    )
    .await?;
    if !allowed {
        tracing::info!(user.id = %account.id, "password reset requests throttled");
        return Ok(StatusCode::ACCEPTED);
    }
    let now = Utc::now();
    let ttl = chrono::Duration::from_std(state.settings.password_reset_ttl)
        .unwrap_or(chrono::Duration::hours(1));
    let reset_id = Uuid::now_v7();
    let event = Envelope::of_event(
        SERVICE,
        &correlation_id(&headers),
        "",
        &PasswordResetRequested {
            user_id: account.id,
            email: account.email.clone(),
            reset_id,
        },
    )
    .context("encode password-reset-requested")?;
    let txn = common::db::begin(&state.db).await?;
    // A new request invalidates every earlier link.
    invalidate_resets(&txn, account.id).await?;
    password_reset::Entity::insert(password_reset::ActiveModel {
        id: Set(reset_id),
        user_id: Set(account.id),
        token_hash: Set(None),
        created_at: Set(now),
        expires_at: Set(now + ttl),
        used_at: Set(None),
        invalidated_at: Set(None),
    })
    .exec_without_returning(&txn)
    .await?;
    outbox::enqueue_event(&txn, &event).await?;
    txn.commit().await?;
    state.outbox.notify();
    Ok(StatusCode::ACCEPTED)
}

/// Set a new password with a mailed token. Every session of the account is revoked.
#[utoipa::path(post, path = "/auth/password-reset/confirm", tag = "auth", request_body = ResetConfirm,
    responses((status = 204, description = "password changed, sessions revoked"),
              (status = 400, description = "invalid, used or expired token"),
              (status = 422, description = "password too short or too long"),
              (status = 503, description = "password hashing at capacity; see Retry-After")))]
pub async fn confirm_reset(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<ResetConfirm>, JsonRejection>,
) -> Result<StatusCode, ApiError> {
    let Json(req) = body?;
    validate_password(&req.new_password)?;
    let invalid = || ApiError::Invalid {
        status: StatusCode::BAD_REQUEST,
        kind: "invalid-reset-token",
        detail: "the reset token is invalid, used or expired".into(),
    };
    let hash = session::hash_secret(&req.token);
    let Some(reset) = password_reset::Entity::find()
        .filter(password_reset::Column::TokenHash.eq(hash.as_str()))
        .one(&state.db)
        .await?
    else {
        return Err(invalid());
    };
    let now = Utc::now();
    if reset.used_at.is_some() || reset.invalidated_at.is_some() || reset.expires_at <= now {
        return Err(invalid());
    }
    let password_hash = state.hashing.hash(req.new_password).await?;
    let txn = common::db::begin(&state.db).await?;
    // Conditional: of two confirmations racing with the same token, one wins.
    let claimed = password_reset::Entity::update_many()
        .col_expr(password_reset::Column::UsedAt, Expr::value(now))
        .filter(password_reset::Column::Id.eq(reset.id))
        .filter(password_reset::Column::TokenHash.eq(hash.as_str()))
        .filter(password_reset::Column::UsedAt.is_null())
        .filter(password_reset::Column::InvalidatedAt.is_null())
        .exec(&txn)
        .await?
        .rows_affected;
    if claimed != 1 {
        return Err(invalid());
    }
    user::Entity::update_many()
        .col_expr(user::Column::PasswordHash, Expr::value(password_hash))
        .col_expr(user::Column::UpdatedAt, Expr::value(now))
        .filter(user::Column::Id.eq(reset.user_id))
        .exec(&txn)
        .await?;
    invalidate_resets(&txn, reset.user_id).await?;
    let sessions = session::revoke_all(&txn, reset.user_id).await?;
    let revoked = state
        .revoker
        .user(
            &txn,
            reset.user_id,
            RevocationReason::PasswordReset,
            &correlation_id(&headers),
        )
        .await?;
    txn.commit().await?;
    state.revoker.committed(&revoked);
    tracing::info!(user.id = %reset.user_id, sessions.revoked = sessions, "password reset");
    Ok(StatusCode::NO_CONTENT)
}

async fn invalidate_resets<C: sea_orm::ConnectionTrait>(
    db: &C,
    user_id: Uuid,
) -> Result<(), ApiError> {
    password_reset::Entity::update_many()
        .col_expr(
            password_reset::Column::InvalidatedAt,
            Expr::value(Utc::now()),
        )
        .filter(password_reset::Column::UserId.eq(user_id))
        .filter(password_reset::Column::UsedAt.is_null())
        .filter(password_reset::Column::InvalidatedAt.is_null())
        .exec(db)
        .await?;
    Ok(())
}

/// The page the mailed link opens: a form that posts the new password with the token. The token
/// is in the link's fragment (`#token=…`), which browsers never send, so it stays out of server
/// and proxy logs.
#[utoipa::path(get, path = "/auth/password-reset/confirm", tag = "auth",
    responses((status = 200, description = "the form the mailed link opens", body = String, content_type = "text/html")))]
pub async fn confirm_page() -> impl IntoResponse {
    (
        [
            (header::CACHE_CONTROL, "no-store"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        Html(CONFIRM_PAGE),
    )
}

const CONFIRM_PAGE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Reset your password</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="font-family: sans-serif; max-width: 28rem; margin: 3rem auto">
<h1>Reset your password</h1>
<form id="f"><label>New password (8 to 128 characters)<br>
<input id="p" type="password" minlength="8" maxlength="128" required autofocus></label>
<p><button>Set password</button></p></form><p id="m" role="status"></p>
<script>
const token = new URLSearchParams(location.hash.slice(1)).get("token") || "";
document.getElementById("f").addEventListener("submit", async (e) => {
  e.preventDefault();
  const r = await fetch(location.pathname, {method: "POST", headers: {"content-type": "application/json"},
    body: JSON.stringify({token, new_password: document.getElementById("p").value})});
  const m = document.getElementById("m");
  if (r.ok) { m.textContent = "Done: log in with the new password. Every other session was signed out."; }
  else { const p = await r.json().catch(() => ({})); m.textContent = p.detail || "That did not work."; }
});
</script></body></html>
"#;
