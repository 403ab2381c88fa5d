//! Integration tests of the user service, against a real `redis-server` and a real database
//! (a SQLite file, or a fresh PostgreSQL database when `TEST_DATABASE_URL` is set). One test
//! binary per crate; [`spawn_app`] runs the library's `run_with` in process on the shared
//! `common::testing::TestApp`, like `main` does; [`UserApp`] holds the service's own helpers.
//!
//! Modules: `accounts` (register, log-in, me), `sessions` (refresh, logout, rate limiting),
//! `tokens` (forged and revoked tokens), `admin` (list users, set role, `create-admin`),
//! `password_reset` (through the mail drop), `smtp` (the reset mail over SMTP), `docs`
//! (OpenAPI, Swagger UI, ops routes, shutdown).

mod abuse;
mod accounts;
mod admin;
mod docs;
mod housekeeping;
mod password_reset;
mod sessions;
mod smtp;
mod tokens;

use common::testing::TestApp;
use serde_json::{Value, json};
use user::UserArgs;

pub use common::testing::assert_problem;

pub const ADMIN_EMAIL: &str = "root@example.com";
pub const ADMIN_PASSWORD: &str = "root-password-1";
pub const PASSWORD: &str = "correct horse battery";

/// A logged-in client.
pub struct Session {
    pub access: String,
    pub refresh: String,
    pub set_cookie: String,
}

/// Starts the service on `127.0.0.1:0` with an admin from the start-up settings.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(UserArgs::default()).await
}

/// Starts the service with `user_args`, and the admin from the start-up settings, on
/// `127.0.0.1:0` with its own Redis server, database and key prefix.
pub async fn spawn_app_with(user_args: UserArgs) -> TestApp {
    let user_args = UserArgs {
        admin_email: Some(ADMIN_EMAIL.into()),
        admin_password: Some(ADMIN_PASSWORD.into()),
        ..user_args
    };
    TestApp::spawn(|args, listener, shutdown| {
        common::service::run_with::<user::User>(args, user_args, listener, shutdown)
    })
    .await
}

/// The user service's domain helpers.
pub(crate) trait UserApp {
    async fn register(&self, email: &str, password: &str) -> reqwest::Response;
    async fn login(&self, email: &str, password: &str) -> reqwest::Response;
    /// Registers `email` (if new) and logs in.
    async fn session(&self, email: &str) -> Session;
    async fn session_with(&self, email: &str, password: &str) -> Session;
    /// Logs in as the admin of the start-up settings.
    async fn admin_session(&self) -> Session;
    /// The number of accounts, straight from the database.
    async fn user_count(&self) -> u64;
    /// Every refresh token row, straight from the database.
    async fn refresh_tokens(&self) -> Vec<user::entity::refresh_token::Model>;
    /// The keys of the mesh prefix matching `pattern` (after the prefix).
    async fn redis_keys(&self, pattern: &str) -> Vec<String>;
}

impl UserApp for TestApp {
    async fn register(&self, email: &str, password: &str) -> reqwest::Response {
        self.post(
            "/auth/register",
            &json!({"email": email, "password": password}),
        )
        .await
    }

    async fn login(&self, email: &str, password: &str) -> reqwest::Response {
        self.post(
            "/auth/login",
            &json!({"email": email, "password": password}),
        )
        .await
    }

    async fn session(&self, email: &str) -> Session {
        let _ = self.register(email, PASSWORD).await;
        self.session_with(email, PASSWORD).await
    }

    async fn session_with(&self, email: &str, password: &str) -> Session {
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

    async fn admin_session(&self) -> Session {
        self.session_with(ADMIN_EMAIL, ADMIN_PASSWORD).await
    }

    async fn user_count(&self) -> u64 {
        use sea_orm::{EntityTrait, PaginatorTrait};
        user::entity::user::Entity::find()
            .count(&self.db)
            .await
            .unwrap()
    }

    async fn refresh_tokens(&self) -> Vec<user::entity::refresh_token::Model> {
        use sea_orm::{EntityTrait, QueryOrder};
        user::entity::refresh_token::Entity::find()
            .order_by_asc(user::entity::refresh_token::Column::Id)
            .all(&self.db)
            .await
            .unwrap()
    }

    async fn redis_keys(&self, pattern: &str) -> Vec<String> {
        redis::cmd("KEYS")
            .arg(format!("{}{pattern}", self.keys.prefix()))
            .query_async(&mut self.redis.clone())
            .await
            .unwrap()
    }
}
