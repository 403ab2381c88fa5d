//! The runtime side of the benchmark: `mesh-bench consume`, one consumer process running
//! `common::runtime::Worker` until every entry is handled and acknowledged, and how `run` spawns
//! it and reads the one line it reports.

use std::{
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context as _;
use clap::Args;
use common::{
    Keys,
    db::{self, inbox, migration::RuntimeMigrator},
    runtime::{HandleError, Handler, Message, Worker, WorkerConfig, redis_io},
};
use sea_orm::{ConnectionTrait, DatabaseConnection};
use sea_orm_migration::MigratorTrait;
use tokio_util::sync::CancellationToken;

use crate::measure::{peak_rss_kb, process_cpu};

#[derive(Args)]
pub struct ConsumeArgs {
    #[arg(long)]
    pub prefix: String,
    #[arg(long)]
    pub stream: String,
    #[arg(long)]
    pub group: String,
    #[arg(long)]
    pub expect: u64,
    #[arg(long)]
    pub batch: usize,
    #[arg(long)]
    pub concurrency: usize,
    /// SQLite/PostgreSQL URL: handler writes inbox + one row per event.
    #[arg(long)]
    pub database_url: Option<String>,
}

/// Counts handled events; with a database, records each in the inbox and inserts one row, in one
/// transaction.
struct Counting {
    done: Arc<AtomicU64>,
    db: Option<DatabaseConnection>,
}

impl Handler for Counting {
    async fn handle(&self, message: &Message) -> Result<(), HandleError> {
        if let Some(db) = &self.db {
            let Some(txn) = inbox::begin_once(db, "sql", &message.envelope).await? else {
                return Ok(());
            };
            txn.execute_raw(sea_orm::Statement::from_sql_and_values(
                db.get_database_backend(),
                match db.get_database_backend() {
                    sea_orm::DbBackend::Postgres => {
                        "INSERT INTO bench_effects (event_id) VALUES ($1)"
                    }
                    _ => "INSERT INTO bench_effects (event_id) VALUES (?)",
                },
                [message.envelope.event_id.to_string().into()],
            ))
            .await?;
            txn.commit().await?;
        }
        self.done.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// `mesh-bench consume`: runs the worker until `expect` entries are handled and the group is
/// drained, then prints `rate= elapsed_ms= acked= peak_rss_kb= cpu_us_per_msg=`.
pub async fn consume(
    client: common::connection::RedisTarget,
    args: &ConsumeArgs,
) -> anyhow::Result<()> {
    let keys = Keys::new(args.prefix.as_str());
    let db = match &args.database_url {
        Some(url) => {
            let db = db::connect(url).await?;
            RuntimeMigrator::up(&db, None).await?;
            db.execute_unprepared(
                "CREATE TABLE IF NOT EXISTS bench_effects (id INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT NOT NULL)",
            )
            .await?;
            Some(db)
        }
        None => None,
    };
    let (group, expect) = (args.group.as_str(), args.expect);
    let mut cfg = WorkerConfig::new(keys.clone(), group, &[args.stream.as_str()]);
    cfg.batch = args.batch;
    cfg.concurrency = args.concurrency;
    cfg.block = Duration::from_millis(100);
    let done = Arc::new(AtomicU64::new(0));
    let worker = Worker::new(
        client.clone(),
        cfg,
        Counting {
            done: done.clone(),
            db,
        },
    );
    let stats = worker.stats();
    let shutdown = CancellationToken::new();
    let started = Instant::now();
    let cpu0 = process_cpu();
    let task = tokio::spawn(worker.run(shutdown.clone()));
    let mut conn = redis_io::managed(&client, Duration::from_secs(10))?;
    let key = keys.stream(&args.stream);
    // Done when every entry was handled and acknowledged.
    loop {
        tokio::time::sleep(Duration::from_millis(5)).await;
        if done.load(Ordering::Relaxed) < expect {
            continue;
        }
        if common::runtime::inspect::group_state(&mut conn, &key, group)
            .await
            .is_some_and(|g| g.is_drained())
        {
            break;
        }
    }
    let elapsed = started.elapsed();
    shutdown.cancel();
    task.await??;
    let acked = stats.acked.load(Ordering::Relaxed);
    println!(
        "rate={:.0} elapsed_ms={} acked={acked} peak_rss_kb={} cpu_us_per_msg={:.2}",
        expect as f64 / elapsed.as_secs_f64(),
        elapsed.as_millis(),
        peak_rss_kb(),
        (process_cpu() - cpu0) * 1e6 / expect as f64
    );
    Ok(())
}

/// Runs `mesh-bench consume` as a separate process (this executable, `threads` worker threads)
/// and returns the line it printed.
pub fn consumer_process(
    redis_url: &str,
    threads: usize,
    args: &ConsumeArgs,
) -> anyhow::Result<String> {
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.args([
        "--redis-url",
        redis_url,
        "--threads",
        &threads.to_string(),
        "consume",
    ])
    .args([
        "--prefix",
        &args.prefix,
        "--stream",
        &args.stream,
        "--group",
        &args.group,
    ])
    .args(["--expect", &args.expect.to_string()])
    .args([
        "--batch",
        &args.batch.to_string(),
        "--concurrency",
        &args.concurrency.to_string(),
    ]);
    if let Some(url) = &args.database_url {
        cmd.args(["--database-url", url]);
    }
    let out = cmd.output().context("spawn consumer process")?;
    anyhow::ensure!(
        out.status.success(),
        "consumer failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The value of `name=` in a consumer's report; NaN when missing.
pub fn field(report: &str, name: &str) -> f64 {
    report
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}
