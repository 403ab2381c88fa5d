//! [`Revocations`]: the access tokens this process must refuse, held in memory so that checking a
//! token needs no round trip (the hot path keeps working while Redis is away).
//!
//! The user service publishes every revocation as a `token-revoked` event through its outbox (in
//! the transaction of the log-out, refresh-token reuse, password reset or role change that causes
//! it) and applies it to its own set at once. Every process of every service [`follow`]s the
//! stream with a plain `XREAD` — not a consumer group, because every replica needs every
//! revocation — from its start, which the user service trims to the access tokens' lifetime.
//!
//! Until a process has read the stream once it does not know what was revoked in the last
//! minutes, so it refuses every token (503) rather than accept a logged-out one; after that it
//! keeps its set across Redis outages. A revocation made while Redis is down waits in the user
//! service's outbox: the user process that made it refuses the token at once, the others when
//! Redis is back (or when the token expires, whichever comes first). `docs/security.md` has the
//! whole argument.

use std::{
    collections::HashMap,
    sync::{
        Arc, RwLock,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use crate::connection::RedisTarget;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::claims::Claims;
use crate::{
    backoff::{Backoff, LogLimiter},
    envelope::Envelope,
    events::{Event as _, TokenRevoked},
    keys::Keys,
    runtime::redis_io,
};

/// How long one `XREAD` blocks before the loop looks at the shutdown token again.
const BLOCK: Duration = Duration::from_secs(2);
/// Entries read at most per `XREAD`.
const COUNT: usize = 500;

/// The revocations this process knows of. Cheap to clone (shared).
#[derive(Clone, Default)]
pub struct Revocations {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Single tokens (log-outs): `jti` → Unix seconds after which the entry can be forgotten.
    tokens: RwLock<HashMap<String, i64>>,
    /// Whole users: every token issued before `.0` (Unix ms) is void; forgotten after `.1`.
    users: RwLock<HashMap<Uuid, (i64, i64)>>,
    /// The stream has been read to its end at least once.
    synced: AtomicBool,
}

impl Revocations {
    /// A set that is already complete: for processes without a stream to follow (tools, tests
    /// of a verifier alone).
    pub fn complete() -> Self {
        let revocations = Self::default();
        revocations.inner.synced.store(true, Ordering::Release);
        revocations
    }

    /// Whether the stream has been read to its end at least once.
    pub fn is_synced(&self) -> bool {
        self.inner.synced.load(Ordering::Acquire)
    }

    /// Applies one revocation (from the stream, or by the user service as it commits one).
    pub fn apply(&self, revoked: &TokenRevoked) {
        match &revoked.jti {
            Some(jti) => {
                let mut tokens = self.inner.tokens.write().unwrap_or_else(|p| p.into_inner());
                tokens.insert(jti.clone(), revoked.until);
            }
            None => {
                let mut users = self.inner.users.write().unwrap_or_else(|p| p.into_inner());
                let entry = users
                    .entry(revoked.user_id)
                    .or_insert((revoked.issued_before_ms, revoked.until));
                entry.0 = entry.0.max(revoked.issued_before_ms);
                entry.1 = entry.1.max(revoked.until);
            }
        }
    }

    /// Whether `claims` (already verified) belong to a revoked token.
    pub fn is_revoked(&self, claims: &Claims) -> bool {
        let tokens = self.inner.tokens.read().unwrap_or_else(|p| p.into_inner());
        if tokens.contains_key(&claims.jti) {
            return true;
        }
        drop(tokens);
        let users = self.inner.users.read().unwrap_or_else(|p| p.into_inner());
        users
            .get(&claims.sub)
            .is_some_and(|&(before_ms, _)| claims.issued_at_ms() < before_ms)
    }

    /// Forgets what can no longer matter: entries past the expiry of every token they void.
    pub fn prune(&self, now_secs: i64) {
        let mut tokens = self.inner.tokens.write().unwrap_or_else(|p| p.into_inner());
        tokens.retain(|_, until| *until >= now_secs);
        drop(tokens);
        let mut users = self.inner.users.write().unwrap_or_else(|p| p.into_inner());
        users.retain(|_, (_, until)| *until >= now_secs);
    }

    /// How many entries are held (tokens, users).
    pub fn len(&self) -> (usize, usize) {
        let tokens = self.inner.tokens.read().unwrap_or_else(|p| p.into_inner());
        let users = self.inner.users.read().unwrap_or_else(|p| p.into_inner());
        (tokens.len(), users.len())
    }

    fn mark_synced(&self) {
        if !self.inner.synced.swap(true, Ordering::AcqRel) {
            tracing::info!("token revocations read; access tokens are checked from now on");
        }
    }
}

/// Follows the `token-revoked` stream into `revocations` until `shutdown`: reads it from the
/// start, then blocks for new entries. Redis errors are retried with backoff; what was read
/// stays in force meanwhile. Entries that are not valid revocations are skipped (logged).
pub async fn follow(
    target: RedisTarget,
    keys: Keys,
    revocations: Revocations,
    shutdown: CancellationToken,
) {
    let stream = keys.stream(TokenRevoked::TYPE);
    let mut last_id = "0-0".to_owned();
    let mut backoff = Backoff::reconnect();
    let errors = LogLimiter::new(Duration::from_secs(30));
    // A connection of its own: a blocking XREAD would hold up commands queued behind it.
    let mut conn = match redis_io::managed(&target, BLOCK + Duration::from_secs(5)) {
        Ok(conn) => conn,
        Err(error) => {
            tracing::error!(%error, "cannot set up the revocations connection");
            return;
        }
    };
    let mut prune_at = tokio::time::Instant::now();
    while !shutdown.is_cancelled() {
        let block_ms = if revocations.is_synced() {
            BLOCK.as_millis() as u64
        } else {
            0
        };
        let mut cmd = redis::cmd("XREAD");
        cmd.arg("COUNT").arg(COUNT);
        if block_ms > 0 {
            cmd.arg("BLOCK").arg(block_ms);
        }
        cmd.arg("STREAMS").arg(&stream).arg(&last_id);
        let reply = tokio::select! {
            reply = cmd.query_async::<redis::Value>(&mut conn) => reply,
            () = shutdown.cancelled() => break,
        };
        match reply {
            Ok(reply) => {
                backoff.reset();
                let entries = redis_io::parse_read_reply(reply);
                let caught_up = entries.len() < COUNT;
                for entry in entries {
                    apply_entry(&revocations, &entry);
                    last_id = entry.id;
                }
                if caught_up {
                    revocations.mark_synced();
                }
            }
            Err(error) => {
                if let Some(suppressed) = errors.allow() {
                    tracing::warn!(%error, suppressed, "reading token revocations failed; retrying");
                }
                tokio::select! {
                    () = tokio::time::sleep(backoff.next_delay()) => {}
                    () = shutdown.cancelled() => break,
                }
            }
        }
        if tokio::time::Instant::now() >= prune_at {
            revocations.prune(chrono::Utc::now().timestamp());
            prune_at = tokio::time::Instant::now() + Duration::from_secs(60);
        }
    }
}

fn apply_entry(revocations: &Revocations, entry: &redis_io::RawEntry) {
    let Some(fields) = &entry.fields else { return };
    match Envelope::from_fields(fields).and_then(|envelope| envelope.event::<TokenRevoked>()) {
        Ok(revoked) => revocations.apply(&revoked),
        Err(error) => {
            tracing::warn!(entry.id = %entry.id, %error, "not a token revocation; skipped")
        }
    }
}

/// Trims the `token-revoked` stream to the entries that can still matter: those younger than the
/// longest access token lifetime (plus a margin for clock skew). The user service, which
/// publishes them, runs this once a minute.
pub async fn trim_stream(
    redis: &mut crate::connection::Conn,
    keys: &Keys,
    token_ttl: Duration,
) -> redis::RedisResult<u64> {
    let keep_ms = token_ttl
        .saturating_add(Duration::from_secs(300))
        .as_millis() as i64;
    let min_ms = chrono::Utc::now()
        .timestamp_millis()
        .saturating_sub(keep_ms)
        .max(0);
    redis::cmd("XTRIM")
        .arg(keys.stream(TokenRevoked::TYPE))
        .arg("MINID")
        .arg(format!("{min_ms}-0"))
        .query_async(redis)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{auth::Role, events::RevocationReason};

    fn claims(sub: Uuid, issued_ms: i64) -> Claims {
        Claims {
            sub,
            role: Role::User,
            jti: super::super::signer::jti_at(issued_ms),
            iat: issued_ms / 1000,
            exp: issued_ms / 1000 + 900,
            iss: "mesh".into(),
            aud: "mesh".into(),
        }
    }

    fn user_revoked(user_id: Uuid, before_ms: i64) -> TokenRevoked {
        TokenRevoked {
            user_id,
            jti: None,
            issued_before_ms: before_ms,
            until: before_ms / 1000 + 1000,
            reason: RevocationReason::PasswordReset,
        }
    }

    #[test]
    fn a_user_revocation_voids_exactly_the_tokens_issued_before_it() {
        let revocations = Revocations::complete();
        let user = Uuid::now_v7();
        let before = claims(user, 1_700_000_000_000);
        let same_second_after = claims(user, 1_700_000_000_900);
        revocations.apply(&user_revoked(user, 1_700_000_000_500));
        assert!(revocations.is_revoked(&before));
        assert!(!revocations.is_revoked(&same_second_after));
        assert!(!revocations.is_revoked(&claims(Uuid::now_v7(), 1_700_000_000_000)));
        // An older revocation arriving late does not move the point back.
        revocations.apply(&user_revoked(user, 1_600_000_000_000));
        assert!(revocations.is_revoked(&before));
    }

    #[test]
    fn a_token_revocation_voids_that_token_and_is_forgotten_after_its_expiry() {
        let revocations = Revocations::complete();
        let token = claims(Uuid::now_v7(), 1_700_000_000_000);
        revocations.apply(&TokenRevoked {
            user_id: token.sub,
            jti: Some(token.jti.clone()),
            issued_before_ms: 0,
            until: token.exp,
            reason: RevocationReason::Logout,
        });
        assert!(revocations.is_revoked(&token));
        assert!(!revocations.is_revoked(&claims(token.sub, 1_700_000_000_000)));
        revocations.prune(token.exp);
        assert_eq!(revocations.len(), (1, 0));
        revocations.prune(token.exp + 1);
        assert_eq!(revocations.len(), (0, 0));
    }
}
