//! The chaos drill (issue 12): the five real binaries and a real `redis-server` (AOF,
//! `appendfsync always`), with a second replica of payment and inventory, under a load of orders
//! from several shoppers who retry every failed `POST /orders` with the same `Idempotency-Key`,
//! while a seeded schedule kills each service and each replica with `kill -9` and restarts it,
//! stops two services with SIGTERM and starts them again, kills Redis with `kill -9` and shuts
//! it down cleanly (each restarted), takes the
//! database away (the store's SQLite file write-locked by another process, or, on PostgreSQL,
//! the private server of the run stopped), and at last runs the drill of issue 12: Redis
//! `kill -9` and payment `kill -9`, both restarted. Then it checks the services' own records
//! (`chaos_check.rs`) and prints a report; the time from the last POST to the last order
//! settled must stay under the target.
//!
//! Short in the test suite (a few hundred orders); `scripts/chaos.sh` runs the same code with
//! `MESH_CHAOS_ORDERS` (5,000 by default there), `MESH_CHAOS_SHOPPERS`, `MESH_CHAOS_SEED`,
//! `MESH_CHAOS_SETTLE_TARGET_MS`.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed},
    },
    time::{Duration, Instant},
};

use common::testing::PostgresCluster;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, sqlx};
use serde_json::json;

use crate::chaos_check::{Expected, check_records};
use crate::mesh::{Mesh, Options, SERVICES};

/// What one run does.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub orders: usize,
    pub shoppers: usize,
    /// Orders per second from all shoppers together (`None`: each shopper as fast as the store
    /// answers). A rate the mesh sustains makes the settle time measure recovery; an unpaced
    /// load that outruns the mesh leaves a backlog at the last POST, and the settle time is
    /// then mostly the time to work it off (see `MESH_CHAOS_NO_FAULTS`).
    pub rate: Option<u64>,
    pub seed: u64,
    /// Longest time from the last POST to the last order terminal or shipped.
    pub settle_target: Duration,
}

impl Plan {
    /// The plan of the environment (`MESH_CHAOS_*`), else `orders` orders from 8 shoppers, a
    /// seed from the clock, and `settle_target`.
    pub fn from_env(orders: usize, settle_target: Duration) -> Self {
        let var = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
        let clock = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1);
        Self {
            orders: var("MESH_CHAOS_ORDERS").map_or(orders, |n| n as usize),
            shoppers: var("MESH_CHAOS_SHOPPERS").map_or(8, |n| n.max(1) as usize),
            rate: var("MESH_CHAOS_RATE").filter(|&r| r > 0),
            seed: var("MESH_CHAOS_SEED").unwrap_or(clock),
            settle_target: var("MESH_CHAOS_SETTLE_TARGET_MS")
                .map_or(settle_target, Duration::from_millis),
        }
    }
}

