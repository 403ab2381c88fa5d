//! Sessions: an access token (JWT, short-lived) plus a refresh token (random, stored as its
//! SHA-256, rotated on every use). Tokens rotated from one log-in form a family; presenting an
//! already rotated token means it was stolen or replayed, so the whole family is revoked.

use std::time::Duration;

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::Utc;
use common::{
    auth::{Claims, JwtSigner, Role},
    events::RevocationReason,
    problem::ApiError,
};
use rand::RngCore as _;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    sea_query::Expr,
};
use sha2::{Digest as _, Sha256};
use uuid::Uuid;

use crate::{
    entity::{refresh_token, user},
    revoke::Revoker,
};

/// What a log-in or a refresh hands out.
#[derive(Debug, Clone)]
pub struct Session {
    pub access_token: String,
    pub claims: Claims,
    pub refresh_token: String,
    pub refresh_ttl: Duration,
}

/// A new random secret: 32 bytes, base64url.
pub fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// How a secret is stored: hex SHA-256. The secrets are random 256-bit values, so a fast hash is
/// enough (there is nothing to brute-force), and lookups by hash stay indexable.
pub fn hash_secret(secret: &str) -> String {
    Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The role column of an account as a [`Role`] (anything unknown is the least privileged).
pub fn role_of(account: &user::Model) -> Role {
    account.role.parse().unwrap_or(Role::User)
}

/// Issues an access token and a new refresh token in `family` (a new family for a log-in).
pub async fn start<C: ConnectionTrait>(
    db: &C,
    signer: &JwtSigner,
    account: &user::Model,
    family: Option<Uuid>,
    refresh_ttl: Duration,
) -> Result<Session, ApiError> {
    let (access_token, claims) = signer.issue(account.id, role_of(account))?;
    let refresh = new_secret();
    let now = Utc::now();
    let ttl = chrono::Duration::from_std(refresh_ttl).unwrap_or(chrono::Duration::days(30));
    refresh_token::Entity::insert(refresh_token::ActiveModel {
        id: Set(Uuid::now_v7()),
        user_id: Set(account.id),
        family_id: Set(family.unwrap_or_else(Uuid::now_v7)),
        token_hash: Set(hash_secret(&refresh)),
        access_jti: Set(claims.jti.clone()),
        created_at: Set(now),
        expires_at: Set(now + ttl),
        used_at: Set(None),
        revoked_at: Set(None),
    })
    .exec_without_returning(db)
    .await?;
    Ok(Session {
        access_token,
        claims,
        refresh_token: refresh,
        refresh_ttl,
    })
}

fn invalid() -> ApiError {
    ApiError::Unauthorized("invalid or expired refresh token".into())
}

/// Exchanges a refresh token for a new session in the same family. A token that was already
/// exchanged revokes its family (and this attempt fails).
pub async fn rotate(
    db: &DatabaseConnection,
    signer: &JwtSigner,
    revoker: &Revoker,
    presented: &str,
    refresh_ttl: Duration,
    correlation_id: &str,
) -> Result<Session, ApiError> {
    let txn = common::db::begin(db).await?;
    let Some(row) = refresh_token::Entity::find()
        .filter(refresh_token::Column::TokenHash.eq(hash_secret(presented)))
        .one(&txn)
        .await?
    else {
        return Err(invalid());
    };
    if row.revoked_at.is_some() {
        return Err(invalid());
    }
    let now = Utc::now();
    if row.used_at.is_none() && row.expires_at <= now {
        return Err(invalid());
    }
    // The conditional update decides between two concurrent uses of the same token: only one
    // marks it used, the other is a reuse.
    let claimed = row.used_at.is_none()
        && refresh_token::Entity::update_many()
            .col_expr(refresh_token::Column::UsedAt, Expr::value(now))
            .filter(refresh_token::Column::Id.eq(row.id))
            .filter(refresh_token::Column::UsedAt.is_null())
            .filter(refresh_token::Column::RevokedAt.is_null())
            .exec(&txn)
            .await?
            .rows_affected
            == 1;
    if !claimed {
        // Stolen or replayed: the family's refresh tokens and every access token of the user
        // (which of them came from this family is not known) stop working.
        revoke_family(&txn, row.family_id).await?;
        let revoked = revoker
            .user(
                &txn,
                row.user_id,
                RevocationReason::RefreshReuse,
                correlation_id,
            )
            .await?;
        txn.commit().await?;
        revoker.committed(&revoked);
        metrics::counter!("user_refresh_reuse_total").increment(1);
        tracing::warn!(user.id = %row.user_id, family.id = %row.family_id, "refresh token reused; family revoked");
        return Err(ApiError::Unauthorized(
            "refresh token was already used; the session is revoked".into(),
        ));
    }
    let Some(account) = user::Entity::find_by_id(row.user_id).one(&txn).await? else {
        return Err(invalid());
    };
    let session = start(&txn, signer, &account, Some(row.family_id), refresh_ttl).await?;
    txn.commit().await?;
    Ok(session)
}

/// Revokes every live token of a family.
pub async fn revoke_family<C: ConnectionTrait>(db: &C, family: Uuid) -> Result<u64, ApiError> {
    revoke_where(db, refresh_token::Column::FamilyId.eq(family)).await
}

/// Revokes every live refresh token of an account (password reset).
pub async fn revoke_all<C: ConnectionTrait>(db: &C, user_id: Uuid) -> Result<u64, ApiError> {
    revoke_where(db, refresh_token::Column::UserId.eq(user_id)).await
}

async fn revoke_where<C: ConnectionTrait>(
    db: &C,
    condition: sea_orm::sea_query::SimpleExpr,
) -> Result<u64, ApiError> {
    Ok(refresh_token::Entity::update_many()
        .col_expr(refresh_token::Column::RevokedAt, Expr::value(Utc::now()))
        .filter(condition)
        .filter(refresh_token::Column::RevokedAt.is_null())
        .exec(db)
        .await?
        .rows_affected)
}

/// The family of the session an access token belongs to, or of a presented refresh token, as
/// long as it is `user_id`'s.
pub async fn family_of<C: ConnectionTrait>(
    db: &C,
    user_id: Uuid,
    access_jti: &str,
    refresh: Option<&str>,
) -> Result<Vec<Uuid>, ApiError> {
    let mut condition =
        sea_orm::Condition::any().add(refresh_token::Column::AccessJti.eq(access_jti));
    if let Some(refresh) = refresh {
        condition = condition.add(refresh_token::Column::TokenHash.eq(hash_secret(refresh)));
    }
    let rows = refresh_token::Entity::find()
        .filter(refresh_token::Column::UserId.eq(user_id))
        .filter(condition)
        .all(db)
        .await?;
    let mut families: Vec<Uuid> = rows.into_iter().map(|r| r.family_id).collect();
    families.dedup();
    Ok(families)
}
