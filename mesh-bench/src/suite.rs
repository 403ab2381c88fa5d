//! `mesh-bench run`, the whole benchmark: fill a stream, run the reference raw loops once, then
//! rounds of raw loops and the runtime back to back, summarise the median round, then the
//! runtime with a SQL effect; leaves nothing behind in Redis.

use std::{path::PathBuf, time::Duration};

use clap::Args;
use common::connection::Conn;
use common::{Keys, runtime::redis_io};

use crate::{
    consume::{ConsumeArgs, consumer_process, field},
    fill::fill,
    measure::{median, redis_cpu},
    raw::{RawLoop, timed_raw},
};

#[derive(Args)]
pub struct RunArgs {
    #[arg(long, default_value_t = 200_000)]
    entries: usize,
    #[arg(long, default_value_t = 20_000)]
    sql_entries: usize,
    #[arg(long, default_value_t = 512)]
    batch: usize,
    #[arg(long, default_value_t = 2048)]
    concurrency: usize,
    /// Rounds of (raw loops, runtime) measured back to back.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Folder for the SQLite file of the SQL-effect run.
    #[arg(long, default_value = "/tmp")]
    data_dir: PathBuf,
}

/// The stream every raw loop and runtime consumer reads, each as its own group.
const STREAM: &str = "bench-events";

/// Pipelines in flight of the raw loops measured in every round.
const DEPTHS: [usize; 3] = [2, 3, 4];

/// What the parts of one run share.
struct Bench<'a> {
    redis_url: &'a str,
    threads: usize,
    client: common::connection::RedisTarget,
    /// Asks Redis for its CPU time between the parts.
    info_conn: Conn,
    keys: Keys,
    args: &'a RunArgs,
}

/// One round's figures.
struct Round {
    /// The raw loop's rate at each of [`DEPTHS`].
    raw: Vec<f64>,
    /// The runtime's rate.
    runtime: f64,
    peak_rss_mb: f64,
}

pub async fn run(
    redis_url: &str,
    threads: usize,
    client: common::connection::RedisTarget,
    args: &RunArgs,
) -> anyhow::Result<()> {
    let keys = Keys::new(format!(
        "bench{}:",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    ));
    let conn = redis_io::managed(&client, Duration::from_secs(30))?;
    println!(
        "mesh-bench: {} entries, batch {}, concurrency {}, prefix {}, threads {threads}",
        args.entries,
        args.batch,
        args.concurrency,
        keys.prefix(),
    );

    let publish_rate = fill(&conn, &keys, STREAM, args.entries).await?;
    println!(
        "publish            {publish_rate:>10.0} msgs/s  (pipelined XADD, 1000 per round trip)"
    );

    let mut bench = Bench {
        redis_url,
        threads,
        client,
        info_conn: conn.clone(),
        keys,
        args,
    };
    let reference = bench.reference_loops().await?;
    // The comparison itself, in rounds: the machine's speed drifts between runs (a shared VM), so
    // each round measures the raw loops and the runtime back to back, in alternating order, and
    // the ratio is taken within a round; the summary is the median round.
    let mut rounds = Vec::new();
    for round in 1..=args.rounds.max(1) {
        rounds.push(bench.round(round).await?);
    }
    summarise(&rounds, &reference);
    if args.sql_entries > 0 {
        bench.sql(&conn).await?;
    }
    delete_keys(conn, &bench.keys).await
}

