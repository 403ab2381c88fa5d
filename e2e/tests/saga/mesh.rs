//! A whole mesh for one test: a real `redis-server`, one database per service (SQLite files, or
//! PostgreSQL databases when `TEST_DATABASE_URL` is set), and the five real service binaries on
//! free ports, sharing a data dir (so they share the dev signing key) and a key prefix.

use std::{collections::BTreeMap, process::Stdio, time::Duration};

use common::{
    Keys,
    events::{ALL_STREAMS, wiring::WIRING},
    runtime::inspect::{group_lag, group_state},
    testing::{
        Proc, RedisCluster, RedisServer, TestDb, free_port, service_command, unique_prefix,
        wait_ready, wait_until, workspace_bin,
    },
};
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::mesh_redis::MeshRedis;

pub use common::events::wiring::SERVICES;
pub const ADMIN_EMAIL: &str = "admin@mesh.test";
pub const ADMIN_PASSWORD: &str = "admin-password-123";

/// How a mesh is started.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub auto_dispatch: bool,
    pub starting_credit_cents: i64,
    /// Redis with the mesh's ACL file (`common::acl`): each service connects as its own user,
    /// the test as `operator`.
    pub acl: bool,
    /// Redis with `appendfsync always`, for tests that `kill -9` it.
    pub durable_redis: bool,
    /// A Redis Cluster (3 masters, 3 replicas) instead of one server.
    pub cluster: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            auto_dispatch: true,
            starting_credit_cents: 100_000,
            acl: false,
            durable_redis: false,
            cluster: false,
        }
    }
}

/// Every (group, stream) the mesh consumes.
pub fn groups() -> impl Iterator<Item = (&'static str, &'static str)> {
    WIRING
        .iter()
        .flat_map(|w| w.groups.iter().map(|g| (*g, w.stream)))
}

pub struct Node {
    pub base_url: String,
    port: u16,
    _db: TestDb,
    /// Killed when the mesh is dropped.
    child: Proc,
}

/// A second process of a service, on the service's database (a `--scale 2` of compose).
struct Replica {
    port: u16,
    /// Killed when the mesh is dropped.
    child: Proc,
}

/// The consumer name of a replica: stable across restarts, unique within its group.
const REPLICA_CONSUMER: &str = "{host}-2";

pub struct Mesh {
    pub redis: MeshRedis,
    pub keys: Keys,
    pub nodes: BTreeMap<&'static str, Node>,
    /// Second processes of some services ([`Mesh::add_replica`]).
    replicas: BTreeMap<&'static str, Replica>,
    pub http: reqwest::Client,
    pub data: TempDir,
    pub admin_token: String,
    pub options: Options,
    /// Each service's Redis password when `options.acl`.
    pub redis_passwords: BTreeMap<String, String>,
    /// The PostgreSQL server the services' databases are made on (`start_on`), else
    /// `TestDb::new`'s choice.
    db_server: Option<String>,
    /// More environment for every service (e.g. where to export traces).
    env: Vec<(&'static str, String)>,
}

impl Mesh {
    pub async fn start(options: Options) -> Self {
        Self::start_with(options, None, Vec::new()).await
    }

    /// [`Mesh::start`] with every service's database on the PostgreSQL server at `db_server`
    /// (a private `PostgresCluster` the test may stop), when given.
    pub async fn start_on(options: Options, db_server: Option<String>) -> Self {
        Self::start_with(options, db_server, Vec::new()).await
    }

