//! `tail --follow`: the history part, then every entry added afterwards, each printed exactly once
//! — including entries added while the history was being read — until interrupted; and, on the
//! stream of `inspect`, every position, `-n` and filter without `--follow`.

use std::time::Duration;

use common::{
    Keys,
    testing::{RedisServer, TestRedis, unique_prefix},
};
use serde_json::Value;

use crate::support::{Live, id_ms, id_time, ids_of, now_ms, run};
use common::stream_testing::{publish_n, stream_entries};

fn id_of(line: &Value) -> String {
    line["id"].as_str().expect("an id").to_owned()
}

fn id_key(id: &str) -> (u64, u64) {
    let (ms, seq) = id.split_once('-').expect("a stream id");
    (ms.parse().unwrap(), seq.parse().unwrap())
}

/// Reads lines until the one with event id `event`; returns every line read, that one included.
async fn read_through(live: &mut Live, event: &str) -> Vec<Value> {
    let mut lines = Vec::new();
    loop {
        let line = live.next().await;
        let last = line["event_id"] == event;
        lines.push(line);
        if last {
            return lines;
        }
    }
}

#[tokio::test]
async fn tail_follow_without_from_keeps_printing_new_entries_each_exactly_once() {
    let redis = RedisServer::start();
    let keys = Keys::new(unique_prefix());
    let mut conn = redis.connection();
    let key = keys.stream("feed");
    publish_n(&redis, &keys, "feed", 12).await;

    let mut live = Live::spawn(&redis, &keys, &["tail", "feed", "--follow"]);
    // These race with the history read: whichever side of it they land on, each prints once.
    publish_n(&redis, &keys, "feed", 3).await;
    let mut printed = Vec::new();
    while printed.len() < 10 {
        printed.push(live.next().await);
    }
    // Past the default `-n 10`: the follow goes on.
    publish_n(&redis, &keys, "feed", 5).await;
    let sentinel = publish_n(&redis, &keys, "feed", 1).await.remove(0);
    printed.extend(read_through(&mut live, &sentinel).await);
    assert!(live.is_running(), "--follow keeps following");

    let all = ids_of(&mut conn, &key).await;
    assert_eq!(all.len(), 21);
    let printed: Vec<String> = printed.iter().map(id_of).collect();
    let first = all
        .iter()
        .position(|id| *id == printed[0])
        .expect("the first printed entry is on the stream");
    // The history is the last 10 entries when it was read (12 to 15 of them existed then).
    assert!((2..=5).contains(&first), "history started at entry {first}");
    assert_eq!(
        printed,
        all[first..],
        "every entry from the history on, in order, each exactly once"
    );
}

#[tokio::test]
async fn tail_follow_from_end_or_an_id_prints_only_what_follows_and_matches() {
    let redis = RedisServer::start();
    let keys = Keys::new(unique_prefix());
    let mut conn = redis.connection();
    let key = keys.stream("feed");
    publish_n(&redis, &keys, "feed", 4).await;
    let old = ids_of(&mut conn, &key).await;

    // From the end, only `n = 1`: nothing old prints. The follower may start reading after a
    // publish, so publish until it has printed one.
    let mut live = Live::spawn(
        &redis,
        &keys,
        &[
            "tail", "feed", "--from", "end", "--follow", "--where", "data.n=1",
        ],
    );
    let first = loop {
        publish_n(&redis, &keys, "feed", 2).await; // n = 0, 1
        if let Some(line) = live.next_within(Duration::from_millis(300)).await {
            break line;
        }
    };
    assert_eq!(first["data"]["n"], 1);
    assert!(!old.contains(&id_of(&first)), "nothing from before the end");
    let later = publish_n(&redis, &keys, "feed", 3).await; // n = 0, 1, 2
    let sentinel = publish_n(&redis, &keys, "feed", 2).await; // n = 0, 1
    let lines = read_through(&mut live, &sentinel[1]).await;
    // Every `n = 1` entry after the first printed, in order, once (a line still on its way from
    // an earlier round of the loop above included).
    let expected: Vec<String> = stream_entries(&mut conn, &key)
        .await
        .into_iter()
        .filter(|(id, f)| id_key(id) > id_key(&id_of(&first)) && f["data"] == r#"{"n":1}"#)
        .map(|(id, _)| id)
        .collect();
    assert_eq!(lines.iter().map(id_of).collect::<Vec<_>>(), expected);
    let events: Vec<&str> = lines
        .iter()
        .map(|l| l["event_id"].as_str().unwrap())
        .collect();
    assert!(events.ends_with(&[later[1].as_str(), sentinel[1].as_str()]));
    drop(live);

    // From an id: the history from there, then what follows, each once.
    let mut live = Live::spawn(
        &redis,
        &keys,
        &["tail", "feed", "--from", &old[2], "--follow"],
    );
    let sentinel = publish_n(&redis, &keys, "feed", 2).await;
    let lines = read_through(&mut live, &sentinel[1]).await;
    let all = ids_of(&mut conn, &key).await;
    let printed: Vec<String> = lines.iter().map(id_of).collect();
    assert_eq!(printed, all[2..]);
}

/// `tail` without `--follow` on the stream of `inspect` (5 entries, `ids`): positions, `-n` and
/// filters.
pub async fn tail_filters(redis: &dyn TestRedis, keys: &Keys, ids: &[String]) {
    let tail = |args: Vec<String>| async move {
        let mut all = vec!["--json".to_owned(), "tail".to_owned(), "orders".to_owned()];
        all.extend(args);
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        run(redis, keys, &all).await.json_lines()
    };
    let args = |a: &[&str]| a.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let ids_in = |lines: &[Value]| -> Vec<String> {
        lines
            .iter()
            .map(|l| l["id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(ids_in(&tail(args(&["--from", "start"])).await), ids);
    assert_eq!(ids_in(&tail(args(&["-n", "2"])).await), ids[3..]);
    assert_eq!(
        ids_in(&tail(args(&["--from", "start", "-n", "2"])).await),
        ids[..2]
    );
    let n3 = tail(args(&["--from", "start", "--where", "data.n=3"])).await;
    assert_eq!(ids_in(&n3), [ids[3].clone()]);
    assert_eq!(n3[0]["data"]["n"], 3);
    assert_eq!(n3[0]["type"], "orders");
    assert_eq!(n3[0]["time"], id_time(&ids[3]));
    assert!(
        tail(args(&["--from", "start", "--type", "other"]))
            .await
            .is_empty()
    );
    let typed = tail(args(&["--type", "orders", "--where", "producer=test"])).await;
    assert_eq!(ids_in(&typed), ids);
    assert!(tail(args(&["--where", "producer=store"])).await.is_empty());
    assert_eq!(ids_in(&tail(args(&["--from", &ids[2]])).await), ids[2..]);

    // --from a time: every entry added at or after it (ids carry their time).
    let at = id_time(&ids[2]);
    let expected: Vec<String> = ids
        .iter()
        .filter(|id| id_ms(id) >= id_ms(&ids[2]))
        .cloned()
        .collect();
    assert_eq!(ids_in(&tail(args(&["--from", &at])).await), expected);
    assert_eq!(ids_in(&tail(args(&["--from", "1h"])).await), ids, "an age");
    let future = id_time(&format!("{}-0", now_ms() + 3_600_000));
    assert!(tail(args(&["--from", &future])).await.is_empty());
}
