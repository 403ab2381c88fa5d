//! Timers of a worker: keep our claims fresh (heartbeat), remove long-gone consumers, and
//! safe-trim the consumed streams. Reclaiming entries of dead consumers (`XAUTOCLAIM`) is here too,
//! but the reader runs it between reads, with the permits it holds (see [`reclaim_interval`]).

use std::{sync::Arc, time::Duration};

use redis::{Script, Value};
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;

use super::{
    handler::Handler,
    process::{dispatch, note_trimmed},
    redis_io,
    stats::WorkerStats,
    worker::Shared,
};

pub(crate) async fn run<H: Handler>(shared: Arc<Shared<H>>, stop: CancellationToken) {
    let timeout = shared.cfg.processing_timeout;
    let heartbeat_every = (timeout / 3).max(Duration::from_millis(50));
    // `interval` panics on a zero period.
    let housekeeping_every = shared
        .cfg
        .housekeeping_interval
        .max(Duration::from_millis(1));
    let mut heartbeat = tokio::time::interval(heartbeat_every);
    // The first housekeeping is one interval after start, not at once: this task starts before the
    // reader has created our groups, and a trim then would go by the other groups alone and could
    // remove entries our group has yet to read.
    let mut housekeeping = tokio::time::interval_at(
        tokio::time::Instant::now() + housekeeping_every,
        housekeeping_every,
    );
    for t in [&mut heartbeat, &mut housekeeping] {
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    }
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = heartbeat.tick() => refresh_claims(&shared).await,
            _ = housekeeping.tick() => {
                if !shared.stopping.is_cancelled() {
                    remove_gone_consumers(&shared).await;
                    trim_streams(&shared).await;
                }
            }
        }
    }
}

/// Resets the idle time of entries we still own (`XCLAIM … JUSTID`, which does not count as a
/// delivery), atomically checking ownership so that we never take back what someone else has
/// reclaimed. Returns the ids we lost.
const REFRESH: &str = r#"
local lost = {}
for i = 3, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if #p == 1 and p[1][2] == ARGV[2] then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
  else
    lost[#lost + 1] = ARGV[i]
  end
end
return lost
"#;

async fn refresh_claims<H>(shared: &Shared<H>) {
    let owned: Vec<super::worker::EntryKey> = {
        let inflight = shared.inflight.lock().unwrap_or_else(|p| p.into_inner());
        inflight.iter().copied().collect()
    };
    if owned.is_empty() {
        return;
    }
    let mut by_stream: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for entry in owned {
        let (key, id) = shared.entry_of(entry);
        by_stream.entry(key.to_owned()).or_default().push(id);
    }
    let script = Script::new(REFRESH);
    for (key, ids) in by_stream {
        for chunk in ids.chunks(500) {
            let mut invocation = script.key(&key);
            invocation.arg(&shared.cfg.group).arg(&shared.cfg.consumer);
            for id in chunk {
                invocation.arg(id);
            }
            match invocation
                .invoke_async::<Vec<String>>(&mut shared.cmd.clone())
                .await
            {
                Ok(lost) => {
                    // An id acked between our snapshot and the script is "lost" too; only
                    // count ids still tracked.
                    let lost: Vec<_> = lost
                        .iter()
                        .filter_map(|id| shared.entry_key(&key, id))
                        .collect();
                    let mut inflight = shared.inflight.lock().unwrap_or_else(|p| p.into_inner());
                    for entry in lost {
                        if inflight.remove(&entry) {
                            WorkerStats::add(&shared.stats.lost_claims, 1);
                        }
                    }
                }
                Err(error) => {
                    if let Some(suppressed) = shared.redis_log.allow() {
                        tracing::warn!(%error, suppressed, "claim refresh failed");
                    }
                }
            }
        }
    }
}

/// How often the reader scans for abandoned entries instead of reading new ones.
pub(crate) fn reclaim_interval(processing_timeout: Duration) -> Duration {
    (processing_timeout / 2).clamp(Duration::from_millis(100), Duration::from_secs(10))
}

/// Takes over entries idle longer than the processing timeout: their consumer died or hung.
/// Claims at most as many entries as `permit` holds; what it does not use is released.
///
/// Called by the reader between reads with the permits it reserved for a read: a reader blocked
/// in `XREADGROUP` holds every free permit, so a scan on a separate timer would almost never find
/// one free and an idle consumer would never take over a dead one's entries.
pub(crate) async fn reclaim_abandoned<H: Handler>(
    shared: &Arc<Shared<H>>,
    mut permit: OwnedSemaphorePermit,
) {
    let min_idle = shared.cfg.processing_timeout.as_millis() as u64;
    for key in shared.stream_keys() {
        let mut cursor = "0-0".to_owned();
        loop {
            let free = permit.num_permits().min(shared.cfg.batch);
            if free == 0 {
                return;
            }
            let reply: redis::RedisResult<Value> = redis::cmd("XAUTOCLAIM")
                .arg(&key)
                .arg(&shared.cfg.group)
                .arg(&shared.cfg.consumer)
                .arg(min_idle)
                .arg(&cursor)
                .arg("COUNT")
                .arg(free)
                .query_async(&mut shared.cmd.clone())
                .await;
            let reply = match reply {
                Ok(v) => v,
                Err(error) => {
                    if let Some(suppressed) = shared.redis_log.allow() {
                        tracing::warn!(%error, suppressed, stream = %key, "reclaim scan failed");
                    }
                    return;
                }
            };
            let (next, entries, deleted) = redis_io::parse_autoclaim(&key, reply);
            note_trimmed(shared, &key, &deleted).await;
            let entries = shared.track(entries);
            if !entries.is_empty() {
                WorkerStats::add(&shared.stats.reclaimed, entries.len() as u64);
                tracing::info!(stream = %key, group = %shared.cfg.group, count = entries.len(), "reclaimed abandoned entries");
                if let Some(batch) = permit.split(entries.len()) {
                    dispatch(shared.clone(), entries, batch);
                }
            }
            if next == "0-0" {
                break;
            }
            cursor = next;
        }
    }
}

/// Deletes a consumer only if it still has nothing pending (checked atomically). Returns -1 when
/// it kept the consumer (`XGROUP DELCONSUMER` itself returns the pending count, 0 here).
const DELETE_IF_EMPTY: &str = r#"
local p = redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2])
if #p > 0 then return -1 end
return redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
"#;

