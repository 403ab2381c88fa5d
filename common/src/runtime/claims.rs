//! Our claims on pending entries: keeping those we own fresh (the heartbeat, run by
//! `maintenance.rs`), so that no other consumer takes over an entry still being handled, and
//! taking over entries of dead or stuck consumers (`XAUTOCLAIM`, run by the reader between reads).

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use redis::{Script, Value};
use tokio::sync::OwnedSemaphorePermit;

use super::{
    entry::EntryKey, handler::Handler, process::dispatch, redis_io, shared::Shared,
    stats::WorkerStats,
};

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

/// The heartbeat: refreshes the claims of every entry we own, and forgets (and counts) those
/// another consumer has taken over meanwhile.
pub(crate) async fn refresh_claims<H>(shared: &Shared<H>) {
    let owned: Vec<EntryKey> = {
        let inflight = shared.inflight.lock().unwrap_or_else(|p| p.into_inner());
        inflight.iter().copied().collect()
    };
    if owned.is_empty() {
        return;
    }
    let mut by_stream: BTreeMap<String, Vec<String>> = Default::default();
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
/// Hands our own pending entries that we are not handling to processing again: what a previous
/// life of this consumer (same stable name) held when it died, and, after Redis came back from a
/// crash, entries it had delivered to us whose reply we never got. `XREADGROUP … <id>` reads our
/// pending list after `<id>`, without waiting for the processing timeout; entries this process
/// is handling right now are skipped (tracked). Returns when the list is read or the permits run
/// out; what is left waits for the next pass or the reclaim scan.
pub(crate) async fn reread_own_pending<H: Handler>(
    shared: &Arc<Shared<H>>,
    mut permit: OwnedSemaphorePermit,
) {
    for key in shared.stream_keys() {
        let mut cursor = "0".to_owned();
        loop {
            let free = permit.num_permits().min(shared.cfg.batch);
            if free == 0 {
                return;
            }
            let reply: redis::RedisResult<Value> = redis::cmd("XREADGROUP")
                .arg("GROUP")
                .arg(&shared.cfg.group)
                .arg(&shared.cfg.consumer)
                .arg("COUNT")
                .arg(free)
                .arg("STREAMS")
                .arg(&key)
                .arg(&cursor)
                .query_async(&mut shared.cmd.clone())
                .await;
            let raw = match reply {
                Ok(v) => redis_io::parse_read_reply(v),
                Err(error) => {
                    if let Some(suppressed) = shared.redis_log.allow() {
                        tracing::warn!(%error, suppressed, stream = %key, "re-reading own pending entries failed");
                    }
                    return;
                }
            };
            let Some(last) = raw.last().map(|e| e.id.clone()) else {
                break;
            };
            let read = raw.len();
            // A pending entry whose payload was trimmed comes back without fields; unlike a claim,
            // this read leaves it pending, so it is acknowledged here.
            let (live, trimmed): (Vec<_>, Vec<_>) =
                raw.into_iter().partition(|e| e.fields.is_some());
            let trimmed: Vec<String> = trimmed.into_iter().map(|e| e.id).collect();
            if !trimmed.is_empty() {
                let acked: redis::RedisResult<i64> = redis::cmd("XACK")
                    .arg(&key)
                    .arg(&shared.cfg.group)
                    .arg(&trimmed)
                    .query_async(&mut shared.cmd.clone())
                    .await;
                if acked.is_err() {
                    return;
                }
                shared.note_trimmed(&key, &trimmed).await;
            }
            let entries = shared.track(live);
            if !entries.is_empty() {
                WorkerStats::add(&shared.stats.reclaimed, entries.len() as u64);
                tracing::info!(stream = %key, group = %shared.cfg.group, count = entries.len(), "handling own pending entries again");
                if let Some(batch) = permit.split(entries.len()) {
                    dispatch(shared.clone(), entries, batch);
                }
            }
            if read < free {
                break;
            }
            cursor = last;
        }
    }
}

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
            shared.note_trimmed(&key, &deleted).await;
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
