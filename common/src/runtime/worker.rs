//! The consumer-group worker: reads every entry of every batch, runs the handler with bounded
//! concurrency, acknowledges only after the effect, retries with backoff counted by Redis,
//! dead-letters, reclaims from dead consumers, keeps its own claims fresh, and shuts down
//! gracefully. This is where its parts (see `mod.rs`) start on one shared state and stop.

use std::{sync::Arc, time::Duration};

use crate::connection::{RedisTarget, key_slot};
use anyhow::Context as _;
use tokio::{sync::mpsc, task::JoinHandle};
use tokio_util::sync::CancellationToken;

pub use super::config::{WorkerConfig, consumer_name};
use super::{
    acker,
    entry::Ack,
    handler::Handler,
    maintenance,
    reader::{self, ReadSlot},
    redis_io,
    shared::Shared,
    stats::WorkerStats,
};

/// A consumer-group worker for one handler.
pub struct Worker<H: Handler> {
    target: RedisTarget,
    cfg: WorkerConfig,
    handler: H,
    stats: Arc<WorkerStats>,
}

impl<H: Handler> Worker<H> {
    pub fn new(target: RedisTarget, cfg: WorkerConfig, handler: H) -> Self {
        Self {
            target,
            cfg,
            handler,
            stats: Arc::default(),
        }
    }

    /// The consumer group it reads as.
    pub fn group(&self) -> &str {
        &self.cfg.group
    }

    /// The streams it consumes (unprefixed).
    pub fn streams(&self) -> &[String] {
        &self.cfg.streams
    }

    /// Counters, shared with the running worker.
    pub fn stats(&self) -> Arc<WorkerStats> {
        self.stats.clone()
    }

    /// Runs until `shutdown` is cancelled, then stops reading, lets in-flight handlers finish
    /// within the grace period, acknowledges them, leaves its group where it holds nothing, and
    /// returns. Entries it could not finish stay pending for other consumers.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        anyhow::ensure!(
            !self.cfg.streams.is_empty(),
            "a worker needs at least one stream"
        );
        for name in self.cfg.streams.iter().chain([&self.cfg.group]) {
            crate::keys::check_name(name)?;
        }
        crate::keys::check_prefix(self.cfg.keys.prefix())?;
        let read_slots = read_slots(&self.target, &self.cfg).context("redis read connection")?;
        let cmd = redis_io::command_connection(&self.target).context("redis connection")?;
        let (ack_tx, ack_rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared::new(
            self.cfg,
            self.handler,
            cmd,
            self.stats,
            ack_tx,
            shutdown.clone(),
        ));
        tracing::info!(
            group = %shared.cfg.group,
            consumer = %shared.cfg.consumer,
            streams = ?shared.cfg.streams,
            "worker started"
        );

        let beside = Beside::start(&shared, ack_rx);
        reader::run(&shared, read_slots, &shutdown).await;
        finish_handlers(&shared).await;
        beside.stop().await;
        // Bounded: a Redis that is away must not hold the exit up.
        let leave = maintenance::leave_groups(&shared);
        if tokio::time::timeout(Duration::from_secs(5), leave)
            .await
            .is_err()
        {
            tracing::warn!(group = %shared.cfg.group, "consumer not removed: Redis did not answer");
        }
        tracing::info!(group = %shared.cfg.group, consumer = %shared.cfg.consumer, "worker stopped");
        Ok(())
    }
}

/// The readers' streams and connections: one reader for all streams on a single server; on a
/// cluster one per hash slot (an `XREADGROUP` names streams of one slot only), each with its own
/// connection, since a blocking read holds up what is queued behind it on its node.
fn read_slots(target: &RedisTarget, cfg: &WorkerConfig) -> redis::RedisResult<Vec<ReadSlot>> {
    let read_timeout = cfg.block + Duration::from_secs(10);
    let keys: Vec<String> = cfg.streams.iter().map(|s| cfg.keys.stream(s)).collect();
    let groups: Vec<Vec<String>> = if target.is_cluster() {
        let mut by_slot: Vec<(u16, Vec<String>)> = Vec::new();
        for key in keys {
            let slot = key_slot(key.as_bytes());
            match by_slot.iter_mut().find(|(s, _)| *s == slot) {
                Some((_, keys)) => keys.push(key),
                None => by_slot.push((slot, vec![key])),
            }
        }
        by_slot.into_iter().map(|(_, keys)| keys).collect()
    } else {
        vec![keys]
    };
    groups
        .into_iter()
        .map(|keys| {
            Ok(ReadSlot {
                keys,
                conn: redis_io::managed(target, read_timeout)?,
            })
        })
        .collect()
}

/// Shutdown: no more reads. In-flight handlers finish within the grace period (their claims are
/// still refreshed meanwhile); what they leave stays pending for other consumers.
async fn finish_handlers<H>(shared: &Shared<H>) {
    shared.tasks.close();
    let grace = shared.cfg.shutdown_grace;
    if tokio::time::timeout(grace, shared.tasks.wait())
        .await
        .is_err()
    {
        let left = shared.inflight.lock().map(|s| s.len()).unwrap_or_default();
        tracing::warn!(
            group = %shared.cfg.group,
            unfinished = left,
            grace_ms = grace.as_millis() as u64,
            "grace period over; unfinished entries stay pending for other consumers"
        );
    }
}

/// The tasks running beside the reader: the acker and the timers.
struct Beside {
    acker: JoinHandle<()>,
    acker_stop: CancellationToken,
    maintenance: JoinHandle<()>,
    maintenance_stop: CancellationToken,
}

impl Beside {
    fn start<H: Handler>(shared: &Arc<Shared<H>>, acks: mpsc::UnboundedReceiver<Vec<Ack>>) -> Self {
        let acker_stop = CancellationToken::new();
        let acker = tokio::spawn(acker::run(shared.clone(), acks, acker_stop.clone()));
        let maintenance_stop = CancellationToken::new();
        let maintenance = tokio::spawn(maintenance::run(shared.clone(), maintenance_stop.clone()));
        Self {
            acker,
            acker_stop,
            maintenance,
            maintenance_stop,
        }
    }

    /// Stops the timers, and the acker once it has flushed what the handlers acknowledged.
    async fn stop(self) {
        self.maintenance_stop.cancel();
        self.acker_stop.cancel();
        let _ = self.maintenance.await;
        if tokio::time::timeout(Duration::from_secs(5), self.acker)
            .await
            .is_err()
        {
            tracing::warn!(
                "acknowledgements not flushed in time; those entries will be redelivered"
            );
        }
    }
}
