//! The axum extractors: [`AuthUser`] (any valid token) and [`AdminUser`] (role `admin`). They
//! need a [`JwtVerifier`] reachable from the router state through `FromRef`.

use axum::{
    extract::{FromRef, FromRequestParts},
    http::{header, request::Parts},
};

use super::{
    claims::{Claims, Role},
    verifier::{JwtVerifier, TokenError},
};
use crate::problem::ApiError;

/// An authenticated caller: a valid, unexpired, not denylisted access token.
#[derive(Debug, Clone)]
pub struct AuthUser(pub Claims);

/// An authenticated caller with role `admin`; anyone else gets 403.
#[derive(Debug, Clone)]
pub struct AdminUser(pub Claims);

/// The token of an `Authorization: Bearer <token>` header.
pub fn bearer_token(parts: &Parts) -> Result<&str, TokenError> {
    let value = parts
        .headers
        .get(header::AUTHORIZATION)
        .ok_or(TokenError::Missing)?
        .to_str()
        .map_err(|_| TokenError::Invalid)?;
    let (scheme, token) = value.split_once(' ').ok_or(TokenError::Invalid)?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(TokenError::Invalid);
    }
    Ok(token.trim())
}

impl<S> FromRequestParts<S> for AuthUser
where
    JwtVerifier: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let verifier = JwtVerifier::from_ref(state);
        let token = bearer_token(parts)?;
        Ok(AuthUser(verifier.authenticate(token).await?))
    }
}

impl<S> FromRequestParts<S> for AdminUser
where
    JwtVerifier: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let AuthUser(claims) = AuthUser::from_request_parts(parts, state).await?;
        if claims.role != Role::Admin {
            return Err(ApiError::Forbidden("this needs the admin role".into()));
        }
        Ok(AdminUser(claims))
    }
}
