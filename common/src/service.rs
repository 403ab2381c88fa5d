//! Start-up shared by every service binary: connect the database (and migrate), connect Redis,
//! then run the HTTP API, the outbox relay, the metrics refresh and the workers side by side. If any of them fails the
//! others are stopped and the error says which one.
//!
//! [`main`] is the body of every service's `main.rs` (the `serve` and `migrate` subcommands), so
//! the five binaries stay a dozen lines each.

use std::future::Future;

use anyhow::Context as _;
use axum::{Json, Router, routing::get};
use futures::future::BoxFuture;
use redis::{Client, aio::ConnectionManager};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, TransactionTrait};
use sea_orm_migration::MigratorTrait;
use tokio::{net::TcpListener, task::JoinSet};
use tokio_util::sync::CancellationToken;

use crate::{
    auth::{JwtVerifier, Revocations},
    config::MeshArgs,
    db::{self, outbox::OutboxRelay},
    http,
    keys::Keys,
    monitoring::Monitor,
    recorder,
    runtime::{Handler, Publisher, Worker, redis_io},
    shutdown, telemetry,
};

/// Connections and settings of one running service.
#[derive(Clone)]
pub struct Service {
    pub name: &'static str,
    pub args: MeshArgs,
    pub keys: Keys,
    pub db: DatabaseConnection,
    pub redis_client: Client,
    pub redis: ConnectionManager,
    pub publisher: Publisher,
    pub relay: OutboxRelay,
    /// The access tokens this process refuses, followed from the `token-revoked` stream by a
    /// part of [`run`](Self::run).
    pub revocations: Revocations,
    /// The gauges of `/metrics` (group lag, pending, dead letters, outbox backlog), refreshed
    /// by a part of [`run`](Self::run) for the workers made with [`worker_part`](Self::worker_part).
    pub monitor: Monitor,
}

/// A named long-running part of a service (the API, the relay, a worker).
pub type Part = (&'static str, BoxFuture<'static, anyhow::Result<()>>);

impl Service {
    /// The access-token verifier of this service: the public key from its settings
    /// ([`JwtVerifier::load`]) and this process's revocations.
    pub async fn verifier(&self) -> anyhow::Result<JwtVerifier> {
        JwtVerifier::load(
            &self.args.auth,
            &self.args.data_dir,
            self.revocations.clone(),
        )
        .await
    }

    /// Connects and migrates the database (migrator `M`) and prepares Redis connections (lazy:
    /// a service starts while Redis is down and reports not-ready).
    pub async fn connect<M: MigratorTrait>(
        name: &'static str,
        args: MeshArgs,
    ) -> anyhow::Result<Self> {
        args.worker.validate()?;
        let db = connect_and_migrate::<M>(name, &args).await?;
        let redis_client = Client::open(args.redis_url.as_str()).context("REDIS_URL")?;
        let redis = redis_io::command_connection(&redis_client).context("redis connection")?;
        let keys = Keys::new(args.stream_prefix.clone());
        let publisher = Publisher::new(redis.clone(), keys.clone());
        let relay = OutboxRelay::new(db.clone(), publisher.clone());
        let revocations = Revocations::default();
        // Before any worker makes its metric handles: without a recorder they are no-ops.
        recorder::handle();
        let monitor = Monitor::new(
            redis_io::command_connection(&redis_client).context("redis connection")?,
            Some(db.clone()),
            keys.clone(),
            args.metrics_refresh,
        );
        Ok(Self {
            name,
            args,
            keys,
            db,
            redis_client,
            redis,
            publisher,
            relay,
            revocations,
            monitor,
        })
    }

    /// The part that runs `worker` until `shutdown`, named `name`; its group and streams are
    /// reported on `/metrics` (see `crate::monitoring`).
    pub fn worker_part<H: Handler>(
        &self,
        name: &'static str,
        worker: Worker<H>,
        shutdown: &CancellationToken,
    ) -> Part {
        self.monitor.watch(worker.group(), worker.streams());
        (name, Box::pin(worker.run(shutdown.clone())))
    }

    /// Serves `api` (plus the ops routes) on `listener`, runs the outbox relay and `workers`
    /// until `shutdown`; then drains HTTP and lets workers finish in-flight entries.
    pub async fn run(
        self,
        listener: TcpListener,
        api: Router,
        workers: Vec<Part>,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        let readiness = http::Readiness {
            service: self.name,
            redis: self.redis.clone(),
            db: Some(self.db.clone()),
        };
        let router =
            http::with_common_layers(api.merge(http::ops_router(readiness, self.monitor.clone())));
        let addr = listener.local_addr().ok();
        tracing::info!(service = self.name, ?addr, "listening");
        let mut parts: Vec<Part> = vec![
            (
                "http",
                Box::pin(named(http::serve(
                    listener,
                    router,
                    self.args.http.clone(),
                    shutdown.clone(),
                ))),
            ),
            (
                "outbox relay",
                Box::pin(ok(self.relay.clone().run(shutdown.clone()))),
            ),
            (
                "inbox pruning",
                Box::pin(ok(crate::runtime::inbox_pruning::run(
                    self.db.clone(),
                    self.redis.clone(),
                    self.keys.clone(),
                    self.args.worker.idempotency_retention,
                    self.args.worker.housekeeping_interval,
                    shutdown.clone(),
                ))),
            ),
            (
                "token revocations",
                Box::pin(ok(crate::auth::revocations::follow(
                    self.redis_client.clone(),
                    self.keys.clone(),
                    self.revocations.clone(),
                    shutdown.clone(),
                ))),
            ),
            (
                "metrics refresh",
                Box::pin(ok(self.monitor.clone().run(shutdown.clone()))),
            ),
            (
                "metrics upkeep",
                Box::pin(ok(recorder::run_upkeep(shutdown.clone()))),
            ),
            (
                "sqlite checkpoints",
                Box::pin(ok(crate::db::checkpoint_sqlite(
                    self.db.clone(),
                    shutdown.clone(),
                ))),
            ),
        ];
        parts.extend(workers);
        run_parts(parts, shutdown).await
    }
}

