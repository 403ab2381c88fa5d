//! The worker's housekeeping timer (`WorkerConfig::housekeeping_interval`): consumers gone for long
//! with nothing pending are removed from the group, one with pending entries never is; and the
//! periodic safe trim shortens a consumed stream but never removes an entry some group, the
//! worker's own included, has not acknowledged.
//!
//! Each step waits for a state, then for a few more housekeeping runs (counted by Redis's
//! `INFO commandstats`), and asserts the state did not change: no sleeps sized to the timer.

use std::{collections::HashMap, sync::Arc, time::Duration};

use common::connection::Conn;
use common::{
    Keys,
    runtime::{HandleError, Handler, Message, WorkerConfig, WorkerStats, redis_io},
    testing::{RedisServer, unique_prefix, wait_drained, wait_until, xlen},
};
use tokio::sync::Semaphore;

use crate::support::{
    InProcessWorker, Recorder, command_calls, pending, publish_n, stream_entries,
};

/// Consumers of a group (`XINFO CONSUMERS`): name → (pending, idle ms).
async fn consumers(conn: &mut Conn, stream_key: &str, group: &str) -> HashMap<String, (i64, i64)> {
    let reply: Vec<redis::Value> = redis::cmd("XINFO")
        .arg("CONSUMERS")
        .arg(stream_key)
        .arg(group)
        .query_async(conn)
        .await
        .unwrap();
    reply
        .into_iter()
        .map(|c| {
            let info = redis_io::flat_map(c);
            let name = redis_io::value_str(info.get("name")).unwrap();
            let pending = redis_io::value_int(info.get("pending")).unwrap();
            let idle = redis_io::value_int(info.get("idle")).unwrap();
            (name, (pending, idle))
        })
        .collect()
}

/// Waits until Redis has served `runs` more calls of `command` (e.g. `xinfo|consumers`) than now:
/// each housekeeping run makes one per stream, and the test itself makes none meanwhile.
async fn wait_calls(conn: &Conn, command: &str, runs: u64) {
    let (before, _) = command_calls(&mut conn.clone(), command).await;
    let what = format!("{runs} more {command} calls (housekeeping runs)");
    wait_until(Duration::from_secs(20), &what, || {
        let mut conn = conn.clone();
        async move { command_calls(&mut conn, command).await.0 >= before + runs }
    })
    .await;
}

async fn xgroup(conn: &mut Conn, args: &[&str]) {
    let _: redis::Value = redis::cmd("XGROUP")
        .arg(args)
        .query_async(conn)
        .await
        .unwrap();
}

/// `XREADGROUP` of up to `count` new entries as `consumer`, not acknowledged; returns their ids.
async fn read_unacked(
    conn: &mut Conn,
    stream_key: &str,
    group: &str,
    consumer: &str,
    count: usize,
) -> Vec<String> {
    let v: redis::Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg(group)
        .arg(consumer)
        .arg("COUNT")
        .arg(count)
        .arg("STREAMS")
        .arg(stream_key)
        .arg(">")
        .query_async(conn)
        .await
        .unwrap();
    redis_io::parse_read_reply(v)
        .into_iter()
        .map(|e| e.id)
        .collect()
}

async fn xack(conn: &mut Conn, stream_key: &str, group: &str, ids: &[String]) {
    let acked: usize = redis::cmd("XACK")
        .arg(stream_key)
        .arg(group)
        .arg(ids)
        .query_async(conn)
        .await
        .unwrap();
    assert_eq!(acked, ids.len());
}