async fn remove_gone_consumers<H>(shared: &Shared<H>) {
    let gc_idle = shared.cfg.consumer_gc_idle.as_millis() as i64;
    for key in shared.stream_keys() {
        let reply: redis::RedisResult<Vec<Value>> = redis::cmd("XINFO")
            .arg("CONSUMERS")
            .arg(&key)
            .arg(&shared.cfg.group)
            .query_async(&mut shared.cmd.clone())
            .await;
        let Ok(consumers) = reply else { continue };
        for consumer in consumers {
            let info = redis_io::flat_map(consumer);
            let Some(name) = redis_io::value_str(info.get("name")) else {
                continue;
            };
            let pending = redis_io::value_int(info.get("pending")).unwrap_or(1);
            // Redis 7.2 reports `inactive` (since last successful read); older servers `idle`.
            let idle = redis_io::value_int(info.get("inactive"))
                .filter(|v| *v >= 0)
                .or_else(|| redis_io::value_int(info.get("idle")))
                .unwrap_or(0);
            if name == shared.cfg.consumer || pending > 0 || idle < gc_idle {
                continue;
            }
            let removed: redis::RedisResult<i64> = Script::new(DELETE_IF_EMPTY)
                .key(&key)
                .arg(&shared.cfg.group)
                .arg(&name)
                .invoke_async(&mut shared.cmd.clone())
                .await;
            if removed.is_ok_and(|pending| pending >= 0) {
                tracing::info!(stream = %key, group = %shared.cfg.group, consumer = %name, idle_ms = idle, "removed long-gone consumer");
            }
        }
    }
}

/// Safe trim (see `trim.rs`) of the streams this worker consumes. Every consumer of every group
/// may do this; it is idempotent and never removes what a group has not acknowledged.
async fn trim_streams<H>(shared: &Shared<H>) {
    let Some(retention) = shared.cfg.stream_retention else {
        return;
    };
    for key in &shared.stream_keys {
        match super::trim::trim(&mut shared.cmd.clone(), key, retention).await {
            Ok((plan, removed)) if removed > 0 => {
                tracing::info!(stream = %key, removed, reason = %plan.reason, "stream trimmed");
            }
            Ok(_) => {}
            Err(error) => {
                if let Some(suppressed) = shared.redis_log.allow() {
                    tracing::warn!(%error, suppressed, stream = %key, "safe trim failed");
                }
            }
        }
    }
}
