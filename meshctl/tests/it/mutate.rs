//! Commands that change state: `group seek`, `trim`, `publish` — each previews without changing
//! anything, then acts with `--yes`.

use std::time::Duration;

use common::{
    Envelope, Keys,
    runtime::WorkerConfig,
    testing::{TestRedis, group_state, unique_prefix, wait_drained, xlen},
};

use crate::support::{find, ids_of, json, read_without_ack, run};
use common::stream_testing::{InProcessWorker, Recorder, publish_n, stream_entries};

fn now_ms() -> u64 {
    chrono::Utc::now().timestamp_millis() as u64
}

common::on_one_server_and_a_cluster!(group_seek_to_a_time_redelivers_exactly_the_entries_after_it);
/// Asserted on delivery, not on effect: the worker runs with `idempotency = false`, because with
/// the idempotency set on, a rewound group is *delivered* the entries again but skips (and acks)
/// events it already processed.
async fn group_seek_to_a_time_redelivers_exactly_the_entries_after_it(redis: &dyn TestRedis) {
    let keys = Keys::new(unique_prefix());
    let mut conn = redis.connection();
    let key = keys.stream("ledger");
    let mut cfg = WorkerConfig::new(keys.clone(), "proj", &["ledger"]);
    cfg.idempotency = false;

    let before = publish_n(&redis, &keys, "ledger", 3).await;
    // A time strictly after the first batch and at or before the second.
    let last_before = ids_of(&mut conn, &key).await.pop().unwrap();
    while now_ms()
        <= last_before
            .split('-')
            .next()
            .unwrap()
            .parse::<u64>()
            .unwrap()
    {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let at = now_ms();
    let after = publish_n(&redis, &keys, "ledger", 4).await;
    let ids = ids_of(&mut conn, &key).await;

    let first = InProcessWorker::start(&redis, cfg.clone(), Recorder::default());
    wait_drained(&mut conn, &key, "proj", Duration::from_secs(30)).await;
    first.stop().await;

    let time = chrono::DateTime::from_timestamp_millis(at as i64)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let preview = json(
        &redis,
        &keys,
        &["group", "seek", "ledger", "proj", "--to", &time],
    )
    .await;
    assert_eq!(preview["applied"], false);
    assert_eq!(preview["from_id"], ids[6].as_str());
    assert_eq!(preview["to_id"], format!("{}-{}", at - 1, u64::MAX));
    assert_eq!(preview["direction"], "rewind");
    assert_eq!(preview["to_deliver"], 4);
    assert_eq!(preview["redelivered"], 4);
    assert_eq!(preview["skipped"], 0);
    let state = group_state(&mut conn, &key, "proj").await.unwrap();
    assert_eq!(state.last_delivered_id, ids[6], "a preview changes nothing");

    let applied = json(
        &redis,
        &keys,
        &["group", "seek", "ledger", "proj", "--to", &time, "--yes"],
    )
    .await;
    assert_eq!(applied["applied"], true);
    let groups = json(&redis, &keys, &["groups", "ledger"]).await;
    let g = find(&groups, "group", "proj");
    assert_eq!(g["lag"], 4);
    assert_eq!(
        g["lag_source"], "redis",
        "ENTRIESREAD keeps Redis's lag known"
    );

    let again = Recorder::default();
    let second = InProcessWorker::start(&redis, cfg.clone(), again.clone());
    wait_drained(&mut conn, &key, "proj", Duration::from_secs(30)).await;
    second.stop().await;
    let seen = again.counts();
    assert_eq!(seen.len(), 4, "delivered again: {seen:?}");
    for e in &after {
        assert_eq!(seen.get(e), Some(&1), "{e} delivered once more");
    }
    for e in &before {
        assert!(
            !seen.contains_key(e),
            "{e} is before the time and not delivered again"
        );
    }

    // start and end
    let start = json(
        &redis,
        &keys,
        &["group", "seek", "ledger", "proj", "--to", "start"],
    )
    .await;
    assert_eq!(
        (start["to_id"].as_str(), start["to_deliver"].as_u64()),
        (Some("0-0"), Some(7))
    );
    let skip = json(
        &redis,
        &keys,
        &["group", "seek", "ledger", "proj", "--to", &ids[2], "--yes"],
    )
    .await;
    assert_eq!(skip["direction"], "rewind");
    let end = json(
        &redis,
        &keys,
        &["group", "seek", "ledger", "proj", "--to", "end", "--yes"],
    )
    .await;
    assert_eq!(end["direction"], "skip");
    assert_eq!(end["skipped"], 4);
    assert_eq!(end["to_deliver"], 0);
    let state = group_state(&mut conn, &key, "proj").await.unwrap();
    assert_eq!(
        (state.last_delivered_id.as_str(), state.lag),
        (ids[6].as_str(), Some(0))
    );
}

common::on_one_server_and_a_cluster!(trim_keeps_every_unacked_entry);
async fn trim_keeps_every_unacked_entry(redis: &dyn TestRedis) {
    let keys = Keys::new(unique_prefix());
    let mut conn = redis.connection();
    let key = keys.stream("audit");
    publish_n(&redis, &keys, "audit", 10).await;
    let ids = ids_of(&mut conn, &key).await;
    let done = InProcessWorker::start(
        &redis,
        WorkerConfig::new(keys.clone(), "done", &["audit"]),
        Recorder::default(),
    );
    wait_drained(&mut conn, &key, "done", Duration::from_secs(30)).await;
    done.stop().await;
    // `stuck` holds entries 0..4 and acknowledges 0, 1 and 3: entry 2 is its oldest unacked.
    read_without_ack(&mut conn, &key, "stuck", 4).await;
    let _: u64 = redis::cmd("XACK")
        .arg(&key)
        .arg("stuck")
        .arg(&[&ids[0], &ids[1], &ids[3]])
        .query_async(&mut conn)
        .await
        .unwrap();

    let kept = json(&redis, &keys, &["trim", "audit", "--retention", "1h"]).await;
    assert_eq!(kept["would_remove"], 0);
    assert!(
        kept["reason"].as_str().unwrap().contains("retention"),
        "{kept}"
    );

    let preview = json(&redis, &keys, &["trim", "audit"]).await;
    assert_eq!(preview["applied"], false);
    assert_eq!(preview["length"], 10);
    assert_eq!(preview["min_id"], ids[2].as_str());
    assert_eq!(preview["would_remove"], 2);
    assert!(
        preview["reason"].as_str().unwrap().contains("group stuck"),
        "{preview}"
    );
    assert_eq!(xlen(&mut conn, &key).await, 10);

    let out = run(&redis, &keys, &["trim", "audit", "--yes"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("trimmed 2 of 10 entries"), "{out:?}");
    let left = ids_of(&mut conn, &key).await;
    assert_eq!(left, ids[2..]);
    // Every entry still pending for `stuck` is there.
    assert!(left.contains(&ids[2]));
}

common::on_one_server_and_a_cluster!(publish_previews_then_adds_a_mesh_envelope);
async fn publish_previews_then_adds_a_mesh_envelope(redis: &dyn TestRedis) {
    let keys = Keys::new(unique_prefix());
    let mut conn = redis.connection();
    let key = keys.stream("order-placed");
    let data = r#"{"order_id":"o-1"}"#;
    let args = [
        "publish",
        "order-placed",
        "--type",
        "order-placed",
        "--data",
        data,
    ];
    let preview = json(&redis, &keys, &args).await;
    assert_eq!(preview["applied"], false);
    assert_eq!(xlen(&mut conn, &key).await, 0);

    let mut yes = args.to_vec();
    yes.push("--yes");
    let done = json(&redis, &keys, &yes).await;
    assert_eq!(done["applied"], true);
    let entries = stream_entries(&mut conn, &key).await;
    assert_eq!(entries.len(), 1);
    assert_eq!(done["id"], entries[0].0.as_str());
    let fields: Vec<(String, Vec<u8>)> = entries[0]
        .1
        .iter()
        .map(|(k, v)| (k.clone(), v.clone().into_bytes()))
        .collect();
    let env = Envelope::from_fields(&fields).expect("a valid envelope");
    assert_eq!(env.event_type, "order-placed");
    assert_eq!(env.producer, "meshctl");
    assert_eq!(env.data.get(), data);

    let bad = run(
        &redis,
        &keys,
        &["publish", "order-placed", "--data", "[1]", "--yes"],
    )
    .await;
    assert_eq!(bad.code, 65, "{bad:?}");
    assert_eq!(xlen(&mut conn, &key).await, 1);
}