async fn named(f: impl Future<Output = std::io::Result<()>>) -> anyhow::Result<()> {
    f.await.context("http server")
}

async fn ok(f: impl Future<Output = ()>) -> anyhow::Result<()> {
    f.await;
    Ok(())
}

/// Runs the parts together. The first to fail — or to stop before shutdown was asked for —
/// stops the others.
pub async fn run_parts(parts: Vec<Part>, shutdown: CancellationToken) -> anyhow::Result<()> {
    let mut set = JoinSet::new();
    for (name, fut) in parts {
        set.spawn(async move { (name, fut.await) });
    }
    let mut first_error: Option<anyhow::Error> = None;
    while let Some(joined) = set.join_next().await {
        let (name, result) = match joined {
            Ok(r) => r,
            Err(e) => ("task", Err(anyhow::anyhow!("panicked: {e}"))),
        };
        match result {
            Err(error) => {
                tracing::error!(
                    part = name,
                    error = format!("{error:#}"),
                    "stopped with an error; stopping the service"
                );
                shutdown.cancel();
                first_error.get_or_insert(error.context(format!("{name} failed")));
            }
            Ok(()) if !shutdown.is_cancelled() => {
                tracing::error!(part = name, "stopped unexpectedly; stopping the service");
                shutdown.cancel();
                first_error.get_or_insert(anyhow::anyhow!("{name} stopped unexpectedly"));
            }
            Ok(()) => {}
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Connects the database of service `name` and applies the pending migrations of `M`.
pub async fn connect_and_migrate<M: MigratorTrait>(
    name: &'static str,
    args: &MeshArgs,
) -> anyhow::Result<DatabaseConnection> {
    let url = args.database_url_or_default(name);
    let db = db::connect(&url)
        .await
        .with_context(|| format!("connect to database of {name}"))?;
    // Replicas starting together (`--scale`) would race to create the same tables and fail with
    // duplicate keys; on PostgreSQL they take turns behind an advisory lock, which this
    // transaction holds until the migrations are done (or drops on error).
    let turn = if db.get_database_backend() == DbBackend::Postgres {
        let txn = db.begin().await.context("begin migration lock")?;
        txn.execute_unprepared("SELECT pg_advisory_xact_lock(hashtext('mesh-migrations'))")
            .await
            .context("take migration lock")?;
        Some(txn)
    } else {
        None
    };
    M::up(&db, None).await.context("run migrations")?;
    if let Some(txn) = turn {
        txn.commit().await.context("release migration lock")?;
    }
    Ok(db)
}

/// What every service binary can be asked to do. A service with more admin tasks flattens this
/// into its own subcommand enum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::Subcommand)]
pub enum Command {
    /// Run the HTTP API and the workers until SIGTERM/SIGINT (the default).
    Serve,
    /// Apply the database migrations and exit.
    Migrate,
}

/// The body of every service's `main`: initialises logging (and trace export, flushed before it
/// returns), then either migrates and returns, or
/// binds `MESH_LISTEN` (default `0.0.0.0:<default_port>`) and calls the service's `run` with a
/// token that SIGTERM/SIGINT cancel. A signal-initiated shutdown returns `Ok`: exit code 0.
pub async fn main<M, F, Fut>(
    name: &'static str,
    default_port: u16,
    args: MeshArgs,
    command: Option<Command>,
    run: F,
) -> anyhow::Result<()>
where
    M: MigratorTrait,
    F: FnOnce(MeshArgs, TcpListener, CancellationToken) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    telemetry::init_service(name, args.log_format);
    let outcome = match command.unwrap_or(Command::Serve) {
        Command::Migrate => {
            let db = connect_and_migrate::<M>(name, &args).await?;
            let _ = db.close().await;
            tracing::info!(service = name, "migrations applied");
            Ok(())
        }
        Command::Serve => {
            let token = CancellationToken::new();
            shutdown::cancel_on_signals(token.clone());
            let addr = args.listen_or(default_port);
            let listener = TcpListener::bind(addr)
                .await
                .with_context(|| format!("listen on {addr}"))?;
            run(args, listener, token).await
        }
    };
    // The spans of the last requests and events, before the process exits.
    tokio::task::spawn_blocking(telemetry::shutdown).await.ok();
    outcome
}

/// `GET /`: which service answers, and its version.
pub fn index_router(name: &'static str, version: &'static str) -> Router {
    Router::new().route(
        "/",
        get(move || async move { Json(serde_json::json!({"service": name, "version": version})) }),
    )
}
