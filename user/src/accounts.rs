//! Creating accounts: registration (always role `user`) and the first admin (`create-admin` or
//! `MESH_ADMIN_EMAIL`/`MESH_ADMIN_PASSWORD` at start-up), which never promotes an account it did
//! not create unless told to. `user-registered` goes through the
//! outbox in the same transaction as the new row.

use anyhow::Context as _;
use chrono::Utc;
use common::{Envelope, auth::Role, db::outbox, events::UserRegistered, problem::ApiError};
use sea_orm::{
    ActiveModelTrait as _, ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait,
    IntoActiveModel as _, QueryFilter,
};
use uuid::Uuid;

use crate::{
    SERVICE,
    entity::user,
    password::{Hashing, normalize_email, validate_password},
};

/// Finds an account by its normalised e-mail.
pub async fn find_by_email(
    db: &DatabaseConnection,
    email: &str,
) -> Result<Option<user::Model>, ApiError> {
    Ok(user::Entity::find()
        .filter(user::Column::Email.eq(email))
        .one(db)
        .await?)
}

/// Creates an account and enqueues `user-registered`, in one transaction. The caller notifies
/// the outbox relay after this returns. A taken e-mail is 409.
pub async fn create(
    db: &DatabaseConnection,
    hashing: &Hashing,
    email: &str,
    password: &str,
    role: Role,
    correlation_id: &str,
) -> Result<user::Model, ApiError> {
    let email = normalize_email(email)?;
    validate_password(password)?;
    if find_by_email(db, &email).await?.is_some() {
        return Err(ApiError::Conflict(
            "an account with this e-mail exists".into(),
        ));
    }
    let password_hash = hashing.hash(password.to_owned()).await?;
    let now = Utc::now();
    let account = user::Model {
        id: Uuid::now_v7(),
        email,
        password_hash,
        role: role.as_str().to_owned(),
        created_at: now,
        updated_at: now,
    };
    let event = Envelope::of_event(
        SERVICE,
        correlation_id,
        "",
        &UserRegistered {
            user_id: account.id,
            email: account.email.clone(),
        },
    )
    .context("encode user-registered")?;
    let txn = common::db::begin(db).await?;
    // A concurrent registration of the same e-mail loses on the unique index: 409 as well.
    user::Entity::insert(account.clone().into_active_model())
        .exec_without_returning(&txn)
        .await?;
    outbox::enqueue_event(&txn, &event).await?;
    txn.commit().await?;
    Ok(account)
}

/// What the admin bootstrap may do with an account that already holds the admin's e-mail.
///
/// Registration is open, so anyone can take an e-mail before the operator bootstraps it: an
/// account the bootstrap did not create is promoted only when the operator says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExistingAccount {
    /// Fail with an error that says what to do (the default).
    Refuse,
    /// Promote it, keeping its own password (`--promote-existing`).
    Promote,
}

/// How [`ensure_admin`] made sure the admin exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminBootstrap {
    /// A new admin account with the given password.
    Created,
    /// The account was already an admin; nothing changed.
    AlreadyAdmin,
    /// An existing account was promoted (only with [`ExistingAccount::Promote`]).
    Promoted,
}

/// Makes `email` an admin: creates the account with `password` when there is none; an account
/// that is already an admin is left as it is; any other account is promoted only with
/// [`ExistingAccount::Promote`], else this fails without changing anything.
pub async fn ensure_admin(
    db: &DatabaseConnection,
    hashing: &Hashing,
    email: &str,
    password: &str,
    existing: ExistingAccount,
) -> anyhow::Result<(user::Model, AdminBootstrap)> {
    let normalized = normalize_email(email).map_err(|e| anyhow::anyhow!("admin e-mail: {e}"))?;
    if let Some(account) = find_by_email(db, &normalized)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?
    {
        return promote(db, account, existing).await;
    }
    // A registration racing this one wins on the unique index: `create` fails with 409 and
    // nothing is promoted.
    let created = create(
        db,
        hashing,
        &normalized,
        password,
        Role::Admin,
        "create-admin",
    )
    .await
    .map_err(|e| anyhow::anyhow!("create admin {normalized}: {e}"))?;
    Ok((created, AdminBootstrap::Created))
}

async fn promote(
    db: &DatabaseConnection,
    account: user::Model,
    existing: ExistingAccount,
) -> anyhow::Result<(user::Model, AdminBootstrap)> {
    if account.role == Role::Admin.as_str() {
        return Ok((account, AdminBootstrap::AlreadyAdmin));
    }
    if existing == ExistingAccount::Refuse {
        anyhow::bail!(
            "an account with the e-mail {} exists and is not an admin; the admin bootstrap did \
             not create it (anyone can register), so it is not promoted. If the account is \
             yours, run again with --promote-existing (MESH_ADMIN_PROMOTE_EXISTING=true; it keeps \
             its own password); otherwise choose another admin e-mail",
            account.email
        );
    }
    let mut active = account.into_active_model();
    active.role = Set(Role::Admin.as_str().to_owned());
    active.updated_at = Set(Utc::now());
    let updated = active.update(db).await.context("promote admin")?;
    Ok((updated, AdminBootstrap::Promoted))
}
