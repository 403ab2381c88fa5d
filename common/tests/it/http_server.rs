//! The HTTP server (`common::http::serve`, `with_common_layers`) over real TCP: a client that
//! trickles its request head, one that idles on a keep-alive connection, and one that trickles
//! its body are cut off, others are answered meanwhile, the connection cap holds further clients
//! back, and client request ids are kept only when short and plain.

use std::{net::SocketAddr, time::Duration};

use axum::{Router, routing::post};
use common::{config::HttpArgs, http::serve};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    time::{Instant, timeout},
};
use tokio_util::sync::CancellationToken;

struct Server {
    addr: SocketAddr,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Server {
    async fn start(limits: HttpArgs) -> Self {
        let router = Router::new()
            .route("/", axum::routing::get(|| async { "hello" }))
            .route("/echo", post(|body: String| async move { body }));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(serve(listener, router, limits, shutdown.clone()));
        Self {
            addr,
            shutdown,
            task,
        }
    }

    /// A well-behaved client's request on a new connection, answered in time.
    async fn answers(&self) {
        let client = reqwest::Client::new();
        let response = timeout(
            Duration::from_secs(5),
            client.get(format!("http://{}/", self.addr)).send(),
        )
        .await
        .expect("answered within 5 s")
        .expect("GET /");
        assert_eq!(response.status(), 200);
        assert_eq!(response.text().await.unwrap(), "hello");
    }

    async fn stop(self) {
        self.shutdown.cancel();
        timeout(Duration::from_secs(10), self.task)
            .await
            .expect("the server drains")
            .unwrap()
            .unwrap();
    }
}

fn limits(header_secs: u64, request_secs: u64, max_connections: u32) -> HttpArgs {
    HttpArgs {
        http_header_timeout_secs: header_secs,
        http_request_timeout_secs: request_secs,
        http_max_connections: max_connections,
    }
}

/// Reads until the server closes the connection (or resets it); returns what it sent.
async fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut received = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return received,
            Ok(n) => received.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test]
async fn a_client_trickling_its_headers_is_cut_off_while_others_are_answered() {
    let server = Server::start(limits(2, 30, 64)).await;
    let mut slow = TcpStream::connect(server.addr).await.unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    // One header byte every 300 ms: each write is progress, never a complete head.
    let trickle = async {
        loop {
            if slow.write_all(b"x").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
            let mut probe = [0u8; 1];
            match timeout(Duration::from_millis(1), slow.peek(&mut probe)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return,
                _ => {}
            }
        }
    };
    let (_, ()) = tokio::join!(timeout(Duration::from_secs(20), trickle), server.answers());
    let held = started.elapsed();
    assert!(
        held < Duration::from_secs(15),
        "the trickling client was still connected after {held:?}"
    );
    let rest = read_until_closed(&mut slow).await;
    assert!(
        !String::from_utf8_lossy(&rest).contains("hello"),
        "no answer to a head that never completed"
    );
    server.answers().await;
    server.stop().await;
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_header_timeout() {
    let server = Server::start(limits(2, 30, 64)).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    // The response, then nothing: the server must not keep the connection forever.
    let received = timeout(Duration::from_secs(15), read_until_closed(&mut stream))
        .await
        .expect("an idle keep-alive connection was still open after 15 s");
    assert!(String::from_utf8_lossy(&received).contains("hello"));
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "closed too early to be the timeout"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_client_trickling_its_body_gets_408_and_is_disconnected() {
    let server = Server::start(limits(2, 3, 64)).await;
    let mut slow = TcpStream::connect(server.addr).await.unwrap();
    slow.write_all(b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-type: text/plain\r\ncontent-length: 100\r\n\r\n")
        .await
        .unwrap();
    // The body is never completed; the reader alone decides when the server gave up.
    let received = timeout(Duration::from_secs(15), read_until_closed(&mut slow))
        .await
        .expect("a trickled body held the connection for 15 s");
    let text = String::from_utf8_lossy(&received);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("application/problem+json"), "{text}");
    server.answers().await;
    server.stop().await;
}

#[tokio::test]
async fn clients_beyond_the_connection_cap_wait_until_a_connection_closes() {
    let server = Server::start(limits(30, 30, 2)).await;
    let first = TcpStream::connect(server.addr).await.unwrap();
    let _second = TcpStream::connect(server.addr).await.unwrap();
    // Both are accepted (they hold the two permits); a third client's request waits.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let client = reqwest::Client::new();
    let url = format!("http://{}/", server.addr);
    let third = tokio::spawn(async move { client.get(url).send().await.map(|r| r.status()) });
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        !third.is_finished(),
        "a third connection was served past a cap of 2"
    );
    drop(first);
    let status = timeout(Duration::from_secs(5), third)
        .await
        .expect("served once a connection closed")
        .unwrap()
        .expect("GET /");
    assert_eq!(status, 200);
    server.stop().await;
}

#[tokio::test]
async fn client_request_ids_are_kept_only_when_short_and_plain() {
    let router = common::http::with_common_layers(Router::new().route(
        "/",
        axum::routing::get(|headers: axum::http::HeaderMap| async move {
            headers
                .get("x-request-id")
                .map(|v| v.to_str().unwrap_or("?").to_owned())
                .unwrap_or_default()
        }),
    ));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(serve(
        listener,
        router,
        HttpArgs::default(),
        shutdown.clone(),
    ));
    let client = reqwest::Client::new();
    let seen = |id: &'static str| {
        let (client, url) = (client.clone(), format!("http://{addr}/"));
        async move {
            let response = client
                .get(url)
                .header("x-request-id", id)
                .send()
                .await
                .unwrap();
            let echoed = response.headers()["x-request-id"]
                .to_str()
                .unwrap()
                .to_owned();
            let handled = response.text().await.unwrap();
            assert_eq!(echoed, handled, "the handler sees the id that is echoed");
            handled
        }
    };
    assert_eq!(seen("order-42_retry.3:a").await, "order-42_retry.3:a");
    let long: &'static str = Box::leak("a".repeat(129).into_boxed_str());
    for bad in [long, "has space", "semi;colon", "<script>", "ünïcode"] {
        let replaced = seen(bad).await;
        assert_ne!(replaced, bad);
        assert!(
            uuid::Uuid::parse_str(&replaced).is_ok(),
            "{bad:?} became {replaced:?}"
        );
    }
    shutdown.cancel();
    task.await.unwrap().unwrap();
}

/// Without its database a service cannot take requests: `/readyz` is a 503 problem of kind
/// `not-ready` with the checks (a closed connection pool stands in for a database that is gone).
#[tokio::test]
async fn readyz_is_a_503_problem_when_the_database_is_gone() {
    let redis = common::testing::RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
    let db = common::db::connect(&url).await.unwrap();
    db.clone().close().await.unwrap();
    let monitor = common::monitoring::Monitor::new(
        redis.connection(),
        Some(db.clone()),
        common::Keys::default(),
        std::time::Duration::from_secs(10),
    );
    let router = common::http::ops_router(
        common::http::Readiness {
            service: "test",
            redis: redis.connection(),
            db: Some(db),
        },
        monitor,
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(serve(
        listener,
        router,
        HttpArgs::default(),
        shutdown.clone(),
    ));
    let response = reqwest::get(format!("http://{addr}/readyz")).await.unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(
        body["type"],
        format!("{}not-ready", common::problem::PROBLEM_BASE)
    );
    assert_eq!(body["checks"]["database"], false);
    assert_eq!(body["checks"]["redis"], true);
    shutdown.cancel();
    task.await.unwrap().unwrap();
}
