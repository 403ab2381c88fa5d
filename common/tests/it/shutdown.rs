//! Graceful shutdown: on SIGTERM a worker stops reading, lets its in-flight handlers finish,
//! acknowledges them and exits 0; what it never read stays in the group for others.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use common::{
    Keys,
    runtime::{HandleError, Handler, Message, WorkerConfig},
    stream_testing::{InProcessWorker, Recorder},
    testing::{RedisServer, group_state, unique_prefix, wait_drained, wait_until},
};

use crate::support::{counter, pending, publish_n, redis_effects, testworker};

#[tokio::test]
async fn sigterm_finishes_in_flight_handlers_acks_them_and_exits_zero() {
    const N: usize = 20;
    let grace = Duration::from_secs(10);
    let redis = RedisServer::start();
    let keys = Keys::new(unique_prefix());
    let stream_key = keys.stream("slow");
    let ids = publish_n(&redis, &keys, "slow", N).await;

    let mut slow = testworker(
        &redis,
        &keys,
        &[
            "--stream",
            "slow",
            "--group",
            "g",
            "--consumer",
            "slow",
            "--effect",
            "redis",
            "--handler-sleep-ms",
            "1500",
            "--concurrency",
            "5",
            "--batch",
            "5",
            "--shutdown-grace-ms",
            &grace.as_millis().to_string(),
        ],
    );
    let mut conn = redis.connection();
    wait_until(Duration::from_secs(15), "a handler in flight", || {
        let mut conn = conn.clone();
        let keys = keys.clone();
        async move { counter(&mut conn, &keys, "started").await >= 1 }
    })
    .await;
    assert_eq!(
        counter(&mut conn, &keys, "finished").await,
        0,
        "no handler may have finished yet (1.5 s sleep)"
    );

    let signalled = Instant::now();
    slow.sigterm();
    let status = slow.wait_exit(grace + Duration::from_secs(5)).await;
    let took = signalled.elapsed();
    assert_eq!(
        status.code(),
        Some(0),
        "exit status after SIGTERM: {status:?}"
    );
    assert!(took < grace, "shutdown took {took:?}, grace is {grace:?}");

    let started = counter(&mut conn, &keys, "started").await;
    let finished = counter(&mut conn, &keys, "finished").await;
    assert!(started >= 1);
    assert_eq!(finished, started, "every started handler finished");
    let effects = redis_effects(&mut conn, &keys).await;
    assert_eq!(effects.len() as i64, finished);
    assert!(effects.values().all(|&n| n == 1), "effects: {effects:?}");

    // Everything it read is acknowledged; what it never read is still there for the group.
    assert!(
        pending(&mut conn, &stream_key, "g").await.is_empty(),
        "read entries left pending"
    );
    let state = group_state(&mut conn, &stream_key, "g").await.unwrap();
    let lag = state.lag.expect("lag known");
    assert!(lag > 0, "the stopped worker read everything: {state:?}");
    assert_eq!(lag + started, N as i64, "read = handled: {state:?}");

    // Another consumer finishes the rest, each effect exactly once.
    let mut rest = testworker(
        &redis,
        &keys,
        &[
            "--stream",
            "slow",
            "--group",
            "g",
            "--consumer",
            "rest",
            "--effect",
            "redis",
        ],
    );
    wait_drained(&mut conn, &stream_key, "g", Duration::from_secs(15)).await;
    let effects = redis_effects(&mut conn, &keys).await;
    assert_eq!(effects.len(), N);
    for id in &ids {
        assert_eq!(effects.get(id), Some(&1), "effects of event {id}");
    }
    assert_eq!(counter(&mut conn, &keys, "handled:rest").await, lag);
    rest.stop_cleanly(Duration::from_secs(10)).await;
}

/// The names of `group`'s consumers on `stream_key`.
async fn consumers(
    conn: &mut common::connection::Conn,
    stream_key: &str,
    group: &str,
) -> Vec<String> {
    let reply: redis::streams::StreamInfoConsumersReply = redis::cmd("XINFO")
        .arg("CONSUMERS")
        .arg(stream_key)
        .arg(group)
        .query_async(conn)
        .await
        .unwrap();
    reply.consumers.into_iter().map(|c| c.name).collect()
}

