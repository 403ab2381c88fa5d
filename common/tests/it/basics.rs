//! Smoke: one in-process worker handles every published entry once and leaves nothing pending.

use std::time::Duration;

use common::{
    Keys,
    runtime::{Worker, WorkerConfig},
    testing::{RedisServer, unique_prefix, wait_drained},
};
use tokio_util::sync::CancellationToken;

use crate::support::{Recorder, pending, publish_n};

#[tokio::test]
async fn worker_handles_every_entry_once_and_acks_it() {
    let redis = RedisServer::start();
    let keys = Keys::new(unique_prefix());
    let ids = publish_n(&redis, &keys, "smoke", 2_000).await;

    let recorder = Recorder::default();
    let mut cfg = WorkerConfig::new(keys.clone(), "g1", &["smoke"]);
    cfg.batch = 64;
    let worker = Worker::new(redis.target(), cfg, recorder.clone());
    let stats = worker.stats();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(worker.run(shutdown.clone()));

    let mut conn = redis.connection();
    wait_drained(
        &mut conn,
        &keys.stream("smoke"),
        "g1",
        Duration::from_secs(30),
    )
    .await;
    shutdown.cancel();
    task.await.unwrap().unwrap();

    let counts = recorder.counts();
    assert_eq!(counts.len(), ids.len());
    assert!(ids.iter().all(|id| counts.get(id) == Some(&1)));
    assert!(
        pending(&mut conn, &keys.stream("smoke"), "g1")
            .await
            .is_empty()
    );
    assert_eq!(
        stats.handled.load(std::sync::atomic::Ordering::Relaxed),
        2_000
    );
}
