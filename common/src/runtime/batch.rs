//! Transactional batches: a worker configured with [`BatchTransactions`] applies the entries it
//! reads in shared database transactions. Reads queue for one draining task, which applies what
//! is queued, [`MAX_PER_TRANSACTION`] at a time; reads that arrive while a transaction runs join
//! the next one, so under load transactions grow instead of multiplying (SQLite has one writer:
//! concurrent small transactions would only queue for it). Handlers run one after the other inside
//! [`crate::db::in_batch_transaction`]: first in the transaction itself; if one fails, the batch
//! is rolled back and applied again with each `db::begin` a savepoint, so that a handler that
//! fails rolls back only its own work and is retried or dead-lettered as usual, and everything
//! that succeeded commits once. Acknowledgements go out only after that commit; if the commit
//! fails, the entries that had succeeded are retried (their effects are gone with it).
//!
//! Why: on SQLite every write transaction costs a turn on the file's single writer, a
//! `BEGIN IMMEDIATE`, WAL frames for every page it touched and a `COMMIT`; under load a read
//! brings dozens of entries, and one transaction for all of them writes each hot page once.

use std::sync::{
    Mutex,
    atomic::{AtomicBool, Ordering},
};

use sea_orm::DatabaseConnection;

use crate::db::{self, BatchTxn, inbox, outage, relay::OutboxNotifier};

use super::{
    event_span,
    handler::{HandleError, Handler, Message, handle_catching_panics},
    meters::WorkerMeters,
};

/// The database a worker's handlers write to, and the outbox relay to wake once a batch has
/// committed (a handler's notification inside the batch does nothing: its work is not durable
/// before the batch commits).
#[derive(Clone)]
pub struct BatchTransactions {
    pub db: DatabaseConnection,
    pub notifier: OutboxNotifier,
}

impl std::fmt::Debug for BatchTransactions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchTransactions")
            .field("backend", &self.db.get_database_backend())
            .finish()
    }
}

/// Work waiting for the worker's one draining task (see `process::drain_batch_queue`).
pub(crate) struct BatchQueue<T> {
    queued: Mutex<Vec<T>>,
    draining: AtomicBool,
}

impl<T> Default for BatchQueue<T> {
    fn default() -> Self {
        Self {
            queued: Mutex::new(Vec::new()),
            draining: AtomicBool::new(false),
        }
    }
}

impl<T> BatchQueue<T> {
    pub fn push(&self, item: T) {
        self.lock().push(item);
    }

    /// Everything queued so far.
    pub fn take(&self) -> Vec<T> {
        std::mem::take(&mut *self.lock())
    }

    /// `true` if the caller is now the one draining task; `false` if another is (it will take
    /// what the caller queued).
    pub fn start_draining(&self) -> bool {
        !self.draining.swap(true, Ordering::SeqCst)
    }

