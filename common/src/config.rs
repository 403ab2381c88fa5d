//! Configuration shared by every service: flags with environment fallbacks (clap). Each service
//! flattens [`MeshArgs`] into its own CLI. Every setting has a laptop default.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::{Args, ValueEnum};

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum LogFormat {
    /// Human-readable, coloured when on a terminal.
    #[default]
    Pretty,
    /// One JSON object per line.
    Json,
}

/// Settings every service of the mesh understands.
#[derive(Debug, Clone, Args)]
pub struct MeshArgs {
    /// Redis holding the streams: `redis://[user:password@]host:port` for one server,
    /// `redis+cluster://[user:password@]host:port,host:port,…` for a Redis Cluster
    /// (docs/redis-cluster.md).
    #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6379")]
    pub redis_url: String,

    /// Replicas that must hold an event before the outbox relay counts it published (`WAIT`
    /// after the `XADD`s of each slot; 0: don't wait). With 1 on a cluster with a replica per
    /// master, a `kill -9` of a master loses no published event (docs/redis-cluster.md).
    #[arg(long, env = "MESH_REDIS_WAIT_REPLICAS", default_value_t = 0)]
    pub redis_wait_replicas: u32,

    /// Database of this service: `sqlite://…` or `postgres://…`. Default: a SQLite file named
    /// after the service in `MESH_DATA_DIR`.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,

    /// Folder for SQLite files, dev keys and the mail drop.
    #[arg(long, env = "MESH_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// Address the HTTP API listens on (default: the service's own port on 0.0.0.0).
    #[arg(long, env = "MESH_LISTEN")]
    pub listen: Option<SocketAddr>,

    /// Prefix of every Redis key of the mesh, so tests and tenants can share one Redis.
    #[arg(long, env = "MESH_STREAM_PREFIX", default_value = "")]
    pub stream_prefix: String,

    /// Log output format.
    #[arg(long, env = "MESH_LOG_FORMAT", value_enum, default_value_t = LogFormat::Pretty)]
    pub log_format: LogFormat,

    /// How often the gauges of `/metrics` that come from Redis and the database (group lag,
    /// pending, dead letters, outbox backlog) are refreshed, e.g. `10s`; a scrape never queries
    /// them itself. At least 100ms.
    #[arg(long, env = "MESH_METRICS_REFRESH", default_value = "10s",
          value_parser = parse_metrics_refresh)]
    pub metrics_refresh: Duration,

    #[command(flatten)]
    pub http: HttpArgs,

    #[command(flatten)]
    pub worker: WorkerArgs,

    #[command(flatten)]
    pub auth: AuthArgs,
}

/// Limits of the HTTP server against clients that hold connections open (slowloris, idle
/// keep-alives, bodies sent a byte at a time).
#[derive(Debug, Clone, Args)]
pub struct HttpArgs {
    /// Seconds a client has to send a request's line and headers, counted from when the
    /// connection opens or its previous response was sent (so also the keep-alive idle limit);
    /// then the connection is closed.
    #[arg(long, env = "MESH_HTTP_HEADER_TIMEOUT_SECS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub http_header_timeout_secs: u64,

    /// Seconds from a request's headers to its response (reading the body and handling it);
    /// past it the answer is 408 and the connection is closed.
    #[arg(long, env = "MESH_HTTP_REQUEST_TIMEOUT_SECS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub http_request_timeout_secs: u64,

    /// Most client connections open at once; further clients wait in the listen backlog.
    #[arg(long, env = "MESH_HTTP_MAX_CONNECTIONS", default_value_t = 1024,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub http_max_connections: u32,
}

impl Default for HttpArgs {
    fn default() -> Self {
        Self {
            http_header_timeout_secs: 10,
            http_request_timeout_secs: 30,
            http_max_connections: 1024,
        }
    }
}

impl HttpArgs {
    pub fn header_timeout(&self) -> Duration {
        Duration::from_secs(self.http_header_timeout_secs)
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.http_request_timeout_secs)
    }
}

