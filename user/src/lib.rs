//! The user service: accounts, log-in and JWTs (docs/architecture.md, "Services" and "Auth").
//!
//! - [`http`]: the API (register, log-in, refresh, log-out, me, admin users, password reset,
//!   JWKS, OpenAPI and Swagger UI).
//! - [`worker`]: group `user` on `password-reset-requested`, mailing reset links.
//! - [`accounts`], [`session`], [`password`], [`rate_limit`]: the rules behind them.
//! - [`entity`] and [`migration`]: the database.
//!
//! [`run`] connects and migrates, makes sure the configured admin exists, and serves the API, the
//! outbox relay and the worker until `shutdown`.

pub mod accounts;
pub mod config;
pub mod entity;
pub mod housekeeping;
pub mod http;
pub mod migration;
pub mod password;
pub mod rate_limit;
pub mod revoke;
pub mod session;
pub mod worker;

use std::sync::Arc;

use anyhow::Context as _;
use common::{
    auth::{JwtSigner, JwtVerifier},
    config::MeshArgs,
    service::{Part, Service},
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use config::UserArgs;
pub use migration::Migrator;

/// Name of the service: its consumer group, its database, the `producer` of its events.
pub const SERVICE: &str = "user";

/// Port of the HTTP API when `MESH_LISTEN` is not set.
pub const DEFAULT_PORT: u16 = 8001;

/// [`run_with`] the default user settings (what the tests use).
pub async fn run(
    args: MeshArgs,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    run_with(args, UserArgs::default(), listener, shutdown).await
}

/// Connects and migrates, ensures the configured admin, then serves on `listener` until
/// `shutdown` is cancelled and everything has drained.
pub async fn run_with(
    args: MeshArgs,
    user: UserArgs,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let service = Service::connect::<Migrator>(SERVICE, args).await?;
    if let Some(email) = &user.admin_email {
        let password = user
            .admin_password
            .as_deref()
            .context("MESH_ADMIN_EMAIL is set but MESH_ADMIN_PASSWORD is not")?;
        let (admin, how) = accounts::ensure_admin(
            &service.db,
            &user.hashing(),
            email,
            password,
            user.existing_admin_account(),
        )
        .await?;
        tracing::info!(user.id = %admin.id, bootstrap = ?how, "admin account ready");
        service.relay.notifier().notify();
    }
    let state = app_state(&service, &user)?;
    let handler = worker::PasswordResetHandler {
        db: service.db.clone(),
        mailer: worker::mailer::Mailer::new(
            user.smtp_url.as_deref(),
            &user.mail_from,
            &service.args.data_dir,
        )?,
        reset_url: user.password_reset_url.clone(),
    };
    let worker = worker::worker(&service, handler);
    let housekeeping = housekeeping::run(
        service.db.clone(),
        service.redis.clone(),
        service.keys.clone(),
        service.args.auth.access_token_ttl(),
        service.args.worker.housekeeping_interval,
        shutdown.clone(),
    );
    let parts: Vec<Part> = vec![
        service.worker_part("password-reset worker", worker, &shutdown),
        (
            "housekeeping",
            Box::pin(async move {
                housekeeping.await;
                Ok(())
            }),
        ),
    ];
    service
        .run(listener, http::router(state), parts, shutdown)
        .await
}

/// The handlers' state for a connected service. The user service verifies with its own signing
/// key, so a configured public key can never disagree with what it signs.
pub fn app_state(service: &Service, user: &UserArgs) -> anyhow::Result<http::AppState> {
    let auth = &service.args.auth;
    let signer = JwtSigner::load(auth, &service.args.data_dir)?;
    let verifier: JwtVerifier = signer
        .verifier()
        .with_revocations(service.revocations.clone());
    Ok(http::AppState {
        db: service.db.clone(),
        redis: service.redis.clone(),
        keys: service.keys.clone(),
        signer,
        verifier,
        outbox: service.relay.notifier(),
        revoker: revoke::Revoker::new(
            service.revocations.clone(),
            service.relay.notifier(),
            auth.access_token_ttl(),
        ),
        limiter: rate_limit::Limiter::new(
            service.redis.clone(),
            service.keys.clone(),
            user.limits(),
        ),
        hashing: user.hashing(),
        settings: Arc::new(http::Settings {
            refresh_ttl: auth.refresh_token_ttl(),
            password_reset_ttl: user.password_reset_ttl(),
            password_reset_max_requests: user.password_reset_max_requests,
            cookie_secure: user.cookie_secure,
        }),
    })
}

/// `user create-admin`: migrates, then creates the admin account (promoting an existing one
/// only with [`accounts::ExistingAccount::Promote`]). Its `user-registered` event waits in the
/// outbox until the service runs.
pub async fn create_admin(
    args: MeshArgs,
    email: &str,
    password: &str,
    existing: accounts::ExistingAccount,
) -> anyhow::Result<()> {
    let db = common::service::connect_and_migrate::<Migrator>(SERVICE, &args).await?;
    let hashing = password::Hashing::new(0, std::time::Duration::from_secs(60));
    let outcome = accounts::ensure_admin(&db, &hashing, email, password, existing).await;
    let _ = db.close().await;
    let (admin, how) = outcome?;
    tracing::info!(user.id = %admin.id, email = %admin.email, bootstrap = ?how, "admin account ready");
    Ok(())
}