    /// Ends a drain that found the queue empty. Returns `true` if work was queued in the
    /// meantime (by a task that saw the drain still running): the caller must drain again.
    pub fn stop_draining(&self) -> bool {
        self.draining.store(false, Ordering::SeqCst);
        !self.lock().is_empty()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<T>> {
        self.queued.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Most entries applied in one transaction: more are split, so that the database's writer
/// (SQLite has one) is not held for long while HTTP requests wait for it. Chosen on the order
/// benchmark: larger transactions gave no more throughput and longer latency
/// (`docs/benchmarks.md`).
pub const MAX_PER_TRANSACTION: usize = 16;

/// What one batch transaction did: each message's outcome, and whether it had to be applied
/// a second time with savepoints.
pub(crate) struct Applied {
    pub outcomes: Vec<Result<(), HandleError>>,
    pub replayed: bool,
}

/// Runs `handler` on every message inside one transaction, each in its event's span; returns each
/// message's outcome, or why they are to be handled one by one instead (the transaction could not
/// begin, or met a lock conflict and was rolled back).
///
/// The first try runs the handlers in the transaction itself, with no savepoint each (two
/// statements fewer per event). If every handler succeeds, it commits. If one fails, or rolls
/// back, its partial work cannot be undone alone: the whole transaction is rolled back and the
/// batch applied again with a savepoint per handler, so that only the failed ones lose their
/// work (a handler is not told which try it is in: it must not act outside the database before
/// its transaction commits, which `db::after_commit` provides).
pub(crate) async fn handle_in_one_transaction<H: Handler>(
    batch: &BatchTransactions,
    handler: &H,
    meters: &WorkerMeters,
    messages: &[(&Message, &tracing::Span)],
) -> Result<Applied, Unbatched> {
    let txn = begin(batch, false).await?;
    let outcomes = run_handlers(&txn, handler, meters, messages, true).await;
    let all_ok = outcomes.len() == messages.len() && outcomes.iter().all(Result::is_ok);
    if all_ok && !txn.abandoned() && deferred_rows_written(&txn).await {
        return Ok(Applied {
            outcomes: commit(batch, txn, outcomes, messages).await,
            replayed: false,
        });
    }
    roll_back(txn).await;
    if outcomes.iter().any(is_lock_conflict) {
        return Err(lock_conflict(messages.len()));
    }

    let txn = begin(batch, true).await?;
    let outcomes = run_handlers(&txn, handler, meters, messages, false).await;
    if outcomes.iter().any(is_lock_conflict) {
        roll_back(txn).await;
        return Err(lock_conflict(messages.len()));
    }
    Ok(Applied {
        outcomes: commit(batch, txn, outcomes, messages).await,
        replayed: true,
    })
}

/// Writes the rows and inbox records the handlers left to the batch
/// (`BatchTxn::write_deferred_tables`, `db::inbox::write_deferred`); `false` if one of those events
/// was applied before (a handler applied it again, so the batch is to be applied with
/// savepoints, where each handler's own insert finds the record), or an insert failed (the
/// batch is rolled back; applying it again finds out whether the database is away).
async fn deferred_rows_written(txn: &BatchTxn) -> bool {
    let written = match txn.write_deferred_tables().await {
        Ok(()) => inbox::write_deferred(txn).await,
        Err(error) => Err(error),
    };
    match written {
        Ok(true) => true,
        Ok(false) => {
            tracing::debug!(
                "an event of the batch was applied before; applying it again with savepoints"
            );
            false
        }
        Err(error) => {
            tracing::debug!(%error, "writing the rows the batch's handlers deferred failed");
            false
        }
    }
}

async fn begin(batch: &BatchTransactions, savepoints: bool) -> Result<BatchTxn, Unbatched> {
    let begun = if savepoints {
        BatchTxn::begin_with_savepoints(&batch.db).await
    } else {
        BatchTxn::begin(&batch.db).await
    };
    begun.map_err(|error| {
        tracing::warn!(%error, "cannot begin a batch transaction; handling one by one");
        Unbatched::BeginFailed
    })
}

/// Runs the handlers one after the other inside `txn`. Stops after a lock conflict, and with
/// `stop_on_failure` after any failure (the first try: the batch will be applied again).
async fn run_handlers<H: Handler>(
    txn: &BatchTxn,
    handler: &H,
    meters: &WorkerMeters,
    messages: &[(&Message, &tracing::Span)],
    stop_on_failure: bool,
) -> Vec<Result<(), HandleError>> {
    db::in_batch_transaction(txn, async {
        let mut outcomes = Vec::with_capacity(messages.len());
        for (message, span) in messages {
            let handling = meters.time(message, handle_catching_panics(handler, message));
            let outcome = event_span::within(span, handling).await;
            let stop = is_lock_conflict(&outcome) || (stop_on_failure && outcome.is_err());
            outcomes.push(outcome);
            if stop {
                break;
            }
        }
        outcomes
    })
    .await
}

async fn roll_back(txn: BatchTxn) {
    if let Err(error) = txn.roll_back().await {
        tracing::debug!(%error, "rolling back a batch transaction");
    }
}

/// A lock conflict (another replica's transaction holds rows this batch needs, and this one
/// holds rows it needs): the batch was rolled back, releasing every lock at once, and its entries
/// are to be applied one by one, each in a short transaction of its own. Applying them as a
/// batch again could meet the same cycle again and again.
fn lock_conflict(entries: usize) -> Unbatched {
    tracing::debug!(
        entries,
        "lock conflict in a batch transaction; handling its entries one by one"
    );
    Unbatched::LockConflict
}

/// Commits the batch; if the commit fails, every entry that had succeeded is to be retried
/// (its effects are gone with it).
async fn commit(
    batch: &BatchTransactions,
    txn: BatchTxn,
    mut outcomes: Vec<Result<(), HandleError>>,
    messages: &[(&Message, &tracing::Span)],
) -> Vec<Result<(), HandleError>> {
    match txn.commit().await {
        Ok(()) => batch.notifier.notify(),
        Err(error) => {
            tracing::warn!(%error, entries = messages.len(), "batch transaction did not commit; retrying its entries");
            for (outcome, (_, span)) in outcomes.iter_mut().zip(messages) {
                if outcome.is_ok() {
                    // The database error itself goes along: an outage is retried as one.
                    *outcome = Err(HandleError::Retry(
                        anyhow::Error::from(error.clone())
                            .context("the batch transaction did not commit"),
                    ));
                    event_span::record_outcome(span, outcome);
                }
            }
        }
    }
    outcomes
}

/// Why a batch's entries are to be handled one by one, each in its own transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unbatched {
    /// The batch transaction could not begin.
    BeginFailed,
    /// A handler met a lock conflict; the batch was rolled back.
    LockConflict,
}

/// `true` if a handler failed on a lock conflict between transactions (`outage::is_lock_conflict`).
fn is_lock_conflict(outcome: &Result<(), HandleError>) -> bool {
    matches!(outcome, Err(HandleError::Retry(error)) if outage::is_lock_conflict(error))
}
