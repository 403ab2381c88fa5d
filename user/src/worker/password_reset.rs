//! `password-reset-requested` → mail the reset link. The secret is made here, stored as its hash,
//! and only ever leaves the service in the mail: it never travels on a stream.
//!
//! A redelivery (mail sent, ack lost) makes a new secret and sends a new mail; the earlier link
//! stops working. That is the at-least-once trade: the newest mail always works.
//!
//! Anyone with access to Redis can publish an entry, so the event is only a pointer: the link
//! goes to the address stored for the reset's own account, never to the event's `email`, and an
//! event whose `user_id` or `email` disagree with the stored ones is dead-lettered as forged.

use anyhow::Context as _;
use chrono::Utc;
use common::{Envelope, events::PasswordResetRequested, runtime::HandleError};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, sea_query::Expr};

use super::mailer::Mailer;
use crate::{
    entity::{password_reset, user},
    session,
};

/// What the password-reset handler needs to deliver reset links.
#[derive(Clone)]
pub struct PasswordResetHandler {
    pub db: DatabaseConnection,
    pub mailer: Mailer,
    /// The mailed link is `<reset_url>#token=<secret>` (a fragment: never sent to a server, so
    /// never logged).
    pub reset_url: String,
}

/// Mails the link of the reset `event` names, if it is still valid and the event agrees with it.
pub(crate) async fn handle(
    h: &PasswordResetHandler,
    _envelope: &Envelope,
    event: PasswordResetRequested,
) -> Result<(), HandleError> {
    let Some(reset) = password_reset::Entity::find_by_id(event.reset_id)
        .one(&h.db)
        .await?
    else {
        // The account (and its resets) is gone: nothing to send.
        return Ok(());
    };
    let Some(account) = user::Entity::find_by_id(reset.user_id).one(&h.db).await? else {
        return Ok(());
    };
    if reset.user_id != event.user_id || account.email != event.email {
        return Err(HandleError::dead_letter(anyhow::anyhow!(
            "password-reset-requested for reset {} names another account or address than \
             the reset's own: not mailed",
            reset.id
        )));
    }
    let now = Utc::now();
    if reset.used_at.is_some() || reset.invalidated_at.is_some() || reset.expires_at <= now {
        tracing::debug!(reset.id = %reset.id, "reset no longer valid; not mailed");
        return Ok(());
    }
    let secret = session::new_secret();
    let stored = password_reset::Entity::update_many()
        .col_expr(
            password_reset::Column::TokenHash,
            Expr::value(session::hash_secret(&secret)),
        )
        .filter(password_reset::Column::Id.eq(reset.id))
        .filter(password_reset::Column::UsedAt.is_null())
        .filter(password_reset::Column::InvalidatedAt.is_null())
        .exec(&h.db)
        .await?
        .rows_affected;
    if stored == 0 {
        return Ok(());
    }
    let minutes = (reset.expires_at - now).num_minutes().max(1);
    let body = format!(
        "Someone asked to reset the password of your account.\r\n\r\n\
         Reset it here within {minutes} minutes:\r\n{}#token={secret}\r\n\r\n\
         If it was not you, ignore this mail: your password stays as it is.",
        h.reset_url
    );
    h.mailer
        .send(&account.email, "Reset your password", &body)
        .await
        .context("deliver reset mail")
        .map_err(HandleError::retry)?;
    tracing::info!(user.id = %event.user_id, reset.id = %reset.id, "reset link mailed");
    Ok(())
}