#[tokio::test]
async fn consumers_gone_for_long_are_removed_but_never_one_with_pending_entries() {
    let redis = RedisServer::start();
    let keys = Keys::new(unique_prefix());
    let mut conn = redis.connection();
    let stream_key = keys.stream("visits");
    let group = "tally";
    xgroup(&mut conn, &["CREATE", &stream_key, group, "0", "MKSTREAM"]).await;
    publish_n(&redis, &keys, "visits", 3).await;
    // `holder` takes every entry and never acknowledges them; two consumers never read at all.
    let held = read_unacked(&mut conn, &stream_key, group, "holder", 10).await;
    assert_eq!(held.len(), 3);
    for name in ["gone-1", "gone-2"] {
        xgroup(&mut conn, &["CREATECONSUMER", &stream_key, group, name]).await;
    }
    let config = |consumer: &str, gc_idle: Duration| {
        let mut cfg = WorkerConfig::new(keys.clone(), group, &["visits"]);
        cfg.consumer = consumer.to_owned();
        cfg.consumer_gc_idle = gc_idle;
        cfg.housekeeping_interval = Duration::from_millis(50);
        // Nobody reclaims the holder's entries: it keeps them pending throughout.
        cfg.processing_timeout = Duration::from_secs(3600);
        cfg.block = Duration::from_millis(100);
        cfg
    };

    // A worker that removes consumers only after an hour removes none of them, however often
    // it looks. It handles two entries, so that it joins the group (Redis 7.0 adds a consumer on
    // its first delivery).
    let first = Recorder::default();
    let w1 = InProcessWorker::start(
        &redis,
        config("tally-w1", Duration::from_secs(3600)),
        first.clone(),
    );
    publish_n(&redis, &keys, "visits", 2).await;
    wait_until(Duration::from_secs(20), "w1 handled two entries", || {
        let stats = w1.stats.clone();
        async move { WorkerStats::get(&stats.handled) == 2 }
    })
    .await;
    wait_calls(&conn, "xinfo|consumers", 3).await;
    let names = consumers(&mut conn, &stream_key, group).await;
    for name in ["holder", "gone-1", "gone-2", "tally-w1"] {
        assert!(names.contains_key(name), "{name} removed early: {names:?}");
    }
    w1.stop().await;

    // A worker that removes consumers idle for 300 ms: the two that never read and the stopped
    // worker go; the holder, idle just as long, stays because it has entries pending.
    let gc_idle = Duration::from_millis(300);
    let second = Recorder::default();
    let mut cfg = config("tally-w2", gc_idle);
    // Long blocking reads: between them the worker itself is idle for longer than `gc_idle`.
    cfg.block = Duration::from_secs(2);
    let w2 = InProcessWorker::start(&redis, cfg, second.clone());
    publish_n(&redis, &keys, "visits", 2).await;
    wait_until(Duration::from_secs(20), "w2 handled two entries", || {
        let stats = w2.stats.clone();
        async move { WorkerStats::get(&stats.handled) == 2 }
    })
    .await;
    wait_until(
        Duration::from_secs(20),
        "idle consumers without pending entries removed",
        || {
            let mut conn = conn.clone();
            let stream_key = stream_key.clone();
            async move {
                let names = consumers(&mut conn, &stream_key, group).await;
                !["gone-1", "gone-2", "tally-w1"]
                    .iter()
                    .any(|n| names.contains_key(*n))
            }
        },
    )
    .await;
    wait_calls(&conn, "xinfo|consumers", 5).await;
    let names = consumers(&mut conn, &stream_key, group).await;
    let (holder_pending, holder_idle) = names["holder"];
    assert_eq!(holder_pending, 3, "{names:?}");
    assert!(
        holder_idle >= gc_idle.as_millis() as i64,
        "the holder is as idle as the removed ones: {names:?}"
    );
    assert_eq!(names.len(), 2, "{names:?}");
    // The worker never removes itself, though Redis counts it idle while it blocks in a read.
    wait_until(Duration::from_secs(20), "w2 idle past gc_idle", || {
        let mut conn = conn.clone();
        let stream_key = stream_key.clone();
        async move {
            consumers(&mut conn, &stream_key, group)
                .await
                .get("tally-w2")
                .is_some_and(|(_, idle)| *idle >= gc_idle.as_millis() as i64)
        }
    })
    .await;
    wait_calls(&conn, "xinfo|consumers", 2).await;
    assert!(
        consumers(&mut conn, &stream_key, group)
            .await
            .contains_key("tally-w2")
    );
    assert_eq!(
        pending(&mut conn, &stream_key, group)
            .await
            .iter()
            .map(|(id, ..)| id.clone())
            .collect::<Vec<_>>(),
        held
    );

    // Once its entries are acknowledged, the holder is just another long-gone consumer.
    xack(&mut conn, &stream_key, group, &held).await;
    wait_until(Duration::from_secs(20), "holder removed", || {
        let mut conn = conn.clone();
        let stream_key = stream_key.clone();
        async move {
            !consumers(&mut conn, &stream_key, group)
                .await
                .contains_key("holder")
        }
    })
    .await;
    wait_calls(&conn, "xinfo|consumers", 2).await;
    let names = consumers(&mut conn, &stream_key, group).await;
    assert_eq!(names.keys().collect::<Vec<_>>(), ["tally-w2"], "{names:?}");
    w2.stop().await;
    assert_eq!(first.counts().len() + second.counts().len(), 4);
}

/// Records every event, but holds one until the test releases it.
#[derive(Clone)]
struct HoldsOne {
    held_event: String,
    release: Arc<Semaphore>,
    recorder: Recorder,
}

impl Handler for HoldsOne {
    async fn handle(&self, message: &Message) -> Result<(), HandleError> {
        if message.envelope.event_id.to_string() == self.held_event {
            let _ = self.release.acquire().await.unwrap();
        }
        self.recorder.handle(message).await
    }
}

