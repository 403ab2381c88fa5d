//! What a service plugs into the worker: a [`Handler`] that turns a [`Message`] into an effect and
//! says, when it cannot, whether to retry or to dead-letter.

use std::{future::Future, panic::AssertUnwindSafe, sync::Arc};

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
    AssertUnwindSafe(Box::pin(handler.handle(message)))
        .catch_unwind()
        .await
        .unwrap_or_else(|_| Err(HandleError::Retry(anyhow::anyhow!("handler panicked"))))
}
