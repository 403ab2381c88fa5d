//! The harness of the console's tests: the real `meshctl serve` binary against a test's
//! `redis-server` (its port read from the line it prints), an HTTP client that does not follow
//! redirects, log-in, the CSRF token of a page, and a handler that dead-letters poison until it
//! is "fixed". The tests are in `console_http.rs` (over HTTP) and `console_browser.rs` (a real
//! headless Chromium).

use std::{
    process::Stdio,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use common::{
    Envelope, Keys,
    runtime::{HandleError, Handler, Message, Publisher},
    stream_testing::Recorder,
    testing::TestRedis,
};
use tokio::io::{AsyncBufReadExt, BufReader};

/// The operator token of every test console.
pub const TOKEN: &str = "operator-token-for-the-tests-0123";

/// A running `meshctl serve`; killed when dropped.
pub struct Console {
    _child: tokio::process::Child,
    /// `http://127.0.0.1:<port>`
    pub base: String,
    /// `127.0.0.1:<port>`
    pub host: String,
    pub http: reqwest::Client,
}

/// `meshctl --redis-url … --prefix … serve --listen 127.0.0.1:0 <extra>` with only `env`.
pub fn serve_command(
    redis: &dyn TestRedis,
    keys: &Keys,
    env: &[(&str, &str)],
    extra: &[&str],
) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_meshctl"));
    cmd.env_remove("REDIS_URL")
        .env_remove("MESH_STREAM_PREFIX")
        .env_remove("MESH_CONSOLE_TOKEN")
        .env_remove("MESH_CONSOLE_TOKEN_FILE")
        .env_remove("MESH_CONSOLE_LISTEN")
        .env_remove("MESH_CONSOLE_ALLOWED_HOSTS")
        .envs(env.iter().copied())
        .args(["--redis-url", &redis.url(), "--prefix", keys.prefix()])
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--sample-interval",
            "200ms",
        ])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    cmd
}

impl Console {
    /// Starts the console with [`TOKEN`] and waits for it to listen.
    pub async fn start(redis: &dyn TestRedis, keys: &Keys) -> Self {
        let mut child = serve_command(redis, keys, &[("MESH_CONSOLE_TOKEN", TOKEN)], &[])
            .spawn()
            .expect("spawn meshctl serve");
        let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        let base = tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                let line = lines.next_line().await.expect("read stdout");
                let line = line.expect("meshctl serve exited before it listened");
                if let Some(url) = line.strip_prefix("meshctl console listening on ") {
                    return url.trim().to_owned();
                }
            }
        })
        .await
        .expect("meshctl serve listens within 30 s");
        // Keep reading its log so that a full pipe never blocks it.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let host = base.trim_start_matches("http://").to_owned();
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("HTTP client");
        Self {
            _child: child,
            base,
            host,
            http,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Logs in with [`TOKEN`]; returns the `Cookie` header value of the session.
    pub async fn log_in(&self) -> String {
        let r = self
            .http
            .post(self.url("/login"))
            .form(&[("token", TOKEN)])
            .send()
            .await
            .expect("POST /login");
        assert_eq!(r.status(), 303, "log-in with the token");
        let cookie = r
            .headers()
            .get("set-cookie")
            .expect("a session cookie")
            .to_str()
            .unwrap();
        cookie.split(';').next().unwrap().to_owned()
    }

    /// `GET path` with the session `cookie`: status and body.
    pub async fn get(&self, cookie: &str, path: &str) -> (u16, String) {
        let r = self
            .http
            .get(self.url(path))
            .header("cookie", cookie)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        (r.status().as_u16(), r.text().await.unwrap())
    }

    /// `GET path`, asserting 200; the body.
    pub async fn page(&self, cookie: &str, path: &str) -> String {
        let (status, body) = self.get(cookie, path).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }
}

/// The CSRF token a page's forms carry.
pub fn csrf_of(page: &str) -> String {
    let at = page
        .find("name=\"csrf\" value=\"")
        .unwrap_or_else(|| panic!("no CSRF field in {page}"));
    let rest = &page[at + "name=\"csrf\" value=\"".len()..];
    rest[..rest.find('"').unwrap()].to_owned()
}

/// Dead-letters events whose payload says `"poison": true` until it is fixed; records every
/// event it handles.
#[derive(Clone, Default)]
pub struct FailsUntilFixed {
    pub fixed: Arc<AtomicBool>,
    pub recorder: Recorder,
}

/// The error of a poison event.
pub const POISON_ERROR: &str = "poison pill: this handler cannot take it yet";

impl Handler for FailsUntilFixed {
    async fn handle(&self, message: &Message) -> Result<(), HandleError> {
        let poison = message.envelope.data.get().contains("\"poison\":true");
        if poison && !self.fixed.load(Ordering::SeqCst) {
            return Err(HandleError::dead_letter(anyhow::anyhow!(POISON_ERROR)));
        }
        self.recorder.handle(message).await
    }
}

/// Publishes one event to `stream` with `correlation_id`; returns its event id.
pub async fn publish(
    redis: &dyn TestRedis,
    keys: &Keys,
    stream: &str,
    correlation_id: &str,
    data: serde_json::Value,
) -> String {
    let env = Envelope::new(stream, "test", correlation_id, "", &data).expect("envelope");
    let id = env.event_id.to_string();
    Publisher::new(redis.connection(), keys.clone())
        .publish_many(&[(stream.to_owned(), env)])
        .await
        .expect("publish");
    id
}
