//! Batched acknowledgements: records processed `event_id`s in the group's idempotency set, then
//! `XACK`s, in one pipeline for everything that finished since the last flush. Under load a flush
//! covers thousands of entries; when idle it goes out at once.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{stats::WorkerStats, worker::Shared};

/// An entry whose processing is over.
#[derive(Debug)]
pub(crate) struct Ack {
    pub stream_key: String,
    pub id: String,
    /// Set when a handler applied the event: remembered in the idempotency set.
    pub event_id: Option<String>,
}

const MAX_FLUSH: usize = 4096;

pub(crate) async fn run<H>(
    shared: Arc<Shared<H>>,
    mut rx: mpsc::UnboundedReceiver<Vec<Ack>>,
    stop: CancellationToken,
) {
    let mut received = Vec::new();
    let mut buf = Vec::with_capacity(MAX_FLUSH);
    loop {
        tokio::select! {
            biased;
            n = rx.recv_many(&mut received, MAX_FLUSH) => {
                if n == 0 {
                    return;
                }
                for acks in received.drain(..) {
                    buf.extend(acks);
                    if buf.len() >= MAX_FLUSH {
                        flush(&shared, &mut buf).await;
                    }
                }
                flush(&shared, &mut buf).await;
            }
            _ = stop.cancelled() => {
                while let Ok(acks) = rx.try_recv() {
                    buf.extend(acks);
                    if buf.len() >= MAX_FLUSH {
                        flush(&shared, &mut buf).await;
                    }
                }
                flush(&shared, &mut buf).await;
                return;
            }
        }
    }
}

async fn flush<H>(shared: &Shared<H>, buf: &mut Vec<Ack>) {
    if buf.is_empty() {
        return;
    }
    let mut pipe = redis::pipe();
    if shared.cfg.idempotency {
        let applied = buf.iter().filter_map(|ack| ack.event_id.as_deref());
        shared.idempotency.record(&mut pipe, applied);
    }
    let mut by_stream: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for ack in buf.iter() {
        by_stream.entry(&ack.stream_key).or_default().push(&ack.id);
    }
    for (key, ids) in &by_stream {
        pipe.cmd("XACK")
            .arg(*key)
            .arg(&shared.cfg.group)
            .arg(ids)
            .ignore();
    }
    let mut conn = shared.cmd.clone();
    let mut delay = Duration::from_millis(100);
    for attempt in 1..=5 {
        match pipe.query_async::<()>(&mut conn).await {
            Ok(()) => break,
            Err(error) => {
                if let Some(suppressed) = shared.redis_log.allow() {
                    tracing::warn!(%error, suppressed, attempt, "acknowledgement failed; retrying");
                }
                if attempt == 5 {
                    // Left pending: redelivered later and skipped or absorbed by idempotency.
                    break;
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
        }
    }
    {
        let keys: Vec<_> = buf
            .iter()
            .filter_map(|ack| shared.entry_key(&ack.stream_key, &ack.id))
            .collect();
        let mut inflight = shared.inflight.lock().unwrap_or_else(|p| p.into_inner());
        for key in keys {
            inflight.remove(&key);
        }
    }
    WorkerStats::add(&shared.stats.acked, buf.len() as u64);
    metrics::counter!("mesh_acked_total", "group" => shared.cfg.group.clone())
        .increment(buf.len() as u64);
    buf.clear();
}
