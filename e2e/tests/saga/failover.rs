//! Failover on a Redis Cluster (issue 13): orders flow through the five real binaries while the
//! master of a saga stream's slot goes away, once for each of three streams: handed over to its
//! replica (`CLUSTER FAILOVER`), or killed (`kill -9`, its replica promoted). The services
//! reconnect on their own (their cluster connections follow the `MOVED` redirections and the new
//! slot map); then every order is shipped, paid once, and money and stock are conserved,
//! computed from the services' own records (`Mesh::assert_conserved`).

use std::{
    sync::atomic::{AtomicUsize, Ordering::Relaxed},
    time::Duration,
};

use common::{
    events::{Event, OrderCompleted, OrderPlaced, StockReserved},
    testing::wait_until,
};
use serde_json::json;

use crate::{
    mesh::{Mesh, Options, Shopper},
    mesh_redis::MeshRedis,
};

/// Orders placed, one mug each.
const ORDERS: usize = 36;

/// Places the orders one after another, each retried with its `Idempotency-Key` until the store
/// takes it; counts them in `placed`. Returns their ids.
async fn place_orders(
    mesh: &Mesh,
    shopper: &Shopper,
    mug: &str,
    placed: &AtomicUsize,
) -> Vec<String> {
    let mut ids = Vec::with_capacity(ORDERS);
    for i in 0..ORDERS {
        let key = format!("failover-{i}");
        let id = loop {
            let items = json!([{"product_id": mug, "quantity": 1}]);
            let (status, order) = mesh.place(shopper, items, Some(&key)).await;
            if status == 200 || status == 201 {
                break order["id"].as_str().unwrap().to_owned();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        ids.push(id);
        placed.fetch_add(1, Relaxed);
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    ids
}

/// How a master goes away.
#[derive(Debug, Clone, Copy)]
enum Fault {
    /// `CLUSTER FAILOVER` on its replica: it hands over once the replica has caught up.
    Failover,
    /// `kill -9`: the replica is promoted by the other masters; what the killed master had
    /// acknowledged but not yet replicated is gone. The services run with
    /// `MESH_REDIS_WAIT_REPLICAS=1`, so no event counted published was only on it.
    Kill9,
}

/// Orders flow while the masters of `order-placed`, `order-completed` and `stock-reserved` go
/// away (`fault`), one after another; then every order is shipped, paid once, and money and
/// stock are conserved.
async fn orders_survive(fault: Fault) {
    let options = Options {
        cluster: true,
        ..Options::default()
    };
    let mesh = match fault {
        Fault::Failover => Mesh::start(options).await,
        Fault::Kill9 => {
            let env = vec![("MESH_REDIS_WAIT_REPLICAS", "1".to_owned())];
            Mesh::start_with_env(options, env).await
        }
    };
    let MeshRedis::Cluster(cluster) = &mesh.redis else {
        unreachable!("a cluster mesh");
    };
    let shopper = mesh.shopper().await;
    let mug = mesh.product("mug", 1_000, 1_000).await;
    mesh.wait_catalog(&shopper, &mug).await;

    let placed = AtomicUsize::new(0);
    let faults = async {
        for (after, stream) in [
            (ORDERS / 6, OrderPlaced::TYPE),
            (ORDERS / 2, OrderCompleted::TYPE),
            (ORDERS * 5 / 6, StockReserved::TYPE),
        ] {
            wait_until(Duration::from_secs(60), "orders placed", || async {
                placed.load(Relaxed) >= after
            })
            .await;
            let started = std::time::Instant::now();
            let key = mesh.keys.stream(stream);
            let (from, to) = match fault {
                Fault::Failover => cluster.fail_over_slot_of(&key).await,
                Fault::Kill9 => cluster.kill_master_of(&key).await,
            };
            eprintln!(
                "{fault:?} of {stream}'s master: {from} -> {to} in {} ms",
                started.elapsed().as_millis()
            );
        }
    };
    let (ids, ()) = tokio::join!(place_orders(&mesh, &shopper, &mug, &placed), faults);

    for id in &ids {
        mesh.wait_status(&shopper, id, "shipped").await;
    }
    mesh.assert_conserved(&[(&shopper, 0)], &[(&mug, 1_000)])
        .await;
}

#[tokio::test]
async fn orders_flow_through_failovers_of_the_masters_and_each_is_applied_once() {
    orders_survive(Fault::Failover).await;
}

#[tokio::test]
async fn orders_flow_through_kill_9_of_the_masters_and_each_is_applied_once() {
    orders_survive(Fault::Kill9).await;
}