/// A replica scaled away leaves no consumer behind: a worker that stops cleanly with nothing
/// pending removes its own consumer from the group. One stopped while a handler is still running
/// past the grace period keeps its consumer, and so the entry it holds stays pending.
#[tokio::test]
async fn a_worker_that_stops_cleanly_leaves_its_group() {
    let redis = RedisServer::start();
    let keys = Keys::new(unique_prefix());
    let stream_key = keys.stream("leave");
    publish_n(&redis, &keys, "leave", 10).await;
    let mut conn = redis.connection();
    let worker = |consumer: &str, sleep_ms: &str, grace_ms: &str| {
        testworker(
            &redis,
            &keys,
            &[
                "--stream",
                "leave",
                "--group",
                "g",
                "--consumer",
                consumer,
                "--handler-sleep-ms",
                sleep_ms,
                "--shutdown-grace-ms",
                grace_ms,
            ],
        )
    };

    let mut leaver = worker("leaver", "0", "10000");
    wait_drained(&mut conn, &stream_key, "g", Duration::from_secs(15)).await;
    assert_eq!(consumers(&mut conn, &stream_key, "g").await, ["leaver"]);
    leaver.sigterm();
    let status = leaver.wait_exit(Duration::from_secs(15)).await;
    assert_eq!(status.code(), Some(0), "{status:?}");
    assert!(consumers(&mut conn, &stream_key, "g").await.is_empty());

    // A handler that outlasts the grace period: its entry stays pending under its consumer.
    publish_n(&redis, &keys, "leave", 1).await;
    let mut holder = worker("holder", "5000", "200");
    wait_until(Duration::from_secs(15), "a handler in flight", || {
        let mut conn = conn.clone();
        let keys = keys.clone();
        async move { counter(&mut conn, &keys, "started").await >= 11 }
    })
    .await;
    holder.sigterm();
    let status = holder.wait_exit(Duration::from_secs(15)).await;
    assert_eq!(status.code(), Some(0), "{status:?}");
    assert_eq!(consumers(&mut conn, &stream_key, "g").await, ["holder"]);
    let held = pending(&mut conn, &stream_key, "g").await;
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(held[0].1, "holder");
}

/// Always fails, retryably: its entries wait for a retry when the worker stops.
#[derive(Clone, Default)]
struct AlwaysRetry {
    attempts: Arc<AtomicU64>,
}

impl Handler for AlwaysRetry {
    async fn handle(&self, _message: &Message) -> Result<(), HandleError> {
        self.attempts.fetch_add(1, Ordering::SeqCst);
        Err(HandleError::retry(anyhow::anyhow!("not now")))
    }
}

/// A replica scaled down while entries wait for a retry (its database was slow, a row was
/// locked by another replica) still leaves its group: it hands those entries to the group's
/// other consumer, marked idle for the processing timeout, and that consumer's next reclaim
/// scan handles them — each exactly once, nothing left pending, one consumer per live replica.
/// Alone in its group, it keeps them instead (deleting its consumer would drop them).
#[tokio::test]
async fn a_worker_stopping_with_entries_waiting_for_a_retry_hands_them_over() {
    let redis = RedisServer::start();
    let keys = Keys::new(unique_prefix());
    let stream_key = keys.stream("handover");
    let mut conn = redis.connection();
    let ids = publish_n(&redis, &keys, "handover", 5).await;
    let config = |consumer: &str| {
        let mut cfg = WorkerConfig::new(keys.clone(), "g", &["handover"]);
        cfg.consumer = consumer.into();
        cfg.block = Duration::from_millis(100);
        // Replicas of one service share it; entries would be reclaimable 30 s after their last
        // delivery on their own.
        cfg.processing_timeout = Duration::from_secs(30);
        // The retries would come long after the stop.
        cfg.retry_base = Duration::from_secs(60);
        cfg.retry_max = Duration::from_secs(60);
        cfg
    };
    let failing = AlwaysRetry::default();
    let all_failed = || async { failing.attempts.load(Ordering::SeqCst) >= 5 };

    // Alone: it stops holding all five, and keeps its consumer.
    let leaver = InProcessWorker::start(&redis, config("leaver"), failing.clone());
    wait_until(Duration::from_secs(15), "five failed attempts", all_failed).await;
    leaver.stop().await;
    assert_eq!(consumers(&mut conn, &stream_key, "g").await, ["leaver"]);
    assert_eq!(pending(&mut conn, &stream_key, "g").await.len(), 5);

    // Started again under its name, it re-reads what it held and fails it again; now another
    // replica is there when it stops.
    failing.attempts.store(0, Ordering::SeqCst);
    let leaver = InProcessWorker::start(&redis, config("leaver"), failing.clone());
    wait_until(Duration::from_secs(15), "five failed attempts", all_failed).await;
    let recorder = Recorder::default();
    let stayer = InProcessWorker::start(&redis, config("stayer"), recorder.clone());
    wait_until(Duration::from_secs(15), "the stayer joins", || {
        let mut conn = conn.clone();
        let stream_key = stream_key.clone();
        async move { consumers(&mut conn, &stream_key, "g").await.len() == 2 }
    })
    .await;
    leaver.stop().await;
    assert_eq!(consumers(&mut conn, &stream_key, "g").await, ["stayer"]);

    // Idle for the processing timeout already: the stayer's first reclaim scan (every 10 s at
    // its 30 s timeout) takes them, long before they would be idle that long on their own.
    wait_drained(&mut conn, &stream_key, "g", Duration::from_secs(20)).await;
    let counts = recorder.counts();
    assert_eq!(counts.len(), ids.len(), "{counts:?}");
    assert!(counts.values().all(|n| *n == 1), "{counts:?}");
    stayer.stop().await;
    assert!(consumers(&mut conn, &stream_key, "g").await.is_empty());
}
