//! The consumer-group worker: reads every entry of every batch, runs the handler with bounded
//! concurrency, acknowledges only after the effect, retries with backoff counted by Redis,
//! dead-letters, reclaims from dead consumers, keeps its own claims fresh, and shuts down
//! gracefully. The batch path is in `process.rs`, timers in `maintenance.rs`, acks in `acker.rs`.

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::Context as _;
use futures::{FutureExt as _, future::BoxFuture};
use redis::{Client, Value, aio::ConnectionManager};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use super::{
    acker::{self, Ack},
    backoff::{Backoff, LogLimiter},
    batch::BatchQueue,
    handler::Handler,
    idempotency::IdempotencySet,
    maintenance,
    process::{Ready, dispatch},
    redis_io::{self, RawEntry},
    stats::WorkerStats,
};
use crate::{config::WorkerArgs, keys::Keys};

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
    /// each in a savepoint; see `super::batch` and `common::db::in_batch_transaction`) instead
    /// of running them concurrently, each in its own. Only for handlers whose effects all go
    /// through `common::db::begin` and whose effects outside the database that assume a commit
    /// go through `common::db::after_commit`.
    pub batch_transactions: Option<super::batch::BatchTransactions>,
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
            idempotency_retention: Duration::from_secs(7 * 24 * 3600),
            consumer_gc_idle: Duration::from_secs(3600),
            stream_retention: Some(Duration::from_secs(24 * 3600)),
            housekeeping_interval: Duration::from_secs(60),
            shutdown_grace: args.shutdown_grace(),
            batch_transactions: None,
        }
    }

    /// Applies the command-line tuning.
    pub fn with_args(mut self, args: &WorkerArgs) -> Self {
        self.concurrency = args.worker_concurrency.max(1);
        self.batch = args.worker_batch.max(1);
        self.max_deliveries = args.max_deliveries.max(1);
        self.processing_timeout = args.processing_timeout();
        self.shutdown_grace = args.shutdown_grace();
        self
    }
}

/// `<group>-<host>-<pid>-<random>`: unique per process, readable in `meshctl consumers`.
pub fn consumer_name(group: &str) -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .unwrap_or_else(|| "host".into());
    let tag: u16 = rand::random();
    format!("{group}-{host}-{}-{tag:04x}", std::process::id())
}

/// State shared by the reader, the batch tasks, the acker and the maintenance loop.
pub(crate) struct Shared<H> {
    pub cfg: WorkerConfig,
    pub handler: H,
    pub cmd: ConnectionManager,
    pub stats: Arc<WorkerStats>,
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
}

/// A compact, allocation-free identity of one entry of one of the worker's streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct EntryKey {
    pub stream: usize,
    pub ms: u64,
    pub seq: u64,
}

impl EntryKey {
    /// Appends the entry id (`ms-seq`) to `buf`.
    pub fn write_id(&self, buf: &mut String) {
        let mut digits = itoa::Buffer::new();
        buf.push_str(digits.format(self.ms));
        buf.push('-');
        buf.push_str(digits.format(self.seq));
    }
}

/// An entry this consumer owns, with its [`EntryKey`].
pub(crate) struct Tracked {
    pub key: EntryKey,
    pub entry: RawEntry,
}

impl<H> Shared<H> {
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

    pub fn stream_keys(&self) -> Vec<String> {
        self.stream_keys.clone()
    }
}

/// A consumer-group worker for one handler.
pub struct Worker<H: Handler> {
    client: Client,
    cfg: WorkerConfig,
    handler: H,
    stats: Arc<WorkerStats>,
}

impl<H: Handler> Worker<H> {
    pub fn new(client: Client, cfg: WorkerConfig, handler: H) -> Self {
        Self {
            client,
            cfg,
            handler,
            stats: Arc::default(),
        }
    }

    /// Counters, shared with the running worker.
    pub fn stats(&self) -> Arc<WorkerStats> {
        self.stats.clone()
    }

