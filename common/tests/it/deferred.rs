//! What the handlers of a batch joined without savepoints leave to the batch
//! (`common::db::write`, "Batches"): their inbox records and outbox rows, written in one
//! statement each just before the batch commits. An event applied before is found then, and the
//! batch is applied again with savepoints, so it still has no second effect; an event twice in one
//! batch is applied once; a batch whose deferred rows were not written never commits; and the
//! relay, which a handler's notification does not wake inside a batch, is woken by the batch's
//! commit.

use std::{collections::HashMap, time::Duration};

use common::{
    Envelope,
    db::{self, inbox, migration::RuntimeMigrator, outbox},
    runtime::{BatchTransactions, Publisher, WorkerConfig, WorkerStats},
    testing::{TestDb, wait_drained, xlen},
};
use sea_orm::{ConnectionTrait, DatabaseConnection, EntityTrait, Statement};

use crate::{
    batch::{Effects, event_ids, start_batched, with_published},
    support::{InProcessWorker, effect_counts, pending},
};

/// The outbox's rows by the event that caused them (their envelope's `causation_id`).
async fn outbox_rows_by_cause(db: &DatabaseConnection) -> HashMap<String, usize> {
    let mut by_cause = HashMap::new();
    for row in outbox::Entity::find().all(db).await.unwrap() {
        let fields: Vec<(String, String)> = serde_json::from_str(&row.fields).unwrap();
        let cause = fields
            .into_iter()
            .find(|(name, _)| name == "causation_id")
            .map(|(_, value)| value)
            .unwrap();
        *by_cause.entry(cause).or_default() += 1;
    }
    by_cause
}

/// Events recorded in the inbox before (their Redis idempotency record lost, say) reach the
/// handlers of a joined batch, which apply them again: writing the batch's inbox records finds
/// them, the batch is rolled back and applied again with savepoints, and they have no second
/// effect and no second follow-up, while every other event has exactly one of each. An entry
/// published twice back to back (the same event id) is applied once.
#[tokio::test]
async fn an_event_applied_before_or_twice_in_a_batch_has_one_effect_and_one_follow_up() {
    const N: usize = 80;
    let (redis, keys, _test_db, db) = with_published("deferred", N).await;
    let mut conn = redis.connection();
    let stream = keys.stream("deferred");
    let ids = event_ids(&mut conn, &stream).await;
    let applied_before = [&ids[10], &ids[41]];
    for id in applied_before {
        assert!(inbox::record(&db, "g", id).await.unwrap());
    }
    // The same event twice in a row, with nothing between: one read takes both.
    let publisher = Publisher::new(conn.clone(), keys.clone());
    let twice = Envelope::new("deferred", "test", "c", "", &serde_json::json!({})).unwrap();
    for _ in 0..2 {
        publisher.publish("deferred", &twice).await.unwrap();
    }
    let twice = twice.event_id.to_string();

    let handler = Effects::new(&db);
    let worker = start_batched(&redis, &keys, "deferred", &db, handler.clone());
    wait_drained(&mut conn, &stream, "g", Duration::from_secs(20)).await;

    let effects = effect_counts(&db, "batch_effects").await;
    let follow_ups = outbox_rows_by_cause(&db).await;
    for id in ids.iter().chain([&twice]) {
        let expected = usize::from(!applied_before.contains(&id));
        assert_eq!(
            effects.get(id).copied().unwrap_or(0) as usize,
            expected,
            "{id}: effects"
        );
        assert_eq!(
            follow_ups.get(id).copied().unwrap_or(0),
            expected,
            "{id}: follow-ups"
        );
        assert!(inbox::contains(&db, "g", id).await.unwrap(), "{id}");
    }
    assert_eq!(effects.len(), N + 1 - applied_before.len());
    assert_eq!(follow_ups.len(), N + 1 - applied_before.len());
    for id in applied_before {
        assert!(
            handler.calls(id) >= 1,
            "{id} reached its handler (only the inbox knew it)"
        );
    }
    assert!(WorkerStats::get(&worker.stats.batch_replays) >= 1);
    assert_eq!(WorkerStats::get(&worker.stats.retried), 0);
    assert_eq!(WorkerStats::get(&worker.stats.dead_lettered), 0);
    assert!(pending(&mut conn, &stream, "g").await.is_empty());
    worker.stop().await;
}

