//! Scale: replicas of one service compete within a group (every entry handled exactly once across
//! real processes), and different groups on one stream each get every entry.

use std::time::Duration;

use common::{
    Keys,
    runtime::{Worker, WorkerConfig},
    testing::{RedisServer, group_state, unique_prefix, wait_blocked_readers, wait_drained},
};
use tokio_util::sync::CancellationToken;

use crate::support::{Recorder, counter, pending, publish_n, redis_effects, testworker};

#[tokio::test]
async fn three_worker_processes_share_ten_thousand_entries_each_applied_once() {
    const N: usize = 10_000;
    let redis = RedisServer::start();
    let keys = Keys::new(unique_prefix());
    let stream_key = keys.stream("scale");
    let consumers = ["scale-c1", "scale-c2", "scale-c3"];
    let mut workers: Vec<_> = consumers
        .iter()
        .map(|c| {
            testworker(
                &redis,
                &keys,
                &[
                    "--stream",
                    "scale",
                    "--group",
                    "g",
                    "--consumer",
                    c,
                    "--effect",
                    "redis",
                ],
            )
        })
        .collect();

    // All three are reading before anything is published. (Redis before 7.2 adds a consumer to
    // the group only when it is first delivered something, so count the blocked readers.)
    let mut conn = redis.connection();
    wait_blocked_readers(&mut conn, 3, Duration::from_secs(15)).await;

    let ids = publish_n(&redis, &keys, "scale", N).await;
    wait_drained(&mut conn, &stream_key, "g", Duration::from_secs(25)).await;

    let effects = redis_effects(&mut conn, &keys).await;
    assert_eq!(effects.len(), N, "distinct events with an effect");
    for id in &ids {
        assert_eq!(effects.get(id), Some(&1), "effects of event {id}");
    }
    assert!(pending(&mut conn, &stream_key, "g").await.is_empty());
    let state = group_state(&mut conn, &stream_key, "g").await.unwrap();
    assert_eq!(state.consumers, 3, "{state:?}");
    let mut total = 0;
    for c in consumers {
        let handled = counter(&mut conn, &keys, &format!("handled:{c}")).await;
        assert!(handled > 0, "consumer {c} handled nothing");
        total += handled;
    }
    assert_eq!(total, N as i64, "handled across the three consumers");

    for w in &workers {
        w.sigterm();
    }
    for w in &mut workers {
        let status = w.wait_exit(Duration::from_secs(10)).await;
        assert_eq!(
            status.code(),
            Some(0),
            "exit status after SIGTERM: {status:?}"
        );
    }
}

/// Connections whose last command is `XREADGROUP`: one per running worker.
#[tokio::test]
async fn every_group_on_a_stream_gets_every_entry() {
    let redis = RedisServer::start();
    let keys = Keys::new(unique_prefix());
    let stream_key = keys.stream("fanout");
    let shutdown = CancellationToken::new();
    let mut running = Vec::new();
    let mut recorders = Vec::new();
    for group in ["billing", "shipping"] {
        let recorder = Recorder::default();
        let cfg = WorkerConfig::new(keys.clone(), group, &["fanout"]);
        let worker = Worker::new(redis.target(), cfg, recorder.clone());
        running.push(tokio::spawn(worker.run(shutdown.clone())));
        recorders.push((group, recorder));
    }

    let ids = publish_n(&redis, &keys, "fanout", 2_000).await;
    let mut conn = redis.connection();
    for (group, _) in &recorders {
        wait_drained(&mut conn, &stream_key, group, Duration::from_secs(20)).await;
    }
    shutdown.cancel();
    for task in running {
        task.await.unwrap().unwrap();
    }

    for (group, recorder) in &recorders {
        let counts = recorder.counts();
        assert_eq!(counts.len(), ids.len(), "events handled by {group}");
        for id in &ids {
            assert_eq!(counts.get(id), Some(&1), "{group} handled {id}");
        }
        assert!(pending(&mut conn, &stream_key, group).await.is_empty());
    }
}
