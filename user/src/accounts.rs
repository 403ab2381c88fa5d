//! Creating accounts: registration (always role `user`) and the first admin (`create-admin` or
//! `MESH_ADMIN_EMAIL`/`MESH_ADMIN_PASSWORD` at start-up). `user-registered` goes through the
//! outbox in the same transaction as the new row.

use anyhow::Context as _;
use chrono::Utc;
use common::{
    Envelope,
    auth::Role,
    db::outbox,
    events::{Event as _, UserRegistered},
    problem::ApiError,
};
use sea_orm::{
    ActiveModelTrait as _, ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait,
    IntoActiveModel as _, QueryFilter,
};
use uuid::Uuid;

use crate::{
    SERVICE,
    entity::user,
    password::{hash_password, normalize_email, validate_password},
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
    let password_hash = hash_password(password.to_owned()).await?;
    let now = Utc::now();
    let account = user::Model {
        id: Uuid::now_v7(),
        email,
        password_hash,
        role: role.as_str().to_owned(),
        created_at: now,
        updated_at: now,
    };
    let event = Envelope::new(
        UserRegistered::TYPE,
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
    outbox::enqueue(&txn, UserRegistered::TYPE, &event).await?;
    txn.commit().await?;
    Ok(account)
}

/// Makes `email` an admin: promotes the account if it exists (its password unchanged), creates
/// it with `password` otherwise. Returns the account and whether it was created.
pub async fn ensure_admin(
    db: &DatabaseConnection,
    email: &str,
    password: &str,
) -> anyhow::Result<(user::Model, bool)> {
    let normalized = normalize_email(email).map_err(|e| anyhow::anyhow!("admin e-mail: {e}"))?;
    if let Some(existing) = find_by_email(db, &normalized)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?
    {
        if existing.role == Role::Admin.as_str() {
            return Ok((existing, false));
        }
        let mut active = existing.into_active_model();
        active.role = Set(Role::Admin.as_str().to_owned());
        active.updated_at = Set(Utc::now());
        let updated = active.update(db).await.context("promote admin")?;
        return Ok((updated, false));
    }
    let created = create(db, &normalized, password, Role::Admin, "create-admin")
        .await
        .map_err(|e| anyhow::anyhow!("create admin: {e}"))?;
    Ok((created, true))
}
