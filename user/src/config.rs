//! Settings of the user service on top of the mesh's (`MeshArgs`, which carries the JWT keys).

use std::time::Duration;

use clap::Args;

/// Flags and environment of the user service.
#[derive(Debug, Clone, Args)]
pub struct UserArgs {
    /// E-mail of an admin account to create at start-up, before the API opens. An existing
    /// account that is not an admin stops the start-up, unless `--admin-promote-existing`.
    #[arg(long, env = "MESH_ADMIN_EMAIL")]
    pub admin_email: Option<String>,

    /// Password of that admin account when it is created.
    #[arg(long, env = "MESH_ADMIN_PASSWORD", hide_env_values = true)]
    pub admin_password: Option<String>,

    /// Promote an existing account with the admin e-mail (keeping its own password) instead of
    /// refusing to start: only for an account you know is yours, since registration is open.
    #[arg(long, env = "MESH_ADMIN_PROMOTE_EXISTING", default_value_t = false, action = clap::ArgAction::Set)]
    pub admin_promote_existing: bool,

    /// SMTP server for password reset mails, e.g. `smtp://mailpit:1025` (no TLS). Unset: mails
    /// are written as files to `<MESH_DATA_DIR>/maildrop/`.
    #[arg(long, env = "MESH_SMTP_URL")]
    pub smtp_url: Option<String>,

    /// Sender of the service's mails.
    #[arg(
        long,
        env = "MESH_MAIL_FROM",
        default_value = "Mesh <no-reply@mesh.localhost>"
    )]
    pub mail_from: String,

    /// Page that completes a password reset (by default the service's own form); the mailed
    /// link is `<this>#token=<secret>`.
    #[arg(
        long,
        env = "MESH_PASSWORD_RESET_URL",
        default_value = "http://localhost:8001/auth/password-reset/confirm"
    )]
    pub password_reset_url: String,

    /// Lifetime of a password reset link in seconds.
    #[arg(long, env = "MESH_PASSWORD_RESET_TTL_SECS", default_value_t = 3600)]
    pub password_reset_ttl_secs: u64,

    /// Reset mails per account within one reset lifetime (`MESH_PASSWORD_RESET_TTL_SECS`);
    /// further requests still answer 202 but send nothing.
    #[arg(long, env = "MESH_PASSWORD_RESET_MAX_REQUESTS", default_value_t = 3)]
    pub password_reset_max_requests: u64,

    /// Failed log-ins for one account from one client address within the window before that
    /// address gets 429 for that account (the owner elsewhere is not locked out).
    #[arg(long, env = "MESH_LOGIN_MAX_FAILURES", default_value_t = 5)]
    pub login_max_failures: u64,

    /// Failed log-ins for one account from all addresses within the window before every
    /// attempt on it gets 429: the ceiling for guessing spread over many addresses.
    #[arg(
        long,
        env = "MESH_LOGIN_MAX_FAILURES_PER_ACCOUNT",
        default_value_t = 100
    )]
    pub login_max_failures_per_account: u64,

    /// Failed log-ins from one client address within the window before it gets 429.
    #[arg(long, env = "MESH_LOGIN_MAX_FAILURES_PER_IP", default_value_t = 20)]
    pub login_max_failures_per_ip: u64,

    /// Window of the failed log-in counters, in seconds.
    #[arg(long, env = "MESH_LOGIN_WINDOW_SECS", default_value_t = 900)]
    pub login_window_secs: u64,

    /// Registrations from one client address per hour before 429.
    #[arg(long, env = "MESH_REGISTER_MAX_PER_IP", default_value_t = 20)]
    pub register_max_per_ip: u64,

    /// Password reset requests from one client address per hour before 429.
    #[arg(long, env = "MESH_PASSWORD_RESET_MAX_PER_IP", default_value_t = 20)]
    pub password_reset_max_per_ip: u64,

    /// argon2 hashes running at once (each ~19 MiB and a core); 0: one per core.
    #[arg(long, env = "MESH_PASSWORD_HASH_CONCURRENCY", default_value_t = 0)]
    pub password_hash_concurrency: usize,

    /// Milliseconds a request waits for a free hashing slot before 503 with `Retry-After`.
    #[arg(long, env = "MESH_PASSWORD_HASH_WAIT_MS", default_value_t = 2000)]
    pub password_hash_wait_ms: u64,

    /// Mark the refresh token cookie `Secure` (browsers then send it over HTTPS and localhost
    /// only).
    #[arg(long, env = "MESH_COOKIE_SECURE", default_value_t = true, action = clap::ArgAction::Set)]
    pub cookie_secure: bool,
}

impl Default for UserArgs {
    fn default() -> Self {
        Self {
            admin_email: None,
            admin_password: None,
            admin_promote_existing: false,
            smtp_url: None,
            mail_from: "Mesh <no-reply@mesh.localhost>".into(),
            password_reset_url: "http://localhost:8001/auth/password-reset/confirm".into(),
            password_reset_ttl_secs: 3600,
            password_reset_max_requests: 3,
            login_max_failures: 5,
            login_max_failures_per_account: 100,
            login_max_failures_per_ip: 20,
            login_window_secs: 900,
            register_max_per_ip: 20,
            password_reset_max_per_ip: 20,
            password_hash_concurrency: 0,
            password_hash_wait_ms: 2000,
            cookie_secure: true,
        }
    }
}

impl UserArgs {
    /// The rate limits these settings give.
    pub fn limits(&self) -> crate::rate_limit::Limits {
        crate::rate_limit::Limits {
            login_per_pair: self.login_max_failures,
            login_per_account: self.login_max_failures_per_account,
            login_per_address: self.login_max_failures_per_ip,
            login_window_secs: self.login_window_secs,
            registrations_per_address: self.register_max_per_ip,
            resets_per_address: self.password_reset_max_per_ip,
            address_window_secs: 3600,
        }
    }

    /// The bound on password hashing these settings give.
    pub fn hashing(&self) -> crate::password::Hashing {
        crate::password::Hashing::new(
            self.password_hash_concurrency,
            Duration::from_millis(self.password_hash_wait_ms),
        )
    }

    /// What the start-up admin bootstrap may do with an existing account.
    pub fn existing_admin_account(&self) -> crate::accounts::ExistingAccount {
        if self.admin_promote_existing {
            crate::accounts::ExistingAccount::Promote
        } else {
            crate::accounts::ExistingAccount::Refuse
        }
    }

    pub fn password_reset_ttl(&self) -> Duration {
        Duration::from_secs(self.password_reset_ttl_secs)
    }
}