/// Where the JWT keys come from, and the tokens' scope (docs/architecture.md, "Auth"). Nothing set: a dev key pair is generated into
/// `MESH_DATA_DIR` — there is no default secret anywhere.
#[derive(Debug, Clone, Args)]
pub struct AuthArgs {
    /// Ed25519 private key (PKCS#8 PEM file) the user service signs access tokens with.
    #[arg(long, env = "MESH_JWT_PRIVATE_KEY_FILE")]
    pub jwt_private_key_file: Option<PathBuf>,

    /// Ed25519 private key as PEM text (alternative to the file, for secret stores).
    #[arg(long, env = "MESH_JWT_PRIVATE_KEY", hide_env_values = true)]
    pub jwt_private_key: Option<String>,

    /// Ed25519 public key (SPKI PEM file) every service verifies access tokens with.
    #[arg(long, env = "MESH_JWT_PUBLIC_KEY_FILE")]
    pub jwt_public_key_file: Option<PathBuf>,

    /// Ed25519 public key as PEM text.
    #[arg(long, env = "MESH_JWT_PUBLIC_KEY")]
    pub jwt_public_key: Option<String>,

    /// JWKS URL to fetch the public key(s) from at start-up, e.g.
    /// `http://user:8001/.well-known/jwks.json` (plain HTTP inside the deployment).
    #[arg(long, env = "MESH_JWKS_URL")]
    pub jwks_url: Option<String>,

    /// `iss` of access tokens: set by the user service, required by every service.
    #[arg(long, env = "MESH_JWT_ISSUER", default_value = DEFAULT_JWT_ISSUER)]
    pub jwt_issuer: String,

    /// `aud` of access tokens: set by the user service, required by every service. Give each
    /// deployment its own, so a token of one mesh is refused by another that shares a key.
    #[arg(long, env = "MESH_JWT_AUDIENCE", default_value = DEFAULT_JWT_AUDIENCE)]
    pub jwt_audience: String,

    /// Lifetime of access tokens in seconds.
    #[arg(long, env = "MESH_ACCESS_TOKEN_TTL_SECS", default_value_t = DEFAULT_ACCESS_TOKEN_TTL_SECS)]
    pub access_token_ttl_secs: u64,

    /// Lifetime of refresh tokens in seconds (user service).
    #[arg(long, env = "MESH_REFRESH_TOKEN_TTL_SECS", default_value_t = DEFAULT_REFRESH_TOKEN_TTL_SECS)]
    pub refresh_token_ttl_secs: u64,
}

/// Default `iss` of access tokens.
pub const DEFAULT_JWT_ISSUER: &str = "mesh-user";
/// Default `aud` of access tokens.
pub const DEFAULT_JWT_AUDIENCE: &str = "mesh";

/// 15 minutes: short enough that a stolen access token is worth little.
pub const DEFAULT_ACCESS_TOKEN_TTL_SECS: u64 = 15 * 60;
/// 30 days.
pub const DEFAULT_REFRESH_TOKEN_TTL_SECS: u64 = 30 * 24 * 3600;

/// The same defaults as the flags: no key configured (dev key pair).
impl Default for AuthArgs {
    fn default() -> Self {
        Self {
            jwt_private_key_file: None,
            jwt_private_key: None,
            jwt_public_key_file: None,
            jwt_public_key: None,
            jwks_url: None,
            jwt_issuer: DEFAULT_JWT_ISSUER.to_owned(),
            jwt_audience: DEFAULT_JWT_AUDIENCE.to_owned(),
            access_token_ttl_secs: DEFAULT_ACCESS_TOKEN_TTL_SECS,
            refresh_token_ttl_secs: DEFAULT_REFRESH_TOKEN_TTL_SECS,
        }
    }
}

impl AuthArgs {
    pub fn access_token_ttl(&self) -> Duration {
        Duration::from_secs(self.access_token_ttl_secs)
    }

    pub fn refresh_token_ttl(&self) -> Duration {
        Duration::from_secs(self.refresh_token_ttl_secs)
    }
}

/// Tuning of the consumer-group worker.
#[derive(Debug, Clone, Args)]
pub struct WorkerArgs {
    /// Most handlers running at once in this process.
    #[arg(long, env = "MESH_WORKER_CONCURRENCY", default_value_t = 256)]
    pub worker_concurrency: usize,

