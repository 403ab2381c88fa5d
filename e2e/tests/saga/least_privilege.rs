//! Least privilege in Redis: the mesh runs with the ACL file `meshctl acl` writes
//! (`common::acl`), each service connected as its own user; the saga, its compensations and the
//! revocations all work; and each user is refused what it was not given.

use common::connection::Conn;
use reqwest::Method;
use serde_json::json;

use crate::mesh::{Mesh, Options};

/// A connection as `user` (no retries, so a refusal is an error at once).
async fn connect_as(mesh: &Mesh, user: &str, password: &str) -> redis::RedisResult<Conn> {
    redis::Client::open(mesh.redis.url_as(user, password))?
        .get_connection_manager()
        .await
        .map(Conn::Single)
}

/// The error code of `cmd` run as `conn`'s user, `None` when it was allowed.
async fn refusal(conn: &mut Conn, cmd: &mut redis::Cmd) -> Option<String> {
    match cmd.query_async::<redis::Value>(conn).await {
        Ok(_) => None,
        Err(e) => Some(e.code().unwrap_or("other").to_owned()),
    }
}

/// An `XADD` of an entry of type `event_type` to `key`.
fn xadd(key: &str, event_type: &str) -> redis::Cmd {
    let mut cmd = redis::cmd("XADD");
    cmd.arg(key).arg("*").arg(&["type", event_type]);
    cmd
}

