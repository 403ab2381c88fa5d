//! `dlq`: an entry dead-lettered by a failing handler is listed and shown; once the handler is
//! fixed, `dlq replay --yes` has it processed once, by that group only; a second replay does
//! nothing; `purge` previews, then deletes.

use std::time::Duration;

use common::{
    Keys,
    runtime::{HandleError, Handler, Message, WorkerConfig, WorkerStats},
    testing::{RedisServer, unique_prefix, wait_drained, wait_until, xlen},
};

use super::{find, json, run};
use crate::support::{InProcessWorker, Recorder, pending, publish_n};

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

#[tokio::test]
async fn dlq_replay_is_processed_once_by_the_failed_group_only() {
    let redis = RedisServer::start();
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

    // ls, with each filter
    let ls = json(&redis, &keys, &["dlq", "ls"]).await;
    assert_eq!(ls.as_array().unwrap().len(), 1);
    let d = &ls[0];
    let dl_id = d["id"].as_str().unwrap().to_owned();
    assert_eq!(d["origin_stream"], "invoices");
    assert_eq!(d["group"], "accounting");
    assert_eq!(d["event_id"], bad.as_str());
    assert_eq!(d["event_type"], "invoices");
    assert_eq!(d["delivery_count"], 1);
    assert_eq!(d["error"], "invoice total does not add up");
    assert_eq!(d["replayed"], false);
    assert!(d["origin_id"].as_str().unwrap().contains('-'));
    assert!(d["consumer"].as_str().unwrap().starts_with("accounting-"));
    let count = |v: serde_json::Value| v.as_array().unwrap().len();
    for (filter, n) in [
        (vec!["--stream", "invoices"], 1),
        (vec!["--stream", "other"], 0),
        (vec!["--group", "archive"], 0),
        (vec!["--error", "ADD UP"], 1),
        (vec!["--error", "timeout"], 0),
        (vec!["--since", "1h"], 1),
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
    let show = json(&redis, &keys, &["dlq", "show", &dl_id]).await;
    assert_eq!(show["fields"]["dlq_group"], "accounting");
    assert_eq!(show["fields"]["data"], r#"{"n":1}"#);

    // Counts show up in streams and groups.
    let streams = json(&redis, &keys, &["streams"]).await;
    assert_eq!(find(&streams, "stream", "invoices")["dead_letters"], 1);
    let groups = json(&redis, &keys, &["groups", "invoices"]).await;
    assert_eq!(find(&groups, "group", "accounting")["dead_letters"], 1);
    assert_eq!(find(&groups, "group", "archive")["dead_letters"], 0);

    // Preview changes nothing.
    let preview = json(&redis, &keys, &["dlq", "replay"]).await;
    assert_eq!(preview["dry_run"], true);
    assert_eq!(preview["selected"][0]["id"], dl_id.as_str());
    assert_eq!(preview["until"], dl_id.as_str());
    assert_eq!(preview["results"], serde_json::json!([]));
    assert_eq!(xlen(&mut conn, &key).await, 3);

    // The fix is deployed; the replay goes to accounting only.
    let fixed = Recorder::default();
    let b = InProcessWorker::start(
        &redis,
        WorkerConfig::new(keys.clone(), "accounting", &["invoices"]),
        fixed.clone(),
    );
    let out = run(
        &redis,
        &keys,
        &["dlq", "replay", "--stream", "invoices", "--yes"],
    )
    .await;
    assert_eq!(
        (out.code, out.stdout.trim()),
        (0, "replayed 1, skipped 0"),
        "{out:?}"
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

    // A second replay of the same entry does nothing.
    let again = json(&redis, &keys, &["dlq", "replay", &dl_id, "--yes"]).await;
    assert_eq!(again["replayed"], 0);
    assert_eq!(again["skipped"], 1);
    assert_eq!(again["results"][0]["outcome"], "skipped");
    assert_eq!(xlen(&mut conn, &key).await, 4);
    assert_eq!(
        json(&redis, &keys, &["dlq", "ls"]).await[0]["replayed"],
        true
    );

    let (a_stats, b_stats) = (a.stats.clone(), b.stats.clone());
    a.stop().await;
    b.stop().await;
    assert_eq!(
        fixed.counts().len(),
        1,
        "accounting handled only the replay"
    );
    assert_eq!(WorkerStats::get(&b_stats.handled), 1);
    for e in &events {
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

    // purge: preview, then delete exactly that entry.
    let preview = json(&redis, &keys, &["dlq", "purge"]).await;
    assert_eq!(preview["dry_run"], true);
    assert_eq!(xlen(&mut conn, &keys.dead_letter()).await, 1);
    let out = run(&redis, &keys, &["dlq", "purge", &dl_id, "--yes"]).await;
    assert_eq!((out.code, out.stdout.trim()), (0, "purged 1"), "{out:?}");
    assert_eq!(xlen(&mut conn, &keys.dead_letter()).await, 0);
}