    /// Most entries read by one `XREADGROUP`.
    #[arg(long, env = "MESH_WORKER_BATCH", default_value_t = 256)]
    pub worker_batch: usize,

    /// Deliveries (Redis's own counter) after which a failing entry is dead-lettered.
    #[arg(long, env = "MESH_MAX_DELIVERIES", default_value_t = 5)]
    pub max_deliveries: u64,

    /// Milliseconds an entry may stay pending without its owner refreshing the claim before
    /// another consumer reclaims it.
    #[arg(long, env = "MESH_PROCESSING_TIMEOUT_MS", default_value_t = 30_000)]
    pub processing_timeout_ms: u64,

    /// Milliseconds to wait for in-flight handlers on shutdown.
    #[arg(long, env = "MESH_SHUTDOWN_GRACE_MS", default_value_t = 20_000)]
    pub shutdown_grace_ms: u64,

    /// How much history the worker's safe trim keeps on the streams it consumes (e.g. `6h`):
    /// what `meshctl` can still show and replay, and Redis memory (about 2 KB per order per
    /// hour kept). At most half the idempotency retention.
    #[arg(long, env = "MESH_STREAM_RETENTION", default_value = "6h", value_parser = humantime::parse_duration)]
    pub stream_retention: Duration,

    /// How long a group remembers the events it applied (Redis sets, about 0.5 KB per order per
    /// window, and the database inbox), e.g. `2d`. A redelivered event is recognised within this
    /// window; it must be at least twice the stream retention.
    #[arg(long, env = "MESH_IDEMPOTENCY_RETENTION", default_value = "2d", value_parser = humantime::parse_duration)]
    pub idempotency_retention: Duration,

    /// How often each worker removes long-gone consumers and safe-trims its streams, and each
    /// service prunes its inbox (e.g. `1m`). Each round scans every group of the streams it
    /// touches: once a minute is plenty; soaks and tests set it short.
    #[arg(long, env = "MESH_HOUSEKEEPING_INTERVAL", default_value = "1m", value_parser = humantime::parse_duration)]
    pub housekeeping_interval: Duration,

    /// Stable consumer name of this replica (`{host}` becomes the host name), unique among the
    /// live replicas of the service: a replica restarted under the same name handles what its
    /// previous life held at once. Unset: a fresh name per process (`<group>-<host>-<pid>-<tag>`),
    /// whose held entries wait for the processing timeout.
    #[arg(long, env = "MESH_CONSUMER_NAME")]
    pub consumer_name: Option<String>,

    /// Apply the entries of one read in one database transaction, where the service supports
    /// it (store, payment, warehouse); `false` gives every entry its own transaction.
    #[arg(long, env = "MESH_WORKER_BATCH_TRANSACTIONS", default_value_t = true, action = clap::ArgAction::Set)]
    pub worker_batch_transactions: bool,
}

/// How often `/metrics`' gauges are refreshed by default.
pub const DEFAULT_METRICS_REFRESH: Duration = Duration::from_secs(10);

/// `MESH_METRICS_REFRESH`: a duration from 100ms to a day.
fn parse_metrics_refresh(text: &str) -> Result<Duration, String> {
    let every = humantime::parse_duration(text).map_err(|e| e.to_string())?;
    if (Duration::from_millis(100)..=Duration::from_secs(86_400)).contains(&every) {
        Ok(every)
    } else {
        Err("must be between 100ms and 24h".into())
    }
}

/// History the worker's safe trim keeps by default.
pub const DEFAULT_STREAM_RETENTION: Duration = Duration::from_secs(6 * 3600);
/// How long groups remember applied events by default.
pub const DEFAULT_IDEMPOTENCY_RETENTION: Duration = Duration::from_secs(2 * 24 * 3600);

