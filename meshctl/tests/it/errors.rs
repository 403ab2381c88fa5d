//! Clear errors with distinct exit codes: 69 Redis unreachable, 66 unknown stream, group or entry
//! (also in `dlq` filters), 65 a bad id, time or URL, 64 bad usage.

use common::{
    Keys,
    testing::{RedisServer, free_port, unique_prefix},
};

use crate::support::{run, run_url};
use common::stream_testing::publish_n;

#[tokio::test]
async fn errors_have_clear_messages_and_distinct_exit_codes() {
    let url = format!("redis://127.0.0.1:{}", free_port());
    let out = run_url(&url, "", &["streams"]).await;
    assert_eq!(out.code, 69, "{out:?}");
    assert!(out.stderr.contains("cannot reach Redis"), "{out:?}");
    let out = run_url(&url, "", &["check"]).await;
    assert_eq!(
        out.code, 69,
        "a probe tells an unreachable server from a verdict: {out:?}"
    );

    let out = run_url("nonsense://x", "", &["streams"]).await;
    assert_eq!(out.code, 65, "{out:?}");
    assert!(out.stderr.contains("bad --redis-url"), "{out:?}");

    let redis = RedisServer::start();
    let keys = Keys::new(unique_prefix());
    publish_n(&redis, &keys, "known", 1).await;
    let mut conn = redis.connection();
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(keys.stream("known"))
        .arg("g")
        .arg("0")
        .query_async(&mut conn)
        .await
        .unwrap();
    let cases: &[(&[&str], i32, &str)] = &[
        (&["stream", "nope"], 66, "unknown stream `nope`"),
        (&["groups", "nope"], 66, "unknown stream"),
        (
            &["consumers", "known", "nobody"],
            66,
            "unknown group `nobody`",
        ),
        (&["pending", "known", "nobody"], 66, "unknown group"),
        (&["show", "known", "1-1"], 66, "no entry 1-1"),
        (&["dlq", "show", "1-1"], 66, "no dead-letter entry"),
        (&["show", "known", "12-x"], 65, "not a stream id"),
        (
            &["tail", "known", "--from", "yesterday-ish"],
            65,
            "not a stream id",
        ),
        (&["streams", "--bogus"], 64, "unexpected argument"),
        (
            &["group", "seek", "known", "nobody", "--to", "start"],
            66,
            "unknown group `nobody` on stream `known` (groups: g)",
        ),
        (
            &["group", "seek", "nope", "g", "--to", "start"],
            66,
            "unknown stream `nope`",
        ),
        (
            &["group", "seek", "known", "g", "--to", "yesterday-ish"],
            65,
            "`yesterday-ish` is not a stream id",
        ),
        (&["trim", "nope"], 66, "unknown stream `nope`"),
        (&["tail", "nope"], 66, "unknown stream `nope`"),
        (
            &["tail", "known", "--from", "start", "-n", "1", "--follow"],
            64,
            "`-n` with both `--from` and `--follow`",
        ),
        (&["dlq", "replay", "12-x"], 65, "not a stream id"),
        (
            &["dlq", "replay", "1-1", "--yes"],
            66,
            "no dead-letter entry 1-1",
        ),
        (
            &["dlq", "ls", "--stream", "nope"],
            66,
            "unknown stream `nope` (--stream)",
        ),
        (
            &["dlq", "replay", "--group", "nobody", "--yes"],
            66,
            "unknown group `nobody` (--group)",
        ),
        (
            &["dlq", "purge", "--stream", "known", "--group", "nobody"],
            66,
            "stream `known` has no such group",
        ),
    ];
    for &(args, code, message) in cases {
        let out = run(&redis, &keys, args).await;
        assert_eq!(out.code, code, "{args:?}: {out:?}");
        assert!(out.stderr.contains(message), "{args:?}: {out:?}");
    }

    // A group that exists but has no dead letters is not an error, just nothing to do.
    let none = run(
        &redis,
        &keys,
        &["--json", "dlq", "ls", "--stream", "known", "--group", "g"],
    )
    .await;
    assert_eq!(none.json(), serde_json::json!([]));
    let state: Vec<redis::Value> = redis::cmd("XINFO")
        .arg("GROUPS")
        .arg(keys.stream("known"))
        .query_async(&mut conn)
        .await
        .unwrap();
    let g = common::runtime::redis_io::flat_map(state[0].clone());
    assert_eq!(
        common::runtime::redis_io::value_str(g.get("last-delivered-id")).as_deref(),
        Some("0-0"),
        "a failed seek moves nothing"
    );

    let out = run(&redis, &keys, &["completions", "bash"]).await;
    assert_eq!(out.code, 0);
    assert!(out.stdout.contains("meshctl"), "{out:?}");
}
