//! The user service: accounts, log-in and JWTs (docs/architecture.md, "Services" and "Auth").
//!
//! - [`http`]: the API (register, log-in, refresh, log-out, me, admin users, password reset,
//!   JWKS, OpenAPI and Swagger UI).
//! - [`worker`]: group `user` on `password-reset-requested`, mailing reset links.
//! - [`accounts`], [`session`], [`password`], [`rate_limit`]: the rules behind them.
//! - [`entity`] and [`migration`]: the database.
//!
//! [`User`] is its [`Template`]: `common::service::run_with::<User>` connects and migrates, makes
//! sure the configured admin exists, and serves the API, the outbox relay and the worker until
//! `shutdown`; [`admin`] is the `create-admin` subcommand.

pub mod accounts;
pub mod admin;
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
    service::{Assembly, Service, Template},
};
use sea_orm_migration::MigrationTrait;
use tokio_util::sync::CancellationToken;

pub use config::UserArgs;

/// Name of the service: its consumer group, its database, the `producer` of its events.
pub const SERVICE: &str = User::NAME;

/// The user service, as the shared start-up (`common::service`) runs it.
pub struct User;

/// Migrations of this service's database: the runtime's tables (inbox, outbox) first.
pub type Migrator = common::service::Migrator<User>;

impl Template for User {
    const NAME: &'static str = "user";
    const DEFAULT_PORT: u16 = 8001;
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const ABOUT: &'static str = "Accounts, log-in and JWT issuing of the mesh.";
    type Args = UserArgs;
    type Command = admin::AdminCommand;

    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        migration::migrations()
    }

    /// Ensures the configured admin before the API opens, then the API, the password-reset
    /// worker and the housekeeping of expired tokens.
    async fn assemble(
        service: &Service,
        user: UserArgs,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<Assembly> {
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
        let state = app_state(service, &user)?;
        let handler = worker::routes().with_state(worker::PasswordResetHandler {
            db: service.db.clone(),
            mailer: worker::mailer::Mailer::new(
                user.smtp_url.as_deref(),
                &user.mail_from,
                &service.args.data_dir,
            )?,
            reset_url: user.password_reset_url.clone(),
        });
        let worker = service.worker(&handler.streams(), handler);
        let housekeeping = housekeeping::run(
            service.db.clone(),
            service.redis.clone(),
            service.keys.clone(),
            service.args.auth.access_token_ttl(),
            service.args.worker.housekeeping_interval,
            shutdown.clone(),
        );
        Ok(Assembly::new(http::router(state))
            .worker(service, "password-reset worker", worker, shutdown)
            .part("housekeeping", housekeeping))
    }
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