    /// A mesh whose services all get `env` on top of the usual settings.
    pub async fn start_with_env(options: Options, env: Vec<(&'static str, String)>) -> Self {
        Self::start_with(options, None, env).await
    }

    async fn start_with(
        options: Options,
        db_server: Option<String>,
        env: Vec<(&'static str, String)>,
    ) -> Self {
        let keys = Keys::new(unique_prefix());
        let mut redis_passwords = BTreeMap::new();
        let redis = if options.acl {
            for who in SERVICES.iter().chain(&[common::acl::OPERATOR]) {
                let password = uuid::Uuid::new_v4().simple().to_string();
                redis_passwords.insert((*who).to_owned(), password);
            }
            let acl = common::acl::acl_file(&keys, &redis_passwords).unwrap();
            MeshRedis::Server(RedisServer::start_with_acl(
                &acl,
                &redis_passwords[common::acl::OPERATOR],
            ))
        } else if options.cluster {
            MeshRedis::Cluster(RedisCluster::start())
        } else if options.durable_redis {
            MeshRedis::Server(RedisServer::start_durable())
        } else {
            MeshRedis::Server(RedisServer::start())
        };
        let data = tempfile::Builder::new()
            .prefix("mesh-e2e-")
            .tempdir()
            .unwrap();
        std::fs::create_dir_all(data.path().join("logs")).unwrap();
        let mut mesh = Self {
            redis,
            keys,
            nodes: BTreeMap::new(),
            replicas: BTreeMap::new(),
            http: reqwest::Client::new(),
            data,
            admin_token: String::new(),
            options,
            redis_passwords,
            db_server,
            env,
        };
        // user first: it creates the dev key pair every other service verifies with.
        for name in SERVICES {
            mesh.spawn(name).await;
        }
        mesh.admin_token = mesh.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
        mesh
    }

    async fn spawn(&mut self, name: &'static str) {
        let db = match &self.db_server {
            Some(server) => TestDb::on_postgres(server).await,
            None => TestDb::new().await,
        };
        self.spawn_on(name, db, free_port()).await;
    }

    /// Stops `name` with SIGTERM (as `docker compose stop` does) and waits for it to exit. Its
    /// database stays; [`Mesh::restart`] starts it again on the same port.
    pub async fn stop(&mut self, name: &'static str) -> (TestDb, u16) {
        let mut node = self.nodes.remove(name).expect("a running service");
        node.child.stop_cleanly(Duration::from_secs(30)).await;
        (node._db, node.port)
    }

    /// `kill -9` of `name` (no shutdown at all); its database stays, for [`Mesh::restart`].
    pub fn kill9(&mut self, name: &'static str) -> (TestDb, u16) {
        let mut node = self.nodes.remove(name).expect("a running service");
        node.child.kill9();
        (node._db, node.port)
    }

    /// The database URL of service `name`.
    pub fn db_url(&self, name: &str) -> &str {
        &self.nodes[name]._db.url
    }

    /// Starts a service stopped by [`Mesh::stop`] or [`Mesh::kill9`] again, on its database and
    /// port.
    pub async fn restart(&mut self, name: &'static str, (db, port): (TestDb, u16)) {
        self.spawn_on(name, db, port).await;
    }

    async fn spawn_on(&mut self, name: &'static str, db: TestDb, port: u16) {
        // A stable name, as compose and up.sh give: a restarted service re-reads what its
        // previous life held at once.
        let child = self.spawn_process(name, &db.url, port, name, "{host}");
        let base_url = format!("http://127.0.0.1:{port}");
        self.nodes.insert(
            name,
            Node {
                base_url,
                port,
                _db: db,
                child,
            },
        );
        wait_ready(
            &self.http,
            &self.nodes[name].base_url,
            Duration::from_secs(60),
        )
        .await;
    }

    /// Starts a second process of `name` on its database, port of its own, consumer name
    /// `{host}-2`; it logs to `logs/<name>-2.log`.
    pub async fn add_replica(&mut self, name: &'static str) {
        self.spawn_replica(name, free_port()).await;
    }

    /// `kill -9` of `name`'s replica; [`Mesh::restart_replica`] starts it again.
    pub fn kill9_replica(&mut self, name: &'static str) -> u16 {
        let mut replica = self.replicas.remove(name).expect("a running replica");
        replica.child.kill9();
        replica.port
    }

    /// Starts `name`'s replica again on `port` (same consumer name).
    pub async fn restart_replica(&mut self, name: &'static str, port: u16) {
        self.spawn_replica(name, port).await;
    }

    async fn spawn_replica(&mut self, name: &'static str, port: u16) {
        let db_url = self.nodes[name]._db.url.clone();
        let child = self.spawn_process(name, &db_url, port, &format!("{name}-2"), REPLICA_CONSUMER);
        self.replicas.insert(name, Replica { port, child });
        let base_url = format!("http://127.0.0.1:{port}");
        wait_ready(&self.http, &base_url, Duration::from_secs(60)).await;
    }

    /// Spawns the binary of service `name` on `db_url` and `port`, logging (JSON) to
    /// `logs/<log>.log`, with consumer name `consumer`.
    fn spawn_process(
        &self,
        name: &str,
        db_url: &str,
        port: u16,
        log: &str,
        consumer: &str,
    ) -> Proc {
        let bin = workspace_bin(name);
        assert!(
            bin.exists(),
            "{} is missing: build the services first (`cargo build --workspace`; `scripts/test.sh` does)",
            bin.display()
        );
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.data.path().join(format!("logs/{log}.log")))
            .unwrap();
        let redis_url = match self.redis_passwords.get(name) {
            Some(password) => self.redis.url_as(name, password),
            None => self.redis.url(),
        };
        let mut cmd = service_command(
            &bin,
            &redis_url,
            db_url,
            self.data.path(),
            self.keys.prefix(),
        );
        cmd.env("MESH_LISTEN", format!("127.0.0.1:{port}"))
            .env("MESH_LOG_FORMAT", "json")
            .env("MESH_PROCESSING_TIMEOUT_MS", "5000")
            .env("MESH_CONSUMER_NAME", consumer)
            .env("MESH_ADMIN_EMAIL", ADMIN_EMAIL)
            .env("MESH_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env(
                "MESH_STARTING_CREDIT_CENTS",
                self.options.starting_credit_cents.to_string(),
            )
            .env(
                "MESH_WAREHOUSE_AUTO_DISPATCH",
                self.options.auto_dispatch.to_string(),
            )
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        Proc(cmd.spawn().unwrap_or_else(|e| panic!("spawn {name}: {e}")))
    }

    /// Prints the lines of every service's (and replica's) log that mention `needle` (a
    /// failing test's clue).
    pub fn print_logs_about(&self, needle: &str) {
        for (name, text) in self.logs() {
            for line in text.lines().filter(|l| l.contains(needle)) {
                println!("{name}: {line}");
            }
        }
    }

    /// Prints the last `n` lines of every service's (and replica's) log.
    pub fn print_log_tails(&self, n: usize) {
        for (name, text) in self.logs() {
            let lines: Vec<&str> = text.lines().collect();
            for line in &lines[lines.len().saturating_sub(n)..] {
                println!("{name}: {line}");
            }
        }
    }

    /// Every log file (`<service>` or `<service>-2`) with its text, by name.
    fn logs(&self) -> BTreeMap<String, String> {
        let dir = self.data.path().join("logs");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return BTreeMap::new();
        };
        entries
            .filter_map(Result::ok)
            .filter_map(|e| {
                let name = e
                    .file_name()
                    .to_string_lossy()
                    .strip_suffix(".log")?
                    .to_owned();
                Some((name, std::fs::read_to_string(e.path()).unwrap_or_default()))
            })
            .collect()
    }

