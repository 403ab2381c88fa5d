//! `GET /users/me`, and for admins `GET /users` (paginated) and `PATCH /users/{id}` (role).

use axum::{
    Json, Router,
    extract::{
        Path, Query, State,
        rejection::{JsonRejection, PathRejection, QueryRejection},
    },
    http::HeaderMap,
    routing::{get, patch},
};
use chrono::{DateTime, Utc};
use common::{
    auth::{AdminUser, AuthUser, Role},
    events::RevocationReason,
    problem::ApiError,
};
use sea_orm::{
    ActiveModelTrait as _, ActiveValue::Set, ColumnTrait, EntityTrait, IntoActiveModel as _,
    PaginatorTrait as _, QueryFilter, QueryOrder, QuerySelect,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::{AppState, correlation_id};
use crate::{entity::user, session::role_of};

/// Largest page of `GET /users`.
pub const MAX_PER_PAGE: u64 = 100;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/users/me", get(me))
        .route("/users", get(list))
        .route("/users/{id}", patch(set_role))
}

/// An account as the API shows it (never the password hash).
#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    pub id: Uuid,
    pub email: String,
    /// `user` or `admin`.
    #[schema(value_type = String, example = "user")]
    pub role: Role,
    pub created_at: DateTime<Utc>,
}

impl From<user::Model> for UserView {
    fn from(account: user::Model) -> Self {
        Self {
            role: role_of(&account),
            id: account.id,
            email: account.email,
            created_at: account.created_at,
        }
    }
}

/// `?page=&per_page=` (query parameters: without `parameter_in`, utoipa documented them as
/// required path parameters, which Schemathesis found).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Pagination {
    /// 1-based page number (default 1).
    pub page: Option<u64>,
    /// Items per page, 1 to 100 (default 20).
    pub per_page: Option<u64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserPage {
    pub items: Vec<UserView>,
    pub page: u64,
    pub per_page: u64,
    pub total: u64,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct SetRoleRequest {
    /// `user` or `admin`.
    #[schema(value_type = String, example = "admin")]
    pub role: Role,
}

/// The caller's own account.
#[utoipa::path(get, path = "/users/me", tag = "users", security(("bearer" = [])),
    responses((status = 200, body = UserView), (status = 401, description = "no valid access token")))]
pub async fn me(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
) -> Result<Json<UserView>, ApiError> {
    let account = user::Entity::find_by_id(claims.sub)
        .one(&state.db)
        .await?
        .ok_or_else(|| ApiError::NotFound("the account no longer exists".into()))?;
    Ok(Json(account.into()))
}

/// Every account, oldest first (admin).
#[utoipa::path(get, path = "/users", tag = "users", params(Pagination), security(("bearer" = [])),
    responses((status = 200, body = UserPage), (status = 401, description = "no valid access token"),
              (status = 403, description = "not an admin"),
              (status = 400, description = "query string does not parse"),
              (status = 422, description = "page or per_page out of range")))]
pub async fn list(
    State(state): State<AppState>,
    _admin: AdminUser,
    query: Result<Query<Pagination>, QueryRejection>,
) -> Result<Json<UserPage>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let page = query.page.unwrap_or(1);
    let per_page = query.per_page.unwrap_or(20);
    if page == 0 {
        return Err(ApiError::validation("page starts at 1"));
    }
    if !(1..=MAX_PER_PAGE).contains(&per_page) {
        return Err(ApiError::validation(format!(
            "per_page must be between 1 and {MAX_PER_PAGE}"
        )));
    }
    let total = user::Entity::find().count(&state.db).await?;
    let items = user::Entity::find()
        .order_by_asc(user::Column::CreatedAt)
        .order_by_asc(user::Column::Id)
        .offset((page - 1).saturating_mul(per_page))
        .limit(per_page)
        .all(&state.db)
        .await?
        .into_iter()
        .map(UserView::from)
        .collect();
    Ok(Json(UserPage {
        items,
        page,
        per_page,
        total,
    }))
}

/// Change an account's role (admin). The last admin cannot be demoted.
#[utoipa::path(patch, path = "/users/{id}", tag = "users", request_body = SetRoleRequest,
    params(("id" = Uuid, Path, description = "account id")), security(("bearer" = [])),
    responses((status = 200, body = UserView), (status = 401, description = "no valid access token"),
              (status = 403, description = "not an admin"), (status = 404, description = "no such account"),
              (status = 409, description = "would leave no admin"), (status = 422, description = "unknown role")))]
pub async fn set_role(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    headers: HeaderMap,
    id: Result<Path<Uuid>, PathRejection>,
    body: Result<Json<SetRoleRequest>, JsonRejection>,
) -> Result<Json<UserView>, ApiError> {
    let Path(id) = id.map_err(|_| ApiError::NotFound("no such account".into()))?;
    let Json(req) = body?;
    let txn = common::db::begin(&state.db).await?;
    // A demotion first locks every admin row (`FOR UPDATE`, in id order so two demotions cannot
    // deadlock), then counts them. On PostgreSQL's READ COMMITTED, a plain count would let two
    // concurrent demotions of the last two admins each see the other still in place and both
    // commit, leaving none; with the lock the second waits for the first and then counts what
    // it left. SQLite needs no row lock: write transactions there run one at a time
    // (`common::db::begin`), and the query builder leaves the clause out.
    let admins = if req.role == Role::Admin {
        Vec::new()
    } else {
        user::Entity::find()
            .filter(user::Column::Role.eq(Role::Admin.as_str()))
            .order_by_asc(user::Column::Id)
            .lock_exclusive()
            .all(&txn)
            .await?
    };
    let account = user::Entity::find_by_id(id)
        .one(&txn)
        .await?
        .ok_or_else(|| ApiError::NotFound("no such account".into()))?;
    if role_of(&account) == Role::Admin
        && req.role != Role::Admin
        && !admins.iter().any(|admin| admin.id != account.id)
    {
        return Err(ApiError::Conflict(
            "the last admin cannot be demoted".into(),
        ));
    }
    // A role change takes effect at once: tokens carrying the old role stop working everywhere
    // (the account logs in or refreshes for one with the new role).
    let revoked = if role_of(&account) == req.role {
        None
    } else {
        let revoked = state
            .revoker
            .user(
                &txn,
                id,
                RevocationReason::RoleChanged,
                &correlation_id(&headers),
            )
            .await?;
        Some(revoked)
    };
    let mut active = account.into_active_model();
    active.role = Set(req.role.as_str().to_owned());
    active.updated_at = Set(Utc::now());
    let updated = active.update(&txn).await?;
    txn.commit().await?;
    if let Some(revoked) = &revoked {
        state.revoker.committed(revoked);
    }
    tracing::info!(user.id = %id, admin.id = %admin.sub, role = %req.role, "role changed");
    Ok(Json(updated.into()))
}