impl Default for WorkerArgs {
    fn default() -> Self {
        Self {
            worker_concurrency: 256,
            worker_batch: 256,
            max_deliveries: 5,
            processing_timeout_ms: 30_000,
            shutdown_grace_ms: 20_000,
            stream_retention: DEFAULT_STREAM_RETENTION,
            idempotency_retention: DEFAULT_IDEMPOTENCY_RETENTION,
            housekeeping_interval: Duration::from_secs(60),
            consumer_name: None,
            worker_batch_transactions: true,
        }
    }
}

/// The same defaults as the flags, for tests and tools that build the settings in code.
impl Default for MeshArgs {
    fn default() -> Self {
        Self {
            redis_url: "redis://127.0.0.1:6379".into(),
            database_url: None,
            data_dir: PathBuf::from("./data"),
            listen: None,
            stream_prefix: String::new(),
            redis_wait_replicas: 0,
            log_format: LogFormat::Pretty,
            metrics_refresh: DEFAULT_METRICS_REFRESH,
            http: HttpArgs::default(),
            worker: WorkerArgs::default(),
            auth: AuthArgs::default(),
        }
    }
}

impl MeshArgs {
    /// The listen address, or `0.0.0.0:<default_port>`.
    pub fn listen_or(&self, default_port: u16) -> SocketAddr {
        self.listen
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], default_port)))
    }

    /// The database URL, or a SQLite file `<data_dir>/<service>.db` (created if missing).
    pub fn database_url_or_default(&self, service: &str) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join(format!("{service}.db")).display()
            ),
        }
    }
}

impl WorkerArgs {
    /// Refuses settings under which an event could be applied twice: an entry still in a
    /// stream (and so redeliverable, or replayable by a rewound group) must be remembered by the
    /// idempotency records, with room for entries pending long before they were trimmed.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.idempotency_retention >= self.stream_retention.saturating_mul(2),
            "MESH_IDEMPOTENCY_RETENTION ({}) must be at least twice MESH_STREAM_RETENTION ({}): \
             an event still in a stream must be recognised if it is delivered again",
            humantime::format_duration(self.idempotency_retention),
            humantime::format_duration(self.stream_retention),
        );
        // Short windows are for soaks and tests; a real deployment keeps hours (the default).
        anyhow::ensure!(
            self.stream_retention >= Duration::from_secs(10),
            "MESH_STREAM_RETENTION must be at least 10s"
        );
        anyhow::ensure!(
            self.housekeeping_interval >= Duration::from_secs(1),
            "MESH_HOUSEKEEPING_INTERVAL must be at least 1s"
        );
        Ok(())
    }

    pub fn processing_timeout(&self) -> Duration {
        Duration::from_millis(self.processing_timeout_ms)
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_millis(self.shutdown_grace_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retentions_parse_as_durations_and_must_keep_the_idempotency_window_wider() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            worker: WorkerArgs,
        }
        let cli = Cli::try_parse_from([
            "x",
            "--stream-retention",
            "90m",
            "--idempotency-retention",
            "3h",
        ])
        .unwrap();
        assert_eq!(cli.worker.stream_retention, Duration::from_secs(5400));
        assert!(cli.worker.validate().is_ok());
        let narrow = WorkerArgs {
            stream_retention: Duration::from_secs(3 * 3600),
            idempotency_retention: Duration::from_secs(5 * 3600),
            ..WorkerArgs::default()
        };
        let error = narrow.validate().unwrap_err().to_string();
        assert!(error.contains("MESH_IDEMPOTENCY_RETENTION"), "{error}");
        assert!(WorkerArgs::default().validate().is_ok());
        assert!(Cli::try_parse_from(["x", "--stream-retention", "soon"]).is_err());
    }

    #[test]
    fn the_metrics_refresh_is_a_duration_from_100ms_to_a_day() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            mesh: MeshArgs,
        }
        let every = |text: &str| {
            Cli::try_parse_from(["x", "--metrics-refresh", text]).map(|c| c.mesh.metrics_refresh)
        };
        assert_eq!(every("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(
            Cli::try_parse_from(["x"]).unwrap().mesh.metrics_refresh,
            DEFAULT_METRICS_REFRESH
        );
        for refused in ["0s", "10ms", "2d", "often"] {
            assert!(every(refused).is_err(), "{refused} accepted");
        }
    }
}
