//! The user service's housekeeping, every housekeeping interval (`MESH_HOUSEKEEPING_INTERVAL`): trims the `token-revoked`
//! stream to what can still matter, and deletes refresh-token families and password-reset
//! requests that expired more than [`GRACE`] ago — every log-in adds a row, and nothing else
//! ever removes one.
//!
//! A refresh token is deleted only with its whole family, once the newest token of the family
//! has expired: while any token of a family can still be used, a rotated one presented again is
//! recognised as reuse and revokes the family (`session::rotate`). Past that, a presented token
//! is unknown and refused like an expired one. A reset request past its expiry can no longer be
//! used; its mail worker finds nothing and sends nothing.

use std::time::Duration;

use chrono::Utc;
use common::keys::Keys;
use sea_orm::{
    ColumnTrait as _, ConnectionTrait, DbErr, EntityTrait as _, QueryFilter as _, sea_query::Query,
};
use tokio_util::sync::CancellationToken;

use crate::entity::{password_reset, refresh_token};

/// How long expired rows are kept: long enough that an operator can still see a recent session
/// or reset when investigating, short enough that the tables stay the size of the live users.
pub const GRACE: Duration = Duration::from_secs(24 * 3600);

/// Runs the housekeeping every `every` until `shutdown`. Errors (Redis or the database away) are logged and
/// the work is tried again at the next tick.
pub async fn run(
    db: sea_orm::DatabaseConnection,
    mut redis: common::connection::Conn,
    keys: Keys,
    token_ttl: Duration,
    every: Duration,
    shutdown: CancellationToken,
) {
    loop {
        match common::auth::revocations::trim_stream(&mut redis, &keys, token_ttl).await {
            Ok(trimmed) if trimmed > 0 => tracing::debug!(trimmed, "token-revoked trimmed"),
            Ok(_) => {}
            Err(error) => tracing::debug!(%error, "token-revoked not trimmed; next round"),
        }
        match prune(&db, GRACE).await {
            Ok(Pruned {
                refresh_tokens: 0,
                password_resets: 0,
            }) => {}
            Ok(pruned) => tracing::debug!(?pruned, "expired sessions and resets pruned"),
            Err(error) => tracing::warn!(%error, "expired sessions not pruned; next round"),
        }
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = shutdown.cancelled() => return,
        }
    }
}

/// Rows deleted by one [`prune`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    pub refresh_tokens: u64,
    pub password_resets: u64,
}

/// Deletes the refresh-token families whose newest token expired more than `grace` ago, and the
/// password-reset requests that expired more than `grace` ago.
pub async fn prune<C: ConnectionTrait>(db: &C, grace: Duration) -> Result<Pruned, DbErr> {
    let grace = chrono::Duration::from_std(grace).unwrap_or(chrono::Duration::MAX);
    let cutoff = Utc::now()
        .checked_sub_signed(grace)
        .unwrap_or(chrono::DateTime::<Utc>::MIN_UTC);
    let live_families = Query::select()
        .column(refresh_token::Column::FamilyId)
        .from(refresh_token::Entity)
        .and_where(refresh_token::Column::ExpiresAt.gte(cutoff))
        .to_owned();
    let refresh_tokens = refresh_token::Entity::delete_many()
        .filter(refresh_token::Column::ExpiresAt.lt(cutoff))
        .filter(refresh_token::Column::FamilyId.not_in_subquery(live_families))
        .exec(db)
        .await?
        .rows_affected;
    let password_resets = password_reset::Entity::delete_many()
        .filter(password_reset::Column::ExpiresAt.lt(cutoff))
        .exec(db)
        .await?
        .rows_affected;
    Ok(Pruned {
        refresh_tokens,
        password_resets,
    })
}
