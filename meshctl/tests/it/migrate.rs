//! `dlq migrate-legacy`: the entries of the single dead-letter stream of older versions move into
//! the dead-letter stream of their origin stream, replayed marks and all; `dlq ls` then lists
//! them as one list, under their old ids.

use common::{
    Keys,
    connection::Conn,
    runtime::dead_letter::fields,
    testing::{RedisServer, unique_prefix, xlen},
};

use crate::support::{json, run};

/// Adds a dead letter of `origin` to the legacy stream, as older versions wrote it.
async fn legacy_dead_letter(conn: &mut Conn, keys: &Keys, origin: &str, event: &str) -> String {
    redis::cmd("XADD")
        .arg(keys.legacy_dead_letter())
        .arg("*")
        .arg("event_id")
        .arg(event)
        .arg(fields::ORIGIN_STREAM)
        .arg(origin)
        .arg(fields::ORIGIN_ID)
        .arg("1-0")
        .arg(fields::GROUP)
        .arg("billing")
        .arg(fields::LAST_ERROR)
        .arg("boom")
        .query_async(conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn legacy_dead_letters_move_to_their_origin_streams_with_their_replayed_marks() {
    let redis = RedisServer::start();
    let keys = Keys::new(unique_prefix());
    let mut conn = redis.connection();
    let a = legacy_dead_letter(&mut conn, &keys, "invoices", "e1").await;
    legacy_dead_letter(&mut conn, &keys, "invoices", "e2").await;
    legacy_dead_letter(&mut conn, &keys, "refunds", "e3").await;
    let orphan: String = redis::cmd("XADD")
        .arg(keys.legacy_dead_letter())
        .arg("*")
        .arg("event_id")
        .arg("e4")
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: i64 = redis::cmd("SADD")
        .arg(keys.legacy_dead_letter_replayed())
        .arg(&a)
        .query_async(&mut conn)
        .await
        .unwrap();

    let preview = json(&redis, &keys, &["dlq", "migrate-legacy"]).await;
    assert_eq!(preview["dry_run"], true);
    assert_eq!(preview["origins"]["invoices"], 2);
    assert_eq!(preview["origins"]["refunds"], 1);
    assert_eq!(preview["without_origin"], 1);
    assert_eq!(preview["moved"], 0);
    assert_eq!(xlen(&mut conn, &keys.legacy_dead_letter()).await, 4);

    let moved = json(&redis, &keys, &["dlq", "migrate-legacy", "--yes"]).await;
    assert_eq!(moved["moved"], 3);
    assert_eq!(xlen(&mut conn, &keys.dead_letter("invoices")).await, 2);
    assert_eq!(xlen(&mut conn, &keys.dead_letter("refunds")).await, 1);
    let left: Vec<String> =
        common::stream_testing::stream_entries(&mut conn, &keys.legacy_dead_letter())
            .await
            .into_iter()
            .map(|(id, _)| id)
            .collect();
    assert_eq!(left, [orphan], "only the entry without an origin stays");
    let legacy_marks: i64 = redis::cmd("SCARD")
        .arg(keys.legacy_dead_letter_replayed())
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(legacy_marks, 0);

    let listed = json(&redis, &keys, &["dlq", "ls"]).await;
    let entries = listed.as_array().expect("a list");
    let events: Vec<&str> = entries
        .iter()
        .map(|d| d["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(events, ["e1", "e2", "e3"], "one list, oldest first");
    assert_eq!(entries[0]["id"], a.as_str(), "an entry keeps its id");
    let replayed: Vec<bool> = entries
        .iter()
        .map(|d| d["replayed"].as_bool().unwrap())
        .collect();
    assert_eq!(
        replayed,
        [true, false, false],
        "the replayed mark moved with e1"
    );

    let again = run(&redis, &keys, &["dlq", "migrate-legacy", "--yes"]).await;
    assert_eq!(again.code, 0, "{again:?}");
    assert_eq!(
        xlen(&mut conn, &keys.dead_letter("invoices")).await,
        2,
        "nothing moved twice"
    );
}