    /// Runs until `shutdown` is cancelled, then stops reading, lets in-flight handlers finish
    /// within the grace period, acknowledges them and returns. Entries it could not finish stay
    /// pending for other consumers.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        anyhow::ensure!(
            !self.cfg.streams.is_empty(),
            "a worker needs at least one stream"
        );
        let read_timeout = self.cfg.block + Duration::from_secs(10);
        let mut read_conn =
            redis_io::managed(&self.client, read_timeout).context("redis read connection")?;
        let cmd = redis_io::command_connection(&self.client).context("redis connection")?;
        let (ack_tx, ack_rx) = mpsc::unbounded_channel();
        let idempotency = IdempotencySet::new(
            self.cfg.keys.idempotency(&self.cfg.group),
            self.cfg.idempotency_retention,
        );
        let stream_keys = self
            .cfg
            .streams
            .iter()
            .map(|s| self.cfg.keys.stream(s))
            .collect();
        let stream_names = self
            .cfg
            .streams
            .iter()
            .map(|s| Arc::from(s.as_str()))
            .collect();
        let shared = Arc::new(Shared {
            permits: Arc::new(Semaphore::new(self.cfg.concurrency.max(1))),
            cfg: self.cfg,
            handler: self.handler,
            cmd,
            stats: self.stats,
            inflight: Mutex::default(),
            stream_keys,
            stream_names,
            ack_tx,
            tasks: TaskTracker::new(),
            stopping: shutdown.clone(),
            redis_log: LogLimiter::new(Duration::from_secs(5)),
            idempotency,
            batch_queue: BatchQueue::default(),
        });
        tracing::info!(
            group = %shared.cfg.group,
            consumer = %shared.cfg.consumer,
            streams = ?shared.cfg.streams,
            "worker started"
        );

        let acker_stop = CancellationToken::new();
        let acker = tokio::spawn(acker::run(shared.clone(), ack_rx, acker_stop.clone()));
        let maintenance_stop = CancellationToken::new();
        let maintenance = tokio::spawn(maintenance::run(shared.clone(), maintenance_stop.clone()));

        ensure_groups_until_ok(&shared, &shutdown).await;
        read_loop(&shared, &mut read_conn, &shutdown).await;

        // Shutdown: no more reads. In-flight handlers finish (their claims are still refreshed),
        // then their acks are flushed.
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
        maintenance_stop.cancel();
        acker_stop.cancel();
        let _ = maintenance.await;
        if tokio::time::timeout(Duration::from_secs(5), acker)
            .await
            .is_err()
        {
            tracing::warn!(
                "acknowledgements not flushed in time; those entries will be redelivered"
            );
        }
        tracing::info!(group = %shared.cfg.group, consumer = %shared.cfg.consumer, "worker stopped");
        Ok(())
    }
}