/// The text of `service`'s `/metrics`.
async fn metrics_page(mesh: &Mesh, service: &str) -> String {
    mesh.http
        .get(mesh.url(service, "/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_mesh_runs_with_one_redis_user_per_service_each_refused_the_rest() {
    let mesh = Mesh::start(Options {
        acl: true,
        ..Options::default()
    })
    .await;
    let shopper = mesh.shopper().await;
    let mug = mesh.product("mug", 1_000, 10).await;
    let rare = mesh.product("rare", 500, 1).await;
    mesh.wait_catalog(&shopper, &mug).await;

    // The saga and a compensation, through every service's user.
    let (status, order) = mesh
        .place(&shopper, json!([{"product_id": mug, "quantity": 2}]), None)
        .await;
    assert_eq!(status, 201, "{order}");
    mesh.wait_status(&shopper, order["id"].as_str().unwrap(), "shipped")
        .await;
    let (_, order) = mesh
        .place(&shopper, json!([{"product_id": rare, "quantity": 2}]), None)
        .await;
    mesh.wait_status(&shopper, order["id"].as_str().unwrap(), "refunded")
        .await;
    // A log-out (user publishes `token-revoked`, every service reads it) is followed by the
    // store.
    let (status, _) = mesh
        .call(
            Method::POST,
            "user",
            "/auth/logout",
            Some(&shopper.token),
            None,
        )
        .await;
    assert!(status == 204 || status == 200, "logout: {status}");
    common::testing::wait_until(
        std::time::Duration::from_secs(10),
        "the store refuses the logged-out token",
        || async {
            mesh.call(Method::GET, "store", "/orders", Some(&shopper.token), None)
                .await
                .0
                == 401
        },
    )
    .await;
    mesh.assert_settled().await;
    // A poison entry on a stream the store consumes: the store's user dead-letters it (dead-letter
    // stream and ack in one transaction), and its metrics count it (reading the dead-letter
    // stream and which of its entries were replayed).
    let mut operator = mesh.redis.connection();
    let _: String = redis::cmd("XADD")
        .arg(mesh.keys.stream("order-shipped"))
        .arg("*")
        .arg(&["garbage", "yes"])
        .query_async(&mut operator)
        .await
        .unwrap();
    common::testing::wait_until(
        std::time::Duration::from_secs(30),
        "the store counts its dead letter",
        || async {
            let page = metrics_page(&mesh, "store").await;
            common::testing::Exposition::parse(&page).value(
                "mesh_dead_letter_entries",
                &[("stream", "order-shipped"), ("group", "store")],
            ) == Some(1.0)
        },
    )
    .await;
    // Every service's metrics read their groups and the dead letters from Redis.
    for service in crate::mesh::SERVICES {
        common::testing::wait_until(
            std::time::Duration::from_secs(30),
            &format!("{service} refreshed its metrics from Redis"),
            || async {
                let page = metrics_page(&mesh, service).await;
                page.contains("mesh_metrics_refresh_timestamp_seconds{source=\"redis\"}")
            },
        )
        .await;
    }

    // Each service is refused what is not its own.
    let p = mesh.keys.prefix().to_owned();
    let pw = |who: &str| mesh.redis_passwords[who].clone();
    let mut payment = connect_as(&mesh, "payment", &pw("payment")).await.unwrap();
    let mut forged = xadd(&format!("{p}order-shipped"), "order-shipped");
    assert_eq!(
        refusal(&mut payment, &mut forged).await.as_deref(),
        Some("NOPERM")
    );
    let mut read_auth = redis::cmd("GET");
    read_auth.arg(format!("{p}auth:rate:register:127.0.0.1"));
    assert_eq!(
        refusal(&mut payment, &mut read_auth).await.as_deref(),
        Some("NOPERM")
    );
    let mut revoke = xadd(&format!("{p}token-revoked"), "token-revoked");
    assert_eq!(
        refusal(&mut payment, &mut revoke).await.as_deref(),
        Some("NOPERM")
    );
    assert_eq!(
        refusal(&mut payment, &mut redis::cmd("FLUSHALL"))
            .await
            .as_deref(),
        Some("NOPERM")
    );
    let mut other_group = redis::cmd("XREADGROUP");
    other_group
        .arg(&["GROUP", "store", "intruder", "COUNT", "1", "STREAMS"])
        .arg(format!("{p}order-shipped"))
        .arg(">");
    let mut store_as_payment = redis::cmd("XACK");
    store_as_payment
        .arg(format!("{p}order-shipped"))
        .arg("store")
        .arg("0-1");
    assert_eq!(
        refusal(&mut payment, &mut store_as_payment)
            .await
            .as_deref(),
        Some("NOPERM")
    );
    let mut warehouse = connect_as(&mesh, "warehouse", &pw("warehouse"))
        .await
        .unwrap();
    let mut cache = redis::cmd("SET");
    cache.arg(format!("{p}inventory:products:version")).arg("0");
    assert_eq!(
        refusal(&mut warehouse, &mut cache).await.as_deref(),
        Some("NOPERM")
    );
    let mut store = connect_as(&mesh, "store", &pw("store")).await.unwrap();
    assert_eq!(
        refusal(&mut store, &mut other_group).await.as_deref(),
        None,
        "store reads its own streams"
    );
    let mut idem = redis::cmd("SADD");
    idem.arg(format!("{p}idem:payment:1")).arg("x");
    assert_eq!(
        refusal(&mut store, &mut idem).await.as_deref(),
        Some("NOPERM")
    );
    // Nobody gets in without a password, or with another user's.
    assert!(connect_as(&mesh, "store", &pw("payment")).await.is_err());
    let anonymous = format!("redis://127.0.0.1:{}", mesh.redis.port());
    let mut anonymous = redis::Client::open(anonymous)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let ping = redis::cmd("PING")
        .query_async::<String>(&mut anonymous)
        .await;
    assert_eq!(ping.unwrap_err().code(), Some("NOAUTH"));
    let mut health = connect_as(&mesh, common::acl::HEALTH, "any").await.unwrap();
    assert_eq!(refusal(&mut health, &mut redis::cmd("PING")).await, None);
    assert_eq!(
        refusal(&mut health, &mut read_auth).await.as_deref(),
        Some("NOPERM")
    );

    // Each service prunes its inbox as its own user: it reads the oldest pending entry of its
    // group on every stream, and a stream it may not touch holds nothing of its group's.
    let retention = std::time::Duration::from_secs(3600);
    for service in crate::mesh::SERVICES {
        let test_db = common::testing::TestDb::new().await;
        let db = test_db
            .connect::<common::db::migration::RuntimeMigrator>()
            .await;
        assert!(
            common::db::inbox::record(&db, service, "an-event")
                .await
                .unwrap()
        );
        let mut conn = connect_as(&mesh, service, &pw(service)).await.unwrap();
        let pruned =
            common::runtime::inbox_pruning::prune(&db, &mut conn, &mesh.keys, retention).await;
        assert_eq!(pruned.unwrap(), 0, "{service} prunes its inbox");
    }

    // The operator's meshctl sees everything: the mesh is healthy but for that dead letter.
    let output = std::process::Command::new(common::testing::workspace_bin("meshctl"))
        .args(["--redis-url", &mesh.redis.url(), "--prefix", &p, "check"])
        .output()
        .unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(output.status.code(), Some(1), "{report}");
    assert!(
        report.contains("max lag 0, oldest pending 0ms, 1 dead letters"),
        "{report}"
    );
}
