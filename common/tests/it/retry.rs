//! Retries: a retryable failure is redelivered after growing backoff, counted by Redis's own
//! delivery counter, and after `max_deliveries` moved to the dead-letter stream (and acked); a
//! failure that clears up has its effect once; a failure of an entry acknowledged meanwhile is
//! dropped.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use common::connection::Conn;
use common::{
    Envelope, Keys,
    runtime::{
        HandleError, Handler, Message, Publisher, WorkerConfig, WorkerStats, dead_letter::fields,
    },
    testing::{RedisServer, TestRedis, unique_prefix, wait_drained, wait_until, xlen},
};

use crate::support::{
    InProcessWorker, command_calls, on_one_server_and_a_cluster, pending, publish_n, stream_entries,
};

/// Always fails with a retryable error; records when each attempt started and the delivery count
/// Redis reported for the entry at that moment.
#[derive(Clone)]
struct AlwaysRetry {
    conn: Conn,
    stream_key: String,
    group: String,
    attempts: Arc<Mutex<Vec<(Instant, u64)>>>,
}

impl Handler for AlwaysRetry {
    async fn handle(&self, message: &Message) -> Result<(), HandleError> {
        let at = Instant::now();
        let deliveries = pending(&mut self.conn.clone(), &self.stream_key, &self.group)
            .await
            .into_iter()
            .find(|(id, ..)| *id == message.id)
            .map_or(0, |(_, _, _, n)| n);
        self.attempts.lock().unwrap().push((at, deliveries));
        Err(HandleError::retry(anyhow::anyhow!(
            "ledger unavailable on delivery {deliveries}"
        )))
    }
}

on_one_server_and_a_cluster!(failing_entry_is_retried_with_growing_backoff_then_dead_lettered);
async fn failing_entry_is_retried_with_growing_backoff_then_dead_lettered(redis: &dyn TestRedis) {
    let keys = Keys::new(unique_prefix());
    let mut conn = redis.connection();
    let stream_key = keys.stream("payments");
    let envelope = Envelope::new(
        "payment-requested",
        "test",
        "corr-retry",
        "",
        &serde_json::json!({"amount": 12}),
    )
    .unwrap();
    let entry_id = Publisher::new(conn.clone(), keys.clone())
        .publish("payments", &envelope)
        .await
        .unwrap();

    let base = Duration::from_millis(200);
    let mut cfg = WorkerConfig::new(keys.clone(), "billing", &["payments"]);
    cfg.retry_base = base;
    cfg.retry_max = Duration::from_secs(10);
    cfg.max_deliveries = 5;
    let consumer = cfg.consumer.clone();
    let handler = AlwaysRetry {
        conn: conn.clone(),
        stream_key: stream_key.clone(),
        group: "billing".into(),
        attempts: Arc::default(),
    };
    let started = chrono::Utc::now();
    let worker = InProcessWorker::start(&redis, cfg, handler.clone());

    wait_until(Duration::from_secs(20), "entry dead-lettered", || {
        let mut conn = conn.clone();
        let key = keys.dead_letter("payments");
        async move { xlen(&mut conn, &key).await == 1 }
    })
    .await;
    let stats = worker.stats.clone();
    // Stopping waits for every task, so no later attempt can sneak in after the asserts.
    worker.stop().await;

    let attempts = handler.attempts.lock().unwrap().clone();
    let deliveries: Vec<u64> = attempts.iter().map(|(_, n)| *n).collect();
    assert_eq!(
        deliveries,
        vec![1, 2, 3, 4, 5],
        "one handler call per delivery, counted by Redis (XPENDING)"
    );
    let gaps: Vec<Duration> = attempts.windows(2).map(|w| w[1].0 - w[0].0).collect();
    for (i, gap) in gaps.iter().enumerate() {
        // After delivery n = i + 1 the delay is drawn from [w/2, w], w = base·2^(n-1).
        let lower = base * 2u32.pow(i as u32) / 2;
        assert!(
            *gap >= lower,
            "gap after delivery {}: {gap:?} < {lower:?} (all gaps {gaps:?})",
            i + 1
        );
    }
    assert!(
        gaps[3] > gaps[0] * 2,
        "backoff grows: last gap {:?}, first gap {:?}",
        gaps[3],
        gaps[0]
    );

    // The dead-letter entry: the original envelope plus where, who, how often, why and when.
    let dead = stream_entries(&mut conn, &keys.dead_letter("payments")).await;
    assert_eq!(dead.len(), 1);
    let (_, dl) = &dead[0];
    for (name, value) in envelope.to_fields() {
        assert_eq!(dl.get(name), Some(&value), "original field {name}");
    }
    for name in fields::ALL {
        assert!(dl.contains_key(name), "dead-letter field {name} missing");
    }
    assert_eq!(dl[fields::ORIGIN_STREAM], "payments");
    assert_eq!(dl[fields::ORIGIN_ID], entry_id);
    assert_eq!(dl[fields::GROUP], "billing");
    assert_eq!(dl[fields::CONSUMER], consumer);
    assert_eq!(dl[fields::DELIVERY_COUNT], "5");
    assert!(
        dl[fields::LAST_ERROR].contains("ledger unavailable on delivery 5"),
        "last error: {}",
        dl[fields::LAST_ERROR]
    );
    let failed_at = chrono::DateTime::parse_from_rfc3339(&dl[fields::FAILED_AT])
        .expect("dlq_failed_at is RFC 3339");
    assert!(failed_at >= started - chrono::Duration::seconds(1));
    assert!(failed_at <= chrono::Utc::now());
    assert!(!dl.contains_key("replay_for_group"));

    // Acked at the origin; nothing handled, four retries, one dead-letter.
    assert!(pending(&mut conn, &stream_key, "billing").await.is_empty());
    assert_eq!(xlen(&mut conn, &stream_key).await, 1, "origin entry kept");
    assert_eq!(WorkerStats::get(&stats.handled), 0);
    assert_eq!(WorkerStats::get(&stats.retried), 4);
    assert_eq!(WorkerStats::get(&stats.dead_lettered), 1);
    assert_eq!(WorkerStats::get(&stats.poison), 0);
}

