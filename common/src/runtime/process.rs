//! The path of one batch: validate envelopes (poison straight to dead-letter), skip replays meant
//! for other groups and events already processed, run the handlers concurrently, then ack, retry
//! or dead-letter each entry.

use std::{sync::Arc, time::Duration};

use futures::{FutureExt as _, StreamExt as _, future::BoxFuture, stream::FuturesUnordered};
use redis::{Script, Value};
use tokio::sync::OwnedSemaphorePermit;

use super::{
    acker::Ack,
    backoff::backoff_delay,
    batch,
    dead_letter::{self, Failure},
    handler::{HandleError, Handler, Message, handle_catching_panics},
    redis_io::{self, RawEntry},
    stats::WorkerStats,
    worker::{EntryKey, Shared, Tracked, sleep_or_cancel},
};
use crate::envelope::{self, Envelope, Fields, REPLAY_FOR_GROUP_FIELD};

/// Hands a batch (already tracked as ours) to its own task.
pub(crate) fn dispatch<H: Handler>(
    shared: Arc<Shared<H>>,
    entries: Vec<Tracked>,
    permit: OwnedSemaphorePermit,
) {
    if entries.is_empty() {
        return;
    }
    let tasks = shared.tasks.clone();
    tasks.spawn(process_batch(shared, entries, permit));
}

/// An entry with a valid envelope, ready for its handler.
pub(crate) struct Ready {
    key: EntryKey,
    message: Message,
    /// The entry as read: what a dead letter carries.
    fields: Fields,
}

fn process_batch<H: Handler>(
    shared: Arc<Shared<H>>,
    entries: Vec<Tracked>,
    permit: OwnedSemaphorePermit,
) -> BoxFuture<'static, ()> {
    async move {
        let group = shared.cfg.group.clone();
        let mut acks = Vec::with_capacity(entries.len());
        let mut ready = Vec::with_capacity(entries.len());
        // The idempotency check goes out first, with the event ids as read, and Redis answers it
        // while the envelopes are validated. `slots[i]`: where entry i's id is in `lookup`.
        let mut lookup = Vec::new();
        let mut slots = Vec::with_capacity(entries.len());
        for tracked in &entries {
            let id = shared
                .cfg
                .idempotency
                .then(|| lookup_id(&tracked.entry, &group))
                .flatten();
            slots.push(id.map(|id| {
                lookup.push(id);
                lookup.len() - 1
            }));
        }
        let mut check = None;
        if !lookup.is_empty() {
            // Written to Redis before the envelopes are validated.
            check = Some(redis_io::send_now(already_processed(&shared, &lookup).boxed()).await);
        }
        let mut ready_slots = Vec::with_capacity(entries.len());
        for (Tracked { key, entry }, slot) in entries.into_iter().zip(slots) {
            let RawEntry { id, fields, .. } = entry;
            let Some(fields) = fields else {
                // Pending entry whose payload was trimmed: nothing to process. Claiming it
                // already removed it from the PEL.
                note_trimmed(&shared, shared.stream_key(key), &[id]).await;
                continue;
            };
            if replayed_for_another_group(&fields, &group) {
                WorkerStats::add(&shared.stats.skipped_other_group, 1);
                acks.push(Ack {
                    key,
                    event_id: None,
                });
                continue;
            }
            match Envelope::from_fields(&fields) {
                Ok(envelope) => {
                    ready_slots.push(slot);
                    ready.push(Ready {
                        key,
                        message: Message {
                            stream: shared.stream_names[key.stream].clone(),
                            id,
                            envelope,
                        },
                        fields,
                    })
                }
                Err(poison) => {
                    WorkerStats::add(&shared.stats.poison, 1);
                    let error = format!("poison: {poison}");
                    send_to_dead_letter(&shared, key, &id, &fields, &error, None).await;
                }
            }
        }

        if let Some(check) = check {
            match check.await {
                Some(seen) => {
                    let mut fresh = Vec::with_capacity(ready.len());
                    for (item, slot) in ready.into_iter().zip(ready_slots) {
                        // A valid envelope's id parsed in the lookup too.
                        if slot.is_some_and(|slot| seen[slot]) {
                            WorkerStats::add(&shared.stats.duplicates, 1);
                            acks.push(Ack {
                                key: item.key,
                                event_id: None,
                            });
                        } else {
                            fresh.push(item);
                        }
                    }
                    ready = fresh;
                }
                None => {
                    // Cannot tell what was processed: leave the entries pending; a consumer
                    // reclaims them once Redis answers again.
                    for item in &ready {
                        shared.untrack(item.key);
                    }
                    send_acks(&shared, &mut acks);
                    return;
                }
            }
        }
        send_acks(&shared, &mut acks);

        if let Some(batch) = shared.cfg.batch_transactions.as_ref() {
            if !ready.is_empty() {
                shared.batch_queue.push((ready, permit));
                drain_batch_queue(&shared, batch).await;
            }
            return;
        }
        run_concurrently(&shared, ready, permit).await;
    }
    .boxed()
}

