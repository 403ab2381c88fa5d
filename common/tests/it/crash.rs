//! Crashes of real worker processes (`kill -9`, aborts injected between commit and ack or between
//! commit and publish): effects stay exactly once thanks to the inbox written in the effect's
//! transaction, reclaimed entries are finished by the survivors, and an event committed to the
//! outbox is published after the crash — a duplicate publish being absorbed downstream.

use std::{collections::HashMap, os::unix::process::ExitStatusExt, time::Duration};

use common::connection::Conn;
use common::{
    Envelope, Keys,
    db::{self, inbox, outbox},
    runtime::{Publisher, redis_io},
    testing::{TestDb, TestRedis, group_state, unique_prefix, wait_drained, wait_until, xlen},
};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait, PaginatorTrait,
    QueryFilter, Statement,
};

use crate::support::{effect_counts, on_one_server_and_a_cluster, pending, publish_n, testworker};

const SIGABRT: i32 = 6;

/// `test_effects` rows written by one consumer.
async fn effects_by(db: &DatabaseConnection, consumer: &str) -> i64 {
    let backend = db.get_database_backend();
    let sql = match backend {
        DbBackend::Postgres => "SELECT COUNT(*) FROM test_effects WHERE consumer = $1",
        _ => "SELECT COUNT(*) FROM test_effects WHERE consumer = ?",
    };
    db.query_one_raw(Statement::from_sql_and_values(
        backend,
        sql,
        [consumer.into()],
    ))
    .await
    .unwrap()
    .unwrap()
    .try_get_by_index::<i64>(0)
    .unwrap()
}

async fn inbox_rows(db: &DatabaseConnection, group: &str) -> u64 {
    inbox::Entity::find()
        .filter(inbox::Column::ConsumerGroup.eq(group))
        .count(db)
        .await
        .unwrap()
}

/// Every entry of a stream, parsed as envelopes, with their entry ids.
async fn envelopes(conn: &mut Conn, stream_key: &str) -> Vec<(String, Envelope)> {
    let v: redis::Value = redis::cmd("XRANGE")
        .arg(stream_key)
        .arg("-")
        .arg("+")
        .query_async(conn)
        .await
        .unwrap();
    redis_io::parse_entries(stream_key, v)
        .into_iter()
        .map(|e| {
            let env = Envelope::from_fields(&e.fields.expect("entry payload")).unwrap();
            (e.id, env)
        })
        .collect()
}

/// The event id of each entry, by entry id.
async fn event_ids(conn: &mut Conn, stream_key: &str) -> HashMap<String, String> {
    envelopes(conn, stream_key)
        .await
        .into_iter()
        .map(|(id, env)| (id, env.event_id.to_string()))
        .collect()
}

fn assert_each_once(effects: &HashMap<String, i64>, ids: &[String]) {
    assert_eq!(effects.len(), ids.len(), "distinct events with an effect");
    for id in ids {
        assert_eq!(effects.get(id), Some(&1), "effect rows of event {id}");
    }
}