/// Fails the first two deliveries of every event, then applies it. With `panics`, the first
/// failure is a panic, after the handler has waited once (so it is not the first poll that
/// panics); with `panics_at_once` too, in the first poll.
#[derive(Clone, Default)]
struct FailsTwice {
    panics: bool,
    panics_at_once: bool,
    attempts: Arc<Mutex<HashMap<String, u64>>>,
    effects: Arc<Mutex<HashMap<String, u64>>>,
}

impl Handler for FailsTwice {
    async fn handle(&self, message: &Message) -> Result<(), HandleError> {
        let event_id = message.envelope.event_id.to_string();
        let attempt = {
            let mut attempts = self.attempts.lock().unwrap();
            let n = attempts.entry(event_id.clone()).or_default();
            *n += 1;
            *n
        };
        if attempt == 1 && self.panics {
            if !self.panics_at_once {
                tokio::task::yield_now().await;
            }
            panic!("handler bug on the first delivery of {event_id}");
        }
        if attempt <= 2 {
            return Err(HandleError::retry(anyhow::anyhow!("not yet ({attempt})")));
        }
        *self.effects.lock().unwrap().entry(event_id).or_default() += 1;
        Ok(())
    }
}

on_one_server_and_a_cluster!(entry_that_fails_twice_then_succeeds_has_its_effect_once);
async fn entry_that_fails_twice_then_succeeds_has_its_effect_once(redis: &dyn TestRedis) {
    fails_twice_then_applies(redis, FailsTwice::default()).await;
}

/// A handler's panic (here in a later poll of its future, which the runtime boxes) is a retry
/// like any other failure: the worker goes on, and the event is applied once on a later delivery.
#[tokio::test]
async fn a_handler_that_panics_is_retried_and_its_event_applied_once() {
    let redis = RedisServer::start();
    let handler = FailsTwice {
        panics: true,
        ..FailsTwice::default()
    };
    fails_twice_then_applies(&redis, handler).await;
}

/// The same when the panic comes in the first poll, which the runtime makes in the event's span
/// before deciding whether the handler has to wait.
#[tokio::test]
async fn a_handler_that_panics_in_its_first_poll_is_retried_and_its_event_applied_once() {
    let redis = RedisServer::start();
    let handler = FailsTwice {
        panics: true,
        panics_at_once: true,
        ..FailsTwice::default()
    };
    fails_twice_then_applies(&redis, handler).await;
}