/// Transactional batches: the entries of every read wait in the worker's queue, and one task at
/// a time applies all that is queued, up to [`batch::MAX_PER_TRANSACTION`] per transaction. While
/// a transaction runs (on SQLite it holds the file's one writer), the reads that arrive meanwhile
/// queue up and go into the next one: under load transactions grow instead of multiplying.
async fn drain_batch_queue<H: Handler>(shared: &Arc<Shared<H>>, batch: &batch::BatchTransactions) {
    while shared.batch_queue.start_draining() {
        loop {
            let queued = shared.batch_queue.take();
            let Some((ready, permit)) = queued.into_iter().reduce(|mut a, b| {
                a.0.extend(b.0);
                a.1.merge(b.1);
                a
            }) else {
                break;
            };
            let rest = apply_in_transactions(shared, batch, ready).await;
            if rest.is_empty() {
                drop(permit);
            } else {
                // The database refused a transaction: one by one, as without batches.
                run_concurrently(shared, rest, permit).await;
            }
        }
        if !shared.batch_queue.stop_draining() {
            return;
        }
    }
}

/// Applies `ready` in transactions of at most [`batch::MAX_PER_TRANSACTION`] entries and disposes
/// of them; returns the entries left when a transaction could not begin.
async fn apply_in_transactions<H: Handler>(
    shared: &Arc<Shared<H>>,
    batch: &batch::BatchTransactions,
    mut ready: Vec<Ready>,
) -> Vec<Ready> {
    let mut acks = Vec::with_capacity(ready.len());
    while !ready.is_empty() {
        let tail = ready.split_off(ready.len().min(batch::MAX_PER_TRANSACTION));
        let mut chunk = std::mem::replace(&mut ready, tail);
        if let [item] = &chunk[..] {
            // Nothing to share a transaction with: the handler's own.
            let outcome = handle_catching_panics(&shared.handler, &item.message).await;
            dispose(shared, item, outcome, &mut acks).await;
            send_acks(shared, &mut acks);
            continue;
        }
        let messages: Vec<&Message> = chunk.iter().map(|item| &item.message).collect();
        let Some(outcomes) =
            batch::handle_in_one_transaction(batch, &shared.handler, &messages).await
        else {
            chunk.extend(ready);
            return chunk;
        };
        WorkerStats::add(&shared.stats.batch_transactions, 1);
        for (item, outcome) in chunk.iter().zip(outcomes) {
            dispose(shared, item, outcome, &mut acks).await;
        }
        send_acks(shared, &mut acks);
    }
    Vec::new()
}

/// Runs the handlers of `ready` concurrently, each in its own transaction, and disposes of them.
async fn run_concurrently<H: Handler>(
    shared: &Arc<Shared<H>>,
    ready: Vec<Ready>,
    mut permit: OwnedSemaphorePermit,
) {
    let mut acks = Vec::with_capacity(ready.len());
    // Each handler is polled once right away; one that completes then (a no-op, a cache hit, an
    // event it ignores) is disposed of at once, and its permit goes back with the batch's. Only
    // handlers that have to wait are driven concurrently, each holding a permit until it is
    // done. The entries stay where they are: the handlers' futures borrow them.
    let mut running = FuturesUnordered::new();
    for item in &ready {
        let mut handling = Box::pin(handle_catching_panics(&shared.handler, &item.message));
        match futures::future::poll_immediate(&mut handling).await {
            Some(outcome) => dispose(shared, item, outcome, &mut acks).await,
            None => {
                let piece = permit.split(1);
                running.push(async move { (item, handling.await, piece) });
            }
        }
    }
    send_acks(shared, &mut acks);
    drop(permit);
    while let Some((item, outcome, piece)) = running.next().await {
        dispose(shared, item, outcome, &mut acks).await;
        send_acks(shared, &mut acks);
        drop(piece);
    }
}

