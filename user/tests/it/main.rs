//! Integration tests of the user service, against a real `redis-server` and a real database
//! (a SQLite file, or a fresh PostgreSQL database when `TEST_DATABASE_URL` is set). One test
//! binary per crate; [`spawn_app`] runs the library's `run` in process, like `main` does.
//!
//! Modules: `accounts` (register, log-in, me), `sessions` (refresh, logout, rate limiting),
//! `tokens` (forged and revoked tokens), `admin` (list users, set role, `create-admin`),
//! `password_reset` (through the mail drop), `smtp` (the reset mail over SMTP), `docs`
//! (OpenAPI, Swagger UI, ops routes, shutdown).

mod abuse;
mod accounts;
mod admin;
mod docs;
mod password_reset;
mod sessions;
mod smtp;
mod tokens;

use std::time::Duration;

use common::{
    auth::{AuthArgs, JwtSigner},
    config::MeshArgs,
    testing::{RedisServer, TestDb, unique_prefix},
};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::{net::TcpListener, task::JoinHandle};
use tokio_util::sync::CancellationToken;
use user::UserArgs;

pub const ADMIN_EMAIL: &str = "root@example.com";
pub const ADMIN_PASSWORD: &str = "root-password-1";
pub const PASSWORD: &str = "correct horse battery";

/// One running service with its own Redis server, database, data dir and key prefix.
pub struct TestApp {
    pub base_url: String,
    pub shutdown: CancellationToken,
    pub task: JoinHandle<anyhow::Result<()>>,
    pub http: reqwest::Client,
    pub prefix: String,
    pub redis: RedisServer,
    pub db: TestDb,
    pub data: TempDir,
}

/// A logged-in client.
pub struct Session {
    pub access: String,
    pub refresh: String,
    pub set_cookie: String,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http.get(self.url(path)).send().await.expect("GET")
    }

    pub async fn get_as(&self, path: &str, token: &str) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("GET")
    }

    pub async fn post(&self, path: &str, body: &Value) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("POST")
    }

    pub async fn register(&self, email: &str, password: &str) -> reqwest::Response {
        self.post(
            "/auth/register",
            &json!({"email": email, "password": password}),
        )
        .await
    }

    pub async fn login(&self, email: &str, password: &str) -> reqwest::Response {
        self.post(
            "/auth/login",
            &json!({"email": email, "password": password}),
        )
        .await
    }

    /// Registers `email` (if new) and logs in.
    pub async fn session(&self, email: &str) -> Session {
        let _ = self.register(email, PASSWORD).await;
        self.session_with(email, PASSWORD).await
    }

    pub async fn session_with(&self, email: &str, password: &str) -> Session {
        let response = self.login(email, password).await;
        assert_eq!(response.status(), 200, "log-in of {email}");
        let set_cookie = response
            .headers()
            .get("set-cookie")
            .expect("refresh cookie")
            .to_str()
            .unwrap()
            .to_owned();
        let body: Value = response.json().await.unwrap();
        Session {
            access: body["access_token"].as_str().unwrap().to_owned(),
            refresh: body["refresh_token"].as_str().unwrap().to_owned(),
            set_cookie,
        }
    }

    pub async fn admin(&self) -> Session {
        self.session_with(ADMIN_EMAIL, ADMIN_PASSWORD).await
    }

    /// Signs tokens with the service's (dev) key, as a forger who stole it would.
    pub fn signer(&self) -> JwtSigner {
        JwtSigner::load(&AuthArgs::default(), self.data.path()).expect("dev key pair")
    }

    /// A connection of the test's own to the service's database.
    pub async fn database(&self) -> sea_orm::DatabaseConnection {
        common::db::connect(&self.db.url).await.expect("connect")
    }

    /// The number of accounts, straight from the database.
    pub async fn user_count(&self) -> u64 {
        use sea_orm::{EntityTrait, PaginatorTrait};
        let db = self.database().await;
        user::entity::user::Entity::find().count(&db).await.unwrap()
    }

    /// Every refresh token row, straight from the database.
    pub async fn refresh_tokens(&self) -> Vec<user::entity::refresh_token::Model> {
        use sea_orm::{EntityTrait, QueryOrder};
        let db = self.database().await;
        user::entity::refresh_token::Entity::find()
            .order_by_asc(user::entity::refresh_token::Column::Id)
            .all(&db)
            .await
            .unwrap()
    }

    /// The keys of the mesh prefix matching `pattern` (after the prefix).
    pub async fn redis_keys(&self, pattern: &str) -> Vec<String> {
        redis::cmd("KEYS")
            .arg(format!("{}{pattern}", self.prefix))
            .query_async(&mut self.redis.connection())
            .await
            .unwrap()
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

/// Asserts a problem+json answer with `status` and returns its body.
pub async fn problem(response: reqwest::Response, status: u16) -> Value {
    assert_eq!(response.status(), status, "status");
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(content_type.as_deref(), Some("application/problem+json"));
    let body: Value = response.json().await.expect("problem body");
    assert_eq!(body["status"], status);
    for field in ["type", "title", "detail"] {
        assert!(body[field].is_string(), "problem without {field}: {body}");
    }
    body
}

/// Starts the service on `127.0.0.1:0` with an admin from the start-up settings.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(UserArgs::default()).await
}

pub async fn spawn_app_with(user_args: UserArgs) -> TestApp {
    let redis = RedisServer::start();
    let db = TestDb::new().await;
    let data = tempfile::tempdir().expect("data dir");
    let prefix = unique_prefix();
    let args = MeshArgs {
        redis_url: redis.url(),
        database_url: Some(db.url.clone()),
        data_dir: data.path().to_path_buf(),
        stream_prefix: prefix.clone(),
        ..MeshArgs::default()
    };
    let user_args = UserArgs {
        admin_email: Some(ADMIN_EMAIL.into()),
        admin_password: Some(ADMIN_PASSWORD.into()),
        ..user_args
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base_url = format!("http://{}", listener.local_addr().expect("local addr"));
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(user::run_with(args, user_args, listener, shutdown.clone()));
    let http = reqwest::Client::new();
    // Ready once the admin exists and the API answers.
    common::testing::wait_until(Duration::from_secs(20), "user service up", || {
        let http = http.clone();
        let url = format!("{base_url}/healthz");
        async move { http.get(url).send().await.is_ok() }
    })
    .await;
    TestApp {
        base_url,
        shutdown,
        task,
        http,
        prefix,
        redis,
        db,
        data,
    }
}
