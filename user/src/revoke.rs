//! Revoking access tokens: a `token-revoked` event enqueued in the outbox in the transaction of
//! its cause (log-out, refresh-token reuse, password reset, role change), applied in this
//! process as soon as that transaction commits, and published to every other process by the
//! relay — at once, or when Redis is back (`common::auth::revocations`).

use std::time::Duration;

use anyhow::Context as _;
use common::{
    Envelope,
    auth::{Claims, Revocations},
    db::{
        WriteConnection,
        outbox::{self, OutboxNotifier},
    },
    events::{RevocationReason, TokenRevoked},
    problem::ApiError,
};
use uuid::Uuid;

use crate::SERVICE;

/// Enqueues revocations and applies them once committed. Cheap to clone.
#[derive(Clone)]
pub struct Revoker {
    revocations: Revocations,
    outbox: OutboxNotifier,
    /// Lifetime of access tokens: how long a revocation of a whole user must be remembered.
    token_ttl: Duration,
}

impl Revoker {
    pub fn new(revocations: Revocations, outbox: OutboxNotifier, token_ttl: Duration) -> Self {
        Self {
            revocations,
            outbox,
            token_ttl,
        }
    }

    /// Enqueues, in `txn`, the revocation of the one token of `claims` (a log-out). Pass the
    /// result to [`committed`](Self::committed) after the commit.
    pub async fn token<C: WriteConnection>(
        &self,
        txn: &C,
        claims: &Claims,
        correlation_id: &str,
    ) -> Result<TokenRevoked, ApiError> {
        let revoked = TokenRevoked {
            user_id: claims.sub,
            jti: Some(claims.jti.clone()),
            issued_before_ms: 0,
            // The verifier tolerates a few seconds past `exp`: remember a little longer.
            until: claims.exp.saturating_add(60),
            reason: RevocationReason::Logout,
        };
        enqueue(txn, &revoked, correlation_id).await?;
        Ok(revoked)
    }

    /// Enqueues, in `txn`, the revocation of every token of `user_id` issued until now. Pass the
    /// result to [`committed`](Self::committed) after the commit.
    pub async fn user<C: WriteConnection>(
        &self,
        txn: &C,
        user_id: Uuid,
        reason: RevocationReason,
        correlation_id: &str,
    ) -> Result<TokenRevoked, ApiError> {
        let now = chrono::Utc::now();
        let ttl = i64::try_from(self.token_ttl.as_secs()).unwrap_or(i64::MAX / 2);
        let revoked = TokenRevoked {
            user_id,
            jti: None,
            // Up to this millisecond: a token issued in the same millisecond as the revocation
            // is void as well, one issued after it (the next log-in) is not.
            issued_before_ms: now.timestamp_millis() + 1,
            until: now.timestamp().saturating_add(ttl).saturating_add(60),
            reason,
        };
        enqueue(txn, &revoked, correlation_id).await?;
        Ok(revoked)
    }

    /// The transaction that enqueued `revoked` committed: this process refuses the tokens from
    /// now on, and the relay publishes the event to the others.
    pub fn committed(&self, revoked: &TokenRevoked) {
        self.revocations.apply(revoked);
        self.outbox.notify();
        tracing::info!(user.id = %revoked.user_id, reason = ?revoked.reason, "access tokens revoked");
    }
}

async fn enqueue<C: WriteConnection>(
    txn: &C,
    revoked: &TokenRevoked,
    correlation_id: &str,
) -> Result<(), ApiError> {
    let envelope =
        Envelope::of_event(SERVICE, correlation_id, "", revoked).context("encode token-revoked")?;
    outbox::enqueue_event(txn, &envelope).await?;
    Ok(())
}
