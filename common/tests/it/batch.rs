//! Transactional batches (`WorkerConfig::batch_transactions`): the entries of one read are applied
//! in one database transaction — first with no savepoints; if a handler fails or rolls back, the
//! batch is rolled back and applied again with a savepoint per handler. A handler that fails
//! rolls back its own work only and is retried on its own; everything else commits once and is
//! acknowledged after the commit. (A crash in the middle of a batch is in `crash.rs`.)

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use common::{
    Keys,
    db::{
        self, inbox,
        migration::RuntimeMigrator,
        outbox::{self, OutboxNotifier},
    },
    runtime::{BatchTransactions, HandleError, Handler, Message, WorkerConfig, WorkerStats},
    testing::{RedisServer, TestDb, unique_prefix, wait_drained},
};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};

use crate::support::{InProcessWorker, effect_counts, pending, publish_n};

/// Writes one `batch_effects` row per event in its transaction, and a follow-up event
/// (`effect-done`, caused by it) in the outbox; fails (after writing) as many calls of an event as
/// `failures` says; for an event in `abandon`, writes its row and then drops its transaction
/// uncommitted and returns `Ok` (its effect is never applied).
#[derive(Clone)]
pub(crate) struct Effects {
    db: DatabaseConnection,
    failures: Arc<Mutex<HashMap<String, u32>>>,
    abandon: Arc<Vec<String>>,
    calls: Arc<Mutex<HashMap<String, u32>>>,
}

impl Effects {
    pub(crate) fn new(db: &DatabaseConnection) -> Self {
        Self {
            db: db.clone(),
            failures: Arc::default(),
            abandon: Arc::default(),
            calls: Arc::default(),
        }
    }

    pub(crate) fn calls(&self, event_id: &str) -> u32 {
        self.calls
            .lock()
            .unwrap()
            .get(event_id)
            .copied()
            .unwrap_or(0)
    }
}

impl Handler for Effects {
    async fn handle(&self, message: &Message) -> Result<(), HandleError> {
        let event_id = message.envelope.event_id.to_string();
        *self
            .calls
            .lock()
            .unwrap()
            .entry(event_id.clone())
            .or_default() += 1;
        let Some(txn) = inbox::begin_once(&self.db, "g", &message.envelope).await? else {
            return Ok(());
        };
        let sql = match self.db.get_database_backend() {
            DbBackend::Postgres => "INSERT INTO batch_effects (event_id) VALUES ($1)",
            _ => "INSERT INTO batch_effects (event_id) VALUES (?)",
        };
        txn.execute_raw(Statement::from_sql_and_values(
            self.db.get_database_backend(),
            sql,
            [event_id.clone().into()],
        ))
        .await?;
        let follow_up = message
            .envelope
            .follow_up("effect-done", "test", &serde_json::json!({}))
            .map_err(anyhow::Error::from)?;
        outbox::enqueue(&txn, "effect-done", &follow_up).await?;
        let fail = match self.failures.lock().unwrap().get_mut(&event_id) {
            Some(left) if *left > 0 => {
                *left -= 1;
                true
            }
            _ => false,
        };
        if fail {
            // Dropped without commit: its work (the row and the inbox record) rolls back.
            return Err(HandleError::retry(anyhow::anyhow!("injected failure")));
        }
        if self.abandon.contains(&event_id) {
            drop(txn);
            return Ok(());
        }
        txn.commit().await?;
        Ok(())
    }
}

/// A Redis server with `n` events on `stream`, and a database with the `batch_effects` table.
pub(crate) async fn with_published(
    stream: &str,
    n: usize,
) -> (RedisServer, Keys, TestDb, DatabaseConnection) {
    let redis = RedisServer::start();
    let keys = Keys::new(unique_prefix());
    let test_db = TestDb::new().await;
    let db = test_db.connect::<RuntimeMigrator>().await;
    db.execute_unprepared("CREATE TABLE batch_effects (event_id TEXT NOT NULL)")
        .await
        .unwrap();
    publish_n(&redis, &keys, stream, n).await;
    (redis, keys, test_db, db)
}

