//! The HTTP server loop: axum's router on hyper's HTTP/1.1 connections, with the limits
//! [`HttpArgs`] sets against clients that hold connections open (slowloris, idle keep-alives,
//! bodies sent a byte at a time) and graceful drain on shutdown.
//!
//! `axum::serve` gives none of these (it installs no timer, so hyper's header-read timeout never
//! runs), hence this loop. HTTP/1.1 only: the services sit behind a proxy or are called by other
//! programs, and h2c would need its own idle and stream limits.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use axum::{
    Router,
    extract::{ConnectInfo, Request},
    middleware::{self, Next},
    response::{IntoResponse, Response},
};
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    server::graceful::GracefulShutdown,
};
use tokio::{net::TcpListener, sync::Semaphore};
use tokio_util::sync::CancellationToken;
use tower_service::Service as _;

use crate::{config::HttpArgs, problem::ApiError};

/// Serves `router` on `listener` until `shutdown`, then stops accepting and drains: idle
/// connections close at once, requests in flight finish (each bounded by the request timeout).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: HttpArgs,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    // The duration histogram outside the time limit, so a request answered 408 is counted too.
    // Layers of a router run after its routing: the route template is known there.
    let router = with_request_timeout(router, limits.request_timeout())
        .layer(middleware::from_fn(super::request_metrics::record_request));
    let mut http = hyper::server::conn::http1::Builder::new();
    // hyper restarts this timer whenever it waits for a request head, including between the
    // requests of a keep-alive connection, so it is also the idle limit.
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout());
    let connections = Arc::new(Semaphore::new(limits.http_max_connections as usize));
    let graceful = GracefulShutdown::new();
    loop {
        // At the cap, stop accepting: new clients wait in the kernel's listen backlog.
        let permit = tokio::select! {
            permit = connections.clone().acquire_owned() => permit,
            () = shutdown.cancelled() => break,
        };
        let Ok(permit) = permit else { break };
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        let _ = stream.set_nodelay(true);
        let connection =
            http.serve_connection(TokioIo::new(stream), with_remote(router.clone(), remote));
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, client = %remote, "connection closed with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// The router as a hyper service for one connection, giving handlers the client's address
/// (`ConnectInfo`, which the user service rate-limits by).
fn with_remote(
    router: Router,
    remote: SocketAddr,
) -> impl hyper::service::Service<
    Request<Incoming>,
    Response = Response,
    Error = std::convert::Infallible,
    Future = impl Send,
> + Clone {
    hyper::service::service_fn(move |mut request: Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(remote));
        router.clone().call(request)
    })
}

/// Answers 408 when reading the body and handling the request take longer than `limit`, so a
/// client trickling its body cannot hold a connection and a handler's resources.
fn with_request_timeout(router: Router, limit: Duration) -> Router {
    router.layer(middleware::from_fn(
        move |request: Request, next: Next| async move {
            match tokio::time::timeout(limit, next.run(request)).await {
                Ok(response) => response,
                Err(_) => {
                    let mut response = ApiError::RequestTimeout(format!(
                        "the request was not received and answered within {} s",
                        limit.as_secs_f64()
                    ))
                    .into_response();
                    // The rest of the body may still be on its way: end the connection.
                    response.headers_mut().insert(
                        axum::http::header::CONNECTION,
                        axum::http::HeaderValue::from_static("close"),
                    );
                    response
                }
            }
        },
    ))
}
