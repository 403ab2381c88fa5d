//! The HTTP API of the user service, one `router()` per resource merged in [`router`]:
//! [`auth`] (register, log-in, refresh, log-out, JWKS), [`users`] (me, admin list and role),
//! [`password_reset`], and [`openapi`] (`/openapi.json`, Swagger UI at `/docs`).

pub mod auth;
pub mod openapi;
pub mod password_reset;
pub mod users;

use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
    time::Duration,
};

use axum::{
    Router,
    extract::{ConnectInfo, FromRef, FromRequestParts},
    http::request::Parts,
};
use common::connection::Conn;
use common::keys::Keys;
use common::{
    auth::{JwtSigner, JwtVerifier},
    db::outbox::OutboxNotifier,
};
use sea_orm::DatabaseConnection;

use crate::{password::Hashing, rate_limit::Limiter, revoke::Revoker};

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    pub db: DatabaseConnection,
    pub redis: Conn,
    pub keys: Keys,
    pub signer: JwtSigner,
    pub verifier: JwtVerifier,
    pub outbox: OutboxNotifier,
    pub limiter: Limiter,
    pub revoker: Revoker,
    pub hashing: Hashing,
    pub settings: Arc<Settings>,
}

/// Settings the handlers read.
#[derive(Debug, Clone)]
pub struct Settings {
    pub refresh_ttl: Duration,
    pub password_reset_ttl: Duration,
    pub password_reset_max_requests: u64,
    pub cookie_secure: bool,
}

impl FromRef<AppState> for JwtVerifier {
    fn from_ref(state: &AppState) -> Self {
        state.verifier.clone()
    }
}

/// The service's API (without the ops routes, which `Service::run` adds).
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(auth::router())
        .merge(users::router())
        .merge(password_reset::router())
        .with_state(state)
        .merge(openapi::router())
}

/// The address of the peer (the TCP connection, not a forwardable header a client could forge).
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(addr)| addr.ip()),
        ))
    }
}