#[tokio::test]
async fn a_failed_handler_in_a_batch_rolls_back_alone_and_the_rest_commits_once() {
    const N: usize = 150;
    let (redis, keys, _test_db, db) = with_published("batched", N).await;
    let mut conn = redis.connection();
    let event_ids = event_ids(&mut conn, &keys.stream("batched")).await;
    assert_eq!(event_ids.len(), N);
    // Three events fail twice (so both in the first try of their batch and in its replay with
    // savepoints), one of them the very first.
    let failing = [&event_ids[0], &event_ids[7], &event_ids[40]];
    let handler = Effects::new(&db);
    handler
        .failures
        .lock()
        .unwrap()
        .extend(failing.iter().map(|id| (id.to_string(), 2)));

    let worker = start_batched(&redis, &keys, "batched", &db, handler.clone());
    wait_drained(
        &mut conn,
        &keys.stream("batched"),
        "g",
        Duration::from_secs(20),
    )
    .await;

    let effects = effect_counts(&db, "batch_effects").await;
    assert_eq!(effects.len(), N, "every event has its effect");
    assert!(
        effects.values().all(|&n| n == 1),
        "and only one: {effects:?}"
    );
    for id in &event_ids {
        let calls = handler.calls(id);
        if failing.contains(&id) {
            assert!(
                (3..=4).contains(&calls),
                "{id}: {calls} calls (a failing event: two failures, then applied, in a first try \
                 and maybe a replay)"
            );
        } else {
            assert!(
                (1..=2).contains(&calls),
                "{id}: {calls} calls (at most a first try and a replay)"
            );
        }
    }
    assert!(handler.failures.lock().unwrap().values().all(|&n| n == 0));
    let stats = &worker.stats;
    assert!(
        WorkerStats::get(&stats.retried) >= 3,
        "each failing event was retried"
    );
    assert!(WorkerStats::get(&stats.batch_replays) >= 1);
    assert!(
        pending(&mut conn, &keys.stream("batched"), "g")
            .await
            .is_empty()
    );
    worker.stop().await;
    let _ = db::ping(&db).await;
}

/// A handler that ends without committing (and without an error) inside a batch joined without
/// savepoints: its writes cannot be undone alone, so the batch is rolled back and applied again
/// with savepoints. Its event has no effect, every other event exactly one.
#[tokio::test]
async fn a_handler_that_abandons_its_transaction_in_a_batch_undoes_only_its_own_work() {
    const N: usize = 60;
    let (redis, keys, _test_db, db) = with_published("abandoned", N).await;
    let mut conn = redis.connection();
    let event_ids = event_ids(&mut conn, &keys.stream("abandoned")).await;
    let abandoned = [event_ids[3].clone(), event_ids[33].clone()];
    let mut handler = Effects::new(&db);
    handler.abandon = Arc::new(abandoned.to_vec());

    let worker = start_batched(&redis, &keys, "abandoned", &db, handler.clone());
    wait_drained(
        &mut conn,
        &keys.stream("abandoned"),
        "g",
        Duration::from_secs(20),
    )
    .await;

    let effects = effect_counts(&db, "batch_effects").await;
    assert_eq!(effects.len(), N - abandoned.len(), "{effects:?}");
    assert!(effects.values().all(|&n| n == 1), "{effects:?}");
    for id in &abandoned {
        assert!(!effects.contains_key(id), "{id} was abandoned");
        assert!(!inbox::contains(&db, "g", id).await.unwrap());
    }
    assert!(WorkerStats::get(&worker.stats.batch_replays) >= 1);
    assert_eq!(WorkerStats::get(&worker.stats.retried), 0);
    assert!(
        pending(&mut conn, &keys.stream("abandoned"), "g")
            .await
            .is_empty()
    );
    worker.stop().await;
}

pub(crate) async fn event_ids(conn: &mut common::connection::Conn, stream: &str) -> Vec<String> {
    crate::support::stream_entries(conn, stream)
        .await
        .into_iter()
        .map(|(_, fields)| fields["event_id"].clone())
        .collect()
}

/// A worker of group `g` on `stream` applying its entries in batch transactions on `db`.
pub(crate) fn start_batched(
    redis: &RedisServer,
    keys: &Keys,
    stream: &str,
    db: &DatabaseConnection,
    handler: Effects,
) -> InProcessWorker {
    let mut cfg = WorkerConfig::new(keys.clone(), "g", &[stream]);
    cfg.retry_base = Duration::from_millis(50);
    cfg.batch_transactions = Some(BatchTransactions {
        db: db.clone(),
        notifier: OutboxNotifier::default(),
    });
    InProcessWorker::start(redis, cfg, handler)
}

