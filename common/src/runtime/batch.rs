//! Transactional batches: a worker configured with [`BatchTransactions`] applies the entries it
//! reads in shared database transactions. Reads queue for one draining task, which applies what
//! is queued, [`MAX_PER_TRANSACTION`] at a time; reads that arrive while a transaction runs join
//! the next one, so under load transactions grow instead of multiplying (SQLite has one writer:
//! concurrent small transactions would only queue for it). Handlers run one after the other inside
//! [`crate::db::in_batch_transaction`], where each `db::begin` is a savepoint: a handler that
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

use crate::db::{self, BatchTxn, outage, relay::OutboxNotifier};

use super::{
    event_span,
    handler::{HandleError, Handler, Message, handle_catching_panics},
    meters::WorkerMeters,
};

/// The database a worker's handlers write to, and the outbox relay to wake once a batch has
/// committed (handlers notify it before their work is durable, so the relay may have found
/// nothing).
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

/// Runs `handler` on every message inside one transaction, each in its event's span; returns each
/// message's outcome, or why they are to be handled one by one instead (the transaction could not
/// begin, or met a lock conflict and was rolled back).
pub(crate) async fn handle_in_one_transaction<H: Handler>(
    batch: &BatchTransactions,
    handler: &H,
    meters: &WorkerMeters,
    messages: &[(&Message, &tracing::Span)],
) -> Result<Vec<Result<(), HandleError>>, Unbatched> {
    let txn = match BatchTxn::begin(&batch.db).await {
        Ok(txn) => txn,
        Err(error) => {
            tracing::warn!(%error, "cannot begin a batch transaction; handling one by one");
            return Err(Unbatched::BeginFailed);
        }
    };
    let mut outcomes = db::in_batch_transaction(&txn, async {
        let mut outcomes = Vec::with_capacity(messages.len());
        for (message, span) in messages {
            let handling = meters.time(message, handle_catching_panics(handler, message));
            let outcome = event_span::within(span, handling).await;
            let conflict = is_lock_conflict(&outcome);
            outcomes.push(outcome);
            if conflict {
                break;
            }
        }
        outcomes
    })
    .await;
    // A lock conflict (another replica's transaction holds rows this batch needs, and this one
    // holds rows it needs): release every lock at once and apply the entries one by one, each
    // in a short transaction of its own. Retrying the batch as a batch could meet the same
    // cycle again and again.
    if outcomes.iter().any(is_lock_conflict) {
        if let Err(error) = txn.roll_back().await {
            tracing::debug!(%error, "rolling back a batch after a lock conflict");
        }
        tracing::debug!(
            entries = messages.len(),
            "lock conflict in a batch transaction; handling its entries one by one"
        );
        return Err(Unbatched::LockConflict);
    }
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
    Ok(outcomes)
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