/// Acks, dead-letters or schedules the retry of one handled entry.
/// Acknowledgements go to `acks`, for [`send_acks`].
async fn dispose<H: Handler>(
    shared: &Arc<Shared<H>>,
    item: &Ready,
    outcome: Result<(), HandleError>,
    acks: &mut Vec<Ack>,
) {
    match outcome {
        Ok(()) => {
            WorkerStats::add(&shared.stats.handled, 1);
            acks.push(Ack {
                key: item.key,
                event_id: Some(item.message.envelope.event_id),
            });
        }
        Err(HandleError::DeadLetter(error)) => {
            let error = format!("{error:#}");
            send_to_dead_letter(
                shared,
                item.key,
                &item.message.id,
                &item.fields,
                &error,
                None,
            )
            .await;
        }
        Err(HandleError::Retry(error)) => {
            retry_or_dead_letter(shared, item, error).await;
        }
    }
}

/// Hands the collected acknowledgements to the acker, in one message.
fn send_acks<H>(shared: &Shared<H>, acks: &mut Vec<Ack>) {
    if acks.is_empty() {
        return;
    }
    // The acker lives until every task is done, so the channel is open here.
    let _ = shared.ack_tx.send(std::mem::take(acks));
}

/// Which of the batch's events the group already processed (the idempotency sets); `None` if
/// Redis could not answer after a few tries.
async fn already_processed<H>(shared: &Shared<H>, ids: &[uuid::Uuid]) -> Option<Vec<bool>> {
    for attempt in 1..=3u64 {
        match shared
            .idempotency
            .contains(&mut shared.cmd.clone(), ids)
            .await
        {
            Ok(seen) => return Some(seen),
            Err(error) => {
                if let Some(suppressed) = shared.redis_log.allow() {
                    tracing::warn!(%error, suppressed, "idempotency check failed");
                }
                tokio::time::sleep(Duration::from_millis(100 * attempt)).await;
            }
        }
    }
    None
}

/// A dead-letter replay meant for another group: acknowledged without handling.
fn replayed_for_another_group(fields: &[(String, Vec<u8>)], group: &str) -> bool {
    envelope::field(fields, REPLAY_FOR_GROUP_FIELD).is_some_and(|target| target != group.as_bytes())
}

/// The `event_id` the idempotency check looks up for an entry: that of an entry with a payload,
/// not replayed for another group, whose `event_id` parses (as `Envelope::from_fields` reads it;
/// an entry whose id does not parse is poison).
fn lookup_id(entry: &RawEntry, group: &str) -> Option<uuid::Uuid> {
    let fields = entry.fields.as_deref()?;
    if replayed_for_another_group(fields, group) {
        return None;
    }
    let id = envelope::field(fields, "event_id")?;
    uuid::Uuid::try_parse_ascii(id).ok()
}

/// Redis's own delivery counter of a pending entry (`XPENDING`).
pub(crate) async fn delivery_count<H>(shared: &Shared<H>, key: EntryKey, id: &str) -> Option<u64> {
    let reply: Value = redis::cmd("XPENDING")
        .arg(shared.stream_key(key))
        .arg(&shared.cfg.group)
        .arg(id)
        .arg(id)
        .arg(1)
        .query_async(&mut shared.cmd.clone())
        .await
        .ok()?;
    redis_io::parse_pending_range(reply)
        .into_iter()
        .next()
        .map(|(_, _, _, count)| count)
}

async fn retry_or_dead_letter<H: Handler>(
    shared: &Arc<Shared<H>>,
    item: &Ready,
    error: anyhow::Error,
) {
    let deliveries = delivery_count(shared, item.key, &item.message.id).await;
    let error_text = format!("{error:#}");
    match deliveries {
        Some(n) if n >= shared.cfg.max_deliveries => {
            send_to_dead_letter(
                shared,
                item.key,
                &item.message.id,
                &item.fields,
                &error_text,
                Some(n),
            )
            .await;
        }
        None if !still_pending(shared, item).await => {
            // Someone else acknowledged or took it; nothing of ours to retry.
            shared.untrack(item.key);
        }
        _ => {
            WorkerStats::add(&shared.stats.retried, 1);
            let attempt = deliveries.unwrap_or(1);
            let delay = backoff_delay(shared.cfg.retry_base, shared.cfg.retry_max, attempt);
            tracing::warn!(
                stream = %item.message.stream,
                entry.id = %item.message.id,
                event.id = %item.message.envelope.event_id,
                event.r#type = %item.message.envelope.event_type,
                group = %shared.cfg.group,
                deliveries = attempt,
                retry_in_ms = delay.as_millis() as u64,
                error = %error_text,
                "handler failed; will retry"
            );
            schedule_retry(shared.clone(), item.key, item.message.id.clone(), delay);
        }
    }
}