#[tokio::test]
async fn periodic_safe_trim_shortens_a_consumed_stream_and_keeps_every_unacked_entry() {
    let redis = RedisServer::start();
    let keys = Keys::new(unique_prefix());
    let mut conn = redis.connection();
    let stream_key = keys.stream("ledger");
    let event_ids = publish_n(&redis, &keys, "ledger", 20).await;
    let ids: Vec<String> = stream_entries(&mut conn, &stream_key)
        .await
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    let remaining = |conn: &Conn| {
        let mut conn = conn.clone();
        let stream_key = stream_key.clone();
        async move {
            stream_entries(&mut conn, &stream_key)
                .await
                .into_iter()
                .map(|(id, _)| id)
                .collect::<Vec<_>>()
        }
    };
    let watch = conn.clone();
    let wait_len = |n: u64, what: &'static str| {
        let conn = watch.clone();
        let stream_key = stream_key.clone();
        async move {
            wait_until(Duration::from_secs(20), what, || {
                let mut conn = conn.clone();
                let stream_key = stream_key.clone();
                async move {
                    let len = xlen(&mut conn, &stream_key).await;
                    assert!(
                        len >= n,
                        "trimmed past an unacknowledged entry: {len} < {n}"
                    );
                    len == n
                }
            })
            .await;
        }
    };

    // Another group, `audit`, read 15 entries and acknowledged 12: 12..15 are pending, 15.. unread.
    xgroup(&mut conn, &["CREATE", &stream_key, "audit", "0"]).await;
    assert_eq!(
        read_unacked(&mut conn, &stream_key, "audit", "audit-1", 15).await,
        ids[..15]
    );
    xack(&mut conn, &stream_key, "audit", &ids[..12]).await;

    // The worker trims with no retention floor every 50 ms, and holds entry 5 in its handler.
    let release = Arc::new(Semaphore::new(0));
    let handler = HoldsOne {
        held_event: event_ids[5].clone(),
        release: release.clone(),
        recorder: Recorder::default(),
    };
    let mut cfg = WorkerConfig::new(keys.clone(), "books", &["ledger"]);
    cfg.stream_retention = Some(Duration::ZERO);
    cfg.housekeeping_interval = Duration::from_millis(50);
    let worker = InProcessWorker::start(&redis, cfg, handler.clone());
    wait_until(
        Duration::from_secs(20),
        "all but the held entry handled",
        || {
            let recorder = handler.recorder.clone();
            async move { recorder.counts().len() == 19 }
        },
    )
    .await;

    // The trim point is the worker's own entry in flight: 0..5 go.
    wait_len(15, "stream trimmed to the worker's pending entry").await;
    wait_calls(&conn, "xinfo|groups", 5).await;
    assert_eq!(remaining(&conn).await, ids[5..]);
    let books_pending = pending(&mut conn, &stream_key, "books").await;
    assert_eq!(books_pending.len(), 1);
    assert_eq!(books_pending[0].0, ids[5]);

    // Once the worker acknowledges it, the trim point is audit's oldest pending entry: 5..12 go.
    release.add_permits(1);
    wait_drained(&mut conn, &stream_key, "books", Duration::from_secs(20)).await;
    wait_len(8, "stream trimmed to audit's pending entries").await;
    wait_calls(&conn, "xinfo|groups", 5).await;
    assert_eq!(remaining(&conn).await, ids[12..]);
    let audit_pending: Vec<String> = pending(&mut conn, &stream_key, "audit")
        .await
        .into_iter()
        .map(|(id, ..)| id)
        .collect();
    assert_eq!(audit_pending, ids[12..15]);

    // Audit acknowledges them: what it has not read yet stays.
    xack(&mut conn, &stream_key, "audit", &ids[12..15]).await;
    wait_len(5, "stream trimmed to what audit has not read").await;
    wait_calls(&conn, "xinfo|groups", 5).await;
    assert_eq!(remaining(&conn).await, ids[15..]);

    // Audit reads and acknowledges the rest: every group is past every entry.
    let rest = read_unacked(&mut conn, &stream_key, "audit", "audit-1", 100).await;
    assert_eq!(rest, ids[15..]);
    xack(&mut conn, &stream_key, "audit", &rest).await;
    wait_len(0, "consumed stream trimmed to nothing").await;

    let stats = worker.stats.clone();
    worker.stop().await;
    let counts = handler.recorder.counts();
    assert_eq!(counts.len(), 20);
    assert!(event_ids.iter().all(|id| counts.get(id) == Some(&1)));
    assert_eq!(WorkerStats::get(&stats.trimmed), 0);
}
