//! `user create-admin --email … --password …`: the subcommand that makes the first admin, beside
//! the `serve` and `migrate` every service has.

use clap::Subcommand;
use common::{config::MeshArgs, service::Task};

use crate::{Migrator, SERVICE, accounts, password};

/// The user service's own admin tasks.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create an admin account and exit. An existing account with that e-mail is promoted only
    /// with `--promote-existing`.
    CreateAdmin {
        /// E-mail of the admin.
        #[arg(long, env = "MESH_ADMIN_EMAIL")]
        email: String,
        /// Password, used when the account is created.
        #[arg(long, env = "MESH_ADMIN_PASSWORD", hide_env_values = true)]
        password: String,
        /// Promote an existing account with this e-mail (it keeps its own password) instead of
        /// refusing: only for an account you know is yours, since registration is open.
        #[arg(long)]
        promote_existing: bool,
    },
}

impl Task for AdminCommand {
    async fn run(self, args: MeshArgs) -> anyhow::Result<()> {
        match self {
            Self::CreateAdmin {
                email,
                password,
                promote_existing,
            } => {
                let existing = if promote_existing {
                    accounts::ExistingAccount::Promote
                } else {
                    accounts::ExistingAccount::Refuse
                };
                create_admin(args, &email, &password, existing).await
            }
        }
    }
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