/// A small seeded generator (SplitMix64): the schedule is replayable from the printed seed.
pub struct Rng(u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Fault {
    /// `kill -9` of a service, restarted after a pause.
    Kill(&'static str),
    /// `kill -9` of a service's second replica, restarted after a pause.
    KillReplica(&'static str),
    /// SIGTERM of a service (a clean stop, as `docker compose stop` or a rolling restart
    /// does), started again after a pause.
    Term(&'static str),
    /// `kill -9` of Redis, restarted after a pause.
    RedisKill,
    /// A clean `SHUTDOWN` of Redis, started again after a pause.
    RedisShutdown,
    /// The database away for a few seconds.
    DatabaseOutage,
    /// Issue 12's drill: Redis and payment `kill -9`, both restarted.
    RedisThenPayment,
}

/// The services that run a second replica during the drill.
const REPLICATED: [&str; 2] = ["payment", "inventory"];

/// The seeded schedule, in a random order: each service and each replica killed once, two
/// services stopped cleanly and started again, Redis killed once and shut down once, and the
/// database taken away once; then the drill.
fn schedule(rng: &mut Rng) -> Vec<Fault> {
    // `MESH_CHAOS_NO_FAULTS=1`: the same load without any fault, the baseline of the settle
    // time (when the load outruns the mesh, the last POST leaves a backlog to work off).
    if std::env::var_os("MESH_CHAOS_NO_FAULTS").is_some() {
        return Vec::new();
    }
    let mut faults: Vec<Fault> = SERVICES.iter().map(|s| Fault::Kill(s)).collect();
    faults.extend(REPLICATED.iter().map(|s| Fault::KillReplica(s)));
    let first = rng.below(SERVICES.len() as u64) as usize;
    let second = (first + 1 + rng.below(SERVICES.len() as u64 - 1) as usize) % SERVICES.len();
    faults.extend([Fault::Term(SERVICES[first]), Fault::Term(SERVICES[second])]);
    faults.extend([Fault::RedisKill, Fault::RedisShutdown]);
    // `MESH_CHAOS_SKIP_DATABASE=1`: no database outage (to tell its effects from the others').
    if std::env::var_os("MESH_CHAOS_SKIP_DATABASE").is_none() {
        faults.push(Fault::DatabaseOutage);
    }
    for i in (1..faults.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        faults.swap(i, j);
    }
    faults.push(Fault::RedisThenPayment);
    faults
}

/// What the shoppers saw.
#[derive(Default)]
struct LoadStats {
    posted: AtomicUsize,
    unavailable: AtomicU64,
    failed_requests: AtomicU64,
}

/// One placed order: its key and the id the store answered (every retry answered the same).
pub struct Placed {
    pub key: String,
    pub order_id: String,
}

/// Runs the plan and checks the result; returns the settle time.
pub async fn run(plan: Plan) -> Duration {
    println!("chaos: seed {} ({plan:?})", plan.seed);
    let mut rng = Rng(plan.seed);
    let mut cluster = std::env::var("TEST_DATABASE_URL")
        .is_ok_and(|u| u.starts_with("postgres"))
        .then(PostgresCluster::start);
    let options = Options {
        durable_redis: true,
        starting_credit_cents: 1_000_000,
        ..Options::default()
    };
    let mut mesh = Mesh::start_on(options, cluster.as_ref().map(|c| c.url())).await;
    for service in REPLICATED {
        mesh.add_replica(service).await;
    }

    // One product with stock for every order, one short of it: some orders are refunded.
    let plenty = plan.orders as i64 * 2;
    let short = (plan.orders as i64 / 10).max(1);
    let products = vec![
        (mesh.product("chaos-plenty", 100, plenty).await, plenty),
        (mesh.product("chaos-short", 250, short).await, short),
    ];
    let mut shoppers = Vec::new();
    for _ in 0..plan.shoppers {
        shoppers.push(mesh.shopper().await);
    }
    mesh.wait_catalog(&shoppers[0], &products[0].0).await;

    let stats = Arc::new(LoadStats::default());
    let store = mesh.url("store", "/orders");
    let mut load = tokio::task::JoinSet::new();
    let per_shopper = plan.orders.div_ceil(plan.shoppers);
    for (i, shopper) in shoppers.iter().enumerate() {
        let n = per_shopper.min(plan.orders - (i * per_shopper).min(plan.orders));
        let ids: Vec<String> = products.iter().map(|(id, _)| id.clone()).collect();
        let (http, url, token, stats) = (
            mesh.http.clone(),
            store.clone(),
            shopper.token.clone(),
            stats.clone(),
        );
        let seed = rng.next();
        // Each shopper's share of the rate: one order per `every`.
        let every = plan
            .rate
            .map(|rate| Duration::from_secs_f64(plan.shoppers as f64 / rate as f64));
        load.spawn(async move { shop(http, url, token, n, ids, seed, every, stats).await });
    }

    let faults = schedule(&mut rng);
    let mut placed = Vec::new();
    let started = Instant::now();
    let mut report = Vec::new();
    let mut drill_over = None;
    for (i, fault) in faults.iter().enumerate() {
        // Spread over the first 90 % of the load; the drill at 95 %, so that the load ends
        // while the mesh recovers from it.
        let at = if *fault == Fault::RedisThenPayment {
            plan.orders * 95 / 100
        } else {
            plan.orders * 9 * (i + 1) / (10 * faults.len())
        };
        while stats.posted.load(Relaxed) < at && !load.is_empty() {
            if let Some(done) = load.try_join_next() {
                placed.extend(done.expect("a shopper panicked"));
                continue;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let pause = match fault {
            // Longer than SQLite's busy timeout and the pool's acquire timeout: requests fail.
            Fault::DatabaseOutage => Duration::from_millis(6_000 + rng.below(2_000)),
            _ => Duration::from_millis(300 + rng.below(700)),
        };
        let injected = Instant::now();
        let at = started.elapsed();
        inject(&mut mesh, cluster.as_mut(), *fault, pause).await;
        report.push((*fault, at, pause, injected.elapsed()));
        if *fault == Fault::RedisThenPayment {
            drill_over = Some(Instant::now());
        }
    }

    while let Some(done) = load.join_next().await {
        placed.extend(done.expect("a shopper panicked"));
    }
    let last_post = Instant::now();
    let store_db = common::db::connect(mesh.db_url("store")).await.unwrap();
    let deadline = last_post + Duration::from_secs(60);
    loop {
        let open = store::entity::order::Entity::find()
            .filter(store::entity::order::Column::Status.is_in(["pending", "paid", "reserved"]))
            .count(&store_db)
            .await
            .unwrap();
        if open == 0 {
            break;
        }
        if Instant::now() >= deadline {
            let stuck = store::entity::order::Entity::find()
                .filter(store::entity::order::Column::Status.is_in(["pending", "paid", "reserved"]))
                .all(&store_db)
                .await
                .unwrap();
            for order in &stuck {
                println!("stuck: {} {}", order.id, order.status);
                mesh.print_logs_about(&order.id.to_string());
            }
            mesh.print_log_tails(20);
            for name in SERVICES {
                let db = common::db::connect(mesh.db_url(name)).await.unwrap();
                let unsent = common::db::outbox::unsent(&db).await.unwrap();
                println!("{name}: {unsent} events in the outbox");
            }
            let payment_db = common::db::connect(mesh.db_url("payment")).await.unwrap();
            let inventory_db = common::db::connect(mesh.db_url("inventory")).await.unwrap();
            let placed_events = common::testing::read_events::<common::events::OrderPlaced>(
                &mut mesh.redis.connection(),
                &mesh.keys,
            )
            .await;
            let idem = common::runtime::idempotency::IdempotencySet::new(
                mesh.keys.idempotency("payment"),
                Duration::from_secs(2 * 86_400),
            );
            for order in &stuck {
                for (envelope, _) in placed_events.iter().filter(|(_, p)| p.order_id == order.id) {
                    let inbox = common::db::inbox::contains(
                        &payment_db,
                        "payment",
                        &envelope.event_id.to_string(),
                    )
                    .await
                    .unwrap();
                    let seen = idem
                        .contains(&mut mesh.redis.connection(), &[envelope.event_id])
                        .await
                        .unwrap();
                    println!(
                        "stuck {}: order-placed {} in payment's inbox {inbox}, idempotency set {seen:?}",
                        order.id, envelope.event_id
                    );
                }
                let payments = payment::entity::payment::Entity::find()
                    .filter(payment::entity::payment::Column::OrderId.eq(order.id))
                    .all(&payment_db)
                    .await
                    .unwrap();
                let held = inventory::entity::reservation::Entity::find()
                    .filter(inventory::entity::reservation::Column::OrderId.eq(order.id))
                    .all(&inventory_db)
                    .await
                    .unwrap();
                println!(
                    "stuck {} {}: payments {:?}; reservations {:?}",
                    order.id,
                    order.status,
                    payments.iter().map(|p| &p.status).collect::<Vec<_>>(),
                    held.iter().map(|r| &r.status).collect::<Vec<_>>()
                );
            }
            let mut redis = mesh.redis.connection();
            for (group, stream) in crate::mesh::groups() {
                let state =
                    common::testing::group_state(&mut redis, &mesh.keys.stream(stream), group)
                        .await;
                println!("{group} on {stream}: {state:?}");
            }
            panic!("{open} orders never settled (seed {})", plan.seed);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let settle = last_post.elapsed();
    let after_drill = drill_over.map(|t| t.elapsed());
    let _ = store_db.close().await;

    println!("chaos report (seed {}):", plan.seed);
    println!(
        "  orders {} from {} shoppers in {:.1?}; 503s seen {}, failed requests (refused, 5xx) {}",
        placed.len(),
        plan.shoppers,
        started.elapsed() - settle,
        stats.unavailable.load(Relaxed),
        stats.failed_requests.load(Relaxed)
    );
    for (fault, at, pause, recovered) in &report {
        println!(
            "  {at:>8.1?}  {fault:?}: down {pause:?}, back and ready {recovered:.1?} after the fault"
        );
    }
    println!(
        "  settle: last order terminal or shipped {settle:.2?} after the last POST (target {:?})",
        plan.settle_target
    );
    println!(
        "  the last order settled {after_drill:.2?} after payment and Redis were back from the drill"
    );

    mesh.assert_settled().await;
    let expected = Expected {
        starting_credit_cents: options.starting_credit_cents,
        products,
    };
    let summary = check_records(&mesh, &placed, &expected).await;
    println!("  records: {summary}");
    assert!(
        settle <= plan.settle_target,
        "the last order settled {settle:?} after the last POST (target {:?}, seed {})",
        plan.settle_target,
        plan.seed
    );
    drop(mesh);
    drop(cluster);
    settle
}

/// Injects one fault and waits until what it took down is back.
async fn inject(
    mesh: &mut Mesh,
    cluster: Option<&mut PostgresCluster>,
    fault: Fault,
    pause: Duration,
) {
    match fault {
        Fault::Kill(service) => {
            let home = mesh.kill9(service);
            tokio::time::sleep(pause).await;
            mesh.restart(service, home).await;
        }
        Fault::KillReplica(service) => {
            let port = mesh.kill9_replica(service);
            tokio::time::sleep(pause).await;
            mesh.restart_replica(service, port).await;
        }
        Fault::Term(service) => {
            let home = mesh.stop(service).await;
            tokio::time::sleep(pause).await;
            mesh.restart(service, home).await;
        }
        Fault::RedisKill => {
            mesh.redis.kill9();
            tokio::time::sleep(pause).await;
            mesh.redis.start_again();
        }
        Fault::RedisShutdown => {
            mesh.redis.stop();
            tokio::time::sleep(pause).await;
            mesh.redis.start_again();
        }
        Fault::RedisThenPayment => {
            mesh.redis.kill9();
            let home = mesh.kill9("payment");
            tokio::time::sleep(pause).await;
            mesh.redis.start_again();
            mesh.restart("payment", home).await;
        }
        Fault::DatabaseOutage => match cluster {
            Some(cluster) => {
                cluster.stop();
                tokio::time::sleep(pause).await;
                cluster.start_again();
            }
            None => lock_sqlite(mesh.db_url("store"), pause).await,
        },
    }
}

/// Holds the write lock of the SQLite file at `url` for `outage` (another process's writer).
async fn lock_sqlite(url: &str, outage: Duration) {
    let path = url
        .trim_start_matches("sqlite://")
        .split('?')
        .next()
        .unwrap_or_default();
    let mut conn =
        <sqlx::SqliteConnection as sqlx::Connection>::connect(&format!("sqlite://{path}"))
            .await
            .expect("open the store's SQLite file");
    sqlx::query("PRAGMA busy_timeout = 30000")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut conn)
        .await
        .unwrap();
    tokio::time::sleep(outage).await;
    sqlx::query("ROLLBACK").execute(&mut conn).await.unwrap();
}

/// One shopper's orders, one at a time, each retried with its key until the store answers.
#[allow(clippy::too_many_arguments)]
async fn shop(
    http: reqwest::Client,
    url: String,
    token: String,
    orders: usize,
    products: Vec<String>,
    seed: u64,
    every: Option<Duration>,
    stats: Arc<LoadStats>,
) -> Vec<Placed> {
    let mut rng = Rng(seed);
    let mut placed = Vec::with_capacity(orders);
    // Spread the shoppers' first orders over one interval.
    let mut next = Instant::now()
        + every.map_or(Duration::ZERO, |e| {
            e.mul_f64(rng.below(1000) as f64 / 1000.0)
        });
    for _ in 0..orders {
        if let Some(every) = every {
            // Paced: no burst to catch up after a wait (an outage delays the shopper's orders).
            tokio::time::sleep_until(next.into()).await;
            next = (next + every).max(Instant::now());
        }
        let key = uuid::Uuid::new_v4().to_string();
        let product = rng.below(products.len() as u64) as usize;
        let body = json!({"items": [{"product_id": products[product], "quantity": 1}]});
        let deadline = Instant::now() + Duration::from_secs(120);
        let order_id = loop {
            assert!(Instant::now() < deadline, "order {key} never accepted");
            let sent = http
                .post(&url)
                .bearer_auth(&token)
                .header("Idempotency-Key", &key)
                .json(&body)
                .timeout(Duration::from_secs(35))
                .send()
                .await;
            match sent {
                Ok(resp) if resp.status().is_success() => {
                    let order: serde_json::Value = resp.json().await.expect("order JSON");
                    break order["id"].as_str().expect("order id").to_owned();
                }
                Ok(resp) if resp.status() == 503 => {
                    stats.unavailable.fetch_add(1, Relaxed);
                }
                Ok(resp) if resp.status().is_server_error() || resp.status() == 408 => {
                    stats.failed_requests.fetch_add(1, Relaxed);
                }
                Ok(resp) => {
                    let status = resp.status();
                    panic!(
                        "POST /orders: {status} {}",
                        resp.text().await.unwrap_or_default()
                    )
                }
                Err(_) => {
                    stats.failed_requests.fetch_add(1, Relaxed);
                }
            }
            tokio::time::sleep(Duration::from_millis(100 + rng.below(200))).await;
        };
        stats.posted.fetch_add(1, Relaxed);
        placed.push(Placed { key, order_id });
    }
    placed
}

/// The short variant for the test suite: a few hundred orders through every fault (14 of them).
/// Its settle bound is loose (30 s: a shared CI machine and debug binaries; one PostgreSQL run at
/// nice 19 beside a soak settled in 20.6 s); `scripts/chaos.sh` holds the 5 s target of issue 12.
#[tokio::test]
async fn orders_survive_kill_9_of_every_process_redis_and_a_database_outage() {
    let plan = Plan::from_env(240, Duration::from_secs(30));
    let settle = run(plan).await;
    assert!(settle <= plan.settle_target);
}
