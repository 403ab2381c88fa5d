//! Reading: creates the group on every stream, then sends `XREADGROUP`s, one in flight at a time,
//! and hands the entries of each reply to processing (`process.rs`), with a permit each. Between
//! reads it takes over entries of dead consumers (`claims.rs`) with the permits it holds.

use std::{ops::ControlFlow, sync::Arc, time::Duration};

use crate::connection::Conn;
use futures::{FutureExt as _, future::BoxFuture};
use redis::{RedisError, Value};
use tokio::{
    sync::{OwnedSemaphorePermit, Semaphore},
    time::Instant,
};
use tokio_util::sync::CancellationToken;

use super::{
    claims,
    groups::{ensure_groups, ensure_groups_until_ok},
    handler::Handler,
    process::dispatch,
    redis_io,
    shared::Shared,
    stats::WorkerStats,
};
use crate::backoff::{Backoff, sleep_or_cancel};

/// The streams one reader reads, and its connection: its response timeout outlasts a `BLOCK`.
/// On a Redis Cluster one `XREADGROUP` may only name streams of one slot, and blocks that slot's
/// master: there is a reader per slot, each with a connection of its own (`worker.rs`).
pub(crate) struct ReadSlot {
    pub keys: Vec<String>,
    pub conn: Conn,
}

/// Creates the groups (retrying until Redis answers), then reads until `shutdown`, one reader
/// per [`ReadSlot`]. Returns with no read in flight: the entries of the last one are dispatched
/// like any others. The first reader also takes over the entries of dead consumers.
pub(crate) async fn run<H: Handler>(
    shared: &Arc<Shared<H>>,
    slots: Vec<ReadSlot>,
    shutdown: &CancellationToken,
) {
    ensure_groups_until_ok(shared, shutdown).await;
    let readers = slots.into_iter().enumerate().map(|(index, slot)| {
        let mut reader = Reader {
            shared,
            conn: slot.conn,
            shutdown,
            keys: slot.keys,
            backoff: Backoff::reconnect(),
            reclaims: index == 0,
            reclaim_every: claims::reclaim_interval(shared.cfg.processing_timeout),
            next_reclaim: Instant::now(),
            own_pending_due: true,
        };
        async move { reader.read_loop().await }
    });
    futures::future::join_all(readers).await;
}

/// A read sent to Redis and not yet answered, with the permit it holds and its `COUNT`.
struct InFlightRead {
    reply: BoxFuture<'static, redis::RedisResult<Value>>,
    permit: OwnedSemaphorePermit,
    count: usize,
}

/// The reader's state between reads.
struct Reader<'a, H> {
    shared: &'a Arc<Shared<H>>,
    /// The read connection: its response timeout outlasts a `BLOCK`.
    conn: Conn,
    shutdown: &'a CancellationToken,
    /// The prefixed stream keys it reads, in the worker's order.
    keys: Vec<String>,
    backoff: Backoff,
    /// Whether this reader takes over the entries of dead consumers (one reader of a worker).
    reclaims: bool,
    reclaim_every: Duration,
    next_reclaim: Instant,
    /// Re-read our own pending list before the next read: at start, and after Redis errors
    /// (Redis may have restarted with entries delivered to us that we never received).
    own_pending_due: bool,
}

