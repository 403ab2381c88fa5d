//! Safe trimming never removes an entry some group has not acknowledged, keeps the retention
//! floor, and leaves streams nobody reads alone.

use std::time::Duration;

use common::connection::Conn;
use common::{
    Keys,
    runtime::trim,
    testing::{TestRedis, unique_prefix, xlen},
};

use crate::support::{on_one_server_and_a_cluster, pending, publish_n, stream_entries};

async fn create_group(conn: &mut Conn, stream_key: &str, group: &str) {
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(stream_key)
        .arg(group)
        .arg("0")
        .query_async(conn)
        .await
        .unwrap();
}

/// Reads up to `count` new entries as `group`/`consumer`, without acking; returns how many.
async fn read(conn: &mut Conn, stream_key: &str, group: &str, count: usize) -> usize {
    let v: redis::Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg(group)
        .arg(format!("{group}-1"))
        .arg("COUNT")
        .arg(count)
        .arg("STREAMS")
        .arg(stream_key)
        .arg(">")
        .query_async(conn)
        .await
        .unwrap();
    common::runtime::redis_io::parse_read_reply(v).len()
}

async fn ack(conn: &mut Conn, stream_key: &str, group: &str, ids: &[String]) {
    let acked: usize = redis::cmd("XACK")
        .arg(stream_key)
        .arg(group)
        .arg(ids)
        .query_async(conn)
        .await
        .unwrap();
    assert_eq!(acked, ids.len());
}

async fn ids_of(conn: &mut Conn, stream_key: &str) -> Vec<String> {
    stream_entries(conn, stream_key)
        .await
        .into_iter()
        .map(|(id, _)| id)
        .collect()
}

on_one_server_and_a_cluster!(safe_trim_keeps_every_entry_some_group_has_not_acked);
async fn safe_trim_keeps_every_entry_some_group_has_not_acked(redis: &dyn TestRedis) {
    let keys = Keys::new(unique_prefix());
    let mut conn = redis.connection();
    let key = keys.stream("events");
    publish_n(&redis, &keys, "events", 10).await;
    let ids = ids_of(&mut conn, &key).await;
    // Entry ids are millisecond timestamps: let a zero retention floor be past all of them.
    tokio::time::sleep(Duration::from_millis(5)).await;

    // A has read and acked everything.
    create_group(&mut conn, &key, "a").await;
    assert_eq!(read(&mut conn, &key, "a", 100).await, 10);
    ack(&mut conn, &key, "a", &ids).await;
    // B has read six, acked the first three (3..6 pending), and not read the last four.
    create_group(&mut conn, &key, "b").await;
    assert_eq!(read(&mut conn, &key, "b", 6).await, 6);
    ack(&mut conn, &key, "b", &ids[..3]).await;

    let (plan, removed) = trim::trim(&mut conn, &key, Duration::ZERO).await.unwrap();
    assert_eq!(plan.min_id.as_deref(), Some(ids[3].as_str()), "{plan:?}");
    assert!(plan.reason.contains("group b"), "{plan:?}");
    assert_eq!(removed, 3);
    assert_eq!(ids_of(&mut conn, &key).await, ids[3..].to_vec());
    let pending_b: Vec<String> = pending(&mut conn, &key, "b")
        .await
        .into_iter()
        .map(|(id, ..)| id)
        .collect();
    assert_eq!(pending_b, ids[3..6].to_vec());

    // Trimming again removes nothing more.
    let (_, removed) = trim::trim(&mut conn, &key, Duration::ZERO).await.unwrap();
    assert_eq!(removed, 0);
    assert_eq!(xlen(&mut conn, &key).await, 7);

    // Once B acks its pending entries, the trim point is the first entry B has not read.
    ack(&mut conn, &key, "b", &ids[3..6]).await;
    let (plan, removed) = trim::trim(&mut conn, &key, Duration::ZERO).await.unwrap();
    assert_eq!(plan.min_id.as_deref(), Some(ids[6].as_str()), "{plan:?}");
    assert_eq!(removed, 3);
    assert_eq!(ids_of(&mut conn, &key).await, ids[6..].to_vec());

    // A group that has read nothing yet holds everything.
    create_group(&mut conn, &key, "c").await;
    let (plan, removed) = trim::trim(&mut conn, &key, Duration::ZERO).await.unwrap();
    assert_eq!(removed, 0, "{plan:?}");
    assert_eq!(ids_of(&mut conn, &key).await, ids[6..].to_vec());
}

on_one_server_and_a_cluster!(retention_floor_keeps_recent_entries_even_when_all_groups_acked);
async fn retention_floor_keeps_recent_entries_even_when_all_groups_acked(redis: &dyn TestRedis) {
    let keys = Keys::new(unique_prefix());
    let mut conn = redis.connection();
    let key = keys.stream("events");
    publish_n(&redis, &keys, "events", 5).await;
    let ids = ids_of(&mut conn, &key).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    create_group(&mut conn, &key, "a").await;
    assert_eq!(read(&mut conn, &key, "a", 100).await, 5);
    ack(&mut conn, &key, "a", &ids).await;

    let hour = Duration::from_secs(3600);
    let plan = trim::plan(&mut conn, &key, hour).await.unwrap();
    assert_eq!(plan.would_remove, 0, "{plan:?}");
    assert!(plan.reason.contains("retention"), "{plan:?}");
    let (_, removed) = trim::trim(&mut conn, &key, hour).await.unwrap();
    assert_eq!(removed, 0);
    assert_eq!(ids_of(&mut conn, &key).await, ids);

    // Without the floor, everything acked by every group may go.
    let (_, removed) = trim::trim(&mut conn, &key, Duration::ZERO).await.unwrap();
    assert_eq!(removed, 5);
    assert_eq!(xlen(&mut conn, &key).await, 0);
}

on_one_server_and_a_cluster!(stream_without_groups_is_not_trimmed);
async fn stream_without_groups_is_not_trimmed(redis: &dyn TestRedis) {
    let keys = Keys::new(unique_prefix());
    let mut conn = redis.connection();
    let key = keys.stream("orphans");
    publish_n(&redis, &keys, "orphans", 5).await;

    let (plan, removed) = trim::trim(&mut conn, &key, Duration::ZERO).await.unwrap();
    assert_eq!(plan.min_id, None, "{plan:?}");
    assert_eq!(removed, 0);
    assert_eq!(xlen(&mut conn, &key).await, 5);
}
