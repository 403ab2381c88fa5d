//! `meshctl serve`: the web console. Server-rendered HTML (askama templates in
//! `meshctl/templates/console/`, no JavaScript) of what the commands show — streams, groups with
//! a lag sparkline, a group's consumers and pending entries, one entry, dead letters with replay
//! and purge (preview, then a confirm pinned to the exact ids previewed), and an order's timeline
//! by correlation id. Every page gets its data from the same functions as the CLI (`streams`,
//! `show`, `dlq`, `timeline`); the console never names a Redis key itself.
//!
//! Parts: `server` (the router and the security layers: Host allow-list, Origin check, headers),
//! `auth` (the operator token, sessions, log-in and log-out), `csrf` (the per-session token every
//! form carries), `sparkline` (the lag sampler and its SVG), `page` (rendering and errors), and
//! one module per page under `pages/`. Trust model: docs/security.md, "Web console".

mod auth;
mod csrf;
mod page;
mod pages;
mod server;
mod sparkline;

use std::{net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use anyhow::Context as _;
use clap::Args;
use common::config::{HttpArgs, LogFormat};
use tokio_util::sync::CancellationToken;

use crate::{
    ctx::{Ctx, usage},
    position::parse_duration,
};

/// Settings of `meshctl serve`. The operator token never comes from a flag (it would show in
/// `ps`): from `--token-file` or the `MESH_CONSOLE_TOKEN` environment variable.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on. Keep it on loopback (or behind a TLS proxy): the console speaks plain
    /// HTTP.
    #[arg(long, env = "MESH_CONSOLE_LISTEN", default_value = "127.0.0.1:8090")]
    pub listen: SocketAddr,
    /// File whose content (trimmed) is the operator token, at least 16 characters. Otherwise
    /// the `MESH_CONSOLE_TOKEN` environment variable; there is no default.
    #[arg(long, env = "MESH_CONSOLE_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// `Host` values the console answers (`host:port`, comma-separated); any other gets 421
    /// (DNS rebinding). Default: `127.0.0.1`, `localhost` and `[::1]` with the port listened on,
    /// and the listen address itself.
    #[arg(
        long = "allowed-host",
        env = "MESH_CONSOLE_ALLOWED_HOSTS",
        value_delimiter = ','
    )]
    pub allowed_hosts: Vec<String>,
    /// Mark the session cookie `Secure` (browsers send it over HTTPS and to localhost only).
    #[arg(long, env = "MESH_CONSOLE_COOKIE_SECURE", default_value_t = true, action = clap::ArgAction::Set)]
    pub cookie_secure: bool,
    /// How long a session lasts after log-in.
    #[arg(long, env = "MESH_CONSOLE_SESSION_TTL", value_parser = parse_duration, default_value = "8h")]
    pub session_ttl: Duration,
    /// How often the lag of every group is sampled for the sparklines (at least 100ms).
    #[arg(long, env = "MESH_CONSOLE_SAMPLE_INTERVAL", value_parser = parse_duration, default_value = "5s")]
    pub sample_interval: Duration,
    #[command(flatten)]
    pub http: HttpArgs,
}

/// What every handler shares.
pub struct Console {
    /// The connection and key naming; each request works on its own clone.
    pub ctx: Ctx,
    pub auth: auth::Auth,
    pub lag: sparkline::Sparklines,
}

/// Runs the console until SIGINT or SIGTERM.
pub async fn serve(ctx: Ctx, args: ServeArgs) -> anyhow::Result<()> {
    common::telemetry::init(LogFormat::Pretty);
    let token = auth::load_token(args.token_file.as_deref())?;
    if args.sample_interval < Duration::from_millis(100) {
        return Err(usage("--sample-interval is at least 100ms"));
    }
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let local = listener.local_addr().context("local address")?;
    let hosts = server::allowed_hosts(&args.allowed_hosts, local);
    let console = Arc::new(Console {
        ctx,
        auth: auth::Auth::new(&token, args.session_ttl, args.cookie_secure),
        lag: sparkline::Sparklines::default(),
    });
    let shutdown = CancellationToken::new();
    common::shutdown::cancel_on_signals(shutdown.clone());
    tokio::spawn(sparkline::sample(
        console.clone(),
        args.sample_interval,
        shutdown.clone(),
    ));
    let router = server::router(console, hosts);
    // On stdout, for the operator (and the tests, which read the port from it).
    println!("meshctl console listening on http://{local}");
    tracing::info!(address = %local, "console listening");
    common::http::serve(listener, router, args.http, shutdown)
        .await
        .context("serve the console")
}