/// A batch whose handlers left inbox records or outbox rows to it refuses to commit until they
/// are written (the runtime writes them first): committing would mark the events applied by
/// nothing, or drop their follow-ups. Nothing of the batch is committed.
#[tokio::test]
async fn a_batch_with_unwritten_deferred_rows_does_not_commit() {
    let test_db = TestDb::new().await;
    let db = test_db.connect::<RuntimeMigrator>().await;
    db.execute_unprepared("CREATE TABLE deferred_effects (n INTEGER NOT NULL)")
        .await
        .unwrap();
    let source = Envelope::new("x", "test", "c", "", &serde_json::json!({})).unwrap();
    let follow_up = source
        .follow_up("y", "test", &serde_json::json!({}))
        .unwrap();

    for defer_inbox in [true, false] {
        let batch = db::BatchTxn::begin(&db).await.unwrap();
        db::in_batch_transaction(&batch, async {
            let txn = if defer_inbox {
                inbox::begin_once(&db, "g", &source).await.unwrap().unwrap()
            } else {
                db::begin(&db).await.unwrap()
            };
            txn.execute_unprepared("INSERT INTO deferred_effects (n) VALUES (1)")
                .await
                .unwrap();
            if !defer_inbox {
                outbox::enqueue(&txn, "y", &follow_up).await.unwrap();
            }
            txn.commit().await.unwrap();
        })
        .await;
        let error = batch.commit().await.unwrap_err();
        assert!(error.to_string().contains("not written"), "{error}");
    }
    let effects = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT COUNT(*) AS n FROM deferred_effects",
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(effects.try_get::<i64>("", "n").unwrap(), 0);
    assert!(
        !inbox::contains(&db, "g", &source.event_id.to_string())
            .await
            .unwrap()
    );
    assert_eq!(outbox::unsent(&db).await.unwrap(), 0);
}

/// The relay sweeps only every hour here, so only a notification makes it publish: the follow-ups
/// the batch's handlers enqueue (and their notifications, which do nothing inside the batch) go
/// out once the batch commits, which wakes the relay.
#[tokio::test]
async fn the_follow_ups_of_a_batch_are_published_when_the_batch_commits() {
    const N: usize = 50;
    let (redis, keys, _test_db, db) = with_published("notified", N).await;
    let mut conn = redis.connection();
    let mut relay =
        outbox::OutboxRelay::new(db.clone(), Publisher::new(conn.clone(), keys.clone()));
    relay.sweep_every = Duration::from_secs(3600);
    let notifier = relay.notifier();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let relay_task = tokio::spawn(relay.run(shutdown.clone()));

    let mut cfg = WorkerConfig::new(keys.clone(), "g", &["notified"]);
    cfg.batch_transactions = Some(BatchTransactions {
        db: db.clone(),
        notifier: notifier.clone(),
    });
    let handler = Notifying(Effects::new(&db), notifier);
    let worker = InProcessWorker::start(&redis, cfg, handler);
    wait_drained(
        &mut conn,
        &keys.stream("notified"),
        "g",
        Duration::from_secs(20),
    )
    .await;

    let published = keys.stream("effect-done");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while xlen(&mut conn, &published).await < N as u64 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} of {N} follow-ups published",
            xlen(&mut conn, &published).await
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(outbox::unsent(&db).await.unwrap(), 0);
    assert!(WorkerStats::get(&worker.stats.batch_transactions) >= 1);
    worker.stop().await;
    shutdown.cancel();
    relay_task.await.unwrap();
}

/// [`Effects`], notifying the relay after each commit as the services' handlers do.
#[derive(Clone)]
struct Notifying(Effects, outbox::OutboxNotifier);

impl common::runtime::Handler for Notifying {
    async fn handle(
        &self,
        message: &common::runtime::Message,
    ) -> Result<(), common::runtime::HandleError> {
        self.0.handle(message).await?;
        self.1.notify();
        Ok(())
    }
}
