//! Read-only commands over real runtime state: a group drained by an in-process worker, and a group
//! whose consumer stopped with two entries in its hands (as one that crashed would leave them);
//! plus a poison entry on a stream of its own. The human `groups` table is checked against its
//! JSON.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use common::{
    Keys,
    runtime::{HandleError, Handler, Message, WorkerConfig},
    stream_testing::{InProcessWorker, Recorder, publish_n},
    testing::{RedisServer, TestRedis, group_state, unique_prefix, wait_drained, wait_until},
};
use serde_json::Value;

use crate::support::{find, id_ms, id_time, ids_of, json, now_ms, run};

/// A handler that takes entries and never finishes them, counting how many it took.
#[derive(Clone, Default)]
struct Stall {
    started: Arc<AtomicUsize>,
}

impl Handler for Stall {
    async fn handle(&self, _: &Message) -> Result<(), HandleError> {
        self.started.fetch_add(1, Ordering::SeqCst);
        std::future::pending().await
    }
}

common::on_one_server_and_a_cluster!(
    inspection_commands_report_groups_consumers_pending_and_entries
);
async fn inspection_commands_report_groups_consumers_pending_and_entries(redis: &dyn TestRedis) {
    let started = Instant::now();
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

    // `slow-1` takes two entries into handlers that never finish and stops with them in hand:
    // the state a crashed consumer leaves (pending, no more claims refreshed).
    let mut cfg = WorkerConfig::new(keys.clone(), "slow", &["orders"]);
    cfg.consumer = "slow-1".to_owned();
    (cfg.concurrency, cfg.batch) = (2, 2);
    cfg.shutdown_grace = Duration::from_millis(100);
    let stall = Stall::default();
    let slow = InProcessWorker::start(&redis, cfg, stall.clone());
    wait_until(
        Duration::from_secs(30),
        "slow worker holds two entries",
        || {
            let (mut c, k, stall) = (conn.clone(), key.clone(), stall.clone());
            async move {
                group_state(&mut c, &k, "slow")
                    .await
                    .is_some_and(|g| g.pending == 2)
                    && stall.started.load(Ordering::SeqCst) == 2
            }
        },
    )
    .await;
    slow.stop().await;
    let stopped = Instant::now();
    // A poison entry (no event_id) on a stream no group reads.
    let junk_id: String = redis::cmd("XADD")
        .arg(keys.stream("junk"))
        .arg("*")
        .arg("version")
        .arg("1")
        .arg("type")
        .arg("junk")
        .arg("data")
        .arg("{}")
        .query_async(&mut conn)
        .await
        .unwrap();

    // streams
    let before = now_ms();
    let streams = json(&redis, &keys, &["streams"]).await;
    let after = now_ms();
    let s = find(&streams, "stream", "orders");
    assert_eq!(s["exists"], true);
    assert_eq!(s["length"], 5);
    assert_eq!(s["groups"], 2);
    assert_eq!(s["first_id"], ids[0].as_str());
    assert_eq!(s["first_at"], id_time(&ids[0]));
    assert_eq!(s["last_id"], ids[4].as_str());
    assert_eq!(s["last_at"], id_time(&ids[4]));
    let age = s["last_age_ms"].as_u64().unwrap();
    let last_ms = id_ms(&ids[4]);
    assert!(
        (before - last_ms..=after - last_ms).contains(&age),
        "last_age_ms {age} is the time since the last entry when meshctl ran"
    );
    assert_eq!(s["last_generated_id"], ids[4].as_str());
    assert_eq!(s["entries_added"], 5);
    assert_eq!(s["max_deleted_entry_id"], "0-0");
    assert_eq!(s["dead_letters"], 0);
    assert_eq!(s["key"], key.as_str());
    let j = find(&streams, "stream", "junk");
    assert_eq!(
        (j["length"].as_u64(), j["groups"].as_u64()),
        (Some(1), Some(0))
    );
    // The catalog's streams are listed even before they exist.
    let missing = find(&streams, "stream", "order-placed");
    assert_eq!(missing["exists"], false);
    assert_eq!(missing["length"], 0);
    assert_eq!(missing["first_id"], Value::Null);
    assert_eq!(missing["last_age_ms"], Value::Null);

    // groups <s>
    let groups = json(&redis, &keys, &["groups", "orders"]).await;
    let f = find(&groups, "group", "fast");
    assert_eq!(f["stream"], "orders");
    // It left the group when it stopped, holding nothing.
    assert_eq!(f["consumers"], 0);
    assert_eq!(f["pending"], 0);
    assert_eq!(f["lag"], 0);
    assert_eq!(f["lag_source"], "redis");
    assert_eq!(f["lag_note"], Value::Null);
    assert_eq!(f["entries_read"], 5);
    assert_eq!(f["last_delivered_id"], ids[4].as_str());
    assert_eq!(f["last_delivered_at"], id_time(&ids[4]));
    assert_eq!(f["behind_first_entry"], false);
    assert_eq!(f["oldest_pending_id"], Value::Null);
    assert_eq!(f["oldest_pending_age_ms"], Value::Null);
    assert_eq!(f["dead_letters"], 0);
    let s = find(&groups, "group", "slow");
    assert_eq!(s["pending"], 2);
    assert_eq!(s["lag"], 3);
    assert_eq!(s["entries_read"], 2);
    assert_eq!(s["consumers"], 1);
    assert_eq!(s["last_delivered_id"], ids[1].as_str());
    assert_eq!(s["last_delivered_at"], id_time(&ids[1]));
    assert_eq!(s["oldest_pending_id"], ids[0].as_str());
    let pending_age = s["oldest_pending_age_ms"].as_u64().unwrap();
    assert!(pending_age >= before - id_ms(&ids[0]), "{s}");
    assert!(pending_age <= now_ms() - id_ms(&ids[0]), "{s}");
    assert_eq!(s["warning"], Value::Null);
    assert_eq!(s["dead_letters"], 0);

    // The table says what the JSON says.
    let table = run(&redis, &keys, &["groups", "orders"]).await;
    assert_eq!(table.code, 0, "{table:?}");
    for g in groups.as_array().unwrap() {
        table_row_matches(&table.stdout, g);
    }

    // groups, every stream: the same groups (junk has none, the catalog's streams don't exist).
    let every = json(&redis, &keys, &["groups"]).await;
    let pairs: Vec<(&str, &str)> = every
        .as_array()
        .unwrap()
        .iter()
        .map(|g| (g["stream"].as_str().unwrap(), g["group"].as_str().unwrap()))
        .collect();
    assert_eq!(pairs, [("orders", "fast"), ("orders", "slow")]);
    assert_eq!(
        without_ages(&every),
        without_ages(&groups),
        "groups with no stream reports the same"
    );

    // stream <s>: the summary of `streams`, and the groups of `groups`.
    let one = json(&redis, &keys, &["stream", "orders"]).await;
    let summary = find(&streams, "stream", "orders");
    for field in [
        "stream",
        "key",
        "exists",
        "length",
        "first_id",
        "first_at",
        "last_id",
        "last_at",
        "last_generated_id",
        "entries_added",
        "max_deleted_entry_id",
        "groups",
        "dead_letters",
    ] {
        assert_eq!(one[field], summary[field], "stream orders: {field}");
    }
    assert!(one["last_age_ms"].as_u64().unwrap() >= age);
    assert_eq!(without_ages(&one["group_details"]), without_ages(&groups));

    // consumers <s> <g>: slow-1 has done nothing since it stopped.
    let since_stop = stopped.elapsed().as_millis() as i64;
    let consumers = json(&redis, &keys, &["consumers", "orders", "slow"]).await;
    assert_eq!(consumers.as_array().unwrap().len(), 1);
    let c = find(&consumers, "name", "slow-1");
    assert_eq!(c["pending"], 2);
    let idle = c["idle_ms"].as_i64().unwrap();
    assert!(
        idle >= since_stop - SLACK_MS && idle <= started.elapsed().as_millis() as i64 + SLACK_MS,
        "idle {idle} ms: at least since the stop ({since_stop} ms), at most the test's age"
    );
    let inactive = c.get("inactive_ms").expect("inactive_ms is always present");
    if redis_version(&mut conn).await >= (7, 2) {
        assert!(inactive.as_i64().unwrap() >= idle, "{c}");
    } else {
        assert_eq!(
            *inactive,
            Value::Null,
            "Redis < 7.2 does not report it: {c}"
        );
    }

    // pending <s> <g>, with its filters
    let since_stop = stopped.elapsed().as_millis() as u64;
    let pending = json(&redis, &keys, &["pending", "orders", "slow"]).await;
    let rows = pending.as_array().unwrap();
    assert_eq!(rows.len(), 2);
    for (row, id) in rows.iter().zip(&ids) {
        assert_eq!(row["id"], id.as_str());
        assert_eq!(row["consumer"], "slow-1");
        assert_eq!(row["deliveries"], 1);
        assert_eq!(row["added_at"], id_time(id));
        let idle = row["idle_ms"].as_u64().unwrap();
        assert!(
            idle + SLACK_MS as u64 >= since_stop
                && idle <= started.elapsed().as_millis() as u64 + SLACK_MS as u64,
            "idle {idle} ms, stopped {since_stop} ms ago: {row}"
        );
    }
    let first = json(
        &redis,
        &keys,
        &["pending", "orders", "slow", "--count", "1"],
    )
    .await;
    assert_eq!(first.as_array().unwrap().len(), 1);
    assert_eq!(first[0]["id"], ids[0].as_str());
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
    assert_eq!(show["stream"], "orders");
    assert_eq!(show["id"], ids[0].as_str());
    assert_eq!(show["time"], id_time(&ids[0]));
    assert_eq!(show["type"], "orders");
    assert_eq!(show["event_id"], events[0].as_str());
    assert_eq!(show["data"], serde_json::json!({"n": 0}));
    assert_eq!(show["fields"]["producer"], "test");
    assert_eq!(show["fields"]["event_id"], events[0].as_str());
    assert_eq!(show["valid_envelope"], true);
    assert_eq!(show["poison"], Value::Null);
    let sg = find(&show["groups"], "group", "slow");
    assert_eq!(sg["state"], "pending");
    assert_eq!(sg["consumer"], "slow-1");
    assert_eq!(sg["deliveries"], 1);
    assert!(sg["idle_ms"].as_u64().unwrap() <= started.elapsed().as_millis() as u64);
    let fg = find(&show["groups"], "group", "fast");
    assert_eq!(fg["state"], "delivered");
    assert_eq!(
        (&fg["consumer"], &fg["deliveries"], &fg["idle_ms"]),
        (&Value::Null, &Value::Null, &Value::Null)
    );
    let show4 = json(&redis, &keys, &["show", "orders", &ids[4]]).await;
    assert_eq!(
        find(&show4["groups"], "group", "slow")["state"],
        "not delivered"
    );
    // A poison entry is shown, with why it is poison.
    let poison = json(&redis, &keys, &["show", "junk", &junk_id]).await;
    assert_eq!(poison["id"], junk_id.as_str());
    assert_eq!(poison["type"], "junk");
    assert_eq!(poison["event_id"], Value::Null);
    assert_eq!(poison["data"], serde_json::json!({}));
    assert_eq!(poison["valid_envelope"], false);
    assert_eq!(poison["poison"], "missing field `event_id`");
    assert_eq!(poison["groups"], serde_json::json!([]));

    crate::tail::tail_filters(&redis, &keys, &ids).await;
}

