//! `bench-orders`: the ordering saga end to end, against a running mesh (issue 5, "Benchmark").
//!
//! `scripts/bench-orders.sh` starts a private mesh and runs this against it. It registers and logs
//! in `--shoppers` shoppers (and waits until payment opened their wallets), creates products with
//! plenty of stock, then runs two phases:
//!
//! 1. **max throughput**: every shopper places orders back to back for `--duration` seconds, with
//!    at most `--max-in-flight` orders placed but not yet shipped (so the backlog stays bounded);
//!    the figure is the rate of orders that reach `shipped`, in a window that skips `--warmup`;
//! 2. **latency**: orders at a fixed rate (`--rate`, default half the measured maximum) for
//!    `--latency-duration` seconds, open loop (an order is sent at its scheduled time whatever the
//!    previous ones do); p50/p95/p99 from sending `POST /orders` to the `order-shipped` entry,
//!    then the same split by hop, from the phase's entries on every stream (`e2e::hops`).
//!
//! Shipping is observed by a task reading the `<prefix>order-shipped` stream (and, to count
//! failures, one each for `payment-failed` and `refund-order`) with `XREAD BLOCK`, never by
//! polling orders.
//! With `--pid name=PID` it also prints each process's CPU share per phase and its memory: resident
//! at start-up (read before any request, the mesh being ready and idle), resident once the mesh is
//! idle again after the load (`--settle` seconds after the last order shipped), and peak
//! (`e2e::procs`). `--latency-duration 0` skips phase 2 (`scripts/bench-scaling.sh`); several
//! `--store-url`s (replicas of the store) take the orders in turn.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use clap::Parser;
use e2e::procs;
use redis::streams::StreamReadReply;
use serde_json::{Value, json};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use uuid::Uuid;

#[derive(Debug, Parser)]
#[command(about = "End-to-end ordering benchmark against a running mesh")]
struct Args {
    #[arg(long, default_value = "http://127.0.0.1:8001")]
    user_url: String,
    #[arg(long, default_value = "http://127.0.0.1:8002")]
    inventory_url: String,
    /// Repeatable: orders are sent to each in turn (replicas of the store on one database).
    #[arg(long = "store-url", default_value = "http://127.0.0.1:8003")]
    store_urls: Vec<String>,
    #[arg(long, default_value = "http://127.0.0.1:8004")]
    payment_url: String,
    #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6379")]
    redis_url: String,
    /// The mesh's stream key prefix (`MESH_STREAM_PREFIX`).
    #[arg(long, env = "MESH_STREAM_PREFIX", default_value = "")]
    prefix: String,
    #[arg(long, env = "MESH_ADMIN_EMAIL")]
    admin_email: String,
    #[arg(long, env = "MESH_ADMIN_PASSWORD")]
    admin_password: String,
    /// Concurrent shoppers.
    #[arg(long, default_value_t = 32)]
    shoppers: usize,
    /// Products to spread the orders over.
    #[arg(long, default_value_t = 8)]
    products: usize,
    /// Seconds of the max-throughput phase.
    #[arg(long, default_value_t = 20)]
    duration: u64,
    /// Seconds at the start of the max-throughput phase left out of the rate.
    #[arg(long, default_value_t = 3)]
    warmup: u64,
    /// Orders placed but not yet shipped, at most, in the max-throughput phase.
    #[arg(long, default_value_t = 2000)]
    max_in_flight: usize,
    /// Orders per second of the latency phase (default: half the measured maximum).
    #[arg(long)]
    rate: Option<f64>,
    /// Seconds of the latency phase (default: `--duration`); 0 skips it.
    #[arg(long)]
    latency_duration: Option<u64>,
    /// Print, every this many seconds of the latency phase, the orders shipped and their p99
    /// in that window (`sample` lines, for `scripts/soak.sh`). 0: no samples.
    #[arg(long, default_value_t = 0)]
    sample_every: u64,
    /// Seconds to wait, after a phase, for its orders to ship.
    #[arg(long, default_value_t = 60)]
    drain_timeout: u64,
    /// Seconds to wait, once the last order shipped, before reading each process's idle RSS:
    /// the follow-ups of the last orders (the store applying `order-shipped`) are done by then.
    #[arg(long, default_value_t = 2)]
    settle: u64,
    /// `name=PID` of a process to report CPU and memory for (repeatable). Replicas of a service
    /// are named `<service>-2`, `<service>-3`, …: their CPU is also summed per service.
    #[arg(long = "pid", value_parser = procs::parse_pid)]
    pids: Vec<(String, u32)>,
}

