//! Asserts of the URL rules every service follows (docs/architecture.md, "HTTP conventions"):
//! [`TestApp::assert_paged_list`] for a list served a page at a time, [`TestApp::assert_id_route`]
//! for a route with a UUID in its path. Unparsable → 400, parsed but out of range → 422, and
//! never a 5xx, all as problem+json.

use reqwest::Method;
use serde_json::Value;

use super::{app::TestApp, http::assert_problem};

impl TestApp {
    /// Asserts the pagination of the list at `path` (which may carry filters in a query string)
    /// as `token`. The list must hold at least two items.
    ///
    /// - `page`/`per_page` are honoured (`{items, page, per_page, total}`; page 2 of size 1 is
    ///   another item than page 1), and the default is page 1 of 20;
    /// - `page=abc`, `per_page=abc`, `page=-1`, `page=1.5` and a page beyond `u64` → 400;
    /// - `page=0`, `per_page=0`, `per_page=101`, `per_page=100000` → 422;
    /// - `page=18446744073709551615` → 422 or an empty page, never a 5xx; the last page a
    ///   database can skip to (offset `i64::MAX`) is an empty page, one past it a 422.
    pub async fn assert_paged_list(&self, path: &str, token: Option<&str>) {
        let sep = if path.contains('?') { '&' } else { '?' };
        let get = |query: &str| {
            let url = format!("{path}{sep}{query}");
            async move { self.send(Method::GET, &url, token, None).await }
        };

        let first = page_body(get("page=1&per_page=1").await, 1, 1).await;
        let total = first["total"].as_u64().expect("total");
        assert!(total >= 2, "{path}: seed at least two items, found {total}");
        assert_eq!(first["items"].as_array().expect("items").len(), 1);
        let second = page_body(get("page=2&per_page=1").await, 2, 1).await;
        assert_eq!(
            second["total"], total,
            "{path}: total changes between pages"
        );
        assert_eq!(second["items"].as_array().expect("items").len(), 1);
        assert_ne!(
            first["items"][0], second["items"][0],
            "{path}: page 2 repeats page 1"
        );
        let default = page_body(get("").await, 1, 20).await;
        let expected = usize::try_from(total.min(20)).expect("small");
        assert_eq!(default["items"].as_array().expect("items").len(), expected);
        let beyond = page_body(
            get(&format!("page={}&per_page=1", total + 1)).await,
            total + 1,
            1,
        );
        assert_eq!(beyond.await["items"], serde_json::json!([]));

        for query in [
            "page=abc",
            "per_page=abc",
            "page=-1",
            "page=1.5",
            "page=18446744073709551616",
        ] {
            let body = assert_problem(get(query).await, 400).await;
            assert!(
                body["type"].as_str().unwrap().ends_with("bad-request"),
                "{path}?{query}: {body}"
            );
        }
        for query in ["page=0", "per_page=0", "per_page=101", "per_page=100000"] {
            let body = assert_problem(get(query).await, 422).await;
            assert!(
                body["type"].as_str().unwrap().ends_with("validation"),
                "{path}?{query}: {body}"
            );
        }

        let huge = get("page=18446744073709551615").await;
        match huge.status().as_u16() {
            422 => {
                assert_problem(huge, 422).await;
            }
            200 => {
                let body: Value = huge.json().await.expect("JSON");
                assert_eq!(body["items"], serde_json::json!([]));
            }
            other => panic!("{path}?page=18446744073709551615: {other}"),
        }
        let last = format!("page={}&per_page=1", i64::MAX as u64 + 1);
        let last = page_body(get(&last).await, i64::MAX as u64 + 1, 1).await;
        assert_eq!(last["items"], serde_json::json!([]));
        let past = format!("page={}&per_page=1", i64::MAX as u64 + 2);
        assert_problem(get(&past).await, 422).await;
    }

    /// Asserts the id rule of a route whose path has one `{id}`: a segment that is not a UUID is
    /// a 400 problem, a UUID that names nothing a 404 problem. `body` is sent with both (a valid
    /// body, so the 404 comes from the id).
    pub async fn assert_id_route(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) {
        assert!(path.contains("{id}"), "{path} has no {{id}}");
        for bad in ["not-a-uuid", "123", "00000000-0000-0000-0000-00000000000g"] {
            let url = path.replace("{id}", bad);
            let response = self.send(method.clone(), &url, token, body.clone()).await;
            let problem = assert_problem(response, 400).await;
            assert!(
                problem["type"].as_str().unwrap().ends_with("bad-request"),
                "{method} {url}: {problem}"
            );
        }
        let url = path.replace("{id}", &uuid::Uuid::now_v7().to_string());
        let response = self.send(method.clone(), &url, token, body).await;
        assert_problem(response, 404).await;
    }
}

/// Asserts a 200 page of size `per_page` at `page`; returns its body.
async fn page_body(response: reqwest::Response, page: u64, per_page: u64) -> Value {
    let url = response.url().to_string();
    assert_eq!(response.status(), 200, "{url}");
    let body: Value = response.json().await.expect("JSON page");
    assert_eq!(body["page"], page, "{url}: {body}");
    assert_eq!(body["per_page"], per_page, "{url}: {body}");
    assert!(body["total"].is_u64(), "{url}: {body}");
    assert!(body["items"].is_array(), "{url}: {body}");
    body
}
