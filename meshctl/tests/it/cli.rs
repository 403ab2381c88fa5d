//! The CLI itself: `REDIS_URL` and `MESH_STREAM_PREFIX` stand in for the global flags (which win
//! over them), and `--help` says what meshctl is and what every `--yes` does.

use common::{
    Keys,
    testing::{RedisServer, free_port, unique_prefix},
};

use crate::support::run_env;
use common::stream_testing::publish_n;

#[tokio::test]
async fn redis_url_and_prefix_fall_back_to_the_environment() {
    let redis = RedisServer::start();
    let keys = Keys::new(unique_prefix());
    publish_n(&redis, &keys, "envs", 2).await;
    let (url, prefix) = (redis.url(), keys.prefix().to_owned());
    let nowhere = format!("redis://127.0.0.1:{}", free_port());

    let env = [("REDIS_URL", url.as_str()), ("MESH_STREAM_PREFIX", &prefix)];
    let one = run_env(&env, &["--json", "stream", "envs"]).await.json();
    assert_eq!(one["key"], format!("{prefix}envs"));
    assert_eq!(one["length"], 2);

    // The flags win over the environment.
    let env = [
        ("REDIS_URL", nowhere.as_str()),
        ("MESH_STREAM_PREFIX", "wrong:"),
    ];
    let flags = ["--redis-url", &url, "--prefix", &prefix];
    let mut args = flags.to_vec();
    args.extend(["--json", "stream", "envs"]);
    assert_eq!(run_env(&env, &args).await.json()["length"], 2);

    // Each variable alone decides when its flag is absent.
    let out = run_env(&[("REDIS_URL", &nowhere)], &["streams"]).await;
    assert_eq!(out.code, 69, "{out:?}");
    assert!(out.stderr.contains(&nowhere), "{out:?}");
    let env = [
        ("REDIS_URL", url.as_str()),
        ("MESH_STREAM_PREFIX", "wrong:"),
    ];
    let out = run_env(&env, &["stream", "envs"]).await;
    assert_eq!(out.code, 66, "{out:?}");
    assert!(out.stderr.contains("no key `wrong:envs`"), "{out:?}");
}

#[tokio::test]
async fn help_shows_the_cli_summary_and_explains_every_yes() {
    let out = run_env(&[], &["--help"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout
            .starts_with("Operator CLI of the Redis Streams worker mesh"),
        "{out:?}"
    );
    assert!(!out.stdout.contains("Infrastructure shared"), "{out:?}");

    for command in [
        &["dlq", "replay"][..],
        &["dlq", "purge"],
        &["group", "seek"],
        &["trim"],
        &["publish"],
    ] {
        let mut args = command.to_vec();
        args.push("--help");
        let out = run_env(&[], &args).await;
        assert_eq!(out.code, 0, "{out:?}");
        let lines: Vec<&str> = out.stdout.lines().map(str::trim).collect();
        let at = lines
            .iter()
            .position(|l| l.starts_with("--yes"))
            .unwrap_or_else(|| panic!("{command:?} has --yes: {out:?}"));
        // clap puts the help on the next line when the options are too wide for one.
        let help = match lines[at].strip_prefix("--yes").unwrap().trim() {
            "" => lines[at + 1],
            same_line => same_line,
        };
        assert!(
            help.contains("preview") && !help.starts_with('-'),
            "{command:?}: --yes says what it does: {out:?}"
        );
    }
}
