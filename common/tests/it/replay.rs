//! Dead-letter replay: the replayed entry is processed by the group that failed it, and only by
//! that group; a dead-letter entry is replayed at most once.

use std::time::Duration;

use common::{
    Keys,
    envelope::REPLAY_FOR_GROUP_FIELD,
    runtime::{
        HandleError, Handler, Message, WorkerConfig, WorkerStats,
        dead_letter::{self, Replay, fields},
    },
    testing::{TestRedis, unique_prefix, wait_drained, wait_until, xlen},
};

use crate::support::{
    InProcessWorker, Recorder, on_one_server_and_a_cluster, pending, publish_n, stream_entries,
};

/// Records every event, but rejects one event permanently (the bug being fixed later).
#[derive(Clone)]
struct RejectsOne {
    bad_event: String,
    recorder: Recorder,
}

impl Handler for RejectsOne {
    async fn handle(&self, message: &Message) -> Result<(), HandleError> {
        if message.envelope.event_id.to_string() == self.bad_event {
            return Err(HandleError::dead_letter(anyhow::anyhow!(
                "invoice total does not add up"
            )));
        }
        self.recorder.handle(message).await
    }
}

on_one_server_and_a_cluster!(replay_is_processed_by_the_failed_group_only_and_only_once);
async fn replay_is_processed_by_the_failed_group_only_and_only_once(redis: &dyn TestRedis) {
    let keys = Keys::new(unique_prefix());
    let mut conn = redis.connection();
    let stream_key = keys.stream("invoices");
    let ids = publish_n(&redis, &keys, "invoices", 3).await;
    let bad = ids[1].clone();

    // Group A: replays must be skipped by the marker alone, not by the idempotency set.
    let a_handler = Recorder::default();
    let mut a_cfg = WorkerConfig::new(keys.clone(), "archive", &["invoices"]);
    a_cfg.idempotency = false;
    let a = InProcessWorker::start(&redis, a_cfg, a_handler.clone());
    let b = InProcessWorker::start(
        &redis,
        WorkerConfig::new(keys.clone(), "accounting", &["invoices"]),
        RejectsOne {
            bad_event: bad.clone(),
            recorder: Recorder::default(),
        },
    );
    wait_drained(&mut conn, &stream_key, "archive", Duration::from_secs(20)).await;
    wait_drained(
        &mut conn,
        &stream_key,
        "accounting",
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(WorkerStats::get(&b.stats.dead_lettered), 1);
    b.stop().await;

    let dead = stream_entries(&mut conn, &keys.dead_letter("invoices")).await;
    assert_eq!(dead.len(), 1);
    let (dl_id, dl) = &dead[0];
    assert_eq!(dl[fields::GROUP], "accounting");
    assert_eq!(dl["event_id"], bad);
    assert_eq!(dl[fields::DELIVERY_COUNT], "1");

    // The fix is deployed: group B runs a handler that accepts the event, then it is replayed.
    let fixed = Recorder::default();
    let b_fixed = InProcessWorker::start(
        &redis,
        WorkerConfig::new(keys.clone(), "accounting", &["invoices"]),
        fixed.clone(),
    );
    let replayed = dead_letter::replay(&mut conn, &keys, "invoices", dl_id)
        .await
        .unwrap();
    let Replay::Replayed { new_id } = replayed else {
        panic!("first replay: {replayed:?}");
    };
    let entries = stream_entries(&mut conn, &stream_key).await;
    let (_, copy) = entries.iter().find(|(id, _)| *id == new_id).unwrap();
    assert_eq!(copy["event_id"], bad);
    assert_eq!(copy[REPLAY_FOR_GROUP_FIELD], "accounting");
    assert!(!copy.keys().any(|k| k.starts_with("dlq_")));

    wait_until(
        Duration::from_secs(20),
        "replay handled by accounting",
        || {
            let fixed = fixed.clone();
            let bad = bad.clone();
            async move { fixed.counts().get(&bad) == Some(&1) }
        },
    )
    .await;
    wait_drained(
        &mut conn,
        &stream_key,
        "accounting",
        Duration::from_secs(20),
    )
    .await;
    wait_drained(&mut conn, &stream_key, "archive", Duration::from_secs(20)).await;

    // Replaying the same dead-letter entry again does nothing.
    let again = dead_letter::replay(&mut conn, &keys, "invoices", dl_id)
        .await
        .unwrap();
    assert_eq!(again, Replay::AlreadyReplayed);
    assert_eq!(xlen(&mut conn, &stream_key).await, 4);
    assert_eq!(xlen(&mut conn, &keys.dead_letter("invoices")).await, 1);

    let (a_stats, b_stats) = (a.stats.clone(), b_fixed.stats.clone());
    a.stop().await;
    b_fixed.stop().await;

    assert_eq!(
        fixed.counts().len(),
        1,
        "the fixed group handled only the replay"
    );
    assert_eq!(WorkerStats::get(&b_stats.handled), 1);
    assert_eq!(WorkerStats::get(&b_stats.skipped_other_group), 0);
    let a_counts = a_handler.counts();
    for id in &ids {
        assert_eq!(a_counts.get(id), Some(&1), "archive handled {id}");
    }
    assert_eq!(WorkerStats::get(&a_stats.handled), 3);
    assert_eq!(WorkerStats::get(&a_stats.skipped_other_group), 1);
    assert_eq!(WorkerStats::get(&a_stats.duplicates), 0);
    for group in ["archive", "accounting"] {
        assert!(pending(&mut conn, &stream_key, group).await.is_empty());
    }
}
