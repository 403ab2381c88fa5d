//! Processing: a batch of entries already tracked as ours goes through its intake (`intake.rs`),
//! then to the handler — concurrently, each entry in its own transaction, or in shared
//! transactional batches (`batch.rs`) — and each outcome is disposed of: acknowledged, retried or
//! dead-lettered (`retry.rs`). A retry comes back here: after its backoff the entry is claimed
//! again and processed as a batch of one, which is why that loop stays in this one module.

use std::{
    sync::{Arc, atomic::Ordering::Relaxed},
    time::{Duration, Instant},
};

use futures::{FutureExt as _, StreamExt as _, future::BoxFuture, stream::FuturesUnordered};
use tokio::sync::OwnedSemaphorePermit;
use tracing::Instrument as _;

use super::{
    batch::{self, BatchTransactions},
    entry::{Ack, EntryKey, Ready, Tracked},
    event_span,
    handler::{self, HandleError, Handler, Message, handle_catching_panics},
    intake, retry,
    shared::Shared,
    stats::WorkerStats,
};

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

/// A batch's intake, then its handlers, with `permit` (one per entry). Boxed: a retry processes its
/// entry again from inside a batch's processing.
fn process_batch<H: Handler>(
    shared: Arc<Shared<H>>,
    entries: Vec<Tracked>,
    permit: OwnedSemaphorePermit,
) -> BoxFuture<'static, ()> {
    async move {
        let Some(ready) = intake::take_in(&shared, entries).await else {
            return;
        };
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
async fn drain_batch_queue<H: Handler>(shared: &Arc<Shared<H>>, batch: &BatchTransactions) {
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
    batch: &BatchTransactions,
    mut ready: Vec<Ready>,
) -> Vec<Ready> {
    let mut acks = Vec::with_capacity(ready.len());
    while !ready.is_empty() {
        let tail = ready.split_off(ready.len().min(batch::MAX_PER_TRANSACTION));
        let mut chunk = std::mem::replace(&mut ready, tail);
        if let [item] = &chunk[..] {
            // Nothing to share a transaction with: the handler's own.
            let outcome = event_span::within(
                &item.span,
                shared.meters.time(
                    &item.message,
                    handle_catching_panics(&shared.handler, &item.message),
                ),
            )
            .await;
            dispose(shared, item, outcome, &mut acks)
                .instrument(item.span.clone())
                .await;
            shared.send_acks(&mut acks);
            continue;
        }
        let messages: Vec<(&Message, &tracing::Span)> = chunk
            .iter()
            .map(|item| (&item.message, &item.span))
            .collect();
        let outcomes = match batch::handle_in_one_transaction(
            batch,
            &shared.handler,
            &shared.meters,
            &messages,
        )
        .await
        {
            Ok(applied) => {
                if applied.replayed {
                    WorkerStats::add(&shared.stats.batch_replays, 1);
                }
                applied.outcomes
            }
            Err(unbatched) => {
                if unbatched == batch::Unbatched::LockConflict {
                    WorkerStats::add(&shared.stats.batch_lock_conflicts, 1);
                }
                chunk.extend(ready);
                return chunk;
            }
        };
        WorkerStats::add(&shared.stats.batch_transactions, 1);
        for (item, outcome) in chunk.iter().zip(outcomes) {
            dispose(shared, item, outcome, &mut acks)
                .instrument(item.span.clone())
                .await;
        }
        shared.send_acks(&mut acks);
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
    // Each handler is polled once right away, in its event's span; one that completes then (a
    // no-op, a cache hit, an event it ignores) is disposed of at once, and its permit goes back
    // with the batch's. Only handlers that have to wait are driven concurrently, each holding a
    // permit until it is done. The entries stay where they are: the handlers' futures borrow
    // them. One clock reading per handler: the end of one's first poll starts the next one's
    // time (the bookkeeping between them, well under a microsecond, counts to the next).
    let mut running = FuturesUnordered::new();
    let mut clock = Instant::now();
    for item in &ready {
        let started = clock;
        let mut work = handler::start(&shared.handler, &item.message);
        let polled = handler::poll_once(&mut work, &item.span).await;
        clock = Instant::now();
        match polled {
            Some(outcome) => {
                handled(shared, item, &outcome, clock - started);
                dispose(shared, item, outcome, &mut acks)
                    .instrument(item.span.clone())
                    .await
            }
            None => {
                let piece = permit.split(1);
                running.push(async move {
                    let outcome = handler::finish(work).instrument(item.span.clone()).await;
                    handled(shared, item, &outcome, started.elapsed());
                    (item, outcome, piece)
                });
            }
        }
    }
    shared.send_acks(&mut acks);
    drop(permit);
    while let Some((item, outcome, piece)) = running.next().await {
        dispose(shared, item, outcome, &mut acks)
            .instrument(item.span.clone())
            .await;
        shared.send_acks(&mut acks);
        drop(piece);
    }
}

/// Records how long the handler took on `item` (metrics) and how it ended (its span).
fn handled<H>(shared: &Shared<H>, item: &Ready, outcome: &Result<(), HandleError>, took: Duration) {
    shared.meters.handled(&item.message, took);
    event_span::record_outcome(&item.span, outcome);
}

/// Acks, dead-letters or schedules the retry of one handled entry.
/// Acknowledgements go to `acks`, for [`Shared::send_acks`].
async fn dispose<H: Handler>(
    shared: &Arc<Shared<H>>,
    item: &Ready,
    outcome: Result<(), HandleError>,
    acks: &mut Vec<Ack>,
) {
    match outcome {
        Ok(()) => {
            WorkerStats::add(&shared.stats.handled, 1);
            // The database answers again (read first: a store on every success would make the
            // counter's cache line bounce between cores).
            if shared.outage_streak.load(Relaxed) != 0 {
                shared.outage_streak.store(0, Relaxed);
            }
            acks.push(Ack {
                key: item.key,
                event_id: Some(item.message.envelope.event_id),
            });
        }
        Err(HandleError::DeadLetter(error)) => {
            let error = format!("{error:#}");
            retry::send_to_dead_letter(
                shared,
                item.key,
                &item.message.id,
                &item.fields_as_read(),
                &error,
                None,
            )
            .await;
        }
        Err(HandleError::Retry(error)) => {
            if let Some(retry) = retry::retry_or_dead_letter(shared, item, error).await {
                schedule_retry(shared.clone(), item.key, item.message.id.clone(), retry);
            }
        }
    }
}

/// After the retry's delay, redelivers the entry to this consumer (see [`retry::redeliver`]) and
/// processes it again. On shutdown it simply stays pending.
fn schedule_retry<H: Handler>(
    shared: Arc<Shared<H>>,
    key: EntryKey,
    id: String,
    retry: retry::Retry,
) {
    let tasks = shared.tasks.clone();
    tasks.spawn(async move {
        if let Some((entries, permit)) = retry::redeliver(&shared, key, &id, retry).await {
            process_batch(shared, entries, permit).await;
        }
    });
}
