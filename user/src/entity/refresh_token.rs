//! A refresh token, stored as the SHA-256 of the secret. Tokens rotated from one log-in share a
//! `family_id`; presenting a rotated (`used_at`) token revokes the whole family.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "refresh_tokens")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub user_id: Uuid,
    pub family_id: Uuid,
    #[sea_orm(unique)]
    pub token_hash: String,
    /// `jti` of the access token issued together with this refresh token (logout finds the
    /// family through it).
    pub access_jti: String,
    pub created_at: DateTimeUtc,
    pub expires_at: DateTimeUtc,
    /// Set when the token was exchanged for a new one.
    pub used_at: Option<DateTimeUtc>,
    /// Set on logout, reuse detection or password reset.
    pub revoked_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
