//! The harness of the payment tests: [`spawn_app`] runs the library's `run_with` in process on a
//! free port with its own Redis server, database, data dir and key prefix; helpers mint tokens
//! with the dev key pair the service verifies with, publish events, read streams and tables, and
//! check that money is conserved.

use std::time::Duration;

use common::{
    Envelope, Keys,
    auth::{AuthArgs, JwtSigner, Role},
    config::MeshArgs,
    db::outbox,
    events::{Event, UserRegistered},
    runtime::{Publisher, redis_io},
    testing::{RedisServer, TestDb, unique_prefix, wait_drained, wait_until, xlen},
};
use payment::{
    PaymentArgs,
    entity::{deposit, payment as payment_row, refund, wallet},
};
use redis::aio::ConnectionManager;
use sea_orm::{DatabaseConnection, EntityTrait};
use serde_json::Value;
use tempfile::TempDir;
use tokio::{net::TcpListener, task::JoinHandle};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Credit every wallet of the tests opens with.
pub const STARTING_CREDIT: i64 = 5_000;

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
    _redis_server: RedisServer,
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
    let settings = PaymentArgs {
        starting_credit_cents: STARTING_CREDIT,
    };
    let task = tokio::spawn(payment::run_with(
        args,
        settings,
        listener,
        shutdown.clone(),
    ));
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
        _redis_server: redis_server,
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

    /// A token for `user_id` with `role`.
    pub fn token_for(&self, user_id: Uuid, role: Role) -> String {
        self.signer.issue(user_id, role).expect("issue token").0
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
        let key = self.keys.stream(T::TYPE);
        let reply: redis::Value = redis::cmd("XRANGE")
            .arg(&key)
            .arg("-")
            .arg("+")
            .query_async(&mut self.redis.clone())
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

    pub async fn publish<T: Event>(&self, envelope: &Envelope) {
        Publisher::new(self.redis.clone(), self.keys.clone())
            .publish(T::TYPE, envelope)
            .await
            .expect("publish");
    }

    /// Announces a new user and waits until the wallet is open; returns the user id.
    pub async fn register_user(&self) -> Uuid {
        let user_id = Uuid::now_v7();
        let payload = UserRegistered {
            user_id,
            email: format!("{user_id}@example.com"),
        };
        let envelope =
            Envelope::new(UserRegistered::TYPE, "user", "req-user", "", &payload).unwrap();
        self.publish::<UserRegistered>(&envelope).await;
        wait_until(Duration::from_secs(20), "wallet opened", || async move {
            self.wallet(user_id).await.is_some()
        })
        .await;
        user_id
    }

    pub async fn wallet(&self, user_id: Uuid) -> Option<wallet::Model> {
        wallet::Entity::find_by_id(user_id)
            .one(&self.db)
            .await
            .expect("query wallet")
    }

    pub async fn balance(&self, user_id: Uuid) -> i64 {
        self.wallet(user_id).await.expect("wallet").balance_cents
    }

    /// Waits until stream `name` holds at least `n` entries.
    pub async fn wait_for_events(&self, name: &str, n: u64) {
        let key = self.stream(name);
        wait_until(
            Duration::from_secs(20),
            &format!("{n} entries on {name}"),
            || {
                let mut conn = self.redis.clone();
                let key = key.clone();
                async move { xlen(&mut conn, &key).await >= n }
            },
        )
        .await;
    }

    /// Waits until the group has handled everything on its streams and the outbox is empty.
    pub async fn settle(&self) {
        for _ in 0..2 {
            self.flush_outbox().await;
            for stream in payment::worker::STREAMS {
                let key = self.stream(stream);
                // A stream nobody published to has no group yet: nothing to wait for.
                if xlen(&mut self.redis.clone(), &key).await == 0 {
                    continue;
                }
                wait_drained(
                    &mut self.redis.clone(),
                    &key,
                    payment::worker::GROUP,
                    Duration::from_secs(20),
                )
                .await;
            }
        }
    }

    pub async fn dead_letters(&self) -> u64 {
        xlen(&mut self.redis.clone(), &self.keys.dead_letter()).await
    }

    /// Opening credit + deposits = balances + captured − refunded, over the whole database.
    pub async fn assert_money_conserved(&self) {
        let wallets = wallet::Entity::find().all(&self.db).await.unwrap();
        let opening: i64 = wallets.iter().map(|w| w.opening_credit_cents).sum();
        let balances: i64 = wallets.iter().map(|w| w.balance_cents).sum();
        assert!(wallets.iter().all(|w| w.balance_cents >= 0));
        let deposits: i64 = deposit::Entity::find()
            .all(&self.db)
            .await
            .unwrap()
            .iter()
            .map(|d| d.amount_cents)
            .sum();
        let captured: i64 = payment_row::Entity::find()
            .all(&self.db)
            .await
            .unwrap()
            .iter()
            .filter(|p| p.status != payment_row::FAILED)
            .map(|p| p.amount_cents)
            .sum();
        let refunded: i64 = refund::Entity::find()
            .all(&self.db)
            .await
            .unwrap()
            .iter()
            .map(|r| r.amount_cents)
            .sum();
        assert_eq!(
            opening + deposits,
            balances + captured - refunded,
            "money conserved: opening {opening} + deposits {deposits} = balances {balances} \
             + captured {captured} - refunded {refunded}"
        );
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
