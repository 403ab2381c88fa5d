//! Throughput benchmark of the stream runtime (run it with `scripts/bench-runtime.sh`).
//!
//! `mesh-bench run` pre-fills a stream, then, in the same run: raw baselines (a tight loop doing
//! the runtime's Redis work per entry — `XREADGROUP`, idempotency check `SMISMEMBER` ×2 and
//! record `SADD` + `PEXPIREAT`, `XACK` — pipelined, with nothing around it; see `raw::RawLoop`):
//! once serial and once with one round trip a batch, for reference; then, in rounds, the same
//! work with 2, 3 and 4 pipelines in flight and the runtime itself in a separate consumer process
//! (`mesh-bench consume`, no-op handler, idempotency on), back to back, in alternating order. The
//! reference is the depth with the highest median rate; the ratio is taken within each round
//! against that depth's run, and the median round is the result: this VM's speed drifts between
//! runs, and a ratio of two runs minutes apart measures the drift as much as the runtime. Last, the runtime with a SQL effect (inbox
//! record + one row per event) on SQLite. It prints msgs/s, the ratios, CPU per message of Redis
//! and of each client, publish throughput and the consumer's peak RSS.
//!
//! `mesh-bench fill`, `raw` and `consume` run one part alone, e.g. under `valgrind` or `perf`.
//!
//! The library behind the `mesh-bench` binary (`src/main.rs` parses and starts the runtime):
//! `suite` is the whole benchmark (`run`), `fill` pre-fills a stream, `raw` the raw loops,
//! `consume` the runtime consumer process, `measure` CPU, memory and medians.

mod consume;
mod fill;
mod measure;
mod raw;
mod suite;

use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use common::{Keys, runtime::redis_io};

pub use consume::ConsumeArgs;
pub use suite::RunArgs;

#[derive(Parser)]
pub struct Cli {
    #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6379")]
    redis_url: String,
    /// Tokio worker threads of the benchmark and consumer processes (1: a current-thread
    /// runtime). On a 2-core machine that also runs Redis, 1 leaves Redis a core of its own.
    #[arg(long, global = true, default_value_t = 1)]
    pub threads: usize,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// The whole benchmark.
    Run(RunArgs),
    /// Only pre-fills a stream (for profiling `consume` or `raw` alone).
    Fill(FillArgs),
    /// Only the raw loop with `depth` pipelines in flight, on a stream `fill` wrote, as its own
    /// group (for profiling).
    Raw(RawArgs),
    /// One runtime consumer process (spawned by `run`).
    Consume(ConsumeArgs),
}

#[derive(Args)]
struct FillArgs {
    #[arg(long)]
    prefix: String,
    #[arg(long, default_value = "bench-events")]
    stream: String,
    #[arg(long, default_value_t = 200_000)]
    entries: usize,
}

#[derive(Args)]
struct RawArgs {
    #[arg(long)]
    prefix: String,
    #[arg(long, default_value = "bench-events")]
    stream: String,
    #[arg(long)]
    group: String,
    #[arg(long, default_value_t = 512)]
    batch: usize,
    /// Pipelines in flight.
    #[arg(long, default_value_t = 2)]
    depth: usize,
}

/// Runs one subcommand.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let client = common::connection::RedisTarget::open(cli.redis_url.as_str())?;
    match cli.command {
        Cmd::Run(args) => suite::run(&cli.redis_url, cli.threads, client, &args).await,
        Cmd::Fill(args) => {
            let conn = redis_io::managed(&client, Duration::from_secs(30))?;
            let rate =
                fill::fill(&conn, &Keys::new(args.prefix), &args.stream, args.entries).await?;
            println!("rate={rate:.0}");
            Ok(())
        }
        Cmd::Raw(args) => {
            let cpu0 = measure::process_cpu();
            let (total, rate) = raw::raw_baseline(
                &client,
                &Keys::new(args.prefix),
                &args.stream,
                &args.group,
                args.batch,
                raw::RawLoop::InFlight(args.depth),
            )
            .await?;
            println!(
                "rate={rate:.0} entries={total} cpu_us_per_msg={:.2}",
                (measure::process_cpu() - cpu0) * 1e6 / total.max(1) as f64
            );
            Ok(())
        }
        Cmd::Consume(args) => consume::consume(client, &args).await,
    }
}
