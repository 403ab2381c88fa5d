//! Pruning of expired refresh-token families and password-reset requests: every log-in adds a
//! row, so without it the tables grow with every session ever opened.

use std::time::Duration;

use chrono::Utc;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, sea_query::Expr};
use serde_json::{Value, json};
use user::{
    entity::{password_reset, refresh_token},
    housekeeping::{GRACE, Pruned, prune},
};

use crate::{UserApp, spawn_app};

/// Moves the expiry of every refresh token of `family` `ago` into the past.
async fn expire_family(db: &sea_orm::DatabaseConnection, family: uuid::Uuid, ago: Duration) {
    refresh_token::Entity::update_many()
        .col_expr(
            refresh_token::Column::ExpiresAt,
            Expr::value(Utc::now() - ago),
        )
        .filter(refresh_token::Column::FamilyId.eq(family))
        .exec(db)
        .await
        .unwrap();
}

#[tokio::test]
async fn families_and_resets_long_expired_are_pruned_and_nothing_live_is() {
    let app = spawn_app().await;
    let long_ago = GRACE + Duration::from_secs(3600);

    // A family whose every token expired long ago: gone.
    let dead = app.session("dead@example.com").await;
    // A family with an old rotated token long expired and a live newest one: kept whole, so a
    // replay of the old token is still recognised as reuse.
    let rotated = app.session("rotated@example.com").await;
    let body: Value = app
        .post("/auth/refresh", &json!({"refresh_token": rotated.refresh}))
        .await
        .json()
        .await
        .unwrap();
    assert!(body["refresh_token"].is_string(), "{body}");
    // A live family, and one expired only recently (within the grace): kept.
    app.session("live@example.com").await;
    let recent = app.session("recent@example.com").await;

    let rows = app.refresh_tokens().await;
    let family_of = |access: &str| {
        let claims: Value = serde_json::from_slice(
            &base64::Engine::decode(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                access.split('.').nth(1).unwrap(),
            )
            .unwrap(),
        )
        .unwrap();
        let jti = claims["jti"].as_str().unwrap().to_owned();
        rows.iter().find(|r| r.access_jti == jti).unwrap().family_id
    };
    let dead_family = family_of(&dead.access);
    let rotated_family = family_of(&rotated.access);
    let recent_family = family_of(&recent.access);
    expire_family(&app.db, dead_family, long_ago).await;
    expire_family(&app.db, recent_family, Duration::from_secs(60)).await;
    // Only the rotated (used) token of that family expired long ago.
    refresh_token::Entity::update_many()
        .col_expr(
            refresh_token::Column::ExpiresAt,
            Expr::value(Utc::now() - long_ago),
        )
        .filter(refresh_token::Column::FamilyId.eq(rotated_family))
        .filter(refresh_token::Column::UsedAt.is_not_null())
        .exec(&app.db)
        .await
        .unwrap();

    // Password resets: one long expired, one live.
    for (email, expires) in [
        ("dead@example.com", Utc::now() - long_ago),
        ("live@example.com", Utc::now() + chrono::Duration::hours(1)),
    ] {
        let account = user::accounts::find_by_email(&app.db, email)
            .await
            .unwrap()
            .unwrap();
        password_reset::Entity::insert(password_reset::ActiveModel {
            id: sea_orm::Set(uuid::Uuid::now_v7()),
            user_id: sea_orm::Set(account.id),
            token_hash: sea_orm::Set(None),
            created_at: sea_orm::Set(expires - chrono::Duration::hours(1)),
            expires_at: sea_orm::Set(expires),
            used_at: sea_orm::Set(None),
            invalidated_at: sea_orm::Set(None),
        })
        .exec(&app.db)
        .await
        .unwrap();
    }
    let tokens_before = app.refresh_tokens().await.len();

    let pruned = prune(&app.db, GRACE).await.unwrap();
    assert_eq!(
        pruned,
        Pruned {
            refresh_tokens: 1,
            password_resets: 1
        }
    );
    let left = app.refresh_tokens().await;
    assert_eq!(left.len(), tokens_before - 1);
    assert!(left.iter().all(|r| r.family_id != dead_family));
    assert_eq!(
        left.iter()
            .filter(|r| r.family_id == rotated_family)
            .count(),
        2,
        "a family with a live token is kept whole"
    );
    assert!(left.iter().any(|r| r.family_id == recent_family));
    let resets = password_reset::Entity::find().all(&app.db).await.unwrap();
    assert_eq!(resets.len(), 1);
    assert!(resets[0].expires_at > Utc::now());

    // The kept rotated token is still recognised as reuse.
    let replay = app
        .post("/auth/refresh", &json!({"refresh_token": rotated.refresh}))
        .await;
    let body = crate::assert_problem(replay, 401).await;
    assert!(
        body["detail"].as_str().unwrap().contains("already used"),
        "{body}"
    );
    // A second pass finds nothing more.
    assert_eq!(
        prune(&app.db, GRACE).await.unwrap(),
        Pruned {
            refresh_tokens: 0,
            password_resets: 0
        }
    );
}
