//! A worker process for the runtime's fault tests (feature `testing`): consumes one group with a
//! configurable effect, delay and injected crashes, so tests can run several real processes,
//! `kill -9` them, and assert effects.
//!
//! Effects:
//! - `redis`: `HINCRBY <prefix>effects <event_id> 1`, plus per-consumer and started/finished
//!   counters (`<prefix>handled:<consumer>`, `<prefix>started`, `<prefix>finished`).
//! - `sql`: in one transaction, the inbox record and a row in `test_effects` (no unique key on
//!   `event_id`, so a double effect would show as two rows); optionally a follow-up event through
//!   the outbox.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use clap::{Parser, ValueEnum};
use common::{
    Keys,
    config::LogFormat,
    db::{self, inbox, migration::RuntimeMigrator, outbox},
    runtime::{HandleError, Handler, Message, Publisher, Worker, WorkerConfig, redis_io},
};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend};
use sea_orm_migration::MigratorTrait;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
enum Effect {
    Redis,
    Sql,
    Noop,
}

#[derive(Debug, Parser)]
struct Cli {
    #[arg(long)]
    redis_url: String,
    #[arg(long, default_value = "")]
    prefix: String,
    #[arg(long, required = true)]
    stream: Vec<String>,
    #[arg(long)]
    group: String,
    #[arg(long)]
    consumer: Option<String>,
    #[arg(long)]
    database_url: Option<String>,
    #[arg(long, value_enum, default_value_t = Effect::Redis)]
    effect: Effect,
    /// Sleep this long inside every handler.
    #[arg(long, default_value_t = 0)]
    handler_sleep_ms: u64,
    /// Abort the process right after the Nth SQL commit, before the handler returns (no ack).
    #[arg(long)]
    crash_after_commit: Option<u64>,
    /// With `--follow-up`: abort right after the Nth commit, before the outbox relay publishes.
    #[arg(long)]
    crash_before_publish: Option<u64>,
    /// Publish a follow-up event on this stream through the outbox for every handled event.
    #[arg(long)]
    follow_up: Option<String>,
    #[arg(long, default_value_t = 256)]
    concurrency: usize,
    #[arg(long, default_value_t = 256)]
    batch: usize,
    #[arg(long, default_value_t = 30_000)]
    processing_timeout_ms: u64,
    #[arg(long, default_value_t = 5)]
    max_deliveries: u64,
    #[arg(long, default_value_t = 10_000)]
    shutdown_grace_ms: u64,
    #[arg(long, default_value_t = 200)]
    block_ms: u64,
    /// Apply each batch in one database transaction (needs `--database-url`): a commit in the
    /// handler then only ends its share of the batch, and `--crash-after-commit` aborts mid-batch.
    #[arg(long)]
    batch_transactions: bool,
}

struct TestHandler {
    cli: Cli,
    keys: Keys,
    consumer: String,
    redis: common::connection::Conn,
    db: Option<DatabaseConnection>,
    notifier: Option<outbox::OutboxNotifier>,
    commits: AtomicU64,
}

impl Handler for TestHandler {
    async fn handle(&self, message: &Message) -> Result<(), HandleError> {
        let mut conn = self.redis.clone();
        let event_id = message.envelope.event_id.to_string();
        let _: i64 = redis::cmd("INCR")
            .arg(format!("{}started", self.keys.prefix()))
            .query_async(&mut conn)
            .await?;
        if self.cli.handler_sleep_ms > 0 {
            tokio::time::sleep(Duration::from_millis(self.cli.handler_sleep_ms)).await;
        }
        match self.cli.effect {
            Effect::Noop => {}
            Effect::Redis => {
                let _: () = redis::pipe()
                    .cmd("HINCRBY")
                    .arg(format!("{}effects", self.keys.prefix()))
                    .arg(&event_id)
                    .arg(1)
                    .ignore()
                    .cmd("INCR")
                    .arg(format!("{}handled:{}", self.keys.prefix(), self.consumer))
                    .ignore()
                    .query_async(&mut conn)
                    .await?;
            }
            Effect::Sql => {
                let db = self
                    .db
                    .as_ref()
                    .expect("--database-url is required for the sql effect");
                let Some(txn) = inbox::begin_once(db, &self.cli.group, &message.envelope).await?
                else {
                    return Ok(());
                };
                let sql = match db.get_database_backend() {
                    DbBackend::Postgres => {
                        "INSERT INTO test_effects (event_id, consumer) VALUES ($1, $2)"
                    }
                    _ => "INSERT INTO test_effects (event_id, consumer) VALUES (?, ?)",
                };
                txn.execute_raw(sea_orm::Statement::from_sql_and_values(
                    db.get_database_backend(),
                    sql,
                    [event_id.clone().into(), self.consumer.clone().into()],
                ))
                .await?;
                if let Some(stream) = &self.cli.follow_up {
                    let follow = message
                        .envelope
                        .follow_up(
                            "effect-done",
                            "testworker",
                            &serde_json::json!({"of": event_id}),
                        )
                        .map_err(HandleError::dead_letter)?;
                    outbox::enqueue(&txn, stream, &follow).await?;
                }
                txn.commit().await?;
                let n = self.commits.fetch_add(1, Ordering::SeqCst) + 1;
                if self.cli.crash_after_commit == Some(n)
                    || self.cli.crash_before_publish == Some(n)
                {
                    eprintln!("testworker: injected crash after commit #{n}");
                    std::process::abort();
                }
                if let Some(n) = &self.notifier {
                    n.notify();
                }
            }
        }
        let _: i64 = redis::cmd("INCR")
            .arg(format!("{}finished", self.keys.prefix()))
            .query_async(&mut conn)
            .await?;
        Ok(())
    }
}