on_one_server_and_a_cluster!(entries_of_a_killed_consumer_are_reclaimed_and_applied_once);
async fn entries_of_a_killed_consumer_are_reclaimed_and_applied_once(redis: &dyn TestRedis) {
    const N: usize = 1_000;
    let keys = Keys::new(unique_prefix());
    let stream_key = keys.stream("crash");
    let testdb = TestDb::new().await;
    let ids = publish_n(&redis, &keys, "crash", N).await;
    let n = N.to_string();

    // A reads the whole stream in one batch; its handlers sleep 2 s, then commit one by one.
    let mut a = testworker(
        &redis,
        &keys,
        &[
            "--stream",
            "crash",
            "--group",
            "g",
            "--consumer",
            "A",
            "--effect",
            "sql",
            "--database-url",
            &testdb.url,
            "--handler-sleep-ms",
            "2000",
            "--processing-timeout-ms",
            "1500",
            "--concurrency",
            &n,
            "--batch",
            &n,
        ],
    );
    let mut conn = redis.connection();
    wait_until(Duration::from_secs(15), "every entry pending on A", || {
        let mut conn = conn.clone();
        let key = stream_key.clone();
        async move {
            if group_state(&mut conn, &key, "g").await.is_none() {
                return false;
            }
            let p = pending(&mut conn, &key, "g").await;
            p.len() == N && p.iter().all(|(_, owner, _, _)| owner == "A")
        }
    })
    .await;
    let db = db::connect(&testdb.url).await.unwrap();
    // Kill A in the middle of its commits: some effects applied (some maybe not yet acked),
    // the rest still pending on A.
    wait_until(Duration::from_secs(10), "A committed an effect", || {
        let db = db.clone();
        async move { effects_by(&db, "A").await >= 1 }
    })
    .await;
    a.kill9();
    let committed_by_a = effects_by(&db, "A").await;
    let left = pending(&mut conn, &stream_key, "g").await;
    assert!(
        !left.is_empty(),
        "A acknowledged everything before it was killed"
    );
    assert!(left.iter().all(|(_, owner, _, _)| owner == "A"));
    let by_entry = event_ids(&mut conn, &stream_key).await;
    let applied = effect_counts(&db, "test_effects").await;
    let committed_unacked = left
        .iter()
        .filter(|(id, ..)| applied.contains_key(&by_entry[id]))
        .count();
    eprintln!(
        "killed A: {committed_by_a} committed, {} pending ({committed_unacked} of them committed)",
        left.len()
    );

    let mut b = testworker(
        &redis,
        &keys,
        &[
            "--stream",
            "crash",
            "--group",
            "g",
            "--consumer",
            "B",
            "--effect",
            "sql",
            "--database-url",
            &testdb.url,
            "--processing-timeout-ms",
            "500",
        ],
    );
    wait_drained(&mut conn, &stream_key, "g", Duration::from_secs(20)).await;

    assert_each_once(&effect_counts(&db, "test_effects").await, &ids);
    assert_eq!(inbox_rows(&db, "g").await, N as u64);
    assert!(pending(&mut conn, &stream_key, "g").await.is_empty());
    assert_eq!(effects_by(&db, "A").await, committed_by_a);
    assert_eq!(effects_by(&db, "B").await, N as i64 - committed_by_a);
    b.stop_cleanly(Duration::from_secs(10)).await;
}

on_one_server_and_a_cluster!(crash_between_commit_and_ack_does_not_apply_an_event_twice);
async fn crash_between_commit_and_ack_does_not_apply_an_event_twice(redis: &dyn TestRedis) {
    const N: usize = 50;
    let keys = Keys::new(unique_prefix());
    let stream_key = keys.stream("commit-crash");
    let testdb = TestDb::new().await;
    let ids = publish_n(&redis, &keys, "commit-crash", N).await;

    let mut a = testworker(
        &redis,
        &keys,
        &[
            "--stream",
            "commit-crash",
            "--group",
            "g",
            "--consumer",
            "A",
            "--effect",
            "sql",
            "--database-url",
            &testdb.url,
            "--crash-after-commit",
            "3",
            "--concurrency",
            "1",
            "--batch",
            "1",
        ],
    );
    let status = a.wait_exit(Duration::from_secs(15)).await;
    assert_eq!(status.signal(), Some(SIGABRT), "A aborts: {status:?}");

    let db = db::connect(&testdb.url).await.unwrap();
    let mut conn = redis.connection();
    let applied = effect_counts(&db, "test_effects").await;
    assert_eq!(applied.len(), 3, "three commits before the crash");
    assert!(applied.values().all(|&n| n == 1));
    // The third event is durable but its entry was never acknowledged.
    let by_entry = event_ids(&mut conn, &stream_key).await;
    let left = pending(&mut conn, &stream_key, "g").await;
    assert!(
        left.iter()
            .any(|(id, owner, ..)| owner == "A" && applied.contains_key(&by_entry[id])),
        "a committed entry is still pending on A: {left:?}"
    );

    let mut b = testworker(
        &redis,
        &keys,
        &[
            "--stream",
            "commit-crash",
            "--group",
            "g",
            "--consumer",
            "B",
            "--effect",
            "sql",
            "--database-url",
            &testdb.url,
            "--processing-timeout-ms",
            "500",
        ],
    );
    wait_drained(&mut conn, &stream_key, "g", Duration::from_secs(20)).await;

    assert_each_once(&effect_counts(&db, "test_effects").await, &ids);
    assert_eq!(inbox_rows(&db, "g").await, N as u64);
    assert!(pending(&mut conn, &stream_key, "g").await.is_empty());
    assert_eq!(effects_by(&db, "A").await, 3);
    assert_eq!(effects_by(&db, "B").await, N as i64 - 3);
    b.stop_cleanly(Duration::from_secs(10)).await;
}

