//! Read-only commands over real runtime state: a group drained by an in-process worker, and a group
//! whose consumer was `kill -9`ed with two entries in its hands.

use std::time::Duration;

use common::{
    Keys,
    runtime::WorkerConfig,
    testing::{RedisServer, group_state, unique_prefix, wait_drained, wait_until},
};

use serde_json::Value;

use super::{find, ids_of, json, run};
use crate::support::{InProcessWorker, Recorder, counter, publish_n, testworker};

#[tokio::test]
async fn inspection_commands_report_groups_consumers_pending_and_entries() {
    let redis = RedisServer::start();
    let keys = Keys::new(unique_prefix());
    let mut conn = redis.connection();
    let key = keys.stream("orders");
    let events = publish_n(&redis, &keys, "orders", 5).await;
    let ids = ids_of(&mut conn, &key).await;

    // `fast` reads and acks everything.
    let fast = InProcessWorker::start(
        &redis,
        WorkerConfig::new(keys.clone(), "fast", &["orders"]),
        Recorder::default(),
    );
    wait_drained(&mut conn, &key, "fast", Duration::from_secs(30)).await;
    fast.stop().await;

    // `slow` takes two entries into a one-minute handler and is killed with them pending.
    let mut slow = testworker(
        &redis,
        &keys,
        &[
            "--stream",
            "orders",
            "--group",
            "slow",
            "--consumer",
            "slow-1",
            "--handler-sleep-ms",
            "60000",
            "--concurrency",
            "2",
            "--batch",
            "2",
        ],
    );
    wait_until(
        Duration::from_secs(30),
        "slow worker holds two entries",
        || {
            let (mut c, k, keys) = (conn.clone(), key.clone(), keys.clone());
            async move {
                group_state(&mut c, &k, "slow")
                    .await
                    .is_some_and(|g| g.pending == 2)
                    && counter(&mut c, &keys, "started").await == 2
            }
        },
    )
    .await;
    slow.kill9();

    // streams
    let streams = json(&redis, &keys, &["streams"]).await;
    let s = find(&streams, "stream", "orders");
    assert_eq!(s["exists"], true);
    assert_eq!(s["length"], 5);
    assert_eq!(s["groups"], 2);
    assert_eq!(s["first_id"], ids[0].as_str());
    assert_eq!(s["last_id"], ids[4].as_str());
    assert_eq!(s["entries_added"], 5);
    assert_eq!(s["dead_letters"], 0);
    assert_eq!(s["key"], key.as_str());
    // The catalog's streams are listed even before they exist.
    assert_eq!(find(&streams, "stream", "order-placed")["exists"], false);

    // stream <s>
    let one = json(&redis, &keys, &["stream", "orders"]).await;
    assert_eq!(one["length"], 5);
    assert_eq!(one["group_details"].as_array().unwrap().len(), 2);

    // groups <s>
    let groups = json(&redis, &keys, &["groups", "orders"]).await;
    let f = find(&groups, "group", "fast");
    assert_eq!(f["pending"], 0);
    assert_eq!(f["lag"], 0);
    assert_eq!(f["lag_source"], "redis");
    assert_eq!(f["entries_read"], 5);
    assert_eq!(f["last_delivered_id"], ids[4].as_str());
    assert_eq!(f["behind_first_entry"], false);
    assert_eq!(f["oldest_pending_id"], Value::Null);
    let s = find(&groups, "group", "slow");
    assert_eq!(s["pending"], 2);
    assert_eq!(s["lag"], 3);
    assert_eq!(s["entries_read"], 2);
    assert_eq!(s["consumers"], 1);
    assert_eq!(s["last_delivered_id"], ids[1].as_str());
    assert_eq!(s["oldest_pending_id"], ids[0].as_str());
    assert!(s["oldest_pending_age_ms"].as_u64().is_some());
    assert_eq!(s["warning"], Value::Null);

    // consumers <s> <g>
    let consumers = json(&redis, &keys, &["consumers", "orders", "slow"]).await;
    let c = find(&consumers, "name", "slow-1");
    assert_eq!(c["pending"], 2);
    assert!(c["idle_ms"].as_i64().unwrap() >= 0);

    // pending <s> <g>, with its filters
    let pending = json(&redis, &keys, &["pending", "orders", "slow"]).await;
    let rows = pending.as_array().unwrap();
    assert_eq!(rows.len(), 2);
    for (row, id) in rows.iter().zip(&ids) {
        assert_eq!(row["id"], id.as_str());
        assert_eq!(row["consumer"], "slow-1");
        assert_eq!(row["deliveries"], 1);
    }
    let other = json(
        &redis,
        &keys,
        &["pending", "orders", "slow", "--consumer", "x"],
    )
    .await;
    assert_eq!(other, serde_json::json!([]));
    let own = json(
        &redis,
        &keys,
        &["pending", "orders", "slow", "--consumer", "slow-1"],
    )
    .await;
    assert_eq!(own.as_array().unwrap().len(), 2);
    let old = json(
        &redis,
        &keys,
        &["pending", "orders", "slow", "--min-idle", "1h"],
    )
    .await;
    assert_eq!(old, serde_json::json!([]));
    let idle = json(
        &redis,
        &keys,
        &["pending", "orders", "slow", "--min-idle", "1ms"],
    )
    .await;
    assert_eq!(idle.as_array().unwrap().len(), 2);

    // show <s> <id>: the entry, and where each group stands with it
    let show = json(&redis, &keys, &["show", "orders", &ids[0]]).await;
    assert_eq!(show["id"], ids[0].as_str());
    assert_eq!(show["type"], "orders");
    assert_eq!(show["event_id"], events[0].as_str());
    assert_eq!(show["data"], serde_json::json!({"n": 0}));
    assert_eq!(show["fields"]["producer"], "test");
    assert_eq!(show["valid_envelope"], true);
    let sg = find(&show["groups"], "group", "slow");
    assert_eq!(sg["state"], "pending");
    assert_eq!(sg["consumer"], "slow-1");
    assert_eq!(sg["deliveries"], 1);
    assert_eq!(find(&show["groups"], "group", "fast")["state"], "delivered");
    let show4 = json(&redis, &keys, &["show", "orders", &ids[4]]).await;
    assert_eq!(
        find(&show4["groups"], "group", "slow")["state"],
        "not delivered"
    );

    tail_filters_and_follow(&redis, &keys, &ids).await;
}

