//! The raw baselines: a tight loop doing the runtime's Redis work per entry, pipelined, with
//! nothing around it, scheduled three ways ([`RawLoop`]).

use std::time::{Duration, Instant};

use common::{Keys, runtime::redis_io};
use redis::Value;

use crate::{fill::create_group, measure};

/// How the raw baseline schedules its round trips. Every variant does the same Redis work per
/// entry; they differ in what waits for what.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum RawLoop {
    /// `XREADGROUP`, wait, then one pipeline of check + record + ack, wait: two round trips per
    /// batch, nothing overlapped.
    Serial,
    /// One round trip per batch: the check + record + ack of batch k and the `XREADGROUP` of
    /// batch k+1 in one pipeline. Redis and this process still take turns: Redis idles while
    /// the reply is parsed, and this process idles while Redis works.
    OneRoundTrip,
    /// That many such pipelines in flight (2 or more): the one carrying the work of batch k-1
    /// and the read of batch k+n-1 is sent before the reply to the read of batch k is awaited, so
    /// Redis executes one while this process receives and parses another. This is the overlap
    /// the runtime has (its reader sends the next read before it parses a full batch, while the
    /// batch tasks and the acker check and ack earlier ones), so the fastest of these (by median
    /// over the rounds) is the reference for the ratio.
    InFlight(usize),
}

/// The runtime's idempotency layout (runtime::idempotency) and the Redis work it does per batch.
struct RawWork {
    key: String,
    group: String,
    consumer: String,
    batch: usize,
    idem_current: String,
    idem_previous: String,
    expire_at: i64,
}

impl RawWork {
    fn new(keys: &Keys, stream: &str, group: &str, batch: usize) -> Self {
        // A current and a previous generation set, looked up both, recorded in the current one
        // with an expiry.
        let window_ms = 7 * 24 * 3600 * 1000i64;
        let generation = chrono::Utc::now().timestamp_millis() / window_ms;
        Self {
            key: keys.stream(stream),
            group: group.to_owned(),
            consumer: format!("{group}-1"),
            batch,
            idem_current: format!("{}:{generation}", keys.idempotency(group)),
            idem_previous: format!("{}:{}", keys.idempotency(group), generation - 1),
            expire_at: (generation + 2) * window_ms + 60_000,
        }
    }

    fn read(&self) -> redis::Cmd {
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(&self.group)
            .arg(&self.consumer)
            .arg("COUNT")
            .arg(self.batch)
            .arg("STREAMS")
            .arg(&self.key)
            .arg(">");
        cmd
    }

    /// Adds the idempotency check (`SMISMEMBER` ×2), the record (`SADD` + `PEXPIREAT`) and the
    /// `XACK` of `entries` to `pipe`, their replies ignored.
    fn check_record_ack(&self, pipe: &mut redis::Pipeline, entries: &[redis_io::RawEntry]) {
        let ids: Vec<String> = entries
            .iter()
            .map(|e| {
                e.fields
                    .as_ref()
                    .and_then(|f| common::envelope::field(f, "event_id"))
                    .map(|v| String::from_utf8_lossy(v).into_owned())
                    .unwrap_or_default()
            })
            .collect();
        pipe.cmd("SMISMEMBER")
            .arg(&self.idem_current)
            .arg(&ids)
            .ignore();
        pipe.cmd("SMISMEMBER")
            .arg(&self.idem_previous)
            .arg(&ids)
            .ignore();
        pipe.cmd("SADD").arg(&self.idem_current).arg(&ids).ignore();
        pipe.cmd("PEXPIREAT")
            .arg(&self.idem_current)
            .arg(self.expire_at)
            .ignore();
        let mut ack = redis::cmd("XACK");
        ack.arg(&self.key).arg(&self.group);
        for e in entries {
            ack.arg(&e.id);
        }
        pipe.add_command(ack).ignore();
    }
}

/// The raw baseline: the same Redis work per entry as the runtime, pipelined, nothing else.
pub async fn raw_baseline(
    client: &common::connection::RedisTarget,
    keys: &Keys,
    stream: &str,
    group: &str,
    batch: usize,
    mode: RawLoop,
) -> anyhow::Result<(u64, f64)> {
    let work = RawWork::new(keys, stream, group, batch);
    let mut conn = redis_io::managed(client, Duration::from_secs(30))?;
    create_group(&mut conn, &work.key, group).await?;
    let started = Instant::now();
    let mut total = 0u64;
    if let RawLoop::InFlight(depth) = mode {
        let send = |pipe: redis::Pipeline| {
            let mut conn = conn.clone();
            tokio::spawn(async move { pipe.query_async::<(Value,)>(&mut conn).await })
        };
        let mut in_flight = std::collections::VecDeque::new();
        for _ in 1..depth.max(1) {
            let mut first = redis::pipe();
            first.add_command(work.read());
            in_flight.push_back(send(first));
        }
        // The batch parsed last, whose work goes with the next pipeline.
        let mut parsed: Option<Vec<redis_io::RawEntry>> = None;
        while let Some(oldest) = in_flight.pop_front() {
            let mut pipe = redis::pipe();
            if let Some(entries) = parsed.take() {
                work.check_record_ack(&mut pipe, &entries);
            }
            pipe.add_command(work.read());
            in_flight.push_back(send(pipe));
            let (reply,) = oldest.await??;
            let entries = redis_io::parse_read_reply(reply);
            if entries.is_empty() {
                break;
            }
            total += entries.len() as u64;
            parsed = Some(entries);
        }
        // The pipeline still in flight carries the work of the last batch.
        for pipe in in_flight {
            pipe.await??;
        }
        return Ok((total, total as f64 / started.elapsed().as_secs_f64()));
    }
    let mut reply: Value = work.read().query_async(&mut conn).await?;
    loop {
        let entries = redis_io::parse_read_reply(reply);
        if entries.is_empty() {
            break;
        }
        total += entries.len() as u64;
        let mut pipe = redis::pipe();
        work.check_record_ack(&mut pipe, &entries);
        reply = if mode == RawLoop::Serial {
            pipe.query_async::<()>(&mut conn).await?;
            work.read().query_async(&mut conn).await?
        } else {
            pipe.add_command(work.read());
            let (next,): (Value,) = pipe.query_async(&mut conn).await?;
            next
        };
    }
    Ok((total, total as f64 / started.elapsed().as_secs_f64()))
}

/// One raw loop on its own group: (msgs/s, Redis CPU µs per message, this process's CPU µs per
/// message).
#[allow(clippy::too_many_arguments)]
pub async fn timed_raw(
    client: &common::connection::RedisTarget,
    info_conn: &mut common::connection::Conn,
    keys: &Keys,
    stream: &str,
    group: &str,
    batch: usize,
    mode: RawLoop,
    entries: usize,
) -> anyhow::Result<(f64, f64, f64)> {
    let (redis_cpu0, own_cpu0) = (measure::redis_cpu(info_conn).await?, measure::process_cpu());
    let (total, rate) = raw_baseline(client, keys, stream, group, batch, mode).await?;
    let (redis_cpu1, own_cpu1) = (measure::redis_cpu(info_conn).await?, measure::process_cpu());
    anyhow::ensure!(
        total as usize == entries,
        "raw baseline {group} read {total} of {entries}"
    );
    let per_msg = |secs: f64| secs * 1e6 / entries as f64;
    Ok((
        rate,
        per_msg(redis_cpu1 - redis_cpu0),
        per_msg(own_cpu1 - own_cpu0),
    ))
}