/// `false` only when Redis says the entry is no longer pending at all.
async fn still_pending<H>(shared: &Shared<H>, item: &Ready) -> bool {
    let reply: redis::RedisResult<Value> = redis::cmd("XPENDING")
        .arg(shared.stream_key(item.key))
        .arg(&shared.cfg.group)
        .arg(&item.message.id)
        .arg(&item.message.id)
        .arg(1)
        .query_async(&mut shared.cmd.clone())
        .await;
    match reply {
        Ok(v) => !redis_io::parse_pending_range(v).is_empty(),
        Err(_) => true,
    }
}

/// Claims one of our own pending entries again (incrementing Redis's delivery counter) if, and
/// only if, we still own it.
const RECLAIM_OWN: &str = r#"
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)
if #p == 0 or p[1][2] ~= ARGV[2] then return false end
return redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3])
"#;

/// After `delay`, redeliver the entry to this consumer. On shutdown it simply stays pending.
fn schedule_retry<H: Handler>(shared: Arc<Shared<H>>, key: EntryKey, id: String, delay: Duration) {
    let tasks = shared.tasks.clone();
    tasks.spawn(async move {
        let stream_key = shared.stream_key(key).to_owned();
        sleep_or_cancel(delay, &shared.stopping).await;
        if shared.stopping.is_cancelled() {
            shared.untrack(key);
            return;
        }
        let permit = tokio::select! {
            p = shared.permits.clone().acquire_owned() => p.ok(),
            _ = shared.stopping.cancelled() => None,
        };
        let Some(permit) = permit else {
            shared.untrack(key);
            return;
        };
        let reply: redis::RedisResult<Value> = Script::new(RECLAIM_OWN)
            .key(&stream_key)
            .arg(&shared.cfg.group)
            .arg(&shared.cfg.consumer)
            .arg(&id)
            .invoke_async(&mut shared.cmd.clone())
            .await;
        match reply {
            Ok(Value::Nil) => {
                WorkerStats::add(&shared.stats.lost_claims, 1);
                shared.untrack(key);
            }
            Ok(v) => {
                // Still tracked as ours since its first delivery.
                let entries = shared.keyed(redis_io::parse_entries(&stream_key, v));
                if entries.is_empty() {
                    // XCLAIM found the payload gone and dropped it from the PEL.
                    note_trimmed(&shared, &stream_key, std::slice::from_ref(&id)).await;
                } else {
                    process_batch(shared.clone(), entries, permit).await;
                }
            }
            Err(error) => {
                // Leave it pending; the reclaim scan picks it up once Redis is back.
                if let Some(suppressed) = shared.redis_log.allow() {
                    tracing::warn!(%error, suppressed, "retry claim failed");
                }
                shared.untrack(key);
            }
        }
    });
}

/// Dead-letters (and atomically acks) one entry. If Redis refuses, the entry stays pending and
/// is dealt with on a later delivery.
async fn send_to_dead_letter<H>(
    shared: &Shared<H>,
    key: EntryKey,
    id: &str,
    fields: &[(String, Vec<u8>)],
    error: &str,
    deliveries: Option<u64>,
) {
    let deliveries = match deliveries {
        Some(n) => n,
        None => delivery_count(shared, key, id).await.unwrap_or(1),
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
                metrics::counter!("mesh_dead_lettered_total", "group" => shared.cfg.group.clone())
                    .increment(1);
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

/// Counts (in Redis and locally) and logs pending entries whose payload was trimmed.
pub(crate) async fn note_trimmed<H>(shared: &Shared<H>, stream_key: &str, ids: &[String]) {
    if ids.is_empty() {
        return;
    }
    for id in ids {
        shared.untrack_id(stream_key, id);
    }
    WorkerStats::add(&shared.stats.trimmed, ids.len() as u64);
    let counted: redis::RedisResult<i64> = redis::cmd("INCRBY")
        .arg(shared.cfg.keys.trimmed_counter(&shared.cfg.group))
        .arg(ids.len())
        .query_async(&mut shared.cmd.clone())
        .await;
    tracing::warn!(
        stream = %stream_key,
        group = %shared.cfg.group,
        ids = ?ids,
        counted = counted.is_ok(),
        "pending entries lost their payload to trimming; dropped from the pending list"
    );
}
