//! Cross-site request forgery, twice over. Every form that changes something carries the
//! session's CSRF token (a hidden `csrf` field, 32 random bytes), checked in constant time by
//! [`check`]; and every request other than `GET` and `HEAD` must come from the console's own
//! pages ([`same_origin`]): its `Origin`, when sent, must name the `Host` it was sent to, and its
//! `Sec-Fetch-Site`, when sent, must be `same-origin` (or `none`, typed by the user). The session
//! cookie is `SameSite=Strict` besides.

use axum::{
    extract::Request,
    http::{HeaderMap, Method, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use subtle::ConstantTimeEq as _;

use super::{auth::Session, page::PageError};

/// Whether `given` is the session's CSRF token; 403 otherwise.
pub fn check(session: &Session, given: Option<&str>) -> Result<(), PageError> {
    let given = given.unwrap_or_default();
    if bool::from(given.as_bytes().ct_eq(session.csrf.as_bytes())) {
        Ok(())
    } else {
        Err(PageError::forbidden(
            "the form's CSRF token is missing or wrong: reload the page and try again",
        ))
    }
}

/// Refuses (403) a state-changing request that another site made the browser send.
pub async fn same_origin(request: Request, next: Next) -> Response {
    if matches!(*request.method(), Method::GET | Method::HEAD) {
        return next.run(request).await;
    }
    if let Err(why) = from_this_site(request.headers()) {
        return PageError::forbidden(why).into_response();
    }
    next.run(request).await
}

fn from_this_site(headers: &HeaderMap) -> Result<(), &'static str> {
    let text = |name| {
        let mut values = headers.get_all(name).iter();
        match (values.next(), values.next()) {
            (None, _) => Ok(None),
            (Some(v), None) => v.to_str().map(Some).map_err(|_| "unreadable header"),
            (Some(_), Some(_)) => Err("repeated header"),
        }
    };
    if let Some(site) = text("sec-fetch-site")?
        && site != "same-origin"
        && site != "none"
    {
        return Err("this request came from another site");
    }
    if let Some(origin) = text(header::ORIGIN.as_str())? {
        let host = text(header::HOST.as_str())?.ok_or("no Host header")?;
        let named = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"));
        if !named.is_some_and(|h| h.eq_ignore_ascii_case(host)) {
            return Err("this request's Origin is not the console");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderMap;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn only_the_consoles_own_origin_passes() {
        let ok = |p: &[(&'static str, &str)]| super::from_this_site(&headers(p)).is_ok();
        assert!(ok(&[("host", "127.0.0.1:8090")]));
        assert!(ok(&[
            ("host", "127.0.0.1:8090"),
            ("origin", "http://127.0.0.1:8090"),
            ("sec-fetch-site", "same-origin"),
        ]));
        assert!(!ok(&[
            ("host", "127.0.0.1:8090"),
            ("origin", "http://evil.example")
        ]));
        assert!(!ok(&[("host", "127.0.0.1:8090"), ("origin", "null")]));
        assert!(!ok(&[
            ("host", "127.0.0.1:8090"),
            ("sec-fetch-site", "cross-site")
        ]));
        assert!(!ok(&[
            ("host", "127.0.0.1:8090"),
            ("origin", "http://127.0.0.1:8090"),
            ("origin", "http://evil.example"),
        ]));
    }
}
