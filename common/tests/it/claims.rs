//! Claims: entries pending on a dead consumer are reclaimed, a pending entry whose payload was
//! trimmed is dropped and counted once, and a live consumer with a slow handler keeps its claim so
//! that nobody runs the same event twice at once.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use common::{
    Keys,
    runtime::{HandleError, Handler, Message, WorkerConfig, WorkerStats},
    testing::{RedisServer, unique_prefix, wait_drained, wait_until},
};

use crate::support::{
    InProcessWorker, Recorder, command_calls, pending, publish_n, stream_entries,
};

#[tokio::test]
async fn pending_entry_whose_payload_was_trimmed_is_dropped_and_counted_once() {
    let redis = RedisServer::start();
    let keys = Keys::new(unique_prefix());
    let mut conn = redis.connection();
    let stream_key = keys.stream("parcels");
    let event_ids = publish_n(&redis, &keys, "parcels", 5).await;

    // A consumer reads everything, then dies without acking.
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(&stream_key)
        .arg("depot")
        .arg("0")
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: redis::Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg("depot")
        .arg("ghost")
        .arg("COUNT")
        .arg(10)
        .arg("STREAMS")
        .arg(&stream_key)
        .arg(">")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(pending(&mut conn, &stream_key, "depot").await.len(), 5);
    // The oldest entry's payload is trimmed away while it is still pending.
    let trimmed: u64 = redis::cmd("XTRIM")
        .arg(&stream_key)
        .arg("MAXLEN")
        .arg("=")
        .arg(4)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(trimmed, 1);
    assert_eq!(stream_entries(&mut conn, &stream_key).await.len(), 4);

    let recorder = Recorder::default();
    let mut cfg = WorkerConfig::new(keys.clone(), "depot", &["parcels"]);
    cfg.processing_timeout = Duration::from_millis(200);
    cfg.block = Duration::from_millis(200);
    let worker = InProcessWorker::start(&redis, cfg, recorder.clone());
    let stats = worker.stats.clone();

    wait_until(
        Duration::from_secs(20),
        "surviving entries reclaimed and handled, trimmed one dropped",
        || {
            let mut conn = conn.clone();
            let stats = stats.clone();
            let stream_key = stream_key.clone();
            async move {
                WorkerStats::get(&stats.trimmed) >= 1
                    && WorkerStats::get(&stats.handled) >= 4
                    && pending(&mut conn, &stream_key, "depot").await.is_empty()
            }
        },
    )
    .await;
    // Several more reclaim scans: the trimmed entry is not found (and counted) again.
    let (scans, _) = command_calls(&mut conn, "xautoclaim").await;
    wait_until(Duration::from_secs(20), "more reclaim scans", || {
        let mut conn = conn.clone();
        async move { command_calls(&mut conn, "xautoclaim").await.0 >= scans + 5 }
    })
    .await;
    worker.stop().await;

    assert_eq!(WorkerStats::get(&stats.trimmed), 1);
    let counted: Option<i64> = redis::cmd("GET")
        .arg(keys.trimmed_counter("depot"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(counted, Some(1));
    let counts = recorder.counts();
    assert!(
        !counts.contains_key(&event_ids[0]),
        "handler called for the trimmed entry"
    );
    for id in &event_ids[1..] {
        assert_eq!(counts.get(id), Some(&1), "surviving event {id}");
    }
    assert_eq!(counts.len(), 4);
    assert_eq!(WorkerStats::get(&stats.reclaimed), 4);
    assert_eq!(WorkerStats::get(&stats.dead_lettered), 0);
    assert!(pending(&mut conn, &stream_key, "depot").await.is_empty());
}

/// Takes far longer than the processing timeout; tracks, per event, how many runs are going on at
/// once (and the most ever seen) and how many runs there were in all.
#[derive(Clone, Default)]
struct SlowHandler {
    state: Arc<Mutex<SlowState>>,
}

#[derive(Default)]
struct SlowState {
    running: HashMap<String, u64>,
    max_running: HashMap<String, u64>,
    runs: HashMap<String, u64>,
}

impl Handler for SlowHandler {
    async fn handle(&self, message: &Message) -> Result<(), HandleError> {
        let event_id = message.envelope.event_id.to_string();
        {
            let mut s = self.state.lock().unwrap();
            *s.runs.entry(event_id.clone()).or_default() += 1;
            let now = {
                let r = s.running.entry(event_id.clone()).or_default();
                *r += 1;
                *r
            };
            let max = s.max_running.entry(event_id.clone()).or_default();
            *max = (*max).max(now);
        }
        tokio::time::sleep(Duration::from_millis(1500)).await;
        *self
            .state
            .lock()
            .unwrap()
            .running
            .get_mut(&event_id)
            .unwrap() -= 1;
        Ok(())
    }
}

#[tokio::test]
async fn slow_handler_keeps_its_claim_so_no_event_runs_twice_at_once() {
    let redis = RedisServer::start();
    let keys = Keys::new(unique_prefix());
    let mut conn = redis.connection();
    let stream_key = keys.stream("reports");
    let handler = SlowHandler::default();
    let config = |consumer: &str| {
        let mut cfg = WorkerConfig::new(keys.clone(), "reporting", &["reports"]);
        cfg.consumer = consumer.to_owned();
        cfg.processing_timeout = Duration::from_millis(300);
        cfg
    };
    let a = InProcessWorker::start(&redis, config("reporting-a"), handler.clone());
    let b = InProcessWorker::start(&redis, config("reporting-b"), handler.clone());
    let event_ids = publish_n(&redis, &keys, "reports", 6).await;

    wait_until(Duration::from_secs(20), "every event ran", || {
        let state = handler.state.clone();
        async move { state.lock().unwrap().runs.len() == 6 }
    })
    .await;
    wait_drained(&mut conn, &stream_key, "reporting", Duration::from_secs(20)).await;
    let (stats_a, stats_b) = (a.stats.clone(), b.stats.clone());
    // Stopping waits for every handler still running, so any second run would be counted.
    a.stop().await;
    b.stop().await;

    let (max_running, runs) = {
        let state = handler.state.lock().unwrap();
        (state.max_running.clone(), state.runs.clone())
    };
    for id in &event_ids {
        assert_eq!(max_running.get(id), Some(&1), "concurrent runs of {id}");
        assert_eq!(runs.get(id), Some(&1), "runs of {id}");
    }
    assert_eq!(runs.len(), 6);
    for (name, stats) in [("a", &stats_a), ("b", &stats_b)] {
        assert_eq!(
            WorkerStats::get(&stats.lost_claims),
            0,
            "lost claims of {name}"
        );
        assert_eq!(WorkerStats::get(&stats.reclaimed), 0, "reclaims by {name}");
    }
    assert_eq!(
        WorkerStats::get(&stats_a.handled) + WorkerStats::get(&stats_b.handled),
        6
    );
    assert!(
        pending(&mut conn, &stream_key, "reporting")
            .await
            .is_empty()
    );
}
