//! The `user` binary: `user [serve]` runs the service, `user migrate` migrates its database,
//! `user create-admin --email … --password …` makes the first admin. Everything else lives in the
//! library, so tests run the same code.

use clap::{Parser, Subcommand};
use common::{config::MeshArgs, service::Command};
use user::{UserArgs, accounts::ExistingAccount};

/// Accounts, log-in and JWT issuing of the mesh.
#[derive(Debug, Parser)]
#[command(name = user::SERVICE, version)]
struct Cli {
    #[command(flatten)]
    args: MeshArgs,
    #[command(flatten)]
    user: UserArgs,
    #[command(subcommand)]
    command: Option<UserCommand>,
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Run the HTTP API and the worker until SIGTERM/SIGINT (the default).
    Serve,
    /// Apply the database migrations and exit.
    Migrate,
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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let Cli {
        args,
        user,
        command,
    } = Cli::parse();
    let command = match command {
        None | Some(UserCommand::Serve) => Command::Serve,
        Some(UserCommand::Migrate) => Command::Migrate,
        Some(UserCommand::CreateAdmin {
            email,
            password,
            promote_existing,
        }) => {
            common::telemetry::init(args.log_format);
            let existing = if promote_existing {
                ExistingAccount::Promote
            } else {
                ExistingAccount::Refuse
            };
            return user::create_admin(args, &email, &password, existing).await;
        }
    };
    common::service::main::<user::Migrator, _, _>(
        user::SERVICE,
        user::DEFAULT_PORT,
        args,
        Some(command),
        move |args, listener, shutdown| user::run_with(args, user, listener, shutdown),
    )
    .await
}
