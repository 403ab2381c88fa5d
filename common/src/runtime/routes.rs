//! A service's event handlers, declared once: [`Routes`] maps each event type of the catalog to
//! the `async fn` that applies it, and [`Routed`] (the routes with the handlers' state) is the
//! worker's [`Handler`]. It derives the streams the group reads ([`Routes::streams`]), decodes
//! and checks the payload ([`Envelope::event`]) before the handler
//! sees it, and dead-letters an entry of a stream it has no route for.
//!
//! ```ignore
//! pub fn routes() -> Routes<InventoryHandler> {
//!     Routes::new(GROUP)
//!         .on::<OrderCompleted>(order_completed::handle)
//!         .on::<RefundOrder>(refund_order::handle)
//! }
//! // async fn handle(h: &InventoryHandler, envelope: &Envelope, order: OrderCompleted)
//! //     -> Result<(), HandleError>
//! ```
//!
//! Routes dispatch on the *stream* (`Message::stream`), as the runtime always has: the envelope's
//! `type` is a producer's input and is not checked against it.

use std::{future::Future, marker::PhantomData};

use futures::{FutureExt as _, future::BoxFuture};

use super::handler::{HandleError, Handler, Message};
use crate::{envelope::Envelope, events::Event};

/// A handler of one event type: an `async fn(&S, &Envelope, E) -> Result<(), HandleError>` that
/// receives the handlers' state, the envelope (for the inbox, ids and follow-ups) and the decoded,
/// checked payload. Implemented for every such function; spelled as a trait so that the future may
/// borrow its arguments (`for<'a>`).
pub trait EventHandler<'a, S: 'a, E>: Send + Sync + 'static {
    type Future: Future<Output = Result<(), HandleError>> + Send + 'a;

    fn call(&'a self, state: &'a S, envelope: &'a Envelope, event: E) -> Self::Future;
}

impl<'a, S, E, F, Fut> EventHandler<'a, S, E> for F
where
    S: 'a,
    F: Fn(&'a S, &'a Envelope, E) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), HandleError>> + Send + 'a,
{
    type Future = Fut;

    fn call(&'a self, state: &'a S, envelope: &'a Envelope, event: E) -> Fut {
        self(state, envelope, event)
    }
}

/// One route with its event type erased, so that routes of different types share a table.
trait Route<S>: Send + Sync {
    fn handle<'a>(
        &'a self,
        state: &'a S,
        envelope: &'a Envelope,
    ) -> BoxFuture<'a, Result<(), HandleError>>;
}

struct Typed<E, F> {
    handler: F,
    event: PhantomData<fn() -> E>,
}

impl<S, E, F> Route<S> for Typed<E, F>
where
    S: Send + Sync + 'static,
    E: Event + 'static,
    F: for<'a> EventHandler<'a, S, E>,
{
    fn handle<'a>(
        &'a self,
        state: &'a S,
        envelope: &'a Envelope,
    ) -> BoxFuture<'a, Result<(), HandleError>> {
        // A payload that does not decode, or breaks its bounds, is poison: dead-lettered by
        // `From<PoisonError>`, never handed to the handler.
        match envelope.event::<E>() {
            Ok(event) => self.handler.call(state, envelope, event).boxed(),
            Err(poison) => std::future::ready(Err(poison.into())).boxed(),
        }
    }
}

/// The event handlers of one consumer group, by stream (`E::TYPE`). Build it with
/// [`on`](Self::on), read its [`streams`](Self::streams) for `WorkerConfig::new`, and give it
/// the handlers' state with [`with_state`](Self::with_state) to get the worker's handler.
pub struct Routes<S> {
    group: String,
    routes: Vec<(&'static str, Box<dyn Route<S>>)>,
}

impl<S: Send + Sync + 'static> Routes<S> {
    /// No routes yet, for consumer group `group` (named when an entry has no route).
    pub fn new(group: impl Into<String>) -> Self {
        Self {
            group: group.into(),
            routes: Vec::new(),
        }
    }

    /// Routes the entries of stream `E::TYPE` to `handler`, with their payload decoded and
    /// checked as an `E`.
    ///
    /// # Panics
    /// If `E` has a route already: two handlers for one stream is a mistake in the service's
    /// code, caught when it starts (as axum does for overlapping routes).
    pub fn on<E: Event + 'static>(mut self, handler: impl for<'a> EventHandler<'a, S, E>) -> Self {
        assert!(
            self.find(E::TYPE).is_none(),
            "group `{}` has two routes for `{}`",
            self.group,
            E::TYPE
        );
        let route = Typed {
            handler,
            event: PhantomData::<fn() -> E>,
        };
        self.routes.push((E::TYPE, Box::new(route)));
        self
    }

    /// The streams routed, in the order of the routes: what the group reads.
    pub fn streams(&self) -> Vec<&'static str> {
        self.routes.iter().map(|(stream, _)| *stream).collect()
    }

    /// The worker's [`Handler`]: these routes, applied with `state`.
    pub fn with_state(self, state: S) -> Routed<S> {
        Routed {
            routes: self,
            state,
        }
    }

    fn find(&self, stream: &str) -> Option<&dyn Route<S>> {
        self.routes
            .iter()
            .find(|(routed, _)| *routed == stream)
            .map(|(_, route)| route.as_ref())
    }
}

/// [`Routes`] with the state their handlers share: the [`Handler`] a `Worker` runs.
pub struct Routed<S> {
    routes: Routes<S>,
    state: S,
}

impl<S: Send + Sync + 'static> Routed<S> {
    /// The streams routed: what the group reads ([`Routes::streams`]).
    pub fn streams(&self) -> Vec<&'static str> {
        self.routes.streams()
    }
}

impl<S: Send + Sync + 'static> Handler for Routed<S> {
    // The runtime runs this inside the entry's `event` span (`runtime/event_span.rs`: stream,
    // group, event id, correlation id, trace id), on both the concurrent and the batch path.
    async fn handle(&self, message: &Message) -> Result<(), HandleError> {
        match self.routes.find(&message.stream) {
            Some(route) => route.handle(&self.state, &message.envelope).await,
            None => Err(HandleError::dead_letter(anyhow::anyhow!(
                "{} does not consume `{}`",
                self.routes.group,
                message.stream
            ))),
        }
    }
}