/// What the shipping tracker knows about one order.
enum Track {
    /// Placed at this instant (the `POST /orders` was sent); the permit bounds the backlog.
    Placed(Instant, Option<OwnedSemaphorePermit>),
    /// Seen on a stream before the `POST` answered (shipped, or failed when `false`).
    Early(Instant, bool),
}

#[derive(Default)]
struct Tracker {
    orders: Mutex<HashMap<Uuid, Track>>,
    /// (placed → shipped) of every shipped order, with the shipping instant.
    shipped: Mutex<Vec<(Instant, Duration)>>,
    failed: AtomicU64,
}

impl Tracker {
    fn placed(&self, id: Uuid, sent: Instant, permit: Option<OwnedSemaphorePermit>) {
        let mut orders = self.orders.lock().unwrap();
        match orders.remove(&id) {
            Some(Track::Early(at, true)) => {
                self.shipped.lock().unwrap().push((at, at - sent));
            }
            Some(Track::Early(_, false)) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
            }
            _ => {
                orders.insert(id, Track::Placed(sent, permit));
            }
        }
    }

    fn seen(&self, id: Uuid, at: Instant, shipped: bool) {
        let mut orders = self.orders.lock().unwrap();
        match orders.remove(&id) {
            Some(Track::Placed(sent, _permit)) => {
                if shipped {
                    self.shipped.lock().unwrap().push((at, at - sent));
                } else {
                    self.failed.fetch_add(1, Ordering::Relaxed);
                }
            }
            Some(early @ Track::Early(..)) => {
                orders.insert(id, early);
            }
            None => {
                orders.insert(id, Track::Early(at, shipped));
            }
        }
    }

    fn outstanding(&self) -> usize {
        self.orders
            .lock()
            .unwrap()
            .values()
            .filter(|t| matches!(t, Track::Placed(..)))
            .count()
    }

    /// Forgets orders still outstanding (and releases their permits); returns how many.
    fn abandon(&self) -> usize {
        let mut orders = self.orders.lock().unwrap();
        let n = orders
            .values()
            .filter(|t| matches!(t, Track::Placed(..)))
            .count();
        orders.retain(|_, t| matches!(t, Track::Early(..)));
        n
    }

    fn take_shipped(&self) -> Vec<(Instant, Duration)> {
        std::mem::take(&mut *self.shipped.lock().unwrap())
    }
}

/// The streams that end an order: shipped, or one of the failures.
const ENDINGS: [(&str, bool); 3] = [
    ("order-shipped", true),
    ("payment-failed", false),
    ("refund-order", false),
];

