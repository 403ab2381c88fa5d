//! A batch's intake: which of its entries go to a handler. An entry whose payload was trimmed is
//! dropped, a replay meant for another group and an event the group already processed are
//! acknowledged without handling, and an entry that is not a valid envelope (poison) is
//! dead-lettered. The idempotency check goes out first, with the event ids as read, and Redis
//! answers it while the envelopes are validated (measured in docs/benchmarks.md).

use std::time::Duration;

use futures::{FutureExt as _, future::BoxFuture};
use uuid::Uuid;

use super::{
    entry::{Ack, Ready, Tracked},
    event_span,
    handler::{Handler, Message},
    redis_io::{self, RawEntry},
    retry::send_to_dead_letter,
    shared::Shared,
    stats::WorkerStats,
};
use crate::envelope::{self, Envelope, REPLAY_FOR_GROUP_FIELD};

/// Which events the group already processed, once Redis answers (`None`: it could not).
type Answer<'a> = BoxFuture<'a, Option<Vec<bool>>>;

/// The entries of a batch (already tracked as ours) that go to a handler, in order; `None` when
/// none does because Redis could not tell which were processed before: they are left pending,
/// and a consumer reclaims them once Redis answers again. Acknowledges what it skips.
pub(crate) async fn take_in<H: Handler>(
    shared: &Shared<H>,
    entries: Vec<Tracked>,
) -> Option<Vec<Ready>> {
    let mut acks = Vec::with_capacity(entries.len());
    for tracked in &entries {
        shared.meters.delivered(tracked.key.stream, 1);
    }
    let (answer, slots) = send_check(shared, &entries).await;
    let (ready, ready_slots) = validate(shared, entries, slots, &mut acks).await;
    let ready = match answer {
        Some(answer) => skip_processed(shared, answer.await, ready, ready_slots, &mut acks),
        None => Some(ready),
    };
    shared.send_acks(&mut acks);
    ready
}

/// Sends the idempotency check of the entries' event ids, if there is any to check, and writes it
/// to Redis before returning. `slots[i]`: where entry i's id is in the check.
async fn send_check<'a, H: Handler>(
    shared: &'a Shared<H>,
    entries: &[Tracked],
) -> (Option<Answer<'a>>, Vec<Option<usize>>) {
    let mut lookup = Vec::new();
    let mut slots = Vec::with_capacity(entries.len());
    for tracked in entries {
        let id = shared
            .cfg
            .idempotency
            .then(|| lookup_id(&tracked.entry, &shared.cfg.group))
            .flatten();
        slots.push(id.map(|id| {
            lookup.push(id);
            lookup.len() - 1
        }));
    }
    if lookup.is_empty() {
        return (None, slots);
    }
    let answer = async move { already_processed(shared, &lookup).await }.boxed();
    (Some(redis_io::send_now(answer).await), slots)
}

/// Drops the entries whose payload was trimmed, acknowledges (into `acks`) replays meant for
/// another group, dead-letters poison; returns the entries with a valid envelope, and their slots.
async fn validate<H>(
    shared: &Shared<H>,
    entries: Vec<Tracked>,
    slots: Vec<Option<usize>>,
    acks: &mut Vec<Ack>,
) -> (Vec<Ready>, Vec<Option<usize>>) {
    let mut ready = Vec::with_capacity(entries.len());
    let mut ready_slots = Vec::with_capacity(entries.len());
    for (Tracked { key, entry }, slot) in entries.into_iter().zip(slots) {
        let RawEntry { id, fields, .. } = entry;
        let Some(mut fields) = fields else {
            // Pending entry whose payload was trimmed: nothing to process. Claiming it
            // already removed it from the PEL.
            shared.note_trimmed(shared.stream_key(key), &[id]).await;
            continue;
        };
        if replayed_for_another_group(&fields, &shared.cfg.group) {
            WorkerStats::add(&shared.stats.skipped_other_group, 1);
            acks.push(Ack {
                key,
                event_id: None,
            });
            continue;
        }
        match Envelope::take_from_fields(&mut fields) {
            Ok(envelope) => {
                ready_slots.push(slot);
                let message = Message {
                    stream: shared.stream_names[key.stream].clone(),
                    id,
                    envelope,
                };
                ready.push(Ready {
                    key,
                    span: event_span::open(&shared.cfg.group, &message),
                    message,
                    fields,
                })
            }
            Err(poison) => {
                WorkerStats::add(&shared.stats.poison, 1);
                let error = format!("poison: {poison}");
                send_to_dead_letter(shared, key, &id, &fields, &error, None).await;
            }
        }
    }
    (ready, ready_slots)
}

/// The entries of `ready` whose events the group has not processed yet, by the check's answer
/// `seen`; the others are acknowledged (into `acks`). `None`, with every entry untracked, when
/// Redis could not answer.
fn skip_processed<H>(
    shared: &Shared<H>,
    seen: Option<Vec<bool>>,
    mut ready: Vec<Ready>,
    slots: Vec<Option<usize>>,
    acks: &mut Vec<Ack>,
) -> Option<Vec<Ready>> {
    let Some(seen) = seen else {
        for item in &ready {
            shared.untrack(item.key);
        }
        return None;
    };
    // In place: the entries that stay are not moved (a `Ready` is a few hundred bytes).
    let mut slots = slots.into_iter();
    ready.retain(|item| {
        // A valid envelope's id parsed in the lookup too.
        let processed = slots.next().flatten().is_some_and(|slot| seen[slot]);
        if processed {
            WorkerStats::add(&shared.stats.duplicates, 1);
            acks.push(Ack {
                key: item.key,
                event_id: None,
            });
        }
        !processed
    });
    Some(ready)
}

/// Which of the batch's events the group already processed (the idempotency sets); `None` if
/// Redis could not answer after a few tries.
async fn already_processed<H>(shared: &Shared<H>, ids: &[Uuid]) -> Option<Vec<bool>> {
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
fn lookup_id(entry: &RawEntry, group: &str) -> Option<Uuid> {
    let fields = entry.fields.as_deref()?;
    if replayed_for_another_group(fields, group) {
        return None;
    }
    let id = envelope::field(fields, "event_id")?;
    Uuid::try_parse_ascii(id).ok()
}
