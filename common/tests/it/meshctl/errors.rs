//! Clear errors with distinct exit codes: 69 Redis unreachable, 66 unknown stream, group or entry,
//! 65 a bad id or time, 64 bad usage.

use common::{
    Keys,
    testing::{RedisServer, free_port, unique_prefix},
};

use super::{run, run_url};
use crate::support::publish_n;

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

    let redis = RedisServer::start();
    let keys = Keys::new(unique_prefix());
    publish_n(&redis, &keys, "known", 1).await;
    let cases: [(&[&str], i32, &str); 9] = [
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
    ];
    for (args, code, message) in cases {
        let out = run(&redis, &keys, args).await;
        assert_eq!(out.code, code, "{args:?}: {out:?}");
        assert!(out.stderr.contains(message), "{args:?}: {out:?}");
    }

    let out = run(&redis, &keys, &["completions", "bash"]).await;
    assert_eq!(out.code, 0);
    assert!(out.stdout.contains("meshctl"), "{out:?}");
}