/// Five events through `handler`, which fails each twice: every one applied exactly once after
/// three attempts, ten retries, nothing dead-lettered or left pending.
async fn fails_twice_then_applies(redis: &dyn TestRedis, handler: FailsTwice) {
    let keys = Keys::new(unique_prefix());
    let mut conn = redis.connection();
    let ids = publish_n(&redis, &keys, "flaky", 5).await;

    let mut cfg = WorkerConfig::new(keys.clone(), "g", &["flaky"]);
    cfg.retry_base = Duration::from_millis(50);
    cfg.max_deliveries = 5;
    let worker = InProcessWorker::start(&redis, cfg, handler.clone());

    wait_until(Duration::from_secs(20), "every event applied", || {
        let effects = handler.effects.clone();
        async move { effects.lock().unwrap().len() == 5 }
    })
    .await;
    wait_drained(
        &mut conn,
        &keys.stream("flaky"),
        "g",
        Duration::from_secs(20),
    )
    .await;
    let stats = worker.stats.clone();
    worker.stop().await;

    let attempts = handler.attempts.lock().unwrap().clone();
    let effects = handler.effects.lock().unwrap().clone();
    for id in &ids {
        assert_eq!(attempts.get(id), Some(&3), "attempts of {id}");
        assert_eq!(effects.get(id), Some(&1), "effects of {id}");
    }
    assert_eq!(common::testing::dead_letter_total(&redis, &keys).await, 0);
    assert!(
        pending(&mut conn, &keys.stream("flaky"), "g")
            .await
            .is_empty()
    );
    assert_eq!(WorkerStats::get(&stats.handled), 5);
    assert_eq!(WorkerStats::get(&stats.retried), 10);
    assert_eq!(WorkerStats::get(&stats.dead_lettered), 0);
}

/// Acknowledges its own entry (as an operator, or a consumer that took it over and finished it,
/// might meanwhile), then fails with a retryable error.
#[derive(Clone)]
struct AckedThenFails {
    conn: Conn,
    stream_key: String,
    group: String,
    calls: Arc<Mutex<u64>>,
    /// Redis's `XPENDING` count as the handler fails: what came before (a heartbeat tick while
    /// the handler ran, on a slow machine) is not the retry path's.
    xpending_at_failure: Arc<Mutex<u64>>,
}

impl Handler for AckedThenFails {
    async fn handle(&self, message: &Message) -> Result<(), HandleError> {
        *self.calls.lock().unwrap() += 1;
        let acked: i64 = redis::cmd("XACK")
            .arg(&self.stream_key)
            .arg(&self.group)
            .arg(&message.id)
            .query_async(&mut self.conn.clone())
            .await?;
        let (xpending, _) = command_calls(&mut self.conn.clone(), "xpending").await;
        *self.xpending_at_failure.lock().unwrap() = xpending;
        Err(HandleError::retry(anyhow::anyhow!(
            "failed after {acked} acknowledgement elsewhere"
        )))
    }
}

#[tokio::test]
async fn failure_of_an_entry_acknowledged_meanwhile_is_neither_retried_nor_dead_lettered() {
    let redis = RedisServer::start();
    let keys = Keys::new(unique_prefix());
    let mut conn = redis.connection();
    let stream_key = keys.stream("orders");
    publish_n(&redis, &keys, "orders", 1).await;

    let mut cfg = WorkerConfig::new(keys.clone(), "g", &["orders"]);
    cfg.retry_base = Duration::from_millis(50);
    // No heartbeat (it checks ownership with XPENDING) after the first, at start, with nothing
    // to refresh.
    cfg.processing_timeout = Duration::from_secs(60);
    let handler = AckedThenFails {
        conn: conn.clone(),
        stream_key: stream_key.clone(),
        group: "g".into(),
        calls: Arc::default(),
        xpending_at_failure: Arc::default(),
    };
    let worker = InProcessWorker::start(&redis, cfg, handler.clone());
    wait_until(Duration::from_secs(10), "handler called", || {
        let calls = handler.calls.clone();
        async move { *calls.lock().unwrap() >= 1 }
    })
    .await;
    // Many times the first retry's backoff (at most 50 ms): a retry would have come by now.
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Counted before the stop: a stopping worker checks its own pending list to leave its group.
    let (xpending_after, _) = command_calls(&mut conn, "xpending").await;
    let stats = worker.stats.clone();
    worker.stop().await;
    let xpending_before = *handler.xpending_at_failure.lock().unwrap();

    assert_eq!(*handler.calls.lock().unwrap(), 1, "not redelivered");
    assert_eq!(
        xpending_after - xpending_before,
        1,
        "one XPENDING tells that the entry is no longer pending"
    );
    assert_eq!(WorkerStats::get(&stats.retried), 0);
    assert_eq!(WorkerStats::get(&stats.dead_lettered), 0);
    assert_eq!(WorkerStats::get(&stats.handled), 0);
    assert_eq!(common::testing::dead_letter_total(&redis, &keys).await, 0);
    assert!(pending(&mut conn, &stream_key, "g").await.is_empty());
}
