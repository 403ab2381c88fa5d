//! Counters of one worker, readable in process by tests and tools (the Prometheus metrics of a
//! worker are `meters.rs`'s).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// What a worker did. Every field only grows.
#[derive(Debug, Default)]
pub struct WorkerStats {
    /// Handler returned `Ok`.
    pub handled: AtomicU64,
    /// Skipped because the idempotency set already had the `event_id`.
    pub duplicates: AtomicU64,
    /// Replays meant for another group, acknowledged without handling.
    pub skipped_other_group: AtomicU64,
    /// Handler failures left pending for a later delivery.
    pub retried: AtomicU64,
    /// Of `retried`, failures because the database was away (`db::outage`): redelivered
    /// without counting the delivery, never dead-lettered for it.
    pub outage_retries: AtomicU64,
    /// Entries written to the dead-letter stream (failures and poison).
    pub dead_lettered: AtomicU64,
    /// Of `dead_lettered`, entries that were not valid envelopes.
    pub poison: AtomicU64,
    /// Pending entries whose payload was trimmed, dropped from the PEL.
    pub trimmed: AtomicU64,
    /// Entries taken over from other (dead or stuck) consumers.
    pub reclaimed: AtomicU64,
    /// Entries acknowledged.
    pub acked: AtomicU64,
    /// Times a vanished group was recreated.
    pub groups_recreated: AtomicU64,
    /// In-flight entries another consumer took over before we refreshed them.
    pub lost_claims: AtomicU64,
    /// Failed reads (Redis unreachable and the like).
    pub read_errors: AtomicU64,
    /// Reads sent as soon as a full reply arrived, before its entries were taken apart (see the
    /// reader).
    pub reads_ahead: AtomicU64,
    /// Transactions of transactional batches (each applied one or more entries).
    pub batch_transactions: AtomicU64,
    /// Transactional batches rolled back because a handler met a lock conflict with another
    /// replica's transaction (their entries were then applied one by one).
    pub batch_lock_conflicts: AtomicU64,
    /// Transactional batches applied a second time, with a savepoint per entry, because an entry
    /// failed (or its handler rolled back) in the first try, which had none (see `super::batch`).
    pub batch_replays: AtomicU64,
}

impl WorkerStats {
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Relaxed)
    }

    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        if n > 0 {
            counter.fetch_add(n, Relaxed);
        }
    }
}