    /// The JSON lines `service` has logged so far.
    pub fn log_lines(&self, service: &str) -> Vec<Value> {
        let path = self.data.path().join(format!("logs/{service}.log"));
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }

    pub fn url(&self, service: &str, path: &str) -> String {
        format!("{}{path}", self.nodes[service].base_url)
    }

    /// `method` `path` on `service` with an optional bearer token and JSON body.
    pub async fn call(
        &self,
        method: reqwest::Method,
        service: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self.http.request(method.clone(), self.url(service, path));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {service}{path}: {e}"));
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn login(&self, email: &str, password: &str) -> String {
        let (status, body) = self
            .call(
                reqwest::Method::POST,
                "user",
                "/auth/login",
                None,
                Some(json!({"email": email, "password": password})),
            )
            .await;
        assert_eq!(status, 200, "login {email}: {body}");
        body["access_token"].as_str().unwrap().to_owned()
    }

    /// Registers a shopper, logs in, and waits until payment opened the wallet.
    pub async fn shopper(&self) -> Shopper {
        let email = format!("{}@mesh.test", uuid::Uuid::new_v4().simple());
        let password = "shopper-password-123";
        let (status, body) = self
            .call(
                reqwest::Method::POST,
                "user",
                "/auth/register",
                None,
                Some(json!({"email": email, "password": password})),
            )
            .await;
        assert_eq!(status, 201, "register: {body}");
        let token = self.login(&email, password).await;
        wait_until(Duration::from_secs(30), "wallet opened", || async {
            self.call(
                reqwest::Method::GET,
                "payment",
                "/wallet",
                Some(&token),
                None,
            )
            .await
            .0 == 200
        })
        .await;
        Shopper { token }
    }

    /// Creates an active product with `stock` units at `price_cents`; returns its id.
    pub async fn product(&self, name: &str, price_cents: i64, stock: i64) -> String {
        let (status, body) = self
            .call(
                reqwest::Method::POST,
                "inventory",
                "/products",
                Some(&self.admin_token),
                Some(json!({"name": name, "price_cents": price_cents, "stock": stock})),
            )
            .await;
        assert_eq!(status, 201, "create product: {body}");
        body["id"].as_str().unwrap().to_owned()
    }

    /// Events still in some service's outbox (not yet on a stream).
    pub async fn unsent(&self) -> u64 {
        let mut total = 0;
        for node in self.nodes.values() {
            let db = common::db::connect(&node._db.url).await.unwrap();
            total += common::db::outbox::unsent(&db).await.unwrap();
            let _ = db.close().await;
        }
        total
    }

    /// Nothing in any outbox, nothing pending or unread in any group of any stream (twice in a
    /// row: a handler may publish while we look), and the dead-letter stream empty.
    pub async fn assert_settled(&self) {
        let mut quiet_rounds = 0;
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while quiet_rounds < 2 {
            if std::time::Instant::now() >= deadline {
                panic!(
                    "mesh never settled: {} unsent, groups not drained: {:?}",
                    self.unsent().await,
                    self.undrained().await
                );
            }
            if self.unsent().await == 0 && self.groups_drained().await {
                quiet_rounds += 1;
            } else {
                quiet_rounds = 0;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        self.assert_drained().await;
    }

    async fn groups_drained(&self) -> bool {
        self.undrained().await.is_empty()
    }

    /// The (group, stream, state) of every group with something pending or unread.
    async fn undrained(&self) -> Vec<String> {
        let mut conn = self.redis.connection();
        let mut left = Vec::new();
        for (group, stream) in groups() {
            let key = self.keys.stream(stream);
            let state = group_state(&mut conn, &key, group).await;
            let lag = match &state {
                Some(state) => group_lag(&mut conn, &key, state).await.ok(),
                None => None,
            };
            if !(state.as_ref().is_some_and(|s| s.pending == 0) && lag.is_some_and(|(n, _)| n == 0))
            {
                left.push(format!("{group} on {stream}: {state:?}, lag {lag:?}"));
            }
        }
        left
    }

    /// Nothing pending in any group of any stream, and the dead-letter stream empty.
    pub async fn assert_drained(&self) {
        for (_, stream) in groups() {
            assert!(ALL_STREAMS.contains(&stream));
        }
        wait_until(Duration::from_secs(30), "every group drained", || async {
            self.undrained().await.is_empty()
        })
        .await;
        assert_eq!(
            common::testing::dead_letter_total(&self.redis, &self.keys).await,
            0,
            "dead-letter streams must be empty"
        );
    }
}

pub struct Shopper {
    pub token: String,
}