on_one_server_and_a_cluster!(
    crash_between_commit_and_publish_keeps_the_follow_up_and_duplicates_are_absorbed
);
async fn crash_between_commit_and_publish_keeps_the_follow_up_and_duplicates_are_absorbed(
    redis: &dyn TestRedis,
) {
    let keys = Keys::new(unique_prefix());
    let work_key = keys.stream("work");
    let done_key = keys.stream("effect-done");
    let testdb = TestDb::new().await;
    let source = publish_n(&redis, &keys, "work", 1).await;

    let worker_args = |consumer: &'static str| {
        vec![
            "--stream",
            "work",
            "--group",
            "g",
            "--consumer",
            consumer,
            "--effect",
            "sql",
            "--database-url",
            &testdb.url,
            "--follow-up",
            "effect-done",
            "--processing-timeout-ms",
            "500",
        ]
    };
    let mut args = worker_args("A");
    args.extend(["--crash-before-publish", "1"]);
    let mut a = testworker(&redis, &keys, &args);
    let status = a.wait_exit(Duration::from_secs(15)).await;
    assert_eq!(status.signal(), Some(SIGABRT), "A aborts: {status:?}");

    // Committed: the effect and the follow-up in the outbox. Not published.
    let db = db::connect(&testdb.url).await.unwrap();
    let mut conn = redis.connection();
    assert_each_once(&effect_counts(&db, "test_effects").await, &source);
    let rows = outbox::Entity::find().all(&db).await.unwrap();
    assert_eq!(rows.len(), 1, "the unsent follow-up: {rows:?}");
    assert_eq!(rows[0].stream, "effect-done");
    let follow_up_id = rows[0].event_id.clone();
    assert_eq!(xlen(&mut conn, &done_key).await, 0);
    assert_eq!(pending(&mut conn, &work_key, "g").await.len(), 1);

    // A new process publishes it (relay sweep at start-up) and finishes the source entry without
    // applying it or enqueueing its follow-up again.
    let mut b = testworker(&redis, &keys, &worker_args("B"));
    wait_until(
        Duration::from_secs(20),
        "follow-up published, source drained",
        || {
            let mut conn = conn.clone();
            let db = db.clone();
            let (work_key, done_key) = (work_key.clone(), done_key.clone());
            async move {
                outbox::unsent(&db).await.unwrap() == 0
                    && xlen(&mut conn, &done_key).await == 1
                    && group_state(&mut conn, &work_key, "g")
                        .await
                        .is_some_and(|s| s.is_drained())
            }
        },
    )
    .await;
    b.stop_cleanly(Duration::from_secs(10)).await;
    assert_each_once(&effect_counts(&db, "test_effects").await, &source);
    assert_eq!(inbox_rows(&db, "g").await, 1);
    assert_eq!(outbox::unsent(&db).await.unwrap(), 0);
    let published = envelopes(&mut conn, &done_key).await;
    assert_eq!(published.len(), 1);
    let follow_up = published[0].1.clone();
    assert_eq!(follow_up.event_id.to_string(), follow_up_id);
    assert_eq!(follow_up.causation_id, source[0]);

    // The relay publishing twice (crash after XADD, before deleting the row): same envelope,
    // two entries.
    outbox::enqueue(&db, "effect-done", &follow_up)
        .await
        .unwrap();
    let relay = outbox::OutboxRelay::new(db.clone(), Publisher::new(conn.clone(), keys.clone()));
    assert_eq!(relay.publish_pending().await.unwrap(), 1);
    let published = envelopes(&mut conn, &done_key).await;
    assert_eq!(xlen(&mut conn, &done_key).await, 2);
    assert!(published.iter().all(|(_, env)| *env == follow_up));

    // A downstream service with its own database applies it once.
    let downstream_db = TestDb::new().await;
    let mut d = testworker(
        &redis,
        &keys,
        &[
            "--stream",
            "effect-done",
            "--group",
            "downstream",
            "--consumer",
            "D",
            "--effect",
            "sql",
            "--database-url",
            &downstream_db.url,
        ],
    );
    wait_drained(&mut conn, &done_key, "downstream", Duration::from_secs(20)).await;
    d.stop_cleanly(Duration::from_secs(10)).await;
    let ddb = db::connect(&downstream_db.url).await.unwrap();
    assert_each_once(&effect_counts(&ddb, "test_effects").await, &[follow_up_id]);
    assert_eq!(inbox_rows(&ddb, "downstream").await, 1);
    assert!(pending(&mut conn, &done_key, "downstream").await.is_empty());
    assert_eq!(xlen(&mut conn, &done_key).await, 2);
}

