//! The Redis idempotency records of a group (`runtime::idempotency`): within the retention a
//! redelivered `event_id` is skipped; after it the record is no longer consulted, and every
//! record key carries an expiry, so Redis drops it by age without a sweeper.

use std::time::Duration;

use common::connection::Conn;
use common::{
    Envelope, Keys,
    runtime::{Publisher, WorkerConfig, WorkerStats},
    testing::{RedisServer, unique_prefix, wait_drained, wait_until},
};

use crate::support::{InProcessWorker, Recorder, pending};

/// The group's generation keys (`<prefix>idem:<group>:<n>`) as (generation, key), oldest first.
async fn generation_keys(conn: &mut Conn, keys: &Keys, group: &str) -> Vec<(i64, String)> {
    let base = keys.idempotency(group);
    let found: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{base}:*"))
        .query_async(conn)
        .await
        .unwrap();
    let mut found: Vec<(i64, String)> = found
        .into_iter()
        .map(|k| (k[base.len() + 1..].parse().unwrap(), k))
        .collect();
    found.sort();
    found
}

async fn int(conn: &mut Conn, cmd: &str, key: &str) -> i64 {
    redis::cmd(cmd).arg(key).query_async(conn).await.unwrap()
}

async fn members(conn: &mut Conn, key: &str) -> Vec<String> {
    redis::cmd("SMEMBERS")
        .arg(key)
        .query_async(conn)
        .await
        .unwrap()
}

/// Redis's clock in ms (`TIME`): expiries are judged by it.
async fn redis_now_ms(conn: &mut Conn) -> i64 {
    let (s, us): (i64, i64) = redis::cmd("TIME").query_async(conn).await.unwrap();
    s * 1000 + us / 1000
}

#[tokio::test]
async fn redelivered_event_is_skipped_within_the_retention_and_its_record_expires_after_it() {
    let redis = RedisServer::start();
    let keys = Keys::new(unique_prefix());
    let mut conn = redis.connection();
    let stream_key = keys.stream("refunds");
    let group = "bank";
    let retention = Duration::from_secs(3);
    let window_ms = retention.as_millis() as i64;
    let publisher = Publisher::new(conn.clone(), keys.clone());
    let envelope =
        Envelope::new("refunds", "test", "corr", "", &serde_json::json!({"n": 1})).unwrap();
    let event_id = envelope.event_id.to_string();
    // A producer retry: the same envelope (same event_id) added again, under a new stream id.
    let publish_again = || {
        let publisher = publisher.clone();
        let envelope = envelope.clone();
        async move { publisher.publish("refunds", &envelope).await.unwrap() }
    };

    let recorder = Recorder::default();
    let mut cfg = WorkerConfig::new(keys.clone(), group, &["refunds"]);
    cfg.idempotency_retention = retention;
    cfg.block = Duration::from_millis(100);
    let worker = InProcessWorker::start(&redis, cfg, recorder.clone());
    let stats = worker.stats.clone();
    let watch = conn.clone();
    let handled = |n: u64, what: &'static str| {
        let stats = stats.clone();
        let conn = watch.clone();
        let stream_key = stream_key.clone();
        async move {
            let mut conn = conn;
            wait_drained(&mut conn, &stream_key, group, Duration::from_secs(20)).await;
            wait_until(Duration::from_secs(20), what, || {
                let stats = stats.clone();
                async move {
                    WorkerStats::get(&stats.handled) + WorkerStats::get(&stats.duplicates) == n
                }
            })
            .await;
        }
    };

    publish_again().await;
    handled(1, "first delivery handled").await;
    assert_eq!(recorder.counts().get(&event_id), Some(&1));

    // The record: one generation set holding the event id, expiring by itself two windows after
    // its generation began (plus the minute of clock slack `runtime::idempotency` allows).
    let recorded = generation_keys(&mut conn, &keys, group).await;
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    let (generation, first_key) = recorded[0].clone();
    assert_eq!(members(&mut conn, &first_key).await, [event_id.as_str()]);
    let expires_at = int(&mut conn, "PEXPIRETIME", &first_key).await;
    assert_eq!(expires_at, (generation + 2) * window_ms + 60_000);
    let now = redis_now_ms(&mut conn).await;
    assert!(
        expires_at - now <= 2 * window_ms + 60_000,
        "expires {} ms from now",
        expires_at - now
    );
    // The record is consulted until two windows after its generation began: at least `retention`.
    let forgotten_at = (generation + 2) * window_ms;

    // Within the retention, the producer retry is acknowledged without running the handler.
    publish_again().await;
    handled(2, "redelivery within the retention skipped").await;
    let now = redis_now_ms(&mut conn).await;
    assert!(
        now < forgotten_at,
        "the redelivery came {} ms after the record was forgotten: machine too slow for this test",
        now - forgotten_at
    );
    assert_eq!(WorkerStats::get(&stats.duplicates), 1);
    assert_eq!(recorder.counts().get(&event_id), Some(&1));

    // After it, the record is no longer consulted: the same event_id is handled again.
    let wait = forgotten_at - redis_now_ms(&mut conn).await + 20;
    tokio::time::sleep(Duration::from_millis(wait.max(0) as u64)).await;
    publish_again().await;
    handled(3, "redelivery after the retention handled").await;
    assert_eq!(WorkerStats::get(&stats.duplicates), 1);
    assert_eq!(recorder.counts().get(&event_id), Some(&2));
    worker.stop().await;

    // The old generation is left to expire (only the clock slack remains of its lifetime); the
    // new record lives in a later generation with its own expiry. No key lives forever.
    let now = redis_now_ms(&mut conn).await;
    let first_ttl = int(&mut conn, "PTTL", &first_key).await;
    assert!(
        first_ttl > 0 && first_ttl <= expires_at - now + 5,
        "PTTL of the old generation: {first_ttl}"
    );
    assert!(
        first_ttl <= 60_000 + 5,
        "PTTL of the old generation: {first_ttl}"
    );
    let all = generation_keys(&mut conn, &keys, group).await;
    assert_eq!(all.len(), 2, "{all:?}");
    let (later, later_key) = &all[1];
    assert!(*later >= generation + 2, "{all:?}");
    assert_eq!(members(&mut conn, later_key).await, [event_id.as_str()]);
    assert_eq!(
        int(&mut conn, "PEXPIRETIME", later_key).await,
        (later + 2) * window_ms + 60_000
    );
    for (_, key) in &all {
        assert!(int(&mut conn, "PTTL", key).await > 0, "{key} has no expiry");
    }
}

