//! [`Service`]: the connections and settings of one running service, and the workers made from
//! them with the command-line tuning.

use crate::connection::{Conn, RedisTarget};
use anyhow::Context as _;
use sea_orm::DatabaseConnection;
use sea_orm_migration::MigratorTrait;

use super::migrate::connect_and_migrate;
use crate::{
    auth::{JwtVerifier, Revocations},
    config::MeshArgs,
    db::outbox::OutboxRelay,
    keys::Keys,
    monitoring::Monitor,
    recorder,
    runtime::{Handler, Publisher, Worker, WorkerConfig, redis_io},
};

/// Connections and settings of one running service.
#[derive(Clone)]
pub struct Service {
    pub name: &'static str,
    pub args: MeshArgs,
    pub keys: Keys,
    pub db: DatabaseConnection,
    pub redis_target: RedisTarget,
    pub redis: Conn,
    pub publisher: Publisher,
    pub relay: OutboxRelay,
    /// The access tokens this process refuses, followed from the `token-revoked` stream by a
    /// part of [`run`](Self::run).
    pub revocations: Revocations,
    /// The gauges of `/metrics` (group lag, pending, dead letters, outbox backlog), refreshed
    /// by a part of [`run`](Self::run) for the workers made with [`worker_part`](Self::worker_part).
    pub monitor: Monitor,
}

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
        crate::keys::check_prefix(&args.stream_prefix).context("MESH_STREAM_PREFIX")?;
        let db = connect_and_migrate::<M>(name, &args).await?;
        let redis_target = RedisTarget::open(args.redis_url.as_str()).context("REDIS_URL")?;
        let redis = redis_io::command_connection(&redis_target).context("redis connection")?;
        let keys = Keys::new(args.stream_prefix.clone());
        let publisher =
            Publisher::new(redis.clone(), keys.clone()).waiting_for(args.redis_wait_replicas);
        let relay = OutboxRelay::new(db.clone(), publisher.clone());
        let revocations = Revocations::default();
        // Before any worker makes its metric handles: without a recorder they are no-ops.
        recorder::handle();
        let monitor = Monitor::new(
            redis_io::command_connection(&redis_target).context("redis connection")?,
            Some(db.clone()),
            keys.clone(),
            args.metrics_refresh,
        );
        Ok(Self {
            name,
            args,
            keys,
            db,
            redis_target,
            redis,
            publisher,
            relay,
            revocations,
            monitor,
        })
    }

    /// The configuration of a worker of this service's consumer group (named after the service)
    /// on `streams`, with the command-line tuning applied.
    pub fn worker_config(&self, streams: &[&str]) -> WorkerConfig {
        WorkerConfig::new(self.keys.clone(), self.name, streams).with_args(&self.args.worker)
    }

    /// A worker of this service's group on `streams`, running `handler` concurrently on the
    /// entries of a batch, each in a transaction of its own.
    pub fn worker<H: Handler>(&self, streams: &[&str], handler: H) -> Worker<H> {
        Worker::new(
            self.redis_target.clone(),
            self.worker_config(streams),
            handler,
        )
    }

    /// A worker like [`worker`](Self::worker) that applies each batch in shared database
    /// transactions (unless `MESH_WORKER_BATCH_TRANSACTIONS` turns it off), waking the outbox
    /// relay after each commit. Only for handlers whose every effect goes through
    /// `common::db::begin`, and whose effects outside the database go through
    /// `common::db::after_commit`.
    pub fn batch_worker<H: Handler>(&self, streams: &[&str], handler: H) -> Worker<H> {
        let config = self.worker_config(streams).with_batch_transactions(
            &self.args.worker,
            self.db.clone(),
            self.relay.notifier(),
        );
        Worker::new(self.redis_target.clone(), config, handler)
    }
}
