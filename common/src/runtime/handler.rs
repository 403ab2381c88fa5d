//! What a service plugs into the worker: a [`Handler`] that turns a [`Message`] into an effect and
//! says, when it cannot, whether to retry or to dead-letter.

use std::{future::Future, panic::AssertUnwindSafe, pin::Pin, sync::Arc, task::Poll};

use futures::FutureExt as _;

use crate::envelope::{Envelope, PoisonError};

/// One entry delivered to a handler.
#[derive(Debug, Clone)]
pub struct Message {
    /// Unprefixed stream name, e.g. `order-completed` (shared by the messages of one stream).
    pub stream: Arc<str>,
    /// Stream entry id. Changes on replay and producer retries; use `envelope.event_id` as the
    /// identity of the event.
    pub id: String,
    pub envelope: Envelope,
}

/// Why a handler did not complete.
#[derive(Debug, thiserror::Error)]
pub enum HandleError {
    /// Transient (database busy, Redis hiccup, dependency not ready): leave pending, redeliver after
    /// backoff, dead-letter after `max_deliveries`.
    #[error("{0:#}")]
    Retry(anyhow::Error),
    /// Permanent: this entry can never succeed (bad payload, violated invariant). Dead-letter now.
    #[error("{0:#}")]
    DeadLetter(anyhow::Error),
}

impl HandleError {
    pub fn retry(error: impl Into<anyhow::Error>) -> Self {
        Self::Retry(error.into())
    }

    pub fn dead_letter(error: impl Into<anyhow::Error>) -> Self {
        Self::DeadLetter(error.into())
    }
}

/// `?` on an ordinary error means "transient": an unknown failure is never turned into a business
/// outcome or thrown away.
impl From<anyhow::Error> for HandleError {
    fn from(error: anyhow::Error) -> Self {
        Self::Retry(error)
    }
}

impl From<sea_orm::DbErr> for HandleError {
    fn from(error: sea_orm::DbErr) -> Self {
        Self::Retry(error.into())
    }
}

impl From<redis::RedisError> for HandleError {
    fn from(error: redis::RedisError) -> Self {
        Self::Retry(error.into())
    }
}

/// A payload that does not decode is permanent.
impl From<PoisonError> for HandleError {
    fn from(error: PoisonError) -> Self {
        Self::DeadLetter(error.into())
    }
}

/// Handles messages of one consumer group. Must be safe to call concurrently.
pub trait Handler: Send + Sync + 'static {
    fn handle(&self, message: &Message) -> impl Future<Output = Result<(), HandleError>> + Send;
}

/// Runs `handler` on `message`; a panic is a retryable failure, like any unknown error.
///
/// The handler's future is boxed where it is made: it is often kilobytes (a database
/// transaction's state), and every future around it (this one, the handler's timing, its span,
/// the task it runs in) would otherwise be moved with it, each move a copy of the whole. Those
/// copies were ~14 % of the no-op consumer's CPU (docs/benchmarks.md); a box is one allocation.
pub(crate) async fn handle_catching_panics<H: Handler>(
    handler: &H,
    message: &Message,
) -> Result<(), HandleError> {
    finish(start(handler, message)).await
}

/// A handler's work on one message, boxed where it is made (see [`handle_catching_panics`]).
pub(crate) type Work<'a> = Pin<Box<dyn Future<Output = Result<(), HandleError>> + Send + 'a>>;

/// Starts `handler` on `message`: its future, boxed.
pub(crate) fn start<'a, H: Handler>(handler: &'a H, message: &'a Message) -> Work<'a> {
    Box::pin(handler.handle(message))
}

/// Polls `work` once inside `span`: its outcome if it completed then (a no-op, a cache hit, an
/// event the handler ignores), `None` if it has to wait (then [`finish`] it). A panic is an outcome.
pub(crate) async fn poll_once(
    work: &mut Work<'_>,
    span: &tracing::Span,
) -> Option<Result<(), HandleError>> {
    std::future::poll_fn(|cx| {
        let polled =
            span.in_scope(|| std::panic::catch_unwind(AssertUnwindSafe(|| work.as_mut().poll(cx))));
        Poll::Ready(match polled {
            Ok(Poll::Ready(outcome)) => Some(outcome),
            Ok(Poll::Pending) => None,
            Err(_) => Some(panicked()),
        })
    })
    .await
}

/// Drives `work` to its outcome; a panic is an outcome.
pub(crate) async fn finish(work: Work<'_>) -> Result<(), HandleError> {
    AssertUnwindSafe(work)
        .catch_unwind()
        .await
        .unwrap_or_else(|_| panicked())
}

fn panicked() -> Result<(), HandleError> {
    Err(HandleError::Retry(anyhow::anyhow!("handler panicked")))
}
