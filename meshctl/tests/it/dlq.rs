//! `dlq`: an entry dead-lettered by a failing handler is listed and shown; once the handler is
//! fixed, `dlq replay --yes` has it processed once, by that group only; a second replay does
//! nothing; `purge` previews, then deletes.

use std::time::Duration;

use common::{
    Keys,
    runtime::{HandleError, Handler, Message, WorkerConfig, WorkerStats},
    testing::{TestRedis, unique_prefix, wait_drained, wait_until, xlen},
};

use serde_json::Value;

use crate::support::{find, id_ms, ids_of, json, run};
use common::stream_testing::{InProcessWorker, Recorder, pending, publish_n, stream_entries};

/// Records every event but rejects one permanently (the bug fixed later).
#[derive(Clone)]
pub struct RejectsOne {
    pub bad_event: String,
    pub recorder: Recorder,
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

common::on_one_server_and_a_cluster!(dlq_replay_is_processed_once_by_the_failed_group_only);
async fn dlq_replay_is_processed_once_by_the_failed_group_only(redis: &dyn TestRedis) {
    let keys = Keys::new(unique_prefix());
    let mut conn = redis.connection();
    let key = keys.stream("invoices");
    let events = publish_n(&redis, &keys, "invoices", 3).await;
    let bad = events[1].clone();

    // `archive` skips the replay by its marker alone (no idempotency set to hide a mistake).
    let archive = Recorder::default();
    let mut archive_cfg = WorkerConfig::new(keys.clone(), "archive", &["invoices"]);
    archive_cfg.idempotency = false;
    let a = InProcessWorker::start(&redis, archive_cfg, archive.clone());
    let buggy = InProcessWorker::start(
        &redis,
        WorkerConfig::new(keys.clone(), "accounting", &["invoices"]),
        RejectsOne {
            bad_event: bad.clone(),
            recorder: Recorder::default(),
        },
    );
    for group in ["archive", "accounting"] {
        wait_drained(&mut conn, &key, group, Duration::from_secs(30)).await;
    }
    buggy.stop().await;

    let origin_ids = ids_of(&mut conn, &key).await;

    // ls, with each filter
    let ls = json(&redis, &keys, &["dlq", "ls"]).await;
    assert_eq!(ls.as_array().unwrap().len(), 1);
    let d = &ls[0];
    let dl_id = d["id"].as_str().unwrap().to_owned();
    assert_eq!(d["origin_stream"], "invoices");
    assert_eq!(d["origin_id"], origin_ids[1].as_str());
    assert_eq!(d["group"], "accounting");
    assert_eq!(d["event_id"], bad.as_str());
    assert_eq!(d["event_type"], "invoices");
    assert_eq!(d["delivery_count"], 1);
    assert_eq!(d["error"], "invoice total does not add up");
    assert_eq!(d["replayed"], false);
    assert!(d["consumer"].as_str().unwrap().starts_with("accounting-"));
    let failed_at = chrono::DateTime::parse_from_rfc3339(d["failed_at"].as_str().unwrap())
        .expect("failed_at is RFC 3339")
        .timestamp_millis() as u64;
    assert!(
        failed_at.abs_diff(id_ms(&dl_id)) < 1000,
        "failed_at is when it was dead-lettered: {d}"
    );
    let count = |v: Value| v.as_array().unwrap().len();
    for (filter, n) in [
        (vec!["--stream", "invoices"], 1),
        (vec!["--group", "accounting"], 1),
        (vec!["--group", "archive"], 0),
        (vec!["--stream", "invoices", "--group", "archive"], 0),
        (vec!["--error", "ADD UP"], 1),
        (vec!["--error", "timeout"], 0),
        (vec!["--since", "1h"], 1),
        (vec!["--since", "end"], 0),
        (vec!["--since", &dl_id, "--until", &dl_id], 1),
        (vec!["--until", "now"], 1),
        (vec!["--until", "start"], 0),
        (vec!["--until", "2000-01-01T00:00:00Z"], 0),
    ] {
        let mut args = vec!["dlq", "ls"];
        args.extend(filter.iter().copied());
        assert_eq!(
            count(json(&redis, &keys, &args).await),
            n,
            "dlq ls {filter:?}"
        );
    }
    // dlq show: the entry of `ls`, with every original field and the dead-letter ones.
    let show = json(&redis, &keys, &["dlq", "show", &dl_id]).await;
    assert_eq!(show, *d, "show reports what ls does");
    let fields = show["fields"].as_object().unwrap();
    assert_eq!(fields["dlq_group"], "accounting");
    assert_eq!(fields["dlq_origin_stream"], "invoices");
    assert_eq!(fields["dlq_origin_id"], origin_ids[1].as_str());
    assert_eq!(fields["dlq_delivery_count"], "1");
    assert_eq!(fields["dlq_last_error"], "invoice total does not add up");
    assert_eq!(fields["dlq_failed_at"], show["failed_at"]);
    assert_eq!(fields["dlq_consumer"], show["consumer"]);
    assert_eq!(fields["data"], r#"{"n":1}"#);
    assert_eq!(fields["event_id"], bad.as_str());
    assert_eq!(fields["producer"], "test");

    // Counts show up in streams and groups.
    let streams = json(&redis, &keys, &["streams"]).await;
    assert_eq!(find(&streams, "stream", "invoices")["dead_letters"], 1);
    let groups = json(&redis, &keys, &["groups", "invoices"]).await;
    assert_eq!(find(&groups, "group", "accounting")["dead_letters"], 1);
    assert_eq!(find(&groups, "group", "archive")["dead_letters"], 0);

    // The preview of a relative window changes nothing, and pins its selection by id.
    let preview = json(&redis, &keys, &["dlq", "replay", "--since", "1h"]).await;
    assert_eq!(preview["action"], "replay");
    assert_eq!(preview["dry_run"], true);
    assert_eq!(preview["selected"][0], *d);
    assert_eq!(preview["ids"], serde_json::json!([dl_id]));
    assert_eq!(preview["since"], dl_id.as_str());
    assert_eq!(preview["until"], dl_id.as_str());
    let pinned: Vec<String> = serde_json::from_value(preview["pinned_args"].clone()).unwrap();
    assert_eq!(
        pinned,
        [
            "dlq", "replay", "--since", &dl_id, "--until", &dl_id, "--yes"
        ]
    );
    assert_eq!(
        preview["command"],
        format!(
            "meshctl --redis-url {} --prefix {} {}",
            redis.url(),
            keys.prefix(),
            pinned.join(" ")
        ),
        "the global flags typed are repeated"
    );
    assert_eq!(preview["results"], serde_json::json!([]));
    assert_eq!(preview["replayed"], 0);
    assert_eq!(xlen(&mut conn, &key).await, 3);
    let human = run(&redis, &keys, &["dlq", "replay", "--since", "1h"]).await;
    assert!(
        human.stdout.contains(&format!("ids: {dl_id}\n")),
        "{human:?}"
    );
    assert!(
        human.stdout.contains(preview["command"].as_str().unwrap()),
        "the preview prints the pinned command: {human:?}"
    );

    // Between the preview and the operator's `--yes`, another entry fails (still inside the
    // `--since 1h` window).
    let late = publish_n(&redis, &keys, "invoices", 1).await.remove(0);
    let buggy = InProcessWorker::start(
        &redis,
        WorkerConfig::new(keys.clone(), "accounting", &["invoices"]),
        RejectsOne {
            bad_event: late.clone(),
            recorder: Recorder::default(),
        },
    );
    for group in ["archive", "accounting"] {
        wait_drained(&mut conn, &key, group, Duration::from_secs(30)).await;
    }
    buggy.stop().await;
    let ls = json(&redis, &keys, &["dlq", "ls", "--since", "1h"]).await;
    assert_eq!(ls.as_array().unwrap().len(), 2);
    let late_dl = ls[1]["id"].as_str().unwrap().to_owned();
    assert_eq!(ls[1]["event_id"], late.as_str());

    // The fix is deployed; the pinned command replays exactly the previewed entry, to
    // accounting only.
    let fixed = Recorder::default();
    let b = InProcessWorker::start(
        &redis,
        WorkerConfig::new(keys.clone(), "accounting", &["invoices"]),
        fixed.clone(),
    );
    let pinned: Vec<&str> = pinned.iter().map(String::as_str).collect();
    let done = json(&redis, &keys, &pinned).await;
    assert_eq!(done["dry_run"], false);
    assert_eq!(done["ids"], serde_json::json!([dl_id]));
    assert_eq!(
        (done["replayed"].as_u64(), done["skipped"].as_u64()),
        (Some(1), Some(0))
    );
    assert_eq!(
        (done["missing"].as_u64(), done["purged"].as_u64()),
        (Some(0), Some(0))
    );
    let results = done["results"].as_array().unwrap();
    assert_eq!(
        results.len(),
        1,
        "the late dead letter is not replayed: {done:#}"
    );
    assert_eq!(results[0]["id"], dl_id.as_str());
    assert_eq!(results[0]["outcome"], "replayed");
    // The new entry on the origin stream: the original envelope, for accounting only.
    let new_id = results[0]["new_id"].as_str().unwrap();
    let (_, replayed) = stream_entries(&mut conn, &key)
        .await
        .into_iter()
        .find(|(id, _)| id == new_id)
        .expect("the replay is on the origin stream");
    assert_eq!(replayed["event_id"], bad);
    assert_eq!(replayed["data"], r#"{"n":1}"#);
    assert_eq!(
        replayed[common::envelope::REPLAY_FOR_GROUP_FIELD],
        "accounting"
    );
    assert!(
        !replayed.keys().any(|k| k.starts_with("dlq_")),
        "{replayed:?}"
    );
    wait_until(
        Duration::from_secs(30),
        "accounting handles the replay",
        || {
            let (fixed, bad) = (fixed.clone(), bad.clone());
            async move { fixed.counts().get(&bad) == Some(&1) }
        },
    )
    .await;
    for group in ["archive", "accounting"] {
        wait_drained(&mut conn, &key, group, Duration::from_secs(30)).await;
    }
    let ls = json(&redis, &keys, &["dlq", "ls"]).await;
    assert_eq!(find(&ls, "id", &dl_id)["replayed"], true);
    assert_eq!(find(&ls, "id", &late_dl)["replayed"], false);

    // A second replay of the same entry does nothing.
    let again = json(&redis, &keys, &["dlq", "replay", &dl_id, "--yes"]).await;
    assert_eq!(again["replayed"], 0);
    assert_eq!(again["skipped"], 1);
    assert_eq!(again["results"][0]["outcome"], "skipped");
    assert_eq!(again["results"][0]["new_id"], Value::Null);
    let out = run(&redis, &keys, &["dlq", "replay", &dl_id, "--yes"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        out.stdout.lines().collect::<Vec<_>>(),
        [
            format!("skipped {dl_id}: replayed before").as_str(),
            "replayed 0, skipped 1"
        ]
    );
    assert_eq!(
        xlen(&mut conn, &key).await,
        5,
        "3, the late one, one replay"
    );

    let (a_stats, b_stats) = (a.stats.clone(), b.stats.clone());
    a.stop().await;
    b.stop().await;
    assert_eq!(
        fixed.counts().len(),
        1,
        "accounting handled only the replay, never the late dead letter"
    );
    assert_eq!(WorkerStats::get(&b_stats.handled), 1);
    for e in events.iter().chain([&late]) {
        assert_eq!(
            archive.counts().get(e),
            Some(&1),
            "archive handled {e} once"
        );
    }
    assert_eq!(WorkerStats::get(&a_stats.skipped_other_group), 1);
    for group in ["archive", "accounting"] {
        assert!(pending(&mut conn, &key, group).await.is_empty());
    }

    // purge by id: preview, then delete exactly that entry (and its replayed mark).
    let preview = json(&redis, &keys, &["dlq", "purge", &dl_id]).await;
    assert_eq!(preview["dry_run"], true);
    assert_eq!(
        preview["pinned_args"],
        serde_json::json!(["dlq", "purge", dl_id, "--yes"])
    );
    assert_eq!(xlen(&mut conn, &keys.dead_letter("invoices")).await, 2);
    let purged = json(&redis, &keys, &["dlq", "purge", &dl_id, "--yes"]).await;
    assert_eq!(purged["action"], "purge");
    assert_eq!(purged["dry_run"], false);
    assert_eq!(purged["ids"], serde_json::json!([dl_id]));
    assert_eq!(
        purged["results"],
        serde_json::json!([{"id": dl_id, "stream": "invoices", "outcome": "purged", "new_id": null}])
    );
    assert_eq!(
        (purged["purged"].as_u64(), purged["missing"].as_u64()),
        (Some(1), Some(0))
    );
    assert_eq!(xlen(&mut conn, &keys.dead_letter("invoices")).await, 1);
    let marked: bool = redis::cmd("SISMEMBER")
        .arg(keys.dead_letter_replayed("invoices"))
        .arg(&dl_id)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(!marked, "the replayed mark goes with the entry");

    // purge by filter, through the pinned command of its preview.
    let preview = json(&redis, &keys, &["dlq", "purge", "--error", "add up"]).await;
    assert_eq!(preview["ids"], serde_json::json!([late_dl]));
    let pinned: Vec<String> = serde_json::from_value(preview["pinned_args"].clone()).unwrap();
    assert_eq!(
        pinned,
        [
            "dlq", "purge", "--error", "add up", "--since", &late_dl, "--until", &late_dl, "--yes"
        ]
    );
    assert_eq!(
        preview["command"],
        format!(
            "meshctl --redis-url {} --prefix {} dlq purge --error 'add up' --since {late_dl} \
             --until {late_dl} --yes",
            redis.url(),
            keys.prefix()
        ),
        "quoted for a shell"
    );
    let pinned: Vec<&str> = pinned.iter().map(String::as_str).collect();
    let out = run(&redis, &keys, &pinned).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        out.stdout.lines().collect::<Vec<_>>(),
        [format!("purged {late_dl}").as_str(), "purged 1"]
    );
    assert_eq!(xlen(&mut conn, &keys.dead_letter("invoices")).await, 0);
}
