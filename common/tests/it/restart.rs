//! Redis going away: a worker rides out a Redis restart mid-stream and finishes the stream, and a
//! consumer group deleted under a running worker is recreated — both without a hot loop.

use std::time::Duration;

use common::{
    Keys,
    runtime::{HandleError, Handler, Message, WorkerConfig, WorkerStats},
    testing::{RedisServer, unique_prefix, wait_drained, wait_until},
};

use crate::support::{InProcessWorker, Recorder, command_calls, pending, publish_n};

/// A [`Recorder`] that takes a little while per event.
#[derive(Clone, Default)]
struct SlowRecorder {
    recorder: Recorder,
}

impl Handler for SlowRecorder {
    async fn handle(&self, message: &Message) -> Result<(), HandleError> {
        tokio::time::sleep(Duration::from_millis(20)).await;
        self.recorder.handle(message).await
    }
}

#[tokio::test]
async fn worker_rides_out_a_redis_restart_and_finishes_the_stream() {
    let mut redis = RedisServer::start();
    let keys = Keys::new(unique_prefix());
    let stream_key = keys.stream("ledger");
    let ids = publish_n(&redis, &keys, "ledger", 600).await;

    let handler = SlowRecorder::default();
    let mut cfg = WorkerConfig::new(keys.clone(), "books", &["ledger"]);
    cfg.concurrency = 8;
    cfg.batch = 8;
    // Entries whose ack was lost in the outage are reclaimed after this.
    cfg.processing_timeout = Duration::from_secs(1);
    let worker = InProcessWorker::start(&redis, cfg, handler.clone());
    let stats = worker.stats.clone();

    wait_until(Duration::from_secs(20), "worker under way", || {
        let stats = stats.clone();
        async move { WorkerStats::get(&stats.handled) >= 100 }
    })
    .await;
    redis.stop();
    let handled_at_stop = WorkerStats::get(&stats.handled);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    redis.start_again();
    assert!(
        handled_at_stop < ids.len() as u64,
        "the outage must hit mid-stream (handled {handled_at_stop} before it)"
    );

    let mut conn = redis.connection();
    wait_until(Duration::from_secs(30), "every entry handled", || {
        let recorder = handler.recorder.clone();
        let n = ids.len();
        async move { recorder.counts().len() == n }
    })
    .await;
    wait_drained(&mut conn, &stream_key, "books", Duration::from_secs(30)).await;
    assert!(
        !worker.task.is_finished(),
        "worker task exited during the outage"
    );
    worker.stop().await;

    let counts = handler.recorder.counts();
    for id in &ids {
        assert!(
            counts.get(id).is_some_and(|n| *n >= 1),
            "event {id} never handled"
        );
    }
    // Re-runs happen only for entries whose ack (and idempotency record) was lost in the outage.
    let runs: u64 = counts.values().sum();
    assert_eq!(runs, WorkerStats::get(&stats.handled));
    assert!(
        runs - ids.len() as u64 <= 2 * 8,
        "at most the in-flight entries of the outage run again: {runs} runs"
    );
    let read_errors = WorkerStats::get(&stats.read_errors);
    assert!(
        (1..50).contains(&read_errors),
        "reads back off while Redis is down: {read_errors} failed reads"
    );
    assert!(pending(&mut conn, &stream_key, "books").await.is_empty());
}

#[tokio::test]
async fn deleted_group_is_recreated_and_new_entries_are_processed() {
    let redis = RedisServer::start();
    let keys = Keys::new(unique_prefix());
    let mut conn = redis.connection();
    let stream_key = keys.stream("audit");
    let first = publish_n(&redis, &keys, "audit", 10).await;

    let recorder = Recorder::default();
    let cfg = WorkerConfig::new(keys.clone(), "auditor", &["audit"]);
    let worker = InProcessWorker::start(&redis, cfg, recorder.clone());
    let stats = worker.stats.clone();
    wait_drained(&mut conn, &stream_key, "auditor", Duration::from_secs(20)).await;

    let destroyed: i64 = redis::cmd("XGROUP")
        .arg("DESTROY")
        .arg(&stream_key)
        .arg("auditor")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(destroyed, 1);
    wait_until(Duration::from_secs(15), "group recreated", || {
        let stats = stats.clone();
        async move { WorkerStats::get(&stats.groups_recreated) >= 1 }
    })
    .await;
    let second = publish_n(&redis, &keys, "audit", 10).await;
    wait_until(Duration::from_secs(20), "new entries handled", || {
        let recorder = recorder.clone();
        async move { recorder.counts().len() == 20 }
    })
    .await;
    // The recreated group starts at 0: the old entries are read again and skipped as processed.
    wait_drained(&mut conn, &stream_key, "auditor", Duration::from_secs(20)).await;
    // Idle for a couple of read cycles: a hot loop would show in the call counts.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!worker.task.is_finished(), "worker task exited");
    worker.stop().await;

    let counts = recorder.counts();
    for id in first.iter().chain(&second) {
        assert_eq!(counts.get(id), Some(&1), "event {id}");
    }
    assert_eq!(WorkerStats::get(&stats.duplicates), 10);
    let recreated = WorkerStats::get(&stats.groups_recreated);
    assert!(
        (1..=3).contains(&recreated),
        "group recreated {recreated} times"
    );
    let (reads, failed_reads) = command_calls(&mut conn, "xreadgroup").await;
    assert!(failed_reads <= 3, "{failed_reads} failed XREADGROUPs");
    assert!(
        reads < 100,
        "{reads} XREADGROUPs in a few seconds of mostly idle work"
    );
    // Created once at start, once after the DESTROY.
    let (creates, _) = command_calls(&mut conn, "xgroup|create").await;
    assert!((2..=4).contains(&creates), "{creates} XGROUP CREATE calls");
    assert!(pending(&mut conn, &stream_key, "auditor").await.is_empty());
}
