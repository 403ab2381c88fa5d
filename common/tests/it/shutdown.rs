//! Graceful shutdown: on SIGTERM a worker stops reading, lets its in-flight handlers finish,
//! acknowledges them and exits 0; what it never read stays in the group for others.

use std::time::{Duration, Instant};

use common::{
    Keys,
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