impl Bench<'_> {
    /// For reference, once: the loops that leave Redis or this process idle half the time.
    /// Returns the serial and the one-round-trip rates.
    async fn reference_loops(&mut self) -> anyhow::Result<[f64; 2]> {
        let mut reference = [0.0; 2];
        for (i, (group, mode, label, how)) in [
            (
                "raw-serial",
                RawLoop::Serial,
                "raw, serial",
                "XREADGROUP; then 2 SMISMEMBER + SADD + XACK: 2 round trips a batch",
            ),
            (
                "raw-one-rtt",
                RawLoop::OneRoundTrip,
                "raw, 1 round trip",
                "work of batch k + XREADGROUP of k+1 in 1 pipeline",
            ),
        ]
        .into_iter()
        .enumerate()
        {
            let (rate, redis_us, client_us) = self.raw(group, mode).await?;
            println!("{label:<19}{rate:>10.0} msgs/s  ({how})");
            println!("  cpu per msg: redis {redis_us:.1} us, client {client_us:.1} us");
            reference[i] = rate;
        }
        Ok(reference)
    }

    /// One raw loop on its own group: (msgs/s, Redis CPU µs per message, own CPU µs per message).
    async fn raw(&mut self, group: &str, mode: RawLoop) -> anyhow::Result<(f64, f64, f64)> {
        timed_raw(
            &self.client,
            &mut self.info_conn,
            &self.keys,
            STREAM,
            group,
            self.args.batch,
            mode,
            self.args.entries,
        )
        .await
    }

    /// The raw loops at every depth and the runtime, in this round's order (raw first in odd
    /// rounds); prints the round.
    async fn round(&mut self, round: usize) -> anyhow::Result<Round> {
        let per_msg = |secs: f64| secs * 1e6 / self.args.entries as f64;
        let mut raw_rates = Vec::new();
        let mut rt = None;
        let order: [bool; 2] = if round % 2 == 1 {
            [true, false]
        } else {
            [false, true]
        };
        for raw_first in order {
            if raw_first {
                for depth in DEPTHS {
                    let group = format!("raw-in-flight-{depth}-{round}");
                    let (rate, redis_us, client_us) =
                        self.raw(&group, RawLoop::InFlight(depth)).await?;
                    raw_rates.push((depth, rate, redis_us, client_us));
                }
            } else {
                let redis_cpu0 = redis_cpu(&mut self.info_conn).await?;
                let report =
                    self.consumer(STREAM, &format!("runtime-{round}"), self.args.entries, None)?;
                let redis_us = per_msg(redis_cpu(&mut self.info_conn).await? - redis_cpu0);
                rt = Some((
                    field(&report, "rate"),
                    redis_us,
                    field(&report, "cpu_us_per_msg"),
                    field(&report, "peak_rss_kb") / 1024.0,
                ));
            }
        }
        let Some((rt_rate, rt_redis_us, rt_consumer_us, peak_rss_mb)) = rt else {
            anyhow::bail!("the runtime did not run in round {round}");
        };
        println!("round {round}:");
        for (depth, rate, redis_us, client_us) in &raw_rates {
            println!(
                "  raw, {depth} in flight  {rate:>10.0} msgs/s  (cpu per msg: redis {redis_us:.1} us, client {client_us:.1} us)  runtime / this: {:.1} %",
                100.0 * rt_rate / rate
            );
        }
        println!(
            "  runtime (no-op)   {rt_rate:>10.0} msgs/s  (cpu per msg: redis {rt_redis_us:.1} us, consumer {rt_consumer_us:.1} us)"
        );
        Ok(Round {
            raw: raw_rates.iter().map(|r| r.1).collect(),
            runtime: rt_rate,
            peak_rss_mb,
        })
    }

    /// One runtime consumer process on `stream` as `group`; returns its report.
    fn consumer(
        &self,
        stream: &str,
        group: &str,
        expect: usize,
        database_url: Option<String>,
    ) -> anyhow::Result<String> {
        let args = ConsumeArgs {
            prefix: self.keys.prefix().to_owned(),
            stream: stream.to_owned(),
            group: group.to_owned(),
            expect: expect as u64,
            batch: self.args.batch,
            concurrency: self.args.concurrency,
            database_url,
        };
        consumer_process(self.redis_url, self.threads, &args)
    }

    /// The runtime with a SQL effect (inbox record + one row per event) on a SQLite file.
    async fn sql(&self, conn: &Conn) -> anyhow::Result<()> {
        let sql_entries = self.args.sql_entries;
        let sql_stream = "bench-sql";
        fill(conn, &self.keys, sql_stream, sql_entries).await?;
        let path = self
            .args
            .data_dir
            .join(format!("mesh-bench-{}.db", std::process::id()));
        let url = format!("sqlite://{}?mode=rwc", path.display());
        let report = self.consumer(sql_stream, "sql", sql_entries, Some(url))?;
        println!(
            "runtime (SQL)      {:>10.0} msgs/s  (inbox + one row per event, SQLite WAL, {sql_entries} entries)",
            field(&report, "rate")
        );
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
        Ok(())
    }
}

/// Prints the medians over the rounds and the ratio of the median round.
fn summarise(rounds: &[Round], reference: &[f64; 2]) {
    // The reference is the depth with the highest median rate (not each round's fastest: the
    // largest of three noisy figures is biased upwards); each round's ratio is taken against that
    // depth's run of the same round.
    let depth_medians: Vec<f64> = (0..DEPTHS.len())
        .map(|d| median(&mut rounds.iter().map(|r| r.raw[d]).collect::<Vec<_>>()))
        .collect();
    let best = (0..DEPTHS.len())
        .max_by(|a, b| depth_medians[*a].total_cmp(&depth_medians[*b]))
        .unwrap_or(0);
    let ratios_against = |d: usize| -> Vec<f64> {
        rounds
            .iter()
            .map(|r| 100.0 * r.runtime / r.raw[d])
            .collect()
    };
    let mut ratios = ratios_against(best);
    let (lowest, highest) = ratios
        .iter()
        .fold((f64::MAX, f64::MIN), |(lo, hi), r| (lo.min(*r), hi.max(*r)));
    let rt_median = median(&mut rounds.iter().map(|r| r.runtime).collect::<Vec<_>>());
    for (d, depth) in DEPTHS.iter().enumerate() {
        println!(
            "raw, {depth} in flight   {:>10.0} msgs/s  (median of {} rounds; runtime / this, median round: {:.1} %)",
            depth_medians[d],
            rounds.len(),
            median(&mut ratios_against(d))
        );
    }
    println!(
        "runtime (no-op)    {rt_median:>10.0} msgs/s  (median; one consumer process, idempotency on)"
    );
    println!(
        "runtime / raw      {:>10.1} %  (median round, against the fastest raw loop: {} in flight; range {lowest:.1}-{highest:.1} %; of the 1-round-trip loop {:.1} %, of the serial loop {:.1} %)",
        median(&mut ratios),
        DEPTHS[best],
        100.0 * rt_median / reference[1],
        100.0 * rt_median / reference[0]
    );
    let peak_rss_mb = rounds.iter().map(|r| r.peak_rss_mb).fold(0f64, f64::max);
    println!("consumer peak RSS  {peak_rss_mb:>10.1} MB");
}

/// Leaves nothing behind in the benchmark's Redis.
async fn delete_keys(mut conn: Conn, keys: &Keys) -> anyhow::Result<()> {
    let pattern = format!("{}*", keys.prefix());
    let doomed: Vec<String> = redis::cmd("KEYS")
        .arg(&pattern)
        .query_async(&mut conn)
        .await?;
    if !doomed.is_empty() {
        let _: i64 = redis::cmd("DEL")
            .arg(&doomed)
            .query_async(&mut conn)
            .await?;
    }
    Ok(())
}
