//! A failed entry's way out: retried — left pending and, after a backoff that grows with Redis's
//! own delivery counter, claimed again by this consumer — or, after `max_deliveries` or at once
//! for a permanent failure or poison, written to the dead-letter stream (whose format and replay
//! are in `dead_letter.rs`, shared with meshctl) and acknowledged there atomically.

use std::{sync::atomic::Ordering::Relaxed, time::Duration};

use redis::{RedisResult, Script, Value};
use tokio::sync::OwnedSemaphorePermit;

use super::{
    dead_letter::{self, Failure},
    entry::{EntryKey, Ready, Tracked},
    redis_io,
    shared::Shared,
    stats::WorkerStats,
};
use crate::{
    backoff::{self, backoff_delay, sleep_or_cancel},
    db::outage,
};

/// Redis's delivery counter of one of the group's pending entries (`XPENDING`); `Ok(None)` when
/// the entry is not pending at all (acknowledged, or dropped with its payload).
async fn pending_deliveries<H>(
    shared: &Shared<H>,
    key: EntryKey,
    id: &str,
) -> RedisResult<Option<u64>> {
    let reply: Value = redis::cmd("XPENDING")
        .arg(shared.stream_key(key))
        .arg(&shared.cfg.group)
        .arg(id)
        .arg(id)
        .arg(1)
        .query_async(&mut shared.cmd.clone())
        .await?;
    Ok(redis_io::parse_pending_range(reply)
        .into_iter()
        .next()
        .map(|(_, _, _, count)| count))
}

/// How a failed entry comes back (see [`redeliver`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Retry {
    /// The backoff before it is claimed again.
    pub delay: Duration,
    /// The database was away (`db::outage`): the redelivery keeps Redis's delivery count as it
    /// is, and waits holding a permit, so that while the database is down the worker stops
    /// reading new entries once every permit waits, instead of taking in the whole backlog.
    pub outage: bool,
}

/// Longest wait between two attempts of an entry that met a database outage: the time the
/// worker may take to notice that the database is back.
const OUTAGE_RETRY_MAX: Duration = backoff::RECONNECT_MAX;

/// Dead-letters an entry that failed `max_deliveries` times, forgets one that is no longer
/// pending, and otherwise counts and logs the failure and returns how the caller redelivers it
/// (see [`redeliver`]). A database outage is never a reason to dead-letter: an outage is not a
/// poison message, whatever the delivery count says.
pub(crate) async fn retry_or_dead_letter<H>(
    shared: &Shared<H>,
    item: &Ready,
    error: anyhow::Error,
) -> Option<Retry> {
    // A lock conflict between replicas' transactions is not the entry's fault either: retried
    // like an outage, without counting the delivery.
    let outage = outage::is_outage(&error) || outage::is_lock_conflict(&error);
    let pending = pending_deliveries(shared, item.key, &item.message.id).await;
    let error_text = format!("{error:#}");
    let deliveries = match pending {
        Ok(Some(n)) if n >= shared.cfg.max_deliveries && !outage => {
            send_to_dead_letter(
                shared,
                item.key,
                &item.message.id,
                &item.fields_as_read(),
                &error_text,
                Some(n),
            )
            .await;
            return None;
        }
        Ok(Some(n)) => n,
        Ok(None) => {
            // Someone else acknowledged or took it; nothing of ours to retry.
            shared.untrack(item.key);
            return None;
        }
        // Redis cannot tell now: retry as after a first delivery.
        Err(_) => 1,
    };
    WorkerStats::add(&shared.stats.retried, 1);
    shared.meters.retried(item.key.stream);
    let delay = if outage {
        WorkerStats::add(&shared.stats.outage_retries, 1);
        // The backoff grows with the worker's failures in a row, not with the entry's count.
        let streak = shared.outage_streak.fetch_add(1, Relaxed) + 1;
        let delay = backoff_delay(
            shared.cfg.retry_base,
            OUTAGE_RETRY_MAX.min(shared.cfg.retry_max),
            streak,
        );
        // Every entry in hand fails the same way: one line per doubling of the streak.
        if streak.is_power_of_two() {
            tracing::warn!(
                group = %shared.cfg.group,
                failures_in_a_row = streak,
                retry_in_ms = delay.as_millis() as u64,
                error = %error_text,
                "database unavailable or a lock conflict; entries stay pending and are retried without counting"
            );
        }
        delay
    } else {
        let delay = backoff_delay(shared.cfg.retry_base, shared.cfg.retry_max, deliveries);
        tracing::warn!(
            stream = %item.message.stream,
            entry.id = %item.message.id,
            event.id = %item.message.envelope.event_id,
            event.r#type = %item.message.envelope.event_type,
            group = %shared.cfg.group,
            deliveries,
            retry_in_ms = delay.as_millis() as u64,
            error = %error_text,
            "handler failed; will retry"
        );
        delay
    };
    Some(Retry { delay, outage })
}