/// Creates the group on every stream at id `0` with `MKSTREAM`; `BUSYGROUP` means it exists.
pub(crate) async fn ensure_groups<H>(shared: &Shared<H>) -> redis::RedisResult<()> {
    let mut conn = shared.cmd.clone();
    for key in shared.stream_keys() {
        let created: redis::RedisResult<Value> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&key)
            .arg(&shared.cfg.group)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(&mut conn)
            .await;
        match created {
            Ok(_) => {
                tracing::info!(stream = %key, group = %shared.cfg.group, "consumer group created")
            }
            Err(e) if redis_io::error_code(&e) == Some("BUSYGROUP") => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

async fn ensure_groups_until_ok<H>(shared: &Shared<H>, shutdown: &CancellationToken) {
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
    while !shutdown.is_cancelled() {
        match ensure_groups(shared).await {
            Ok(()) => return,
            Err(error) => {
                if let Some(suppressed) = shared.redis_log.allow() {
                    tracing::warn!(%error, suppressed, "cannot create consumer groups; retrying");
                }
                sleep_or_cancel(backoff.next_delay(), shutdown).await;
            }
        }
    }
}

/// Sleeps for `d` unless `token` is cancelled first.
pub(crate) async fn sleep_or_cancel(d: Duration, token: &CancellationToken) {
    tokio::select! {
        _ = tokio::time::sleep(d) => {}
        _ = token.cancelled() => {}
    }
}

/// A read sent to Redis and not yet answered, with the permit it holds and its `COUNT`.
struct InFlightRead {
    reply: BoxFuture<'static, redis::RedisResult<Value>>,
    permit: OwnedSemaphorePermit,
    count: usize,
}

/// Reads batches and dispatches them, one read in flight at a time. While reads come back full,
/// the next `XREADGROUP` is sent as soon as a reply arrives, before this one is taken apart and
/// dispatched, so that Redis executes it while this process works (a raw pipelined loop overlaps
/// its round trips the same way). It asks only for as many entries as there are permits the
/// batch in hand will not need, so taking that batch never waits for a read. A short reply means
/// the stream is drained: the next read is sent when there are permits, and blocks. Reads are
/// never cancelled half way: on shutdown no new read is sent, and the entries of the one in
/// flight are dispatched like any others.
///
/// Two reads queued at once would be worse: Redis executes both before it finishes writing the
/// first reply, so the batches arrive together and both sides wait in turn (measured in
/// docs/benchmarks.md).
async fn read_loop<H: Handler>(
    shared: &Arc<Shared<H>>,
    conn: &mut ConnectionManager,
    shutdown: &CancellationToken,
) {
    let keys = shared.stream_keys();
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
    let reclaim_every = maintenance::reclaim_interval(shared.cfg.processing_timeout);
    let mut next_reclaim = tokio::time::Instant::now();
    let mut in_flight: Option<InFlightRead> = None;
    loop {
        let read = match in_flight.take() {
            Some(read) => read,
            None if shutdown.is_cancelled() => break,
            None => {
                // Bounded in-flight: a read asks for no more entries than there are free permits.
                let permit = tokio::select! {
                    p = shared.permits.clone().acquire_owned() => p.ok(),
                    _ = shutdown.cancelled() => None,
                };
                let Some(mut permit) = permit else {
                    break;
                };
                let extra = shared
                    .permits
                    .available_permits()
                    .min(shared.cfg.batch.saturating_sub(1));
                if extra > 0
                    && let Ok(more) = shared.permits.clone().try_acquire_many_owned(extra as u32)
                {
                    permit.merge(more);
                }
                // Entries of dead consumers are taken over with the same permits, between reads.
                if tokio::time::Instant::now() >= next_reclaim {
                    maintenance::reclaim_abandoned(shared, permit).await;
                    next_reclaim = tokio::time::Instant::now() + reclaim_every;
                    continue;
                }
                send_read(shared, conn, &keys, permit)
            }
        };
        let InFlightRead {
            reply,
            mut permit,
            count,
        } = read;
        match reply.await {
            Ok(reply) => {
                backoff.reset();
                let received = redis_io::read_reply_len(&reply);
                if received == 0 {
                    continue;
                }
                let held = permit.num_permits();
                if received >= count
                    && !shutdown.is_cancelled()
                    && tokio::time::Instant::now() < next_reclaim
                {
                    // More entries are probably waiting: read them now, with permits this batch
                    // will not need.
                    let spare = shared
                        .permits
                        .available_permits()
                        .saturating_sub(received.saturating_sub(held))
                        .min(shared.cfg.batch);
                    if spare > 0
                        && let Ok(next) =
                            shared.permits.clone().try_acquire_many_owned(spare as u32)
                    {
                        let mut next = send_read(shared, conn, &keys, next);
                        // Written to Redis before this batch is taken apart.
                        next.reply = redis_io::send_now(next.reply).await;
                        WorkerStats::add(&shared.stats.reads_ahead, 1);
                        in_flight = Some(next);
                    }
                }
                let entries = shared.track(redis_io::parse_read_reply(reply));
                if entries.is_empty() {
                    continue;
                }
                // One permit per entry. Usually free at once; otherwise wait for handlers to
                // finish (the entries are tracked, so their claims stay fresh meanwhile). The
                // read in flight, if any, holds one permit: its reply does not wait for these.
                if entries.len() > held {
                    match shared
                        .permits
                        .clone()
                        .acquire_many_owned((entries.len() - held) as u32)
                        .await
                    {
                        Ok(more) => permit.merge(more),
                        Err(_) => break,
                    }
                } else {
                    drop(permit.split(held - entries.len()));
                }
                dispatch(shared.clone(), entries, permit);
            }
            Err(e) if redis_io::is_nogroup(&e) => {
                drop(permit);
                tracing::warn!(group = %shared.cfg.group, "consumer group vanished; recreating it");
                sleep_or_cancel(backoff.next_delay(), shutdown).await;
                if ensure_groups(shared).await.is_ok() {
                    shared
                        .stats
                        .groups_recreated
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
            Err(error) => {
                drop(permit);
                WorkerStats::add(&shared.stats.read_errors, 1);
                let delay = backoff.next_delay();
                if let Some(suppressed) = shared.redis_log.allow() {
                    tracing::warn!(
                        %error,
                        suppressed,
                        retry_in_ms = delay.as_millis() as u64,
                        group = %shared.cfg.group,
                        "stream read failed"
                    );
                }
                sleep_or_cancel(delay, shutdown).await;
            }
        }
    }
}

/// Sends one `XREADGROUP` for as many entries per stream as `permit` allows, and keeps one
/// permit of them: retries and reclaims due while it blocks must not wait for an idle stream;
/// the rest is taken back when entries arrive.
fn send_read<H>(
    shared: &Shared<H>,
    conn: &ConnectionManager,
    keys: &[String],
    mut permit: OwnedSemaphorePermit,
) -> InFlightRead {
    // COUNT applies per stream.
    let count = (permit.num_permits() / keys.len()).max(1);
    let held = permit.num_permits();
    drop(permit.split(held - 1));
    let mut cmd = redis::cmd("XREADGROUP");
    cmd.arg("GROUP")
        .arg(&shared.cfg.group)
        .arg(&shared.cfg.consumer)
        .arg("COUNT")
        .arg(count)
        .arg("BLOCK")
        .arg(shared.cfg.block.as_millis() as u64)
        .arg("STREAMS")
        .arg(keys);
    for _ in keys {
        cmd.arg(">");
    }
    let mut conn = conn.clone();
    InFlightRead {
        reply: async move { cmd.query_async::<Value>(&mut conn).await }.boxed(),
        permit,
        count,
    }
}
