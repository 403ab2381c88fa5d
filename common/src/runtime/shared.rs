//! The state a worker's parts share — the reader, the batch tasks, the acker, the timers — and
//! the bookkeeping of which entries this consumer owns: [`Shared::track`] when they are read or
//! claimed, [`Shared::untrack`] when they are no longer ours to keep fresh.

use std::{
    collections::HashSet,
    fmt::Debug,
    sync::{Arc, Mutex, atomic::AtomicU64},
    time::Duration,
};

use crate::connection::Conn;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use super::{
    batch::BatchQueue,
    config::WorkerConfig,
    entry::{Ack, EntryKey, Ready, Tracked},
    idempotency::IdempotencySet,
    meters::WorkerMeters,
    redis_io::{self, RawEntry},
    stats::WorkerStats,
};
use crate::backoff::LogLimiter;

/// State shared by the reader, the batch tasks, the acker and the maintenance loop.
pub(crate) struct Shared<H> {
    pub cfg: WorkerConfig,
    pub handler: H,
    pub cmd: Conn,
    pub stats: Arc<WorkerStats>,
    /// Prometheus metrics (no-ops without an installed recorder).
    pub meters: WorkerMeters,
    /// Entries this consumer owns right now (being handled or waiting for a retry), by
    /// (stream key, id). The heartbeat keeps their claims fresh; an ack removes them.
    pub inflight: Mutex<HashSet<EntryKey, foldhash::fast::RandomState>>,
    /// Prefixed keys of `cfg.streams`, in order (an [`EntryKey`] stores the index).
    pub stream_keys: Vec<String>,
    /// `cfg.streams`, shared by every [`super::handler::Message`] of a stream.
    pub stream_names: Vec<Arc<str>>,
    pub permits: Arc<Semaphore>,
    /// Acknowledgements, a batch's (or a handler's) at a time.
    pub ack_tx: mpsc::UnboundedSender<Vec<Ack>>,
    pub tasks: TaskTracker,
    /// Cancelled when the worker stops reading.
    pub stopping: CancellationToken,
    pub redis_log: LogLimiter,
    pub idempotency: IdempotencySet,
    /// Entries (and their permits) waiting for a transactional batch.
    pub batch_queue: BatchQueue<(Vec<Ready>, OwnedSemaphorePermit)>,
    /// Handler failures in a row that were database outages (`retry.rs`); 0 after any success.
    pub outage_streak: AtomicU64,
}

impl<H> Shared<H> {
    /// The state of a worker that has not started: `cmd` is its command connection,
    /// acknowledgements go to `ack_tx`, and `stopping` is cancelled when it stops reading.
    pub fn new(
        cfg: WorkerConfig,
        handler: H,
        cmd: Conn,
        stats: Arc<WorkerStats>,
        ack_tx: mpsc::UnboundedSender<Vec<Ack>>,
        stopping: CancellationToken,
    ) -> Self {
        let idempotency =
            IdempotencySet::new(cfg.keys.idempotency(&cfg.group), cfg.idempotency_retention);
        let stream_keys = cfg.streams.iter().map(|s| cfg.keys.stream(s)).collect();
        let stream_names = cfg.streams.iter().map(|s| Arc::from(s.as_str())).collect();
        let meters = WorkerMeters::new(&cfg.group, &cfg.streams);
        Self {
            meters,
            permits: Arc::new(Semaphore::new(cfg.concurrency.max(1))),
            cfg,
            handler,
            cmd,
            stats,
            inflight: Mutex::default(),
            stream_keys,
            stream_names,
            ack_tx,
            tasks: TaskTracker::new(),
            stopping,
            redis_log: LogLimiter::new(Duration::from_secs(5)),
            idempotency,
            batch_queue: BatchQueue::default(),
            outage_streak: AtomicU64::new(0),
        }
    }

    pub fn entry_key(&self, stream_key: &str, id: &str) -> Option<EntryKey> {
        let stream = self.stream_keys.iter().position(|k| k == stream_key)?;
        let (ms, seq) = redis_io::parse_id(id)?;
        Some(EntryKey { stream, ms, seq })
    }

    /// The stream key and id of an [`EntryKey`].
    pub fn entry_of(&self, key: EntryKey) -> (&str, String) {
        let mut id = String::new();
        key.write_id(&mut id);
        (&self.stream_keys[key.stream], id)
    }

    /// The prefixed stream key of an [`EntryKey`].
    pub fn stream_key(&self, key: EntryKey) -> &str {
        &self.stream_keys[key.stream]
    }

    pub fn stream_keys(&self) -> Vec<String> {
        self.stream_keys.clone()
    }

    /// Records entries as ours; returns those that were not already ours, with their keys.
    pub fn track(&self, entries: Vec<RawEntry>) -> Vec<Tracked> {
        let keyed = self.keyed(entries);
        let mut inflight = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
        keyed
            .into_iter()
            .filter(|t| inflight.insert(t.key))
            .collect()
    }

    /// Entries of our streams with their keys (entries of other streams are dropped).
    pub fn keyed(&self, entries: Vec<RawEntry>) -> Vec<Tracked> {
        entries
            .into_iter()
            .filter_map(|entry| {
                let key = self.entry_key(&entry.stream_key, &entry.id)?;
                Some(Tracked { key, entry })
            })
            .collect()
    }

    /// Forgets an entry: it is no longer ours to keep fresh.
    pub fn untrack(&self, key: EntryKey) {
        self.inflight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&key);
    }

    /// [`Self::untrack`] by stream key and id.
    pub fn untrack_id(&self, stream_key: &str, id: &str) {
        if let Some(key) = self.entry_key(stream_key, id) {
            self.untrack(key);
        }
    }

    /// Hands the collected acknowledgements to the acker, in one message.
    pub fn send_acks(&self, acks: &mut Vec<Ack>) {
        if acks.is_empty() {
            return;
        }
        // The acker lives until every task is done, so the channel is open here.
        let _ = self.ack_tx.send(std::mem::take(acks));
    }

    /// Forgets pending entries whose payload was trimmed (claiming them dropped them from the
    /// pending list), and counts (in Redis and locally) and logs them.
    pub async fn note_trimmed<S: AsRef<str> + Debug>(&self, stream_key: &str, ids: &[S]) {
        if ids.is_empty() {
            return;
        }
        for id in ids {
            self.untrack_id(stream_key, id.as_ref());
        }
        WorkerStats::add(&self.stats.trimmed, ids.len() as u64);
        let counted: redis::RedisResult<i64> = redis::cmd("INCRBY")
            .arg(self.cfg.keys.trimmed_counter(&self.cfg.group))
            .arg(ids.len())
            .query_async(&mut self.cmd.clone())
            .await;
        tracing::warn!(
            stream = %stream_key,
            group = %self.cfg.group,
            ids = ?ids,
            counted = counted.is_ok(),
            "pending entries lost their payload to trimming; dropped from the pending list"
        );
    }
}