/// One read holding duplicates, poison (one with a valid `event_id`, one without), a replay for
/// another group and fresh events: the idempotency check (sent before the envelopes are
/// validated) skips exactly the duplicates; poison is dead-lettered, the replay acknowledged, the
/// fresh events handled once.
#[tokio::test]
async fn a_mixed_read_skips_exactly_its_duplicates() {
    let redis = RedisServer::start();
    let keys = Keys::new(unique_prefix());
    let mut conn = redis.connection();
    let stream_key = keys.stream("refunds");
    let group = "bank";
    let publisher = Publisher::new(conn.clone(), keys.clone());
    let envelope = || Envelope::new("refunds", "test", "corr", "", &serde_json::json!({"n": 1}));
    let (a, b, c, d) = (
        envelope().unwrap(),
        envelope().unwrap(),
        envelope().unwrap(),
        envelope().unwrap(),
    );
    let recorder = Recorder::default();
    let start = || {
        let mut cfg = WorkerConfig::new(keys.clone(), group, &["refunds"]);
        cfg.block = Duration::from_millis(100);
        cfg.batch = 64;
        InProcessWorker::start(&redis, cfg, recorder.clone())
    };

    // a and b are processed (and recorded) first.
    for env in [&a, &b] {
        publisher.publish("refunds", env).await.unwrap();
    }
    let worker = start();
    wait_drained(&mut conn, &stream_key, group, Duration::from_secs(20)).await;
    worker.stop().await;

    // Then, with no worker running, one read's worth of entries.
    type Fields = Vec<(&'static str, String)>;
    let raw = |env: &Envelope, change: &dyn Fn(&mut Fields)| {
        let mut fields = env.to_fields();
        change(&mut fields);
        fields
    };
    let set = |name: &'static str, value: &'static str| {
        move |fields: &mut Fields| {
            fields.iter_mut().find(|(k, _)| *k == name).unwrap().1 = value.to_owned()
        }
    };
    let poison_valid_id = envelope().unwrap();
    let poison_bad_id = envelope().unwrap();
    let other_group = envelope().unwrap();
    let entries = [
        raw(&a, &|_| {}),
        raw(&poison_valid_id, &set("version", "99")),
        raw(&c, &|_| {}),
        raw(&other_group, &|f| {
            f.push(("replay_for_group", "someone-else".to_owned()))
        }),
        raw(&b, &|_| {}),
        raw(&poison_bad_id, &set("event_id", "not-a-uuid")),
        raw(&d, &|_| {}),
    ];
    for fields in &entries {
        let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        publisher.publish_raw("refunds", &fields).await.unwrap();
    }
    let worker = start();
    let stats = worker.stats.clone();
    wait_drained(&mut conn, &stream_key, group, Duration::from_secs(20)).await;
    worker.stop().await;

    let counts = recorder.counts();
    for env in [&a, &b, &c, &d] {
        assert_eq!(
            counts.get(&env.event_id.to_string()),
            Some(&1),
            "{counts:?}"
        );
    }
    assert_eq!(counts.len(), 4, "{counts:?}");
    assert_eq!(WorkerStats::get(&stats.duplicates), 2);
    assert_eq!(WorkerStats::get(&stats.poison), 2);
    assert_eq!(WorkerStats::get(&stats.skipped_other_group), 1);
    assert_eq!(WorkerStats::get(&stats.handled), 2);
    // Dead letters are acknowledged with their dead-letter write, the rest by the acker.
    assert_eq!(WorkerStats::get(&stats.dead_lettered), 2);
    assert_eq!(WorkerStats::get(&stats.acked), 5);
    assert!(pending(&mut conn, &stream_key, group).await.is_empty());
}