on_one_server_and_a_cluster!(
    a_crash_in_the_middle_of_a_batch_transaction_applies_nothing_of_it_and_loses_nothing
);
async fn a_crash_in_the_middle_of_a_batch_transaction_applies_nothing_of_it_and_loses_nothing(
    redis: &dyn TestRedis,
) {
    const N: usize = 60;
    let keys = Keys::new(unique_prefix());
    let stream_key = keys.stream("batch-crash");
    let testdb = TestDb::new().await;
    let ids = publish_n(&redis, &keys, "batch-crash", N).await;
    let worker_args = |consumer: &'static str| {
        vec![
            "--stream".to_owned(),
            "batch-crash".into(),
            "--group".into(),
            "g".into(),
            "--consumer".into(),
            consumer.into(),
            "--effect".into(),
            "sql".into(),
            "--database-url".into(),
            testdb.url.clone(),
            "--batch-transactions".into(),
        ]
    };

    // A reads all sixty in one batch and aborts after the fifth handler has "committed" (released
    // its savepoint): the batch's transaction never commits.
    let mut args = worker_args("A");
    args.extend(["--crash-after-commit".into(), "5".into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut a = testworker(&redis, &keys, &args);
    let status = a.wait_exit(Duration::from_secs(15)).await;
    assert_eq!(status.signal(), Some(SIGABRT), "A aborts: {status:?}");

    let db = db::connect(&testdb.url).await.unwrap();
    let mut conn = redis.connection();
    assert!(
        effect_counts(&db, "test_effects").await.is_empty(),
        "nothing of an uncommitted batch is durable"
    );
    assert_eq!(inbox_rows(&db, "g").await, 0);
    assert_eq!(
        pending(&mut conn, &stream_key, "g").await.len(),
        N,
        "all still pending on A"
    );

    // B reclaims them and applies each exactly once, in batches of its own.
    let mut args = worker_args("B");
    args.extend(["--processing-timeout-ms".into(), "500".into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut b = testworker(&redis, &keys, &args);
    wait_drained(&mut conn, &stream_key, "g", Duration::from_secs(20)).await;
    assert_each_once(&effect_counts(&db, "test_effects").await, &ids);
    assert_eq!(inbox_rows(&db, "g").await, N as u64);
    assert_eq!(effects_by(&db, "B").await, N as i64);
    b.stop_cleanly(Duration::from_secs(10)).await;
}

on_one_server_and_a_cluster!(a_restarted_consumer_with_a_stable_name_handles_what_it_held_at_once);
/// A consumer with a stable name (`MESH_CONSUMER_NAME`), killed while it holds entries and
/// started again under the same name, handles them at once from its own pending list — not
/// after the processing timeout (a minute here), when another consumer would reclaim them — and
/// each effect is applied once (SQL effects with the inbox).
async fn a_restarted_consumer_with_a_stable_name_handles_what_it_held_at_once(
    redis: &dyn TestRedis,
) {
    const N: usize = 50;
    let keys = Keys::new(unique_prefix());
    let stream_key = keys.stream("held");
    let testdb = TestDb::new().await;
    let ids = publish_n(&redis, &keys, "held", N).await;
    let args = |sleep_ms: &'static str| {
        vec![
            "--stream",
            "held",
            "--group",
            "g",
            "--consumer",
            "payment-1",
            "--effect",
            "sql",
            "--database-url",
            testdb.url.as_str(),
            "--handler-sleep-ms",
            sleep_ms,
            "--processing-timeout-ms",
            "60000",
        ]
    };
    // Its handlers never finish in time: every entry ends up pending on it.
    let mut first = testworker(&redis, &keys, &args("600000"));
    let mut conn = redis.connection();
    wait_until(Duration::from_secs(15), "every entry held", || {
        let (mut conn, key) = (conn.clone(), stream_key.clone());
        async move {
            if group_state(&mut conn, &key, "g").await.is_none() {
                return false;
            }
            let p = pending(&mut conn, &key, "g").await;
            p.len() == N && p.iter().all(|(_, owner, _, _)| owner == "payment-1")
        }
    })
    .await;
    first.kill9();

    let started = tokio::time::Instant::now();
    let mut second = testworker(&redis, &keys, &args("0"));
    wait_drained(&mut conn, &stream_key, "g", Duration::from_secs(20)).await;
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(20),
        "held entries waited {took:?}, as long as a reclaim after the processing timeout"
    );
    second.stop_cleanly(Duration::from_secs(10)).await;
    let db = db::connect(&testdb.url).await.unwrap();
    assert_each_once(&effect_counts(&db, "test_effects").await, &ids);
}