impl<H: Handler> Reader<'_, H> {
    /// Reads batches and dispatches them, one read in flight at a time. While reads come back
    /// full, the next `XREADGROUP` is sent as soon as a reply arrives, before this one is taken
    /// apart and dispatched, so that Redis executes it while this process works (a raw pipelined
    /// loop overlaps its round trips the same way). It asks only for as many entries as there are
    /// permits the batch in hand will not need, so taking that batch never waits for a read. A
    /// short reply means the stream is drained: the next read is sent when there are permits, and
    /// blocks. Reads are never cancelled half way: on shutdown no new read is sent, and the
    /// entries of the one in flight are dispatched like any others.
    ///
    /// Two reads queued at once would be worse: Redis executes both before it finishes writing
    /// the first reply, so the batches arrive together and both sides wait in turn (measured in
    /// docs/benchmarks.md).
    async fn read_loop(&mut self) {
        let mut in_flight: Option<InFlightRead> = None;
        loop {
            let read = match in_flight.take() {
                Some(read) => read,
                None if self.shutdown.is_cancelled() => break,
                None => {
                    let Some(permit) = self.reserve_permits().await else {
                        break;
                    };
                    // Our own pending entries, and those of dead consumers, are taken over with
                    // the same permits, between reads.
                    if self.own_pending_due {
                        self.own_pending_due = false;
                        claims::reread_own_pending(self.shared, permit).await;
                        continue;
                    }
                    if self.reclaims && Instant::now() >= self.next_reclaim {
                        claims::reclaim_abandoned(self.shared, permit).await;
                        self.next_reclaim = Instant::now() + self.reclaim_every;
                        continue;
                    }
                    self.send_read(permit)
                }
            };
            let InFlightRead {
                reply,
                permit,
                count,
            } = read;
            match reply.await {
                Ok(reply) => {
                    self.backoff.reset();
                    match self.take_reply(reply, permit, count).await {
                        ControlFlow::Continue(ahead) => in_flight = ahead,
                        ControlFlow::Break(()) => break,
                    }
                }
                Err(error) => {
                    drop(permit);
                    self.recover(error).await;
                }
            }
        }
    }

    /// Bounded in-flight: a read asks for no more entries than there are free permits. Waits for
    /// one, then takes as many more as are free, up to a batch; `None` on shutdown.
    async fn reserve_permits(&self) -> Option<OwnedSemaphorePermit> {
        let permits = &self.shared.permits;
        let mut permit = tokio::select! {
            p = permits.clone().acquire_owned() => p.ok(),
            _ = self.shutdown.cancelled() => None,
        }?;
        let extra = permits
            .available_permits()
            .min(self.shared.cfg.batch.saturating_sub(1));
        if extra > 0
            && let Ok(more) = permits.clone().try_acquire_many_owned(extra as u32)
        {
            permit.merge(more);
        }
        Some(permit)
    }

    /// Takes a reply to a read of `count` entries per stream apart and dispatches its entries,
    /// having sent the next read first if this one came back full; returns that read. Breaks
    /// only if the permits are gone.
    async fn take_reply(
        &self,
        reply: Value,
        permit: OwnedSemaphorePermit,
        count: usize,
    ) -> ControlFlow<(), Option<InFlightRead>> {
        let received = redis_io::read_reply_len(&reply);
        if received == 0 {
            return ControlFlow::Continue(None);
        }
        let held = permit.num_permits();
        let mut ahead = None;
        if received >= count
            && !self.shutdown.is_cancelled()
            && (!self.reclaims || Instant::now() < self.next_reclaim)
        {
            ahead = self.read_ahead(received, held).await;
        }
        let entries = self.shared.track(redis_io::parse_read_reply(reply));
        if entries.is_empty() {
            return ControlFlow::Continue(ahead);
        }
        match permit_per_entry(&self.shared.permits, permit, entries.len()).await {
            Some(permit) => dispatch(self.shared.clone(), entries, permit),
            None => return ControlFlow::Break(()),
        }
        ControlFlow::Continue(ahead)
    }

    /// More entries are probably waiting: reads them now, with permits the batch of `received`
    /// entries in hand (for which the reply's permit holds `held`) will not need.
    async fn read_ahead(&self, received: usize, held: usize) -> Option<InFlightRead> {
        let spare = self
            .shared
            .permits
            .available_permits()
            .saturating_sub(received.saturating_sub(held))
            .min(self.shared.cfg.batch);
        if spare == 0 {
            return None;
        }
        let permit = self
            .shared
            .permits
            .clone()
            .try_acquire_many_owned(spare as u32)
            .ok()?;
        let mut next = self.send_read(permit);
        // Written to Redis before this batch is taken apart.
        next.reply = redis_io::send_now(next.reply).await;
        WorkerStats::add(&self.shared.stats.reads_ahead, 1);
        Some(next)
    }

    /// Sends one `XREADGROUP` for as many entries per stream as `permit` allows, and keeps one
    /// permit of them: retries and reclaims due while it blocks must not wait for an idle stream;
    /// the rest is taken back when entries arrive.
    fn send_read(&self, mut permit: OwnedSemaphorePermit) -> InFlightRead {
        let keys = &self.keys;
        // COUNT applies per stream.
        let count = (permit.num_permits() / keys.len()).max(1);
        let held = permit.num_permits();
        drop(permit.split(held - 1));
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(&self.shared.cfg.group)
            .arg(&self.shared.cfg.consumer)
            .arg("COUNT")
            .arg(count)
            .arg("BLOCK")
            .arg(self.shared.cfg.block.as_millis() as u64)
            .arg("STREAMS")
            .arg(keys);
        for _ in keys {
            cmd.arg(">");
        }
        let mut conn = self.conn.clone();
        InFlightRead {
            reply: async move { cmd.query_async::<Value>(&mut conn).await }.boxed(),
            permit,
            count,
        }
    }

    /// After a failed read: recreates a vanished group, or backs off.
    async fn recover(&mut self, error: RedisError) {
        let shared = self.shared;
        if redis_io::is_nogroup(&error) {
            tracing::warn!(group = %shared.cfg.group, "consumer group vanished; recreating it");
            sleep_or_cancel(self.backoff.next_delay(), self.shutdown).await;
            if ensure_groups(shared).await.is_ok() {
                WorkerStats::add(&shared.stats.groups_recreated, 1);
            }
            return;
        }
        WorkerStats::add(&shared.stats.read_errors, 1);
        self.own_pending_due = true;
        let delay = self.backoff.next_delay();
        if let Some(suppressed) = shared.redis_log.allow() {
            tracing::warn!(
                %error,
                suppressed,
                retry_in_ms = delay.as_millis() as u64,
                group = %shared.cfg.group,
                "stream read failed"
            );
        }
        sleep_or_cancel(delay, self.shutdown).await;
    }
}

/// Makes `permit` one per entry of a batch of `entries`. Usually the permits are free at once;
/// otherwise it waits for handlers to finish (the entries are tracked, so their claims stay fresh
/// meanwhile). A read in flight holds one permit of its own: its reply does not wait for these.
/// `None` only if the semaphore is closed.
async fn permit_per_entry(
    permits: &Arc<Semaphore>,
    mut permit: OwnedSemaphorePermit,
    entries: usize,
) -> Option<OwnedSemaphorePermit> {
    let held = permit.num_permits();
    if entries > held {
        let more = permits
            .clone()
            .acquire_many_owned((entries - held) as u32)
            .await
            .ok()?;
        permit.merge(more);
    } else {
        drop(permit.split(held - entries));
    }
    Some(permit)
}