/// Clock slack for idle times measured by Redis against the test's own clock (ms).
const SLACK_MS: i64 = 100;

/// The Redis version (of every node, on a cluster: the lowest).
async fn redis_version(conn: &mut common::connection::Conn) -> (u32, u32) {
    // On a cluster `INFO` is sent to every node: a map of the nodes' replies.
    let info: String = match redis::cmd("INFO")
        .arg("server")
        .query_async(conn)
        .await
        .unwrap()
    {
        redis::Value::Map(nodes) => nodes
            .into_iter()
            .map(|(_, v)| redis::from_redis_value::<String>(v).unwrap())
            .min()
            .unwrap(),
        one => redis::from_redis_value(one).unwrap(),
    };
    let v = info
        .lines()
        .find_map(|l| l.strip_prefix("redis_version:"))
        .unwrap()
        .trim();
    let mut parts = v.split('.').map(|p| p.parse().unwrap());
    (parts.next().unwrap(), parts.next().unwrap())
}

/// A list of groups without the fields that grow between two runs.
fn without_ages(groups: &Value) -> Value {
    let mut groups = groups.clone();
    for g in groups.as_array_mut().unwrap() {
        g.as_object_mut().unwrap().remove("oldest_pending_age_ms");
    }
    groups
}

/// The `groups` table has a row with the key values of `g`, in its columns: stream, group,
/// consumers, pending, oldest pending age (`-` or a duration), lag, read, last delivered (id and
/// time), dead letters.
fn table_row_matches(table: &str, g: &Value) {
    let (stream, group) = (g["stream"].as_str().unwrap(), g["group"].as_str().unwrap());
    let row: Vec<&str> = table
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|w| w.len() > 2 && w[0] == stream && w[1] == group)
        .unwrap_or_else(|| panic!("no row for {stream}/{group} in\n{table}"));
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    assert_eq!(row[2], text(&g["consumers"]), "{row:?}");
    assert_eq!(row[3], text(&g["pending"]), "{row:?}");
    let at = row
        .iter()
        .position(|w| *w == g["last_delivered_id"])
        .unwrap_or_else(|| panic!("last delivered id in {row:?}"));
    assert_eq!(row[at - 2], text(&g["lag"]), "{row:?}");
    assert_eq!(row[at - 1], text(&g["entries_read"]), "{row:?}");
    assert_eq!(
        row[at + 1],
        &g["last_delivered_at"].as_str().unwrap()[..10],
        "the date"
    );
    assert_eq!(*row.last().unwrap(), text(&g["dead_letters"]), "{row:?}");
    if g["oldest_pending_age_ms"].is_null() {
        assert_eq!(row[4], "-", "{row:?}");
    }
}

#[tokio::test]
async fn groups_explain_an_unknown_lag_and_warn_about_entries_trimmed_unread() {
    let redis = RedisServer::start();
    let keys = Keys::new(unique_prefix());
    let mut conn = redis.connection();
    let key = keys.stream("late");
    publish_n(&redis, &keys, "late", 5).await;
    let ids = ids_of(&mut conn, &key).await;
    crate::support::read_without_ack(&mut conn, &key, "slowpoke", 1).await;
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
