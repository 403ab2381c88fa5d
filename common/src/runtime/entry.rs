//! What a worker knows of the entries it owns, from read to acknowledgement: a compact identity
//! ([`EntryKey`]), an entry read and tracked as ours ([`Tracked`]), one with a valid envelope ready
//! for its handler ([`Ready`]), and one whose processing is over ([`Ack`]).

use uuid::Uuid;

use super::{handler::Message, redis_io::RawEntry};
use crate::envelope::Fields;

/// A compact, allocation-free identity of one entry of one of the worker's streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct EntryKey {
    /// Index into the worker's streams.
    pub stream: usize,
    pub ms: u64,
    pub seq: u64,
}

impl EntryKey {
    /// Appends the entry id (`ms-seq`) to `buf`.
    pub fn write_id(&self, buf: &mut String) {
        let mut digits = itoa::Buffer::new();
        buf.push_str(digits.format(self.ms));
        buf.push('-');
        buf.push_str(digits.format(self.seq));
    }
}

/// An entry this consumer owns, with its [`EntryKey`].
pub(crate) struct Tracked {
    pub key: EntryKey,
    pub entry: RawEntry,
}

/// An entry with a valid envelope, ready for its handler.
pub(crate) struct Ready {
    pub key: EntryKey,
    pub message: Message,
    /// The entry as read, but for the envelope's text fields, moved into `message.envelope`
    /// ([`crate::Envelope::take_from_fields`]): [`Ready::fields_as_read`] is what a dead letter carries.
    pub fields: Fields,
    /// The event's span (`event_span`): entered while the entry is handled and disposed of.
    pub span: tracing::Span,
}

impl Ready {
    /// The entry's fields as it was read.
    pub fn fields_as_read(&self) -> Fields {
        let mut fields = self.fields.clone();
        self.message.envelope.restore_fields(&mut fields);
        fields
    }
}

/// An entry whose processing is over.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ack {
    pub key: EntryKey,
    /// Set when a handler applied the event: remembered in the idempotency set.
    pub event_id: Option<Uuid>,
}