/// Claims one of our own pending entries again if, and only if, we still own it; incrementing
/// Redis's delivery counter, or, with `ARGV[4] = 1` (an outage), setting it to what it was.
const RECLAIM_OWN: &str = r#"
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)
if #p == 0 or p[1][2] ~= ARGV[2] then return false end
if ARGV[4] == '1' then
  return redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'RETRYCOUNT', p[1][4])
end
return redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3])
"#;

/// After the retry's delay, claims the entry again for this consumer with a permit of its own
/// (taken before the wait for an outage), and returns it (still tracked as ours since its first
/// delivery) for processing. `None` when there is nothing to process: the worker is stopping (it
/// stays pending for whoever comes next), another consumer took it, its payload was trimmed, or
/// Redis failed (the reclaim scan picks it up once Redis is back).
pub(crate) async fn redeliver<H>(
    shared: &Shared<H>,
    key: EntryKey,
    id: &str,
    retry: Retry,
) -> Option<(Vec<Tracked>, OwnedSemaphorePermit)> {
    let stream_key = shared.stream_key(key);
    let acquire = async {
        tokio::select! {
            p = shared.permits.clone().acquire_owned() => p.ok(),
            _ = shared.stopping.cancelled() => None,
        }
    };
    let permit = if retry.outage {
        let permit = acquire.await;
        sleep_or_cancel(retry.delay, &shared.stopping).await;
        permit
    } else {
        sleep_or_cancel(retry.delay, &shared.stopping).await;
        acquire.await
    };
    let Some(permit) = permit.filter(|_| !shared.stopping.is_cancelled()) else {
        shared.untrack(key);
        return None;
    };
    let reply: RedisResult<Value> = Script::new(RECLAIM_OWN)
        .key(stream_key)
        .arg(&shared.cfg.group)
        .arg(&shared.cfg.consumer)
        .arg(id)
        .arg(if retry.outage { "1" } else { "0" })
        .invoke_async(&mut shared.cmd.clone())
        .await;
    match reply {
        Ok(Value::Nil) => {
            WorkerStats::add(&shared.stats.lost_claims, 1);
            shared.untrack(key);
            None
        }
        Ok(v) => {
            let entries = shared.keyed(redis_io::parse_entries(stream_key, v));
            if entries.is_empty() {
                // XCLAIM found the payload gone and dropped it from the PEL.
                shared.note_trimmed(stream_key, &[id]).await;
                return None;
            }
            Some((entries, permit))
        }
        Err(error) => {
            if let Some(suppressed) = shared.redis_log.allow() {
                tracing::warn!(%error, suppressed, "retry claim failed");
            }
            shared.untrack(key);
            None
        }
    }
}

/// Dead-letters (and atomically acks) one entry. If Redis refuses, the entry stays pending and
/// is dealt with on a later delivery.
pub(crate) async fn send_to_dead_letter<H>(
    shared: &Shared<H>,
    key: EntryKey,
    id: &str,
    fields: &[(String, Vec<u8>)],
    error: &str,
    deliveries: Option<u64>,
) {
    let deliveries = match deliveries {
        Some(n) => n,
        None => pending_deliveries(shared, key, id)
            .await
            .ok()
            .flatten()
            .unwrap_or(1),
    };
    let stream_key = shared.stream_key(key);
    let origin_stream = shared
        .cfg
        .keys
        .stream_name(stream_key)
        .unwrap_or(stream_key);
    let failure = Failure {
        origin_stream,
        origin_id: id,
        group: &shared.cfg.group,
        consumer: &shared.cfg.consumer,
        delivery_count: deliveries,
        last_error: error,
    };
    let mut conn = shared.cmd.clone();
    for attempt in 1..=3u64 {
        match dead_letter::dead_letter(&mut conn, &shared.cfg.keys, fields, &failure).await {
            Ok(dl_id) => {
                WorkerStats::add(&shared.stats.dead_lettered, 1);
                shared.meters.dead_lettered(key.stream);
                tracing::error!(
                    stream = %origin_stream,
                    entry.id = %id,
                    group = %shared.cfg.group,
                    deliveries,
                    dead_letter.id = %dl_id,
                    error,
                    "entry dead-lettered"
                );
                shared.untrack(key);
                return;
            }
            Err(e) => {
                if let Some(suppressed) = shared.redis_log.allow() {
                    tracing::warn!(error = %e, suppressed, "dead-letter write failed");
                }
                tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
            }
        }
    }
    shared.untrack(key);
}
