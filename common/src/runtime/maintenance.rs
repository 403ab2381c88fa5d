//! Timers of a worker: keep our claims fresh (the heartbeat; see `claims.rs`), remove long-gone
//! consumers, and safe-trim the consumed streams (`trim.rs`); and, at a clean stop, leave the
//! groups (`leave_groups`).

use std::{sync::Arc, time::Duration};

use redis::{Script, Value};
use tokio_util::sync::CancellationToken;

use super::{claims::refresh_claims, handler::Handler, redis_io, shared::Shared, trim};

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

/// Deletes a consumer only if it still has nothing pending (checked atomically). Returns -1 when
/// it kept the consumer (`XGROUP DELCONSUMER` itself returns the pending count, 0 here).
const DELETE_IF_EMPTY: &str = r#"
local p = redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2])
if #p > 0 then return -1 end
return redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
"#;

/// A clean stop's way out of a group, atomically on one stream: the entries we still hold and no
/// handler of ours is working on (`ARGV[4..]` are those in flight) — entries waiting for a retry
/// when the stop came — go to the group's most recently active other consumer (`XCLAIM … JUSTID`,
/// not a delivery), marked idle for the processing timeout (`ARGV[3]`, ms) so that the next
/// reclaim scan of any live consumer takes them at once; then, holding nothing, we delete our
/// consumer. With no other consumer, or entries still in flight, we stay: deleting a consumer
/// drops its pending entries. Returns `{handed over, left (1) or stayed (0)}`.
const LEAVE: &str = r#"
local busy = {}
for i = 4, #ARGV do busy[ARGV[i]] = true end
local heir, heir_idle = nil, nil
for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  local f = {}
  for i = 1, #c, 2 do f[c[i]] = c[i + 1] end
  if f['name'] ~= ARGV[2] and (heir_idle == nil or f['idle'] < heir_idle) then
    heir, heir_idle = f['name'], f['idle']
  end
end
local handed, start = 0, '-'
while heir do
  local page = redis.call('XPENDING', KEYS[1], ARGV[1], start, '+', 500, ARGV[2])
  local claim = {'XCLAIM', KEYS[1], ARGV[1], heir, '0'}
  for _, p in ipairs(page) do
    if not busy[p[1]] then claim[#claim + 1] = p[1] end
  end
  if #claim > 5 then
    claim[#claim + 1] = 'IDLE'
    claim[#claim + 1] = ARGV[3]
    claim[#claim + 1] = 'JUSTID'
    handed = handed + #redis.call(unpack(claim))
  end
  if #page < 500 then break end
  start = '(' .. page[#page][1]
end
if #redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2]) > 0 then
  return {handed, 0}
end
redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
return {handed, 1}
"#;

/// A stopped worker leaves its groups, so a replica scaled away leaves no consumer behind: on
/// every stream it hands what it still holds to another consumer and deletes its own (see
/// [`LEAVE`]). Where a handler is still running past the grace period, or no other consumer is
/// there to take over, the consumer stays with its entries: a replica started again under the
/// same name re-reads them, others claim them after the processing timeout, and
/// `remove_gone_consumers` deletes the consumer once it is empty and long gone. Called after the
/// reader and the acker have stopped.
pub(crate) async fn leave_groups<H>(shared: &Shared<H>) {
    let in_flight: Vec<(String, String)> = {
        let inflight = shared.inflight.lock().unwrap_or_else(|p| p.into_inner());
        inflight
            .iter()
            .map(|entry| {
                let (key, id) = shared.entry_of(*entry);
                (key.to_owned(), id)
            })
            .collect()
    };
    let idle_ms = shared.cfg.processing_timeout.as_millis() as u64;
    let script = Script::new(LEAVE);
    for key in shared.stream_keys() {
        let mut invocation = script.key(&key);
        invocation
            .arg(&shared.cfg.group)
            .arg(&shared.cfg.consumer)
            .arg(idle_ms);
        for (_, id) in in_flight.iter().filter(|(k, _)| *k == key) {
            invocation.arg(id);
        }
        let left: redis::RedisResult<(u64, u8)> =
            invocation.invoke_async(&mut shared.cmd.clone()).await;
        let (group, consumer) = (&shared.cfg.group, &shared.cfg.consumer);
        match left {
            Ok((handed_over, 0)) => {
                tracing::info!(stream = %key, %group, %consumer, handed_over, "consumer kept: it has entries pending")
            }
            Ok((handed_over, _)) => {
                tracing::debug!(stream = %key, %group, %consumer, handed_over, "consumer left its group")
            }
            Err(error) => {
                tracing::warn!(%error, stream = %key, %group, %consumer, "consumer not removed")
            }
        }
    }
}

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
        match trim::trim(&mut shared.cmd.clone(), key, retention).await {
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
