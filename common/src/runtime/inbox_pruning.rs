//! Pruning the inbox (`mesh_inbox`, `crate::db::inbox`) past the idempotency retention, in an
//! order that can never let an event apply twice.
//!
//! An inbox row is what stops a second application of an event whose effect committed but whose
//! acknowledgement was lost (a crash between the two): the entry stays pending and is delivered
//! again — to the restarted consumer, or to another one after the processing timeout — and the
//! row says "applied" (the Redis idempotency sets are written at ack time, so they cannot). A row
//! may therefore go only once no entry that can bring its event back is left:
//!
//! 1. **pending entries**: a group's cut-off is never later than the time its oldest pending
//!    entry was added to its stream (the id's milliseconds). An event is applied after its entry
//!    was added, so the row of any pending event is at or after that time and is kept — however
//!    long the entry has been pending (a service down for longer than the retention included);
//! 2. **entries not yet delivered**: an event is applied once per group, at its first delivery;
//!    a later copy of it (an outbox re-send after a relay crash between `XADD` and `DELETE`, a
//!    `meshctl publish` of the same envelope) is recognised while the row or the Redis set
//!    remembers it, which is `retention` after the application. That window is the mesh's
//!    deduplication window, documented in `docs/architecture.md`;
//! 3. **Redis away or a stream unreadable**: no cut-off can be proven, nothing is pruned.

use std::time::Duration;

use crate::connection::Conn;
use sea_orm::DatabaseConnection;
use tokio_util::sync::CancellationToken;

use crate::{db::inbox, events::ALL_STREAMS, keys::Keys};

use super::redis_io::parse_id;

/// Prunes every `every` until `shutdown`; a failed round (Redis or the database away) is logged
/// and simply tried again at the next.
pub async fn run(
    db: DatabaseConnection,
    redis: Conn,
    keys: Keys,
    retention: Duration,
    every: Duration,
    shutdown: CancellationToken,
) {
    loop {
        match prune(&db, &mut redis.clone(), &keys, retention).await {
            Ok(0) => {}
            Ok(deleted) => tracing::debug!(deleted, "inbox rows past the retention pruned"),
            Err(error) => tracing::warn!(%error, "inbox not pruned; next time"),
        }
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = shutdown.cancelled() => return,
        }
    }
}

/// One round: for each group in the inbox, deletes the rows of events applied more than
/// `retention` ago and before the group's oldest pending entry was added. Returns how many.
pub async fn prune(
    db: &DatabaseConnection,
    redis: &mut Conn,
    keys: &Keys,
    retention: Duration,
) -> anyhow::Result<u64> {
    let now = chrono::Utc::now().timestamp_millis();
    let by_age = now.saturating_sub(i64::try_from(retention.as_millis()).unwrap_or(i64::MAX));
    let mut deleted = 0;
    for group in inbox::groups(db).await? {
        let cutoff = match oldest_pending_ms(redis, keys, &group).await? {
            Some(oldest) => by_age.min(oldest),
            None => by_age,
        };
        deleted += inbox::prune(db, &group, cutoff).await?;
    }
    Ok(deleted)
}

/// When the oldest entry `group` has pending on any stream was added (Unix ms), or `None` when
/// it has nothing pending. A stream without the group (or without the key) has nothing pending;
/// any other error fails the whole round.
async fn oldest_pending_ms(
    redis: &mut Conn,
    keys: &Keys,
    group: &str,
) -> anyhow::Result<Option<i64>> {
    let mut oldest: Option<i64> = None;
    for stream in ALL_STREAMS {
        let reply: redis::RedisResult<(u64, Option<String>, redis::Value, redis::Value)> =
            redis::cmd("XPENDING")
                .arg(keys.stream(stream))
                .arg(group)
                .query_async(redis)
                .await;
        let first = match reply {
            Ok((0, ..)) => continue,
            Ok((_, first, ..)) => first,
            Err(error) if error.code() == Some("NOGROUP") => continue,
            // A stream this service's Redis user may not touch (`common::acl`) is not one its
            // groups read: nothing of theirs is pending there.
            Err(error) if error.code() == Some("NOPERM") => continue,
            Err(error) => return Err(error.into()),
        };
        let Some((ms, _)) = first.as_deref().and_then(parse_id) else {
            anyhow::bail!("XPENDING {stream} {group}: unreadable oldest id {first:?}");
        };
        let ms = i64::try_from(ms).unwrap_or(i64::MAX);
        oldest = Some(oldest.map_or(ms, |o| o.min(ms)));
    }
    Ok(oldest)
}
