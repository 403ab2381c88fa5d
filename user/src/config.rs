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

    /// Failed log-ins for one account within the window before further attempts get 429.
    #[arg(long, env = "MESH_LOGIN_MAX_FAILURES", default_value_t = 5)]
    pub login_max_failures: u64,

    /// Failed log-ins from one client address within the window before it gets 429.
    #[arg(long, env = "MESH_LOGIN_MAX_FAILURES_PER_IP", default_value_t = 20)]
    pub login_max_failures_per_ip: u64,

    /// Window of the failed log-in counters, in seconds.
    #[arg(long, env = "MESH_LOGIN_WINDOW_SECS", default_value_t = 900)]
    pub login_window_secs: u64,

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
            login_max_failures_per_ip: 20,
            login_window_secs: 900,
            cookie_secure: true,
        }
    }
}

impl UserArgs {
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
