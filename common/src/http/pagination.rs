//! Pagination, one way for every list: the [`Page`] extractor reads `?page=&per_page=` (1-based,
//! `per_page` 1 to [`MAX_PER_PAGE`], default [`DEFAULT_PER_PAGE`]) and the answer is a
//! [`Paged`] `{items, page, per_page, total}`.
//!
//! By the rule of `super::extract`: a `page` or `per_page` that is not a number (or too large for
//! an unsigned 64-bit one) is a 400; `page=0`, `per_page=0`, `per_page` above the maximum, and a
//! page whose first item lies beyond what a database can skip (`(page - 1) × per_page` above
//! `i64::MAX`: the offset is computed with checked arithmetic) are a 422.

use axum::{extract::FromRequestParts, http::request::Parts};
use sea_orm::{ConnectionTrait, EntityTrait, PaginatorTrait as _, QuerySelect as _, Select};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::extract::Query;
use crate::problem::ApiError;

/// Largest page a client may ask for.
pub const MAX_PER_PAGE: u64 = 100;
/// Page size when none is asked for.
pub const DEFAULT_PER_PAGE: u64 = 20;

/// `?page=&per_page=` as sent (and as documented: `params(PageQuery)`).
#[derive(Debug, Clone, Copy, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// 1-based page number (default 1).
    #[param(minimum = 1)]
    pub page: Option<u64>,
    /// Items per page, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub per_page: Option<u64>,
}

/// A valid page of a list: extract it from a request, or make it with [`Page::new`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    page: u64,
    per_page: u64,
    offset: u64,
}

impl Page {
    /// Checks a page request; 422 when it is out of range.
    pub fn new(query: PageQuery) -> Result<Self, ApiError> {
        let page = query.page.unwrap_or(1);
        let per_page = query.per_page.unwrap_or(DEFAULT_PER_PAGE);
        if page == 0 {
            return Err(ApiError::validation("`page` starts at 1"));
        }
        if !(1..=MAX_PER_PAGE).contains(&per_page) {
            return Err(ApiError::validation(format!(
                "`per_page` must be between 1 and {MAX_PER_PAGE}"
            )));
        }
        let offset = (page - 1)
            .checked_mul(per_page)
            .filter(|offset| i64::try_from(*offset).is_ok())
            .ok_or_else(|| {
                ApiError::validation(format!(
                    "`page` {page} of {per_page} items lies beyond any list"
                ))
            })?;
        Ok(Self {
            page,
            per_page,
            offset,
        })
    }

    /// 1-based page number.
    pub fn page(&self) -> u64 {
        self.page
    }

    /// Items per page: the `LIMIT`.
    pub fn per_page(&self) -> u64 {
        self.per_page
    }

    /// Items before this page: the `OFFSET` (at most `i64::MAX`).
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The answer for this page: `items` of a list of `total`.
    pub fn of<T>(&self, items: Vec<T>, total: u64) -> Paged<T> {
        Paged {
            items,
            page: self.page,
            per_page: self.per_page,
            total,
        }
    }

    /// This page of `select` (which orders its rows) on `db`, with the total count.
    pub async fn fetch<E, C>(&self, select: Select<E>, db: &C) -> Result<Paged<E::Model>, ApiError>
    where
        E: EntityTrait,
        E::Model: Sync,
        C: ConnectionTrait,
    {
        let total = select.clone().count(db).await?;
        let items = select
            .offset(self.offset)
            .limit(self.per_page)
            .all(db)
            .await?;
        Ok(self.of(items, total))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Page {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Query(query) = Query::<PageQuery>::from_request_parts(parts, state).await?;
        Self::new(query)
    }
}

/// One page of a list.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Paged<T> {
    pub items: Vec<T>,
    /// 1-based page number.
    pub page: u64,
    pub per_page: u64,
    /// Items in the whole list.
    pub total: u64,
}

impl<T> Paged<T> {
    /// The same page with its items replaced (each row turned into its view).
    pub fn with_items<U>(self, items: Vec<U>) -> Paged<U> {
        Paged {
            items,
            page: self.page,
            per_page: self.per_page,
            total: self.total,
        }
    }

    /// The same page with `f` applied to each item.
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Paged<U> {
        let items = self.items.into_iter().map(f).collect();
        Paged {
            items,
            page: self.page,
            per_page: self.per_page,
            total: self.total,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(page: Option<u64>, per_page: Option<u64>) -> Result<Page, ApiError> {
        Page::new(PageQuery { page, per_page })
    }

    fn status(result: Result<Page, ApiError>) -> u16 {
        use axum::response::IntoResponse as _;
        result
            .expect_err("an error")
            .into_response()
            .status()
            .as_u16()
    }

    #[test]
    fn defaults_are_the_first_page_of_twenty() {
        let p = page(None, None).unwrap();
        assert_eq!((p.page(), p.per_page(), p.offset()), (1, 20, 0));
        let p = page(Some(3), Some(7)).unwrap();
        assert_eq!((p.page(), p.per_page(), p.offset()), (3, 7, 14));
    }

    #[test]
    fn out_of_range_pages_are_422() {
        assert_eq!(status(page(Some(0), None)), 422);
        assert_eq!(status(page(None, Some(0))), 422);
        assert_eq!(status(page(None, Some(MAX_PER_PAGE + 1))), 422);
        assert!(page(None, Some(MAX_PER_PAGE)).is_ok());
    }

    /// `(page - 1) × per_page` neither wraps nor reaches past what a database accepts.
    #[test]
    fn a_huge_page_is_422_not_an_overflow() {
        assert_eq!(status(page(Some(u64::MAX), Some(MAX_PER_PAGE))), 422);
        assert_eq!(status(page(Some(u64::MAX), Some(1))), 422);
        let last = i64::MAX as u64 + 1;
        assert_eq!(page(Some(last), Some(1)).unwrap().offset(), i64::MAX as u64);
        assert_eq!(status(page(Some(last + 1), Some(1))), 422);
    }
}
