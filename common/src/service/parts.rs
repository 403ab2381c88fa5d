//! A service's long-running [`Part`]s and [`Service::run`], which runs them side by side: the
//! HTTP API, the outbox relay, the housekeeping every service does, and its workers. If any of
//! them fails the others are stopped and the error says which one.

use std::future::Future;

use anyhow::Context as _;
use axum::Router;
use futures::future::BoxFuture;
use tokio::{net::TcpListener, task::JoinSet};
use tokio_util::sync::CancellationToken;

use super::connect::Service;
use crate::{
    http, recorder,
    runtime::{Handler, Worker},
};

/// A named long-running part of a service (the API, the relay, a worker).
pub type Part = (&'static str, BoxFuture<'static, anyhow::Result<()>>);

impl Service {
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
                    self.redis_target.clone(),
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

pub(super) async fn ok(f: impl Future<Output = ()>) -> anyhow::Result<()> {
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
