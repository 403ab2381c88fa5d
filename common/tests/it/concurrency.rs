//! Bounded in-flight handlers: however entries reach the worker (new reads, retries, reclaims
//! from a dead consumer), no more than `concurrency` handlers run at once, and every entry is
//! still handled once.

use std::{
    collections::{HashMap, HashSet},
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use common::{
    Keys,
    runtime::{HandleError, Handler, Message, WorkerConfig, WorkerStats, redis_io},
    testing::{RedisServer, unique_prefix, wait_drained},
};

use crate::support::{InProcessWorker, pending, publish_n};

/// A slow handler that counts how many of its runs overlap (and the most ever seen), and fails
/// the first run of some events so that they come back as retries.
#[derive(Clone, Default)]
struct Gauge {
    running: Arc<AtomicUsize>,
    high_water: Arc<AtomicUsize>,
    fail_first: Arc<HashSet<String>>,
    runs: Arc<Mutex<HashMap<String, u64>>>,
    successes: Arc<Mutex<HashMap<String, u64>>>,
}

impl Handler for Gauge {
    async fn handle(&self, message: &Message) -> Result<(), HandleError> {
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.high_water.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(40)).await;
        let event_id = message.envelope.event_id.to_string();
        let run = {
            let mut runs = self.runs.lock().unwrap();
            let run = runs.entry(event_id.clone()).or_default();
            *run += 1;
            *run
        };
        self.running.fetch_sub(1, Ordering::SeqCst);
        if run == 1 && self.fail_first.contains(&event_id) {
            return Err(HandleError::retry(anyhow::anyhow!("not yet")));
        }
        *self.successes.lock().unwrap().entry(event_id).or_default() += 1;
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_more_handlers_run_at_once_than_the_concurrency_and_each_entry_is_handled_once() {
    let redis = RedisServer::start();
    let keys = Keys::new(unique_prefix());
    let mut conn = redis.connection();
    let stream_key = keys.stream("jobs");
    let group = "runners";
    let concurrency = 4;
    let event_ids = publish_n(&redis, &keys, "jobs", 60).await;

    // A consumer that died holding the first 8 entries: the worker reclaims them.
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(&stream_key)
        .arg(group)
        .arg("0")
        .query_async(&mut conn)
        .await
        .unwrap();
    let dead: redis::Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg(group)
        .arg("dead")
        .arg("COUNT")
        .arg(8)
        .arg("STREAMS")
        .arg(&stream_key)
        .arg(">")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(redis_io::parse_read_reply(dead).len(), 8);

    // Every fifth event fails once and is retried.
    let fail_first: HashSet<String> = event_ids.iter().step_by(5).cloned().collect();
    let handler = Gauge {
        fail_first: Arc::new(fail_first.clone()),
        ..Gauge::default()
    };
    let mut cfg = WorkerConfig::new(keys.clone(), group, &["jobs"]);
    cfg.concurrency = concurrency;
    // A read could carry four times as many entries as may run.
    cfg.batch = 16;
    cfg.processing_timeout = Duration::from_millis(300);
    cfg.retry_base = Duration::from_millis(20);
    cfg.block = Duration::from_millis(100);
    let worker = InProcessWorker::start(&redis, cfg, handler.clone());
    let stats = worker.stats.clone();
    wait_drained(&mut conn, &stream_key, group, Duration::from_secs(30)).await;
    // Stopping waits for every handler still running.
    worker.stop().await;

    assert_eq!(
        handler.high_water.load(Ordering::SeqCst),
        concurrency,
        "most handlers running at once"
    );
    assert_eq!(handler.running.load(Ordering::SeqCst), 0);
    let successes = handler.successes.lock().unwrap().clone();
    let runs = handler.runs.lock().unwrap().clone();
    assert_eq!(successes.len(), event_ids.len());
    for id in &event_ids {
        assert_eq!(successes.get(id), Some(&1), "successful runs of {id}");
        let expected_runs = if fail_first.contains(id) { 2 } else { 1 };
        assert_eq!(runs.get(id), Some(&expected_runs), "runs of {id}");
    }
    assert_eq!(WorkerStats::get(&stats.reclaimed), 8);
    assert_eq!(WorkerStats::get(&stats.retried), fail_first.len() as u64);
    assert_eq!(WorkerStats::get(&stats.handled), event_ids.len() as u64);
    assert_eq!(WorkerStats::get(&stats.dead_lettered), 0);
    assert!(pending(&mut conn, &stream_key, group).await.is_empty());
}

/// The reader sends the next read before it takes a full reply apart only for as many entries as
/// there are permits that reply will not need, so it never stalls waiting for permits it gave to
/// a read ahead (an earlier version of the read ahead did, with `concurrency == batch`: the first
/// reply waited for permits held by the second read, which waited for the first). With room for
/// several batches it reads ahead. In every case each entry is handled once and no more than
/// `concurrency` handlers run at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_ahead_only_with_spare_permits_and_never_stalls() {
    let redis = RedisServer::start();
    let mut conn = redis.connection();
    let batch = 8;
    // Whether it must read ahead (below that, it depends on how fast handlers finish).
    for (concurrency, must_read_ahead) in
        [(8, false), (9, false), (15, false), (16, false), (40, true)]
    {
        let keys = Keys::new(unique_prefix());
        let stream_key = keys.stream("jobs");
        let event_ids = publish_n(&redis, &keys, "jobs", 400).await;
        let handler = Gauge::default();
        let mut cfg = WorkerConfig::new(keys.clone(), "runners", &["jobs"]);
        cfg.concurrency = concurrency;
        cfg.batch = batch;
        cfg.block = Duration::from_millis(100);
        let worker = InProcessWorker::start(&redis, cfg, handler.clone());
        let stats = worker.stats.clone();
        wait_drained(&mut conn, &stream_key, "runners", Duration::from_secs(30)).await;
        worker.stop().await;

        let runs = handler.runs.lock().unwrap().clone();
        assert_eq!(runs.len(), event_ids.len(), "concurrency {concurrency}");
        assert!(runs.values().all(|n| *n == 1), "concurrency {concurrency}");
        assert!(
            handler.high_water.load(Ordering::SeqCst) <= concurrency,
            "concurrency {concurrency}: {} at once",
            handler.high_water.load(Ordering::SeqCst)
        );
        assert_eq!(WorkerStats::get(&stats.handled), 400);
        assert_eq!(WorkerStats::get(&stats.acked), 400);
        let ahead = WorkerStats::get(&stats.reads_ahead);
        if must_read_ahead {
            assert!(ahead > 0, "concurrency {concurrency}: no read ahead");
        }
        assert!(pending(&mut conn, &stream_key, "runners").await.is_empty());
    }
}
