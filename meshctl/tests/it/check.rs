//! `check` exits 0 below every threshold, 1 at a warning threshold and 2 at a critical one — for
//! lag, the age of the oldest pending entry and the dead-letter size; `top` refreshes, with the
//! rates of entries published and consumed while it runs.

use std::time::{Duration, Instant};

use common::{
    Keys,
    runtime::WorkerConfig,
    testing::{TestRedis, unique_prefix, wait_drained},
};

use serde_json::Value;

use crate::{
    dlq::RejectsOne,
    support::{Live, find, read_without_ack, run},
};
use common::stream_testing::{InProcessWorker, Recorder, publish_n};

/// Thresholds that nothing here reaches; each case overrides one metric.
const RELAXED: [&str; 12] = [
    "--lag-warn",
    "100",
    "--lag-crit",
    "200",
    "--pending-age-warn",
    "1d",
    "--pending-age-crit",
    "2d",
    "--dead-letter-warn",
    "100",
    "--dead-letter-crit",
    "200",
];

/// `check` with [`RELAXED`] thresholds, some replaced by `overrides` (flag, value pairs).
fn check_args(overrides: &[&'static str]) -> Vec<&'static str> {
    let mut args = vec!["check"];
    for pair in RELAXED.chunks(2) {
        let value = overrides
            .chunks(2)
            .find(|o| o[0] == pair[0])
            .map_or(pair[1], |o| o[1]);
        args.extend([pair[0], value]);
    }
    args
}

common::on_one_server_and_a_cluster!(check_exit_codes_follow_each_threshold);
async fn check_exit_codes_follow_each_threshold(redis: &dyn TestRedis) {
    let keys = Keys::new(unique_prefix());
    let mut conn = redis.connection();
    let key = keys.stream("payments");
    let events = publish_n(&redis, &keys, "payments", 5).await;
    // One dead letter, from a handler that rejects one event.
    let w = InProcessWorker::start(
        &redis,
        WorkerConfig::new(keys.clone(), "audit", &["payments"]),
        RejectsOne {
            bad_event: events[0].clone(),
            recorder: Recorder::default(),
        },
    );
    wait_drained(&mut conn, &key, "audit", Duration::from_secs(30)).await;
    w.stop().await;
    // `ledger` has read 2 entries without acking them: lag 3, 2 pending.
    read_without_ack(&mut conn, &key, "ledger", 2).await;

    let check = |overrides: &'static [&'static str]| {
        let (redis, keys) = (&redis, &keys);
        async move { run(redis, keys, &check_args(overrides)).await }
    };
    let cases: [(&[&str], i32, &str); 7] = [
        (&[], 0, "OK"),
        (&["--lag-warn", "3"], 1, "WARNING"),
        (&["--lag-warn", "2", "--lag-crit", "3"], 2, "CRITICAL"),
        (&["--dead-letter-warn", "1"], 1, "WARNING"),
        (
            &["--dead-letter-warn", "1", "--dead-letter-crit", "1"],
            2,
            "CRITICAL",
        ),
        (&["--pending-age-warn", "1ms"], 1, "WARNING"),
        (
            &["--pending-age-warn", "1ms", "--pending-age-crit", "1ms"],
            2,
            "CRITICAL",
        ),
    ];
    for (overrides, code, word) in cases {
        let out = check(overrides).await;
        assert_eq!(out.code, code, "check {overrides:?}: {out:?}");
        assert_eq!(out.stdout.lines().count(), 1, "one-line summary: {out:?}");
        assert!(out.stdout.starts_with(word), "{out:?}");
    }

    let mut all = vec!["--json"];
    all.extend(check_args(&["--lag-warn", "2", "--lag-crit", "3"]));
    let out = run(&redis, &keys, &all).await;
    assert_eq!(out.code, 2);
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(report["status"], "critical");
    assert_eq!(report["exit_code"], 2);
    assert_eq!(report["max_lag"], 3);
    assert_eq!(report["dead_letters"], 1);
    let findings = report["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 1, "{report:#}");
    assert_eq!(findings[0]["subject"], "payments/ledger");
    assert_eq!(findings[0]["metric"], "lag");
    assert_eq!(findings[0]["value"], 3);
    assert_eq!(findings[0]["threshold"], 3);
    assert_eq!(findings[0]["level"], "critical");

    // top, live (JSON lines): rates are 0 while nothing happens, and not 0 for the frames that
    // see entries published and consumed during the run.
    let mut top = Live::spawn(&redis, &keys, &["top", "--interval", "200ms"]);
    let frame = top.next().await;
    assert_eq!(frame["iteration"], 1);
    let s = find(&frame["streams"], "stream", "payments");
    assert_eq!(s["rate_in"], Value::Null, "no rate before a second refresh");
    let frame = top.next().await;
    assert_eq!(frame["iteration"], 2);
    assert!(frame["at"].as_str().unwrap().ends_with('Z'), "{frame}");
    let s = find(&frame["streams"], "stream", "payments");
    assert_eq!(s["length"], 5);
    assert_eq!(s["rate_in"], 0.0);
    let g = find(&s["groups"], "group", "ledger");
    assert_eq!(
        (
            g["lag"].as_u64(),
            g["pending"].as_u64(),
            g["dead_letters"].as_u64()
        ),
        (Some(3), Some(2), Some(0))
    );
    assert_eq!(g["rate_out"], 0.0);
    let g = find(&s["groups"], "group", "audit");
    assert_eq!(
        (
            g["lag"].as_u64(),
            g["pending"].as_u64(),
            g["dead_letters"].as_u64()
        ),
        (Some(0), Some(0), Some(1))
    );
    assert_eq!(g["rate_out"], 0.0);

    publish_n(&redis, &keys, "payments", 20).await;
    let w = InProcessWorker::start(
        &redis,
        WorkerConfig::new(keys.clone(), "audit", &["payments"]),
        Recorder::default(),
    );
    wait_drained(&mut conn, &key, "audit", Duration::from_secs(30)).await;
    w.stop().await;
    let (mut rate_in, mut rate_out) = (0.0, 0.0);
    let deadline = Instant::now() + Duration::from_secs(30);
    let last = loop {
        let frame = top.next().await;
        let s = find(&frame["streams"], "stream", "payments").clone();
        rate_in = s["rate_in"].as_f64().unwrap().max(rate_in);
        rate_out = find(&s["groups"], "group", "audit")["rate_out"]
            .as_f64()
            .unwrap()
            .max(rate_out);
        // A frame sampled before the drain above may still be in the pipe: the first one
        // after it shows nothing pending.
        let drained = find(&s["groups"], "group", "audit")["pending"] == 0;
        if rate_in > 0.0 && rate_out > 0.0 && s["length"] == 25 && drained {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "no frame shows the rates: {frame}"
        );
    };
    let g = find(&last["groups"], "group", "audit");
    assert_eq!(
        (g["lag"].as_u64(), g["pending"].as_u64()),
        (Some(0), Some(0))
    );
    assert_eq!(find(&last["groups"], "group", "ledger")["lag"], 23);
    assert!(top.is_running(), "top refreshes until interrupted");
}