async fn tail_filters_and_follow(redis: &RedisServer, keys: &Keys, ids: &[String]) {
    let tail = |args: &'static [&'static str]| async move {
        let mut all = vec!["--json", "tail", "orders"];
        all.extend_from_slice(args);
        run(redis, keys, &all).await.json_lines()
    };
    let ids_in = |lines: &[Value]| -> Vec<String> {
        lines
            .iter()
            .map(|l| l["id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(ids_in(&tail(&["--from", "start"]).await), ids);
    assert_eq!(ids_in(&tail(&["-n", "2"]).await), ids[3..]);
    let n3 = tail(&["--from", "start", "--where", "data.n=3"]).await;
    assert_eq!(ids_in(&n3), [ids[3].clone()]);
    assert_eq!(n3[0]["data"]["n"], 3);
    assert_eq!(n3[0]["type"], "orders");
    assert!(
        tail(&["--from", "start", "--type", "other"])
            .await
            .is_empty()
    );
    let from_id = run(
        redis,
        keys,
        &["--json", "tail", "orders", "--from", &ids[2]],
    )
    .await;
    assert_eq!(ids_in(&from_id.json_lines()), ids[2..]);

    // --follow: waits for the next entry, then stops at -n 1.
    let (url, prefix) = (redis.url(), keys.prefix().to_owned());
    let follower = tokio::spawn(async move {
        super::run_url(
            &url,
            &prefix,
            &[
                "--json", "tail", "orders", "--from", "end", "--follow", "-n", "1",
            ],
        )
        .await
    });
    // Publish until the follower has seen one (it may start reading after the first publish).
    let mut published = Vec::new();
    let out = loop {
        published.extend(publish_n(redis, keys, "orders", 1).await);
        tokio::time::sleep(Duration::from_millis(200)).await;
        if follower.is_finished() {
            break follower.await.unwrap();
        }
    };
    let lines = out.json_lines();
    assert_eq!(lines.len(), 1);
    assert!(published.iter().any(|e| lines[0]["event_id"] == e.as_str()));
}

#[tokio::test]
async fn groups_explain_an_unknown_lag_and_warn_about_entries_trimmed_unread() {
    let redis = RedisServer::start();
    let keys = Keys::new(unique_prefix());
    let mut conn = redis.connection();
    let key = keys.stream("late");
    publish_n(&redis, &keys, "late", 5).await;
    let ids = ids_of(&mut conn, &key).await;
    super::read_without_ack(&mut conn, &key, "slowpoke", 1).await;
    // Entries 1 and 2 go before `slowpoke` read them.
    let _: u64 = redis::cmd("XTRIM")
        .arg(&key)
        .arg("MINID")
        .arg(&ids[3])
        .query_async(&mut conn)
        .await
        .unwrap();
    let groups = json(&redis, &keys, &["groups", "late"]).await;
    let g = find(&groups, "group", "slowpoke");
    assert_eq!(g["behind_first_entry"], true);
    assert!(
        g["warning"]
            .as_str()
            .unwrap()
            .contains("2 entries were deleted or trimmed"),
        "{g}"
    );

    // An entry deleted after the group's position makes Redis's lag unknown: meshctl counts.
    publish_n(&redis, &keys, "late", 2).await;
    let newest = ids_of(&mut conn, &key).await;
    let _: u64 = redis::cmd("XDEL")
        .arg(&key)
        .arg(&newest[newest.len() - 2])
        .query_async(&mut conn)
        .await
        .unwrap();
    let groups = json(&redis, &keys, &["groups", "late"]).await;
    let g = find(&groups, "group", "slowpoke");
    assert_eq!(g["lag_source"], "counted");
    assert_eq!(
        g["lag"], 3,
        "entries 3, 4 and the last one are still to deliver"
    );
    assert!(g["lag_note"].as_str().unwrap().contains("unknown"), "{g}");
    assert!(g["warning"].as_str().unwrap().contains("3 entries"), "{g}");

    // `check` turns it into a warning.
    let out = run(
        &redis,
        &keys,
        &[
            "--json",
            "check",
            "--pending-age-warn",
            "1d",
            "--pending-age-crit",
            "2d",
        ],
    )
    .await;
    assert_eq!(out.code, 1, "{out:?}");
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    let finding = find(&report["findings"], "metric", "behind_first_entry");
    assert_eq!(finding["subject"], "late/slowpoke");
}