fn main() -> anyhow::Result<()> {
    common::memory::runtime(None)?.block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    common::telemetry::init(LogFormat::Pretty);
    let shutdown = CancellationToken::new();
    common::shutdown::cancel_on_signals(shutdown.clone());

    let keys = Keys::new(cli.prefix.clone());
    let client = common::connection::RedisTarget::open(cli.redis_url.as_str())?;
    let redis = redis_io::command_connection(&client)?;
    let db = match &cli.database_url {
        Some(url) => {
            let db = db::connect(url).await?;
            RuntimeMigrator::up(&db, None).await?;
            let ddl = match db.get_database_backend() {
                DbBackend::Postgres => {
                    "CREATE TABLE IF NOT EXISTS test_effects (id BIGSERIAL PRIMARY KEY, event_id TEXT NOT NULL, consumer TEXT NOT NULL)"
                }
                _ => {
                    "CREATE TABLE IF NOT EXISTS test_effects (id INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT NOT NULL, consumer TEXT NOT NULL)"
                }
            };
            db.execute_unprepared(ddl).await?;
            Some(db)
        }
        None => None,
    };
    let streams: Vec<&str> = cli.stream.iter().map(String::as_str).collect();
    let mut cfg = WorkerConfig::new(keys.clone(), &cli.group, &streams);
    if let Some(c) = &cli.consumer {
        cfg.consumer = c.clone();
    }
    cfg.concurrency = cli.concurrency;
    cfg.batch = cli.batch;
    cfg.processing_timeout = Duration::from_millis(cli.processing_timeout_ms);
    cfg.max_deliveries = cli.max_deliveries;
    cfg.shutdown_grace = Duration::from_millis(cli.shutdown_grace_ms);
    cfg.block = Duration::from_millis(cli.block_ms);
    cfg.retry_base = Duration::from_millis(50);
    let consumer = cfg.consumer.clone();

    let mut relay_task = None;
    let notifier = match (&db, &cli.follow_up) {
        (Some(db), Some(_)) => {
            let relay =
                outbox::OutboxRelay::new(db.clone(), Publisher::new(redis.clone(), keys.clone()));
            let notifier = relay.notifier();
            relay_task = Some(tokio::spawn(relay.run(shutdown.clone())));
            Some(notifier)
        }
        _ => None,
    };
    if cli.batch_transactions {
        let db = db
            .clone()
            .ok_or_else(|| anyhow::anyhow!("--batch-transactions needs --database-url"))?;
        cfg.batch_transactions = Some(common::runtime::BatchTransactions {
            db,
            notifier: notifier.clone().unwrap_or_default(),
        });
    }
    let handler = TestHandler {
        cli,
        keys,
        consumer,
        redis,
        db,
        notifier,
        commits: AtomicU64::new(0),
    };
    let worker = Worker::new(client, cfg, handler);
    let stats = worker.stats();
    worker.run(shutdown).await?;
    if let Some(t) = relay_task {
        let _ = t.await;
    }
    eprintln!("testworker: stopped; stats {stats:?}");
    let _ = Arc::clone(&stats);
    Ok(())
}
