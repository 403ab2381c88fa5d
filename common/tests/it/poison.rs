//! Poison: entries that are not valid envelopes go to the dead-letter stream on their first
//! delivery, the handler never sees them, and the good entries around them are all handled.

use std::{collections::HashMap, time::Duration};

use common::{
    Envelope, Keys,
    runtime::{Publisher, WorkerConfig, WorkerStats, dead_letter::fields},
    testing::{RedisServer, unique_prefix, wait_drained, wait_until, xlen},
};

use crate::support::{InProcessWorker, Recorder, pending, publish_n, stream_entries};

/// The fields of a fresh valid envelope, changed by `change`; returns its event id too.
fn envelope_fields(
    change: impl FnOnce(&mut Vec<(&'static str, String)>),
) -> (String, Vec<(&'static str, String)>) {
    let env = Envelope::new(
        "shipment",
        "test",
        "corr",
        "",
        &serde_json::json!({"n": -1}),
    )
    .unwrap();
    let mut fields = env.to_fields();
    change(&mut fields);
    (env.event_id.to_string(), fields)
}

fn set(fields: &mut [(&'static str, String)], name: &str, value: &str) {
    let slot = fields.iter_mut().find(|(k, _)| *k == name).unwrap();
    slot.1 = value.to_owned();
}

#[tokio::test]
async fn poison_entries_are_dead_lettered_at_once_and_good_ones_handled() {
    let redis = RedisServer::start();
    let keys = Keys::new(unique_prefix());
    let mut conn = redis.connection();
    let stream_key = keys.stream("shipments");
    let publisher = Publisher::new(conn.clone(), keys.clone());

    let bad_json = envelope_fields(|f| set(f, "data", "{not json"));
    let missing = envelope_fields(|f| f.retain(|(k, _)| *k != "producer"));
    let future_version = envelope_fields(|f| set(f, "version", "2"));
    // Poison interleaved with good entries.
    let mut good = publish_n(&redis, &keys, "shipments", 3).await;
    let mut poison: HashMap<String, (&str, String)> = HashMap::new();
    for (what, (event_id, fields)) in [
        ("bad json", &bad_json),
        ("missing producer", &missing),
        ("version 2", &future_version),
    ] {
        let raw: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let id = publisher.publish_raw("shipments", &raw).await.unwrap();
        poison.insert(id, (what, event_id.clone()));
        good.extend(publish_n(&redis, &keys, "shipments", 2).await);
    }

    let recorder = Recorder::default();
    let cfg = WorkerConfig::new(keys.clone(), "shipping", &["shipments"]);
    let worker = InProcessWorker::start(&redis, cfg, recorder.clone());
    wait_drained(&mut conn, &stream_key, "shipping", Duration::from_secs(20)).await;

    // The worker keeps going after poison.
    good.extend(publish_n(&redis, &keys, "shipments", 4).await);
    wait_until(
        Duration::from_secs(20),
        "later good entries handled",
        || {
            let recorder = recorder.clone();
            let n = good.len();
            async move { recorder.counts().len() == n }
        },
    )
    .await;
    wait_drained(&mut conn, &stream_key, "shipping", Duration::from_secs(20)).await;
    let stats = worker.stats.clone();
    worker.stop().await;

    let counts = recorder.counts();
    assert_eq!(
        counts.len(),
        good.len(),
        "only good entries reach the handler"
    );
    for id in &good {
        assert_eq!(counts.get(id), Some(&1), "good event {id}");
    }
    for (what, event_id) in poison.values() {
        assert!(!counts.contains_key(event_id), "handler called for {what}");
    }

    let dead = stream_entries(&mut conn, &keys.dead_letter("shipments")).await;
    assert_eq!(dead.len(), 3);
    for (_, dl) in &dead {
        let (what, event_id) = poison
            .get(&dl[fields::ORIGIN_ID])
            .unwrap_or_else(|| panic!("unexpected dead-letter entry {dl:?}"));
        assert_eq!(
            dl[fields::DELIVERY_COUNT],
            "1",
            "{what} dead-lettered at once"
        );
        assert_eq!(dl[fields::GROUP], "shipping");
        assert_eq!(dl[fields::ORIGIN_STREAM], "shipments");
        assert_eq!(
            dl.get("event_id"),
            Some(event_id),
            "{what} keeps its fields"
        );
        let error = &dl[fields::LAST_ERROR];
        assert!(error.starts_with("poison"), "{what}: {error}");
        let reason = match *what {
            "bad json" => "data",
            "missing producer" => "producer",
            _ => "version 2",
        };
        assert!(error.contains(reason), "{what}: {error}");
    }
    assert_eq!(
        dead.iter()
            .filter(|(_, f)| f.get("data").map(String::as_str) == Some("{not json"))
            .count(),
        1
    );

    assert!(pending(&mut conn, &stream_key, "shipping").await.is_empty());
    assert_eq!(xlen(&mut conn, &stream_key).await as usize, good.len() + 3);
    assert_eq!(WorkerStats::get(&stats.poison), 3);
    assert_eq!(WorkerStats::get(&stats.dead_lettered), 3);
    assert_eq!(WorkerStats::get(&stats.retried), 0);
    assert_eq!(WorkerStats::get(&stats.handled), good.len() as u64);
}