async fn rows(db: &DatabaseConnection) -> i64 {
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT COUNT(*) AS n FROM after_commit_rows",
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get("", "n").unwrap()
}

/// `db::after_commit` runs its work at once outside a batch; inside one it waits for the batch's
/// commit (a handler's `commit` there only ends its share of the batch), so the work sees, on
/// another connection, what the batch wrote. `after_commit_once` runs one work per key a batch.
#[tokio::test]
async fn after_commit_work_runs_once_the_batch_transaction_has_committed() {
    let test_db = TestDb::new().await;
    let db = test_db.connect::<RuntimeMigrator>().await;
    db.execute_unprepared("CREATE TABLE after_commit_rows (n INTEGER NOT NULL)")
        .await
        .unwrap();
    let seen: Arc<Mutex<Vec<i64>>> = Arc::default();
    let seen_once: Arc<Mutex<Vec<i64>>> = Arc::default();
    let record = |seen: &Arc<Mutex<Vec<i64>>>| {
        let (db, seen) = (db.clone(), seen.clone());
        async move {
            let n = rows(&db).await;
            seen.lock().unwrap().push(n);
        }
    };
    let insert = "INSERT INTO after_commit_rows (n) VALUES (1)";

    // Outside a batch: right away.
    let txn = db::begin(&db).await.unwrap();
    txn.execute_unprepared(insert).await.unwrap();
    txn.commit().await.unwrap();
    db::after_commit(record(&seen)).await;
    assert_eq!(*seen.lock().unwrap(), vec![1]);

    // Inside a batch: three handlers each commit their savepoint and defer their work.
    let batch = db::BatchTxn::begin(&db).await.unwrap();
    db::in_batch_transaction(&batch, async {
        for _ in 0..3 {
            let txn = db::begin(&db).await.unwrap();
            txn.execute_unprepared(insert).await.unwrap();
            txn.commit().await.unwrap();
            db::after_commit(record(&seen)).await;
            db::after_commit_once("count", record(&seen_once)).await;
        }
    })
    .await;
    assert_eq!(
        *seen.lock().unwrap(),
        vec![1],
        "nothing deferred runs before the batch commits"
    );
    batch.commit().await.unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        vec![1, 4, 4, 4],
        "each deferred work ran once, after the commit, and saw all of the batch"
    );
    assert_eq!(
        *seen_once.lock().unwrap(),
        vec![4],
        "work deferred under one key ran once for the whole batch"
    );
    assert_eq!(rows(&db).await, 4);
}

/// Reads that arrive while a batch transaction runs wait and go into the next one together:
/// 400 entries read 4 at a time are applied in far fewer transactions than the 100 reads, and
/// none holds more than `MAX_PER_TRANSACTION` entries.
#[tokio::test]
async fn reads_that_arrive_during_a_batch_transaction_are_applied_together_in_the_next() {
    const N: usize = 400;
    let (redis, keys, _test_db, db) = with_published("coalesced", N).await;
    let mut conn = redis.connection();
    let handler = Slow(Effects::new(&db));
    let mut cfg = WorkerConfig::new(keys.clone(), "g", &["coalesced"]);
    cfg.batch = 4;
    cfg.concurrency = 256;
    cfg.batch_transactions = Some(BatchTransactions {
        db: db.clone(),
        notifier: OutboxNotifier::default(),
    });
    let worker = InProcessWorker::start(&redis, cfg, handler);
    wait_drained(
        &mut conn,
        &keys.stream("coalesced"),
        "g",
        Duration::from_secs(30),
    )
    .await;
    let effects = effect_counts(&db, "batch_effects").await;
    assert_eq!(effects.len(), N);
    assert!(effects.values().all(|&n| n == 1), "{effects:?}");
    let transactions = WorkerStats::get(&worker.stats.batch_transactions);
    let most = common::runtime::batch::MAX_PER_TRANSACTION;
    assert!(
        N.div_ceil(most) as u64 <= transactions && transactions <= (N / 4 / 2) as u64,
        "{transactions} batch transactions for {} reads of 4 (at most {most} entries each)",
        N / 4
    );
    worker.stop().await;
}

/// [`Effects`], taking 2 ms inside its transaction.
#[derive(Clone)]
struct Slow(Effects);

impl Handler for Slow {
    async fn handle(&self, message: &Message) -> Result<(), HandleError> {
        tokio::time::sleep(Duration::from_millis(2)).await;
        self.0.handle(message).await
    }
}
