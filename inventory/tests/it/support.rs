//! The harness of the inventory tests: [`spawn_app`] runs the library's `run` in process on a
//! free port with its own Redis server, database, data dir and key prefix; [`spawn_inventory`]
//! runs the real binary instead; helpers mint tokens with the dev key pair the service verifies
//! with, publish events, and read streams and tables.

use std::{
    collections::HashMap,
    ffi::OsStr,
    path::Path,
    process::{Command, Stdio},
    time::Duration,
};

use common::{
    Envelope, Keys,
    auth::{AuthArgs, JwtSigner, Role},
    config::MeshArgs,
    db::outbox,
    events::Event,
    runtime::{Publisher, redis_io},
    testing::{Proc, RedisServer, TestDb, unique_prefix, wait_until},
};
use inventory::{
    catalog::{self, NewProduct},
    entity::{product, stock_movement},
};
use redis::aio::ConnectionManager;
use sea_orm::{
    ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, TransactionTrait,
};
use serde_json::Value;
use tempfile::TempDir;
use tokio::{net::TcpListener, task::JoinHandle};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// One running service with its own Redis server, database, data dir and key prefix.
pub struct TestApp {
    pub base_url: String,
    pub shutdown: CancellationToken,
    pub task: JoinHandle<anyhow::Result<()>>,
    pub http: reqwest::Client,
    pub keys: Keys,
    pub redis: ConnectionManager,
    pub db: DatabaseConnection,
    /// Signs tokens with the dev key pair the service verifies with.
    pub signer: JwtSigner,
    pub redis_server: RedisServer,
    _data: TempDir,
    _db: TestDb,
}