/// Reads one of the [`ENDINGS`] streams from its current end, until `stop`. One reader per
/// stream, each on its own connection: on a Redis Cluster the streams are in different slots,
/// and one `XREAD` may name keys of one slot only.
async fn follow(
    mut conn: common::connection::Conn,
    key: String,
    shipped: bool,
    tracker: Arc<Tracker>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> Result<()> {
    let mut last = "$".to_owned();
    let mut failures: u64 = 0;
    while !stop.load(Ordering::Relaxed) {
        let reply: Result<Option<StreamReadReply>> = redis::cmd("XREAD")
            .arg("COUNT")
            .arg(2000)
            .arg("BLOCK")
            .arg(200)
            .arg("STREAMS")
            .arg(&key)
            .arg(&last)
            .query_async(&mut conn)
            .await
            .context("XREAD");
        // A failed read (a stall past the response timeout, a reconnect) must not end the
        // follower: the entries are still there, read again from `last`. (It once did, and a
        // soak counted 0 orders shipped from then on while the mesh shipped 150 a second.)
        let reply = match reply {
            Ok(reply) => reply,
            Err(error) => {
                failures += 1;
                if failures.is_power_of_two() {
                    eprintln!(
                        "bench-orders: following {key}: {error:#} ({failures} failures so far); retrying"
                    );
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let now = Instant::now();
        let Some(reply) = reply else { continue };
        for entry in reply.keys.into_iter().flat_map(|k| k.ids) {
            let order_id = entry
                .get::<String>("data")
                .and_then(|d| serde_json::from_str::<Value>(&d).ok())
                .and_then(|d| d["order_id"].as_str().and_then(|s| s.parse().ok()));
            last = entry.id;
            if let Some(order_id) = order_id {
                tracker.seen(order_id, now, shipped);
            }
        }
    }
    Ok(())
}

struct Mesh {
    http: reqwest::Client,
    args: Args,
    /// Orders sent so far: picks the next of `args.store_urls`.
    orders_sent: AtomicUsize,
}

impl Mesh {
    async fn call(
        &self,
        url: String,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Result<(u16, Value)> {
        let mut req = if body.is_some() {
            self.http.post(&url)
        } else {
            self.http.get(&url)
        };
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.with_context(|| url.clone())?;
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        Ok((
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        ))
    }

    async fn login(&self, email: &str, password: &str) -> Result<String> {
        let (status, body) = self
            .call(
                format!("{}/auth/login", self.args.user_url),
                None,
                Some(json!({"email": email, "password": password})),
            )
            .await?;
        if status != 200 {
            bail!("login {email}: {status} {body}");
        }
        Ok(body["access_token"]
            .as_str()
            .context("no access_token")?
            .to_owned())
    }

    async fn shopper(&self) -> Result<Shopper> {
        let email = format!("bench-{}@mesh.test", Uuid::new_v4().simple());
        let password = "bench-password-123";
        let (status, body) = self
            .call(
                format!("{}/auth/register", self.args.user_url),
                None,
                Some(json!({"email": email, "password": password})),
            )
            .await?;
        if status != 201 {
            bail!("register: {status} {body}");
        }
        let token = self.login(&email, password).await?;
        Ok(Shopper {
            email,
            password,
            token: tokio::sync::Mutex::new(token),
        })
    }

    async fn wallet_open(&self, token: &str) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (status, _) = self
                .call(
                    format!("{}/wallet", self.args.payment_url),
                    Some(token),
                    None,
                )
                .await?;
            if status == 200 {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("wallet never opened");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `POST /orders` of one unit of `product` as `shopper`; the order id. An access token lives
    /// 15 minutes and a soak runs for hours: on a 401 the shopper logs in again, once.
    async fn order(&self, shopper: &Shopper, product: &str) -> Result<Uuid> {
        let mut relogged = false;
        loop {
            let token = shopper.token.lock().await.clone();
            let urls = &self.args.store_urls;
            let url = &urls[self.orders_sent.fetch_add(1, Ordering::Relaxed) % urls.len()];
            let (status, body) = self
                .call(
                    format!("{url}/orders"),
                    Some(&token),
                    Some(json!({"items": [{"product_id": product, "quantity": 1}]})),
                )
                .await?;
            if status == 401 && !relogged {
                // One login per expiry, not one per order in flight: whoever holds the lock
                // first renews, the others find the token already changed.
                let mut current = shopper.token.lock().await;
                if *current == token {
                    *current = self.login(&shopper.email, shopper.password).await?;
                }
                relogged = true;
                continue;
            }
            if status != 201 {
                bail!("POST /orders: {status} {body}");
            }
            return body["id"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .context("order without id");
        }
    }
}

/// A registered shopper and its current access token (renewed by [`Mesh::order`]).
struct Shopper {
    email: String,
    password: &'static str,
    token: tokio::sync::Mutex<String>,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// Waits (bounded) until nothing placed is outstanding; abandons what is left.
async fn drain(tracker: &Tracker, timeout: Duration) -> (Duration, usize) {
    let start = Instant::now();
    while tracker.outstanding() > 0 && start.elapsed() < timeout {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (start.elapsed(), tracker.abandon())
}

fn main() -> Result<()> {
    common::memory::runtime(None)?.block_on(run())
}

async fn run() -> Result<()> {
    let mut args = Args::parse();
    if !args.pids.is_empty() {
        // The load generator shares the machine: its CPU is part of the picture.
        args.pids
            .push(("bench-orders".to_owned(), std::process::id()));
    }
    if args.duration == 0 && args.latency_duration.unwrap_or(0) == 0 {
        bail!("--duration 0 and --latency-duration 0: no phase left to run");
    }
    // Before any request: the services are ready (the script waited for each `/readyz`) and idle.
    let startup_rss = procs::rss_mb(&args.pids);
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(1024)
        .timeout(Duration::from_secs(30))
        .build()?;
    let mesh = Arc::new(Mesh {
        http,
        args,
        orders_sent: AtomicUsize::new(0),
    });
    let args = &mesh.args;

    // --- set-up ------------------------------------------------------------------------------
    let setup = Instant::now();
    let admin = mesh.login(&args.admin_email, &args.admin_password).await?;
    let mut products = Vec::new();
    for i in 0..args.products {
        let (status, body) = mesh
            .call(
                format!("{}/products", args.inventory_url),
                Some(&admin),
                Some(json!({"name": format!("bench product {i}"), "price_cents": 100, "stock": 1_000_000_000})),
            )
            .await?;
        if status != 201 {
            bail!("create product: {status} {body}");
        }
        products.push(body["id"].as_str().context("product id")?.to_owned());
    }
    // Registration hashes a password (argon2id): a few at a time.
    let mut shoppers = Vec::new();
    for chunk in (0..args.shoppers).collect::<Vec<_>>().chunks(4) {
        let mut set = tokio::task::JoinSet::new();
        for _ in chunk {
            let mesh = mesh.clone();
            set.spawn(async move { mesh.shopper().await });
        }
        while let Some(t) = set.join_next().await {
            shoppers.push(t??);
        }
    }
    for shopper in &shoppers {
        let token = shopper.token.lock().await.clone();
        mesh.wallet_open(&token).await?;
    }
    let shoppers = Arc::new(shoppers);
    let products = Arc::new(products);

    let client = common::connection::RedisTarget::open(args.redis_url.as_str())?;
    let tracker = Arc::new(Tracker::default());
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut followers = Vec::new();
    for (stream, shipped) in ENDINGS {
        let conn = client.connect(Duration::from_secs(10)).await?;
        let key = format!("{}{stream}", args.prefix);
        let task = follow(conn, key, shipped, tracker.clone(), stop.clone());
        followers.push(tokio::spawn(task));
    }
    tokio::time::sleep(Duration::from_millis(300)).await; // the first XREAD is in place

    // The store learns products from `product-changed`: one order per product until accepted.
    let deadline = Instant::now() + Duration::from_secs(60);
    for product in products.iter() {
        loop {
            let sent = Instant::now();
            match mesh.order(&shoppers[0], product).await {
                Ok(id) => {
                    tracker.placed(id, sent, None);
                    break;
                }
                Err(e) if Instant::now() > deadline => return Err(e),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }
    let (_, lost) = drain(&tracker, Duration::from_secs(args.drain_timeout)).await;
    if lost > 0 {
        bail!("{lost} warm-up orders never shipped");
    }
    tracker.take_shipped();
    println!(
        "set-up: {} shoppers, {} products, {} warm-up orders shipped, in {:.1} s",
        args.shoppers,
        args.products,
        args.products,
        setup.elapsed().as_secs_f64()
    );

    // --- phase 1: max throughput ------------------------------------------------------------
    let load_start = Instant::now();
    // `--duration 0` (a soak) goes straight to the fixed rate.
    let max_rate = if args.duration == 0 {
        args.rate.context("--duration 0 needs --rate")?
    } else {
        max_throughput(&mesh, &tracker, &shoppers, &products).await
    };

    // --- phase 2: latency at a fixed rate -----------------------------------------------------
    // `--latency-duration 0` (a scaling run) stops after the maximum.
    let rate = args.rate.unwrap_or((max_rate / 2.0).max(1.0));
    let secs = args.latency_duration.unwrap_or(args.duration);
    if secs > 0 {
        latency(&mesh, &tracker, &shoppers, &products, rate, secs).await;
    }
    let load = load_start.elapsed();

    stop.store(true, Ordering::Relaxed);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    for follower in followers {
        let _ = tokio::time::timeout_at(deadline, follower).await;
    }

    // Every order has shipped (or been given up on): the mesh only finishes follow-ups now.
    if !args.pids.is_empty() {
        tokio::time::sleep(Duration::from_secs(args.settle)).await;
        let idle_rss = procs::rss_mb(&args.pids);
        procs::print_memory(&args.pids, &startup_rss, &idle_rss, load);
    }
    Ok(())
}

/// Phase 2: orders at `rate` for `secs` seconds, open loop; prints their latency.
async fn latency(
    mesh: &Arc<Mesh>,
    tracker: &Arc<Tracker>,
    shoppers: &Arc<Vec<Shopper>>,
    products: &Arc<Vec<String>>,
    rate: f64,
    secs: u64,
) {
    let total = (rate * secs as f64).round() as u64;
    // From here on the streams hold this phase's events (the last phase's have all shipped).
    let since_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let post_times = Arc::new(Mutex::new(Vec::with_capacity(total as usize)));
    let errors = Arc::new(AtomicU64::new(0));
    let cpu0 = procs::cpu_snapshot(&mesh.args.pids);
    let start = Instant::now();
    let sampler = (mesh.args.sample_every > 0).then(|| {
        tokio::spawn(print_samples(
            tracker.clone(),
            Duration::from_secs(mesh.args.sample_every),
        ))
    });
    let mut set = tokio::task::JoinSet::new();
    for i in 0..total {
        let at = start + Duration::from_secs_f64(i as f64 / rate);
        tokio::time::sleep_until(at.into()).await;
        let (mesh, tracker, shoppers, products) = (
            mesh.clone(),
            tracker.clone(),
            shoppers.clone(),
            products.clone(),
        );
        let (post_times, errors) = (post_times.clone(), errors.clone());
        set.spawn(async move {
            let i = i as usize;
            let sent = Instant::now();
            match mesh
                .order(&shoppers[i % shoppers.len()], &products[i % products.len()])
                .await
            {
                Ok(id) => {
                    post_times.lock().unwrap().push(sent.elapsed());
                    tracker.placed(id, sent, None);
                }
                Err(e) => {
                    if errors.fetch_add(1, Ordering::Relaxed) < 3 {
                        eprintln!("bench-orders: {e:#}");
                    }
                }
            }
        });
        // Reap finished requests as we go, so the set stays small.
        while set.try_join_next().is_some() {}
    }
    while set.join_next().await.is_some() {}
    let (_, lost2) = drain(tracker, Duration::from_secs(mesh.args.drain_timeout)).await;
    if let Some(sampler) = sampler {
        sampler.abort();
    }
    let elapsed = start.elapsed();
    procs::print_cpu(&mesh.args.pids, &cpu0, elapsed);
    let mut lat: Vec<Duration> = tracker.take_shipped().iter().map(|(_, d)| *d).collect();
    lat.sort();
    let mut post = post_times.lock().unwrap().clone();
    post.sort();
    println!("latency at {rate:.0} orders/s for {secs} s ({total} orders):");
    println!(
        "  POST /orders → order-shipped: p50 {}, p95 {}, p99 {}, max {} ({} shipped, {} failed, {lost2} never shipped, {} POST errors)",
        ms(percentile(&lat, 50.0)),
        ms(percentile(&lat, 95.0)),
        ms(percentile(&lat, 99.0)),
        ms(lat.last().copied().unwrap_or_default()),
        lat.len(),
        tracker.failed.load(Ordering::Relaxed),
        errors.load(Ordering::Relaxed)
    );
    println!(
        "  POST /orders response alone: p50 {}, p95 {}, p99 {}",
        ms(percentile(&post, 50.0)),
        ms(percentile(&post, 95.0)),
        ms(percentile(&post, 99.0))
    );
    if let Err(error) = print_hops(&mesh.args, since_ms).await {
        eprintln!("bench-orders: the hops of the latency phase: {error:#}");
    }
}

/// The latency phase's chains of events, hop by hop ([`e2e::hops`]).
async fn print_hops(args: &Args, since_ms: u64) -> Result<()> {
    let client = common::connection::RedisTarget::open(args.redis_url.as_str())?;
    let mut conn = client.connect(Duration::from_secs(30)).await?;
    e2e::hops::print(
        &mut conn,
        &common::Keys::new(args.prefix.as_str()),
        since_ms,
    )
    .await
}

/// Phase 1: every shopper places orders back to back; returns the rate of orders shipped.
async fn max_throughput(
    mesh: &Arc<Mesh>,
    tracker: &Arc<Tracker>,
    shoppers: &Arc<Vec<Shopper>>,
    products: &Arc<Vec<String>>,
) -> f64 {
    let duration = Duration::from_secs(mesh.args.duration);
    let warmup = Duration::from_secs(mesh.args.warmup.min(mesh.args.duration.saturating_sub(1)));
    let permits = Arc::new(Semaphore::new(mesh.args.max_in_flight));
    let placed = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let cpu0 = procs::cpu_snapshot(&mesh.args.pids);
    let start = Instant::now();
    let end = start + duration;
    let mut set = tokio::task::JoinSet::new();
    for s in 0..mesh.args.shoppers {
        let (mesh, tracker, shoppers, products) = (
            mesh.clone(),
            tracker.clone(),
            shoppers.clone(),
            products.clone(),
        );
        let (permits, placed, errors) = (permits.clone(), placed.clone(), errors.clone());
        set.spawn(async move {
            let mut n = s;
            while Instant::now() < end {
                let Ok(Ok(permit)) =
                    tokio::time::timeout_at(end.into(), permits.clone().acquire_owned()).await
                else {
                    break;
                };
                let sent = Instant::now();
                match mesh
                    .order(&shoppers[s], &products[n % products.len()])
                    .await
                {
                    Ok(id) => {
                        tracker.placed(id, sent, Some(permit));
                        placed.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        if errors.fetch_add(1, Ordering::Relaxed) < 3 {
                            eprintln!("bench-orders: {e:#}");
                        }
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
                n += 1;
            }
        });
    }
    while set.join_next().await.is_some() {}
    let placing = start.elapsed();
    procs::print_cpu(&mesh.args.pids, &cpu0, placing);
    let outstanding_at_end = tracker.outstanding();
    let (drained_in, lost1) = drain(tracker, Duration::from_secs(mesh.args.drain_timeout)).await;
    let shipped1 = tracker.take_shipped();
    let window = duration - warmup;
    let in_window = shipped1
        .iter()
        .filter(|(at, _)| *at >= start + warmup && *at < end)
        .count();
    let max_rate = in_window as f64 / window.as_secs_f64();
    let placed1 = placed.load(Ordering::Relaxed);
    println!(
        "max throughput ({} shoppers, {} s, at most {} in flight):",
        mesh.args.shoppers, mesh.args.duration, mesh.args.max_in_flight
    );
    println!(
        "  placed {placed1} orders ({:.0}/s accepted), {} POST errors",
        placed1 as f64 / placing.as_secs_f64(),
        errors.load(Ordering::Relaxed)
    );
    println!(
        "  shipped {:.0} orders/s (seconds {}-{}: {in_window} orders)",
        max_rate,
        warmup.as_secs(),
        mesh.args.duration
    );
    println!(
        "  at the end {outstanding_at_end} placed but not shipped; all shipped {:.1} s later; {} failed, {lost1} never shipped",
        drained_in.as_secs_f64(),
        tracker.failed.swap(0, Ordering::Relaxed)
    );
    let mut lat1: Vec<Duration> = shipped1.iter().map(|(_, d)| *d).collect();
    lat1.sort();
    println!(
        "  (placed → shipped under saturation: p50 {}, p99 {})",
        ms(percentile(&lat1, 50.0)),
        ms(percentile(&lat1, 99.0))
    );
    max_rate
}

/// Every `every`: one `sample <unix s> shipped=<n> p99_ms=<ms>` line for the orders shipped in
/// that window (POST sent → `order-shipped` seen).
async fn print_samples(tracker: Arc<Tracker>, every: Duration) {
    let mut tick = tokio::time::interval_at((Instant::now() + every).into(), every);
    let mut since = Instant::now();
    loop {
        tick.tick().await;
        let now = Instant::now();
        let mut window: Vec<Duration> = tracker
            .shipped
            .lock()
            .unwrap()
            .iter()
            .filter(|(at, _)| *at >= since && *at < now)
            .map(|(_, d)| *d)
            .collect();
        window.sort();
        since = now;
        let unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        println!(
            "sample {unix} shipped={} p99_ms={:.1}",
            window.len(),
            percentile(&window, 99.0).as_secs_f64() * 1000.0
        );
    }
}
