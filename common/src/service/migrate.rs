//! Connecting a service's database and applying its pending migrations.

use anyhow::Context as _;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, TransactionTrait};
use sea_orm_migration::MigratorTrait;

use crate::{config::MeshArgs, db};

/// Connects the database of service `name` and applies the pending migrations of `M`.
pub async fn connect_and_migrate<M: MigratorTrait>(
    name: &'static str,
    args: &MeshArgs,
) -> anyhow::Result<DatabaseConnection> {
    let url = args.database_url_or_default(name);
    let db = db::connect(&url)
        .await
        .with_context(|| format!("connect to database of {name}"))?;
    // Replicas starting together (`--scale`) would race to create the same tables and fail with
    // duplicate keys; on PostgreSQL they take turns behind an advisory lock, which this
    // transaction holds until the migrations are done (or drops on error).
    let turn = if db.get_database_backend() == DbBackend::Postgres {
        let txn = db.begin().await.context("begin migration lock")?;
        txn.execute_unprepared("SELECT pg_advisory_xact_lock(hashtext('mesh-migrations'))")
            .await
            .context("take migration lock")?;
        Some(txn)
    } else {
        None
    };
    M::up(&db, None).await.context("run migrations")?;
    if let Some(txn) = turn {
        txn.commit().await.context("release migration lock")?;
    }
    Ok(db)
}