/// Starts the service on `127.0.0.1:0` (the listener is passed in, as `main` does).
pub async fn spawn_app() -> TestApp {
    let redis_server = RedisServer::start();
    let test_db = TestDb::new().await;
    let data = tempfile::tempdir().expect("data dir");
    // Generated before the service starts, so both sides use the same dev key pair.
    let signer = JwtSigner::load(&AuthArgs::default(), data.path()).expect("dev key pair");
    let args = MeshArgs {
        redis_url: redis_server.url(),
        database_url: Some(test_db.url.clone()),
        data_dir: data.path().to_path_buf(),
        stream_prefix: unique_prefix(),
        ..MeshArgs::default()
    };
    let keys = Keys::new(args.stream_prefix.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base_url = format!("http://{}", listener.local_addr().expect("local addr"));
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(inventory::run(args, listener, shutdown.clone()));
    let http = reqwest::Client::new();
    wait_until(Duration::from_secs(20), "service ready", || {
        let http = http.clone();
        let url = format!("{base_url}/readyz");
        async move { matches!(http.get(url).send().await, Ok(r) if r.status() == 200) }
    })
    .await;
    // The service migrated the database; this connection is the test's view of it.
    let db = common::db::connect(&test_db.url).await.expect("connect");
    TestApp {
        base_url,
        shutdown,
        task,
        http,
        keys,
        redis: redis_server.connection(),
        db,
        signer,
        redis_server,
        _data: data,
        _db: test_db,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    /// A request with an optional bearer token.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> reqwest::Response {
        let mut req = self.http.request(method.clone(), self.url(path));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        req.send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    pub fn token(&self, role: Role) -> String {
        self.signer
            .issue(Uuid::now_v7(), role)
            .expect("issue token")
            .0
    }

    pub fn admin(&self) -> String {
        self.token(Role::Admin)
    }

    /// Creates a product through the API; returns its JSON.
    pub async fn create_product(&self, name: &str, price_cents: i64, stock: i64) -> Value {
        let response = self
            .send(
                reqwest::Method::POST,
                "/products",
                Some(&self.admin()),
                Some(serde_json::json!({
                    "name": name,
                    "description": format!("{name}, the finest"),
                    "price_cents": price_cents,
                    "stock": stock,
                })),
            )
            .await;
        assert_eq!(response.status(), 201, "create {name}");
        response.json().await.expect("product JSON")
    }

    pub async fn product(&self, id: Uuid) -> Option<product::Model> {
        product::Entity::find_by_id(id)
            .one(&self.db)
            .await
            .expect("query product")
    }

    pub async fn all_products(&self) -> Vec<product::Model> {
        product::Entity::find().all(&self.db).await.expect("query")
    }

    pub async fn movements(&self, id: Uuid) -> Vec<stock_movement::Model> {
        movements(&self.db, id).await
    }

    pub fn stream(&self, name: &str) -> String {
        self.keys.stream(name)
    }

    /// Waits until the outbox is empty: every event caused so far is on its stream.
    pub async fn flush_outbox(&self) {
        wait_until(Duration::from_secs(10), "outbox drained", || async {
            outbox::unsent(&self.db).await.expect("count outbox") == 0
        })
        .await;
    }

    /// Payloads of every event on stream `T::TYPE`, after flushing the outbox.
    pub async fn events<T: Event>(&self) -> Vec<(Envelope, T)> {
        self.flush_outbox().await;
        events::<T>(&mut self.redis.clone(), &self.keys).await
    }

    pub async fn publish<T: Event>(&self, envelope: &Envelope) {
        Publisher::new(self.redis.clone(), self.keys.clone())
            .publish(T::TYPE, envelope)
            .await
            .expect("publish");
    }

    /// Cancels the token and waits for `run` to return, at most `within`.
    pub async fn stop(self, within: Duration) -> anyhow::Result<()> {
        self.shutdown.cancel();
        tokio::time::timeout(within, self.task)
            .await
            .unwrap_or_else(|_| panic!("run did not return within {within:?} of cancellation"))
            .expect("run panicked")
    }
}

/// The ledger of a product, oldest first.
pub async fn movements(db: &DatabaseConnection, id: Uuid) -> Vec<stock_movement::Model> {
    stock_movement::Entity::find()
        .filter(stock_movement::Column::ProductId.eq(id))
        .order_by_asc(stock_movement::Column::Id)
        .all(db)
        .await
        .expect("query movements")
}

/// Inserts a product straight into the database (and its `product-changed` into the outbox).
pub async fn seed_product(db: &DatabaseConnection, stock: i64) -> product::Model {
    let txn = db.begin().await.expect("begin");
    let product = catalog::create(
        &txn,
        NewProduct {
            name: "seeded".into(),
            description: String::new(),
            price_cents: 1_000,
            stock,
        },
        "test",
    )
    .await
    .expect("seed product");
    txn.commit().await.expect("commit");
    product
}

/// Every event on stream `T::TYPE`, decoded.
pub async fn events<T: Event>(conn: &mut ConnectionManager, keys: &Keys) -> Vec<(Envelope, T)> {
    let key = keys.stream(T::TYPE);
    let reply: redis::Value = redis::cmd("XRANGE")
        .arg(&key)
        .arg("-")
        .arg("+")
        .query_async(conn)
        .await
        .expect("XRANGE");
    redis_io::parse_entries(&key, reply)
        .into_iter()
        .map(|entry| {
            let envelope = Envelope::from_fields(&entry.fields.expect("entry fields"))
                .expect("a valid envelope");
            let payload = envelope.payload::<T>().expect("a valid payload");
            (envelope, payload)
        })
        .collect()
}

/// Asserts a problem+json answer with `status`; returns its body.
pub async fn assert_problem(response: reqwest::Response, status: u16) -> Value {
    assert_eq!(response.status(), status, "status of {}", response.url());
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert_eq!(content_type, "application/problem+json");
    let body: Value = response.json().await.expect("problem JSON");
    assert_eq!(body["status"], status);
    assert!(body["type"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(body["title"].is_string() && body["detail"].is_string());
    body
}

/// Stream entry counts of some streams, for "nothing was published" checks.
pub async fn stream_lengths(app: &TestApp, names: &[&str]) -> HashMap<String, u64> {
    app.flush_outbox().await;
    let mut out = HashMap::new();
    for name in names {
        let n = common::testing::xlen(&mut app.redis.clone(), &app.stream(name)).await;
        out.insert((*name).to_owned(), n);
    }
    out
}

/// Starts the real inventory binary, configured through its environment as in a deployment,
/// with `extra` variables on top.
pub fn spawn_inventory(
    redis: &RedisServer,
    db_url: &str,
    keys: &Keys,
    data: &Path,
    port: u16,
    extra: &[(&str, &OsStr)],
) -> Proc {
    let mut command = Command::new(env!("CARGO_BIN_EXE_inventory"));
    command
        .env("REDIS_URL", redis.url())
        .env("DATABASE_URL", db_url)
        .env("MESH_DATA_DIR", data)
        .env("MESH_LISTEN", format!("127.0.0.1:{port}"))
        .env("MESH_STREAM_PREFIX", keys.prefix())
        .env("RUST_LOG", "warn");
    for (name, value) in extra {
        command.env(name, value);
    }
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn the inventory binary");
    Proc(child)
}

/// Waits until the service on `port` answers `/readyz` with 200.
pub async fn wait_ready(http: &reqwest::Client, port: u16) {
    wait_until(Duration::from_secs(30), "service ready", || async move {
        matches!(http.get(format!("http://127.0.0.1:{port}/readyz")).send().await,
            Ok(r) if r.status() == 200)
    })
    .await;
}
