//! [`TestApp`]: one service's `run` in process on `127.0.0.1:0`, with a Redis server, database,
//! data dir and key prefix of its own, a connection to each for the test's own checks, and the
//! dev key pair the service verifies tokens with. Its HTTP helpers are in `http`, its stream and
//! outbox helpers in `events`.
//!
//! The parts serve tests that need another arrangement: [`ServiceHome`] is a service's database
//! and data dir, [`InProcess`] a `run` started on a listener and stopped by its token.

use std::{future::Future, time::Duration};

use crate::connection::Conn;
use sea_orm::DatabaseConnection;
use tempfile::TempDir;
use tokio::{net::TcpListener, task::JoinHandle};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::database::TestDb;
use super::redis_server::{RedisServer, unique_prefix};
use super::wait::wait_ready;
use crate::{
    Keys,
    auth::{AuthArgs, JwtSigner, Role},
    config::MeshArgs,
};

/// How long a service started in process may take to answer `/readyz`.
const READY_WITHIN: Duration = Duration::from_secs(30);

/// The places one service keeps to itself: its database and its data dir (dev keys, mail drop).
pub struct ServiceHome {
    pub test_db: TestDb,
    pub data: TempDir,
}

impl ServiceHome {
    pub async fn new() -> Self {
        Self::on(TestDb::new().await)
    }

    /// A home on the database `test_db` (one on a `PostgresCluster` the test stops, say).
    pub fn on(test_db: TestDb) -> Self {
        Self {
            test_db,
            data: tempfile::tempdir().expect("data dir"),
        }
    }

    /// The service's settings: this home, the Redis server at `redis_url`, keys under `prefix`.
    pub fn args(&self, redis_url: String, prefix: &str) -> MeshArgs {
        MeshArgs {
            redis_url,
            database_url: Some(self.test_db.url.clone()),
            data_dir: self.data.path().to_path_buf(),
            stream_prefix: prefix.to_owned(),
            ..MeshArgs::default()
        }
    }
}

/// A service's `run` on a task of the test's runtime, serving on a port of its own.
pub struct InProcess {
    pub base_url: String,
    pub shutdown: CancellationToken,
    pub task: JoinHandle<anyhow::Result<()>>,
}

impl InProcess {
    /// Binds `127.0.0.1:0`, passes the listener and a fresh shutdown token to `run` (as `main`
    /// does) and waits until the service is ready.
    pub async fn start<R, F>(args: MeshArgs, run: R) -> Self
    where
        R: FnOnce(MeshArgs, TcpListener, CancellationToken) -> F,
        F: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base_url = format!("http://{}", listener.local_addr().expect("local addr"));
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(run(args, listener, shutdown.clone()));
        wait_ready(&reqwest::Client::new(), &base_url, READY_WITHIN).await;
        Self {
            base_url,
            shutdown,
            task,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
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

/// One running service with its own Redis server, database, data dir and key prefix.
pub struct TestApp {
    pub service: InProcess,
    pub http: reqwest::Client,
    pub keys: Keys,
    /// The test's own connection to the service's Redis server.
    pub redis: Conn,
    /// Stopped and started again by the tests of a Redis outage.
    pub redis_server: RedisServer,
    /// The test's own connection to the service's database (migrated by the service).
    pub db: DatabaseConnection,
    pub home: ServiceHome,
    /// Signs tokens with the dev key pair the service verifies with.
    pub signer: JwtSigner,
}

/// A caller of the API: a user id and an access token for it.
pub struct Caller {
    pub id: Uuid,
    pub token: String,
}

impl TestApp {
    /// Starts a service whose `run` takes its settings, a listener and a shutdown token: a
    /// service's `run`, or a closure calling its `run_with` with settings of the test's choice.
    pub async fn spawn<R, F>(run: R) -> Self
    where
        R: FnOnce(MeshArgs, TcpListener, CancellationToken) -> F,
        F: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        Self::spawn_in(ServiceHome::new().await, run).await
    }

    /// [`Self::spawn`] on the database and data dir of `home`.
    pub async fn spawn_in<R, F>(home: ServiceHome, run: R) -> Self
    where
        R: FnOnce(MeshArgs, TcpListener, CancellationToken) -> F,
        F: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let redis_server = RedisServer::start();
        // Generated before the service starts, so both sides use the same dev key pair.
        let signer = JwtSigner::load(&AuthArgs::default(), home.data.path()).expect("dev key pair");
        let args = home.args(redis_server.url(), &unique_prefix());
        let keys = Keys::new(args.stream_prefix.clone());
        let service = InProcess::start(args, run).await;
        let db = crate::db::connect(&home.test_db.url)
            .await
            .expect("connect");
        Self {
            service,
            http: reqwest::Client::new(),
            keys,
            redis: redis_server.connection(),
            redis_server,
            db,
            home,
            signer,
        }
    }

    /// Cancels the service's token and waits for `run` to return, at most `within`.
    pub async fn stop(self, within: Duration) -> anyhow::Result<()> {
        self.service.stop(within).await
    }

    /// An access token for `user_id` with `role`.
    pub fn token_for(&self, user_id: Uuid, role: Role) -> String {
        self.signer.issue(user_id, role).expect("issue token").0
    }

    /// An access token with `role` for a new user id.
    pub fn token(&self, role: Role) -> String {
        self.token_for(Uuid::now_v7(), role)
    }

    pub fn admin_token(&self) -> String {
        self.token(Role::Admin)
    }

    /// A new user with `role` and an access token.
    pub fn caller(&self, role: Role) -> Caller {
        let id = Uuid::now_v7();
        Caller {
            id,
            token: self.token_for(id, role),
        }
    }
}
