//! Batched acknowledgements: records processed `event_id`s in the group's idempotency set, then
//! `XACK`s, in one pipeline for everything that finished since the last flush. Under load a flush
//! covers thousands of entries; when idle it goes out at once.

use std::{sync::Arc, time::Duration};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{entry::Ack, shared::Shared, stats::WorkerStats};

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
        let applied = buf.iter().filter_map(|ack| ack.event_id);
        shared.idempotency.record(&mut pipe, applied);
    }
    // One XACK per stream, its ids in the order they finished.
    let mut id = String::with_capacity(48);
    for (stream, key) in shared.stream_keys.iter().enumerate() {
        let mut xack = None;
        for ack in buf.iter().filter(|ack| ack.key.stream == stream) {
            let cmd = xack.get_or_insert_with(|| {
                let mut cmd = redis::cmd("XACK");
                cmd.arg(key).arg(&shared.cfg.group);
                cmd
            });
            id.clear();
            ack.key.write_id(&mut id);
            cmd.arg(id.as_str());
        }
        if let Some(cmd) = xack {
            pipe.add_command(cmd).ignore();
        }
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
        let mut inflight = shared.inflight.lock().unwrap_or_else(|p| p.into_inner());
        for ack in buf.iter() {
            inflight.remove(&ack.key);
        }
    }
    WorkerStats::add(&shared.stats.acked, buf.len() as u64);
    metrics::counter!("mesh_acked_total", "group" => shared.cfg.group.clone())
        .increment(buf.len() as u64);
    buf.clear();
}
