//! What shapes one worker: [`WorkerConfig`], and the consumer name it gets by default.

use std::time::Duration;

use sea_orm::DatabaseConnection;

use super::batch::BatchTransactions;
use crate::{config::WorkerArgs, db::relay::OutboxNotifier, keys::Keys};

/// Everything that shapes one worker. Build with [`WorkerConfig::new`], then adjust fields.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub keys: Keys,
    /// Consumer group: the consuming service's name.
    pub group: String,
    /// Consumer name, unique per process.
    pub consumer: String,
    /// Unprefixed streams to consume.
    pub streams: Vec<String>,
    /// Most handlers running at once.
    pub concurrency: usize,
    /// Most entries per read.
    pub batch: usize,
    /// `BLOCK` of a read; also about the longest a shutdown waits for the read in flight.
    pub block: Duration,
    /// Deliveries after which a failing entry is dead-lettered.
    pub max_deliveries: u64,
    /// Idle time after which another consumer may reclaim a pending entry.
    pub processing_timeout: Duration,
    /// First retry delay; doubles with each delivery.
    pub retry_base: Duration,
    /// Longest retry delay.
    pub retry_max: Duration,
    /// Skip entries whose `event_id` this group already processed (the Redis fast path).
    pub idempotency: bool,
    /// How long processed `event_id`s are remembered; longer than streams are kept.
    pub idempotency_retention: Duration,
    /// Consumers idle this long with nothing pending are removed from the group.
    pub consumer_gc_idle: Duration,
    /// Safe-trim the consumed streams every `housekeeping_interval`, keeping at least this much
    /// history; `None` never trims. Must stay well below `idempotency_retention`.
    pub stream_retention: Option<Duration>,
    /// How often the worker removes long-gone consumers and safe-trims its streams. Both are
    /// cheap but scan every consumer and group, so once a minute is plenty; tests set it short.
    pub housekeeping_interval: Duration,
    /// How long shutdown waits for in-flight handlers.
    pub shutdown_grace: Duration,
    /// Apply the entries read in shared database transactions (handlers one after the other,
    /// without savepoints, and with one each if the batch must be applied again; see
    /// `super::batch` and `common::db::in_batch_transaction`) instead of running them
    /// concurrently, each in its own. Only for handlers whose effects all go through
    /// `common::db::begin` and whose effects outside the database go through
    /// `common::db::after_commit` (a handler may run twice for one delivery).
    pub batch_transactions: Option<BatchTransactions>,
}

impl WorkerConfig {
    pub fn new(keys: Keys, group: &str, streams: &[&str]) -> Self {
        let args = WorkerArgs::default();
        Self {
            keys,
            group: group.to_owned(),
            consumer: consumer_name(group),
            streams: streams.iter().map(|s| (*s).to_owned()).collect(),
            concurrency: args.worker_concurrency,
            batch: args.worker_batch,
            block: Duration::from_millis(1000),
            max_deliveries: args.max_deliveries,
            processing_timeout: args.processing_timeout(),
            retry_base: Duration::from_millis(200),
            retry_max: Duration::from_secs(30),
            idempotency: true,
            idempotency_retention: args.idempotency_retention,
            consumer_gc_idle: Duration::from_secs(3600),
            stream_retention: Some(args.stream_retention),
            housekeeping_interval: args.housekeeping_interval,
            shutdown_grace: args.shutdown_grace(),
            batch_transactions: None,
        }
    }

    /// Applies the command-line tuning (and a stable consumer name, if one is set).
    pub fn with_args(mut self, args: &WorkerArgs) -> Self {
        if let Some(name) = args
            .consumer_name
            .as_deref()
            .filter(|n| !n.trim().is_empty())
        {
            self.consumer = stable_consumer_name(name);
        }
        self.concurrency = args.worker_concurrency.max(1);
        self.batch = args.worker_batch.max(1);
        self.max_deliveries = args.max_deliveries.max(1);
        self.processing_timeout = args.processing_timeout();
        self.shutdown_grace = args.shutdown_grace();
        self.stream_retention = Some(args.stream_retention);
        self.idempotency_retention = args.idempotency_retention;
        self.housekeeping_interval = args.housekeeping_interval;
        self
    }

    /// Applies each batch in one transaction on `db`, waking `notifier`'s relay after each
    /// commit (see `super::batch`), unless `args` turn it off.
    pub fn with_batch_transactions(
        mut self,
        args: &WorkerArgs,
        db: DatabaseConnection,
        notifier: OutboxNotifier,
    ) -> Self {
        self.batch_transactions = args
            .worker_batch_transactions
            .then_some(BatchTransactions { db, notifier });
        self
    }
}

/// A consumer name from `MESH_CONSUMER_NAME`, with `{host}` replaced by the host name (in a
/// container: its id, the same across restarts of that container). A replica restarted under the
/// same name finds the entries its previous life held in its own pending list and handles them
/// at once, instead of waiting for another consumer to reclaim them after the processing
/// timeout.
pub fn stable_consumer_name(template: &str) -> String {
    template.trim().replace("{host}", &host_name())
}

fn host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .unwrap_or_else(|| "host".into())
}

/// `<group>-<host>-<pid>-<random>`: unique per process, readable in `meshctl consumers`.
pub fn consumer_name(group: &str) -> String {
    let host = host_name();
    let tag: u16 = rand::random();
    format!("{group}-{host}-{}-{tag:04x}", std::process::id())
}
