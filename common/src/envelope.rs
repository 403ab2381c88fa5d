//! The event envelope: the stream entry fields every event of the mesh carries
//! (docs/architecture.md, "Envelope"), how it is written to and parsed from a stream entry, and what counts as poison.

use std::{marker::PhantomData, ops::Deref};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::value::RawValue;
use uuid::Uuid;

use crate::{
    events::Event,
    telemetry::trace_context::{TRACEPARENT, TRACESTATE, TraceContext},
};

/// Highest envelope version this build understands. Anything newer is poison.
pub const MAX_SUPPORTED_VERSION: u32 = 1;

/// Field marking a dead-letter replay: only the named group processes the entry, every other group
/// on the stream acknowledges and skips it.
pub const REPLAY_FOR_GROUP_FIELD: &str = "replay_for_group";

/// The fields every envelope has, in the order they are written. `traceparent` and `tracestate`
/// (W3C trace context) follow when the event has one; they are optional, and a malformed one is
/// ignored, never poison.
pub const ENVELOPE_FIELDS: [&str; 8] = [
    "event_id",
    "type",
    "version",
    "occurred_at",
    "producer",
    "correlation_id",
    "causation_id",
    "data",
];

/// The fields of a stream entry in the order Redis returned them (names are unique in practice;
/// the first occurrence wins). A list, not a map: eight fields are found faster by scanning than
/// by hashing, and building it moves Redis's buffers without copying.
pub type Fields = Vec<(String, Vec<u8>)>;

/// The value of field `name`.
pub fn field<'a>(fields: &'a [(String, Vec<u8>)], name: &str) -> Option<&'a [u8]> {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_slice())
}

/// One event as it travels on a stream. `data` is kept as raw JSON so that a consumer decodes
/// only the payload it needs, into the typed struct of `crate::events`.
#[derive(Debug, Clone)]
pub struct Envelope {
    /// Identity of the event: set once by the producer and kept through retries, outbox
    /// re-sends and replays. The idempotency key of every consumer.
    pub event_id: Uuid,
    pub event_type: String,
    pub version: u32,
    pub occurred_at: DateTime<Utc>,
    pub producer: String,
    /// Carried unchanged through every follow-up event of one request.
    pub correlation_id: String,
    /// The `event_id` that caused this one; empty for events caused by an HTTP request.
    pub causation_id: String,
    /// The JSON object payload.
    pub data: Box<RawValue>,
    /// The W3C trace context of the span that published the event (the HTTP request, or the
    /// handling of the event that caused it); `None` when there is none or it was malformed.
    pub trace: Option<TraceContext>,
}

impl PartialEq for Envelope {
    fn eq(&self, other: &Self) -> bool {
        self.event_id == other.event_id
            && self.event_type == other.event_type
            && self.version == other.version
            && self.occurred_at == other.occurred_at
            && self.producer == other.producer
            && self.correlation_id == other.correlation_id
            && self.causation_id == other.causation_id
            && self.data.get() == other.data.get()
            && self.trace == other.trace
    }
}

/// Why a stream entry is not a valid envelope. Poison is never retried.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PoisonError {
    #[error("missing field `{0}`")]
    MissingField(&'static str),
    #[error("field `{0}` is not valid UTF-8")]
    NotUtf8(&'static str),
    #[error("field `{field}` is invalid: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("unsupported envelope version {0} (this build reads up to {MAX_SUPPORTED_VERSION})")]
    UnsupportedVersion(u32),
    #[error("payload does not match `{event_type}`: {reason}")]
    BadPayload { event_type: String, reason: String },
}

/// Where each envelope field is in an entry's fields (its first occurrence): the
/// [`ENVELOPE_FIELDS`] in order, then `traceparent` and `tracestate`.
type Slots = [Option<usize>; ENVELOPE_FIELDS.len() + 2];

/// An entry's fields that make a valid envelope: the parsed fields, and where the four text
/// fields (`type`, `producer`, `correlation_id`, `causation_id`: valid UTF-8) are.
struct Checked {
    event_id: Uuid,
    version: u32,
    occurred_at: DateTime<Utc>,
    data: Box<RawValue>,
    trace: Option<TraceContext>,
    slots: Slots,
}

impl Checked {
    /// Checks an entry's fields as an envelope. Unknown fields are ignored, and so is a missing
    /// or malformed trace context.
    fn check(fields: &[(String, Vec<u8>)]) -> Result<Self, PoisonError> {
        // One pass over the entry, each envelope field into its slot (the first occurrence
        // wins); the two trace context fields in the last two.
        let mut slots: Slots = [None; ENVELOPE_FIELDS.len() + 2];
        for (i, (name, _)) in fields.iter().enumerate() {
            let slot = match name.as_str() {
                "event_id" => 0,
                "type" => 1,
                "version" => 2,
                "occurred_at" => 3,
                "producer" => 4,
                "correlation_id" => 5,
                "causation_id" => 6,
                "data" => 7,
                TRACEPARENT => 8,
                TRACESTATE => 9,
                _ => continue,
            };
            slots[slot].get_or_insert(i);
        }
        let raw = |slot: usize| slots[slot].map(|i| fields[i].1.as_slice());
        let text = |slot: usize| -> Result<&str, PoisonError> {
            let name = ENVELOPE_FIELDS[slot];
            let raw = raw(slot).ok_or(PoisonError::MissingField(name))?;
            std::str::from_utf8(raw).map_err(|_| PoisonError::NotUtf8(name))
        };
        let invalid = |field: &'static str, reason: String| PoisonError::Invalid { field, reason };

        let version: u32 = text(2)?
            .parse()
            .map_err(|e| invalid("version", format!("{e}")))?;
        if version == 0 || version > MAX_SUPPORTED_VERSION {
            return Err(PoisonError::UnsupportedVersion(version));
        }
        let event_id = Uuid::parse_str(text(0)?).map_err(|e| invalid("event_id", e.to_string()))?;
        if text(1)?.is_empty() {
            return Err(invalid("type", "empty".into()));
        }
        let occurred_at = DateTime::parse_from_rfc3339(text(3)?)
            .map_err(|e| invalid("occurred_at", e.to_string()))?
            .with_timezone(&Utc);
        for slot in [4, 5, 6] {
            text(slot)?;
        }
        let data: Box<RawValue> =
            serde_json::from_str(text(7)?).map_err(|e| invalid("data", e.to_string()))?;
        if !data.get().trim_start().starts_with('{') {
            return Err(invalid("data", "not a JSON object".into()));
        }
        Ok(Self {
            event_id,
            version,
            occurred_at,
            data,
            trace: TraceContext::parse(raw(8), raw(9)),
            slots,
        })
    }

    /// The envelope, its text fields given by `text(slot)`.
    fn envelope(self, mut text: impl FnMut(usize) -> String) -> Envelope {
        Envelope {
            event_id: self.event_id,
            event_type: text(1),
            version: self.version,
            occurred_at: self.occurred_at,
            producer: text(4),
            correlation_id: text(5),
            causation_id: text(6),
            data: self.data,
            trace: self.trace,
        }
    }
}

impl Envelope {
    /// A new envelope for a payload, with a fresh UUIDv7, the current time, and the trace context
    /// of the current span when traces are exported.
    pub fn new<T: Serialize>(
        event_type: &str,
        producer: &str,
        correlation_id: &str,
        causation_id: &str,
        data: &T,
    ) -> Result<Self, serde_json::Error> {
        let data = serde_json::value::to_raw_value(data)?;
        Ok(Self {
            event_id: Uuid::now_v7(),
            event_type: event_type.to_owned(),
            version: 1,
            occurred_at: Utc::now(),
            producer: producer.to_owned(),
            correlation_id: correlation_id.to_owned(),
            causation_id: causation_id.to_owned(),
            data,
            trace: TraceContext::current(),
        })
    }

    /// A follow-up event caused by `self`: same correlation id, causation = this event's id, and
    /// the trace context of the span handling `self` (the runtime's event span), or, when traces
    /// are not exported, `self`'s own: the trace goes on through services that do not export.
    pub fn follow_up<T: Serialize>(
        &self,
        event_type: &str,
        producer: &str,
        data: &T,
    ) -> Result<Self, serde_json::Error> {
        let mut event = Self::new(
            event_type,
            producer,
            &self.correlation_id,
            &self.event_id.to_string(),
            data,
        )?;
        if event.trace.is_none() {
            event.trace.clone_from(&self.trace);
        }
        Ok(event)
    }

    /// A new envelope for an event of the catalog: its `type` is `E::TYPE`, and so is the stream
    /// [`crate::db::outbox::enqueue_event`] puts it on.
    pub fn of_event<E: Event>(
        producer: &str,
        correlation_id: &str,
        causation_id: &str,
        event: &E,
    ) -> Result<EventEnvelope<E>, serde_json::Error> {
        Self::new(E::TYPE, producer, correlation_id, causation_id, event).map(EventEnvelope::wrap)
    }

    /// [`follow_up`](Self::follow_up) for an event of the catalog (type and stream `E::TYPE`).
    pub fn follow_up_event<E: Event>(
        &self,
        producer: &str,
        event: &E,
    ) -> Result<EventEnvelope<E>, serde_json::Error> {
        self.follow_up(E::TYPE, producer, event)
            .map(EventEnvelope::wrap)
    }

    /// The stream entry fields, all strings.
    pub fn to_fields(&self) -> Vec<(&'static str, String)> {
        let mut fields = vec![
            ("event_id", self.event_id.to_string()),
            ("type", self.event_type.clone()),
            ("version", self.version.to_string()),
            (
                "occurred_at",
                self.occurred_at
                    .to_rfc3339_opts(SecondsFormat::Micros, true),
            ),
            ("producer", self.producer.clone()),
            ("correlation_id", self.correlation_id.clone()),
            ("causation_id", self.causation_id.clone()),
            ("data", self.data.get().to_owned()),
        ];
        if let Some(trace) = &self.trace {
            fields.push((TRACEPARENT, trace.traceparent().to_owned()));
            if let Some(state) = trace.tracestate() {
                fields.push((TRACESTATE, state.to_owned()));
            }
        }
        fields
    }

    /// Parses the fields of a stream entry. Unknown fields are ignored, and so is a missing or
    /// malformed trace context.
    pub fn from_fields(fields: &[(String, Vec<u8>)]) -> Result<Self, PoisonError> {
        let checked = Checked::check(fields)?;
        let slots = checked.slots;
        let text = |slot: usize| {
            slots[slot]
                .map(|i| String::from_utf8_lossy(&fields[i].1).into_owned())
                .unwrap_or_default()
        };
        Ok(checked.envelope(text))
    }

    /// [`from_fields`](Self::from_fields) that moves the text of `type`, `producer`,
    /// `correlation_id` and `causation_id` out of `fields` instead of copying it (the runtime's
    /// hot path): their values are left empty, and [`restore_fields`](Self::restore_fields) puts
    /// them back. A poison entry's fields are left as they were.
    pub(crate) fn take_from_fields(fields: &mut Fields) -> Result<Self, PoisonError> {
        let checked = Checked::check(fields)?;
        let slots = checked.slots;
        let text = |slot: usize| {
            slots[slot].map_or_else(String::new, |i| {
                // Checked as UTF-8: the buffer becomes the string as it is.
                String::from_utf8(std::mem::take(&mut fields[i].1))
                    .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
            })
        };
        Ok(checked.envelope(text))
    }

    /// Puts back into `fields` what [`take_from_fields`](Self::take_from_fields) took out of
    /// them: the fields as the entry was read.
    pub(crate) fn restore_fields(&self, fields: &mut Fields) {
        for (name, value) in [
            ("type", &self.event_type),
            ("producer", &self.producer),
            ("correlation_id", &self.correlation_id),
            ("causation_id", &self.causation_id),
        ] {
            if let Some((_, taken)) = fields.iter_mut().find(|(k, _)| k == name)
                && taken.is_empty()
            {
                taken.extend_from_slice(value.as_bytes());
            }
        }
    }

    /// Decodes the payload into its typed struct. A mismatch is poison: the producer sent
    /// something this consumer can never handle.
    pub fn payload<T: DeserializeOwned>(&self) -> Result<T, PoisonError> {
        serde_json::from_str(self.data.get()).map_err(|e| PoisonError::BadPayload {
            event_type: self.event_type.clone(),
            reason: e.to_string(),
        })
    }

    /// Decodes the payload of an event of the catalog and checks its bounds
    /// ([`crate::events::Check`]): what every consumer calls. Out of bounds is poison too.
    pub fn event<T: Event>(&self) -> Result<T, PoisonError> {
        let event: T = self.payload()?;
        event.check().map_err(|reason| PoisonError::BadPayload {
            event_type: self.event_type.clone(),
            reason,
        })?;
        Ok(event)
    }
}

/// An envelope made from an event of the catalog ([`Envelope::of_event`],
/// [`Envelope::follow_up_event`]): its `type` is `E::TYPE`, which is also its stream, so whoever
/// enqueues it cannot name another.
#[derive(Debug)]
pub struct EventEnvelope<E> {
    envelope: Envelope,
    event: PhantomData<fn() -> E>,
}

impl<E> EventEnvelope<E> {
    fn wrap(envelope: Envelope) -> Self {
        Self {
            envelope,
            event: PhantomData,
        }
    }

    pub fn into_envelope(self) -> Envelope {
        self.envelope
    }
}

impl<E> Deref for EventEnvelope<E> {
    type Target = Envelope;

    fn deref(&self) -> &Envelope {
        &self.envelope
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(fields: &mut Fields, name: &str, value: &[u8]) {
        fields.retain(|(k, _)| k != name);
        fields.push((name.to_owned(), value.to_vec()));
    }

    fn fields_of(env: &Envelope) -> Fields {
        env.to_fields()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.into_bytes()))
            .collect()
    }

    #[test]
    fn round_trips_through_stream_fields() {
        let env = Envelope::new(
            "order-placed",
            "store",
            "req-1",
            "",
            &serde_json::json!({"a": 1}),
        )
        .unwrap();
        let back = Envelope::from_fields(&fields_of(&env)).unwrap();
        assert_eq!(back.event_id, env.event_id);
        assert_eq!(back.data.get(), r#"{"a":1}"#);
        assert_eq!(back.correlation_id, "req-1");
    }

    #[test]
    fn missing_field_bad_json_and_unknown_version_are_poison() {
        let env = Envelope::new("x", "p", "c", "", &serde_json::json!({})).unwrap();
        let mut f = fields_of(&env);
        f.retain(|(k, _)| k != "producer");
        assert_eq!(
            Envelope::from_fields(&f),
            Err(PoisonError::MissingField("producer"))
        );
        let mut f = fields_of(&env);
        set(&mut f, "data", b"{not json");
        assert!(matches!(
            Envelope::from_fields(&f),
            Err(PoisonError::Invalid { field: "data", .. })
        ));
        let mut f = fields_of(&env);
        set(&mut f, "version", b"2");
        assert_eq!(
            Envelope::from_fields(&f),
            Err(PoisonError::UnsupportedVersion(2))
        );
        let mut f = fields_of(&env);
        set(&mut f, "extra", b"ignored");
        assert!(Envelope::from_fields(&f).is_ok());
    }

    #[test]
    fn taking_the_text_fields_out_and_back_gives_the_fields_as_read() {
        let env = Envelope::new("x", "p", "c", "", &serde_json::json!({"a": [1, 2]})).unwrap();
        let mut read = fields_of(&env);
        read.insert(0, ("extra".into(), b"kept".to_vec()));
        // A second `producer` is not the envelope's (the first occurrence wins) and stays put.
        read.push(("producer".into(), b"second".to_vec()));
        let mut fields = read.clone();
        let taken = Envelope::take_from_fields(&mut fields).unwrap();
        assert_eq!(taken, Envelope::from_fields(&read).unwrap());
        assert_ne!(fields, read, "the text fields were moved out");
        taken.restore_fields(&mut fields);
        assert_eq!(fields, read);

        // Poison: nothing is taken.
        let mut poison = read.clone();
        set(&mut poison, "version", b"2");
        let before = poison.clone();
        assert_eq!(
            Envelope::take_from_fields(&mut poison),
            Err(PoisonError::UnsupportedVersion(2))
        );
        assert_eq!(poison, before);
    }

    const TRACEPARENT_OF_TEST: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn the_trace_context_round_trips_and_an_entry_without_one_stays_valid() {
        let mut env = Envelope::new("x", "p", "c", "", &serde_json::json!({})).unwrap();
        // No exporter in unit tests: nothing is taken from the current span.
        assert_eq!(env.trace, None);
        let f = fields_of(&env);
        assert!(!f.iter().any(|(k, _)| k == TRACEPARENT || k == TRACESTATE));
        assert_eq!(Envelope::from_fields(&f).unwrap().trace, None);

        env.trace = TraceContext::parse(Some(TRACEPARENT_OF_TEST.as_bytes()), Some(b"k=v"));
        let back = Envelope::from_fields(&fields_of(&env)).unwrap();
        assert_eq!(back.trace, env.trace);
        assert_eq!(back.trace.unwrap().tracestate(), Some("k=v"));
    }

    #[test]
    fn a_malformed_trace_context_is_ignored_not_poison() {
        let env = Envelope::new("x", "p", "c", "", &serde_json::json!({})).unwrap();
        for bad in [&b"garbage"[..], &[0xff, 0xfe], &[b'0'; 4096]] {
            let mut f = fields_of(&env);
            set(&mut f, TRACEPARENT, bad);
            set(&mut f, TRACESTATE, b"k=v");
            let parsed = Envelope::from_fields(&f).expect("still a valid envelope");
            assert_eq!(parsed.trace, None);
        }
    }

    #[test]
    fn a_follow_up_carries_the_trace_of_its_cause() {
        let mut cause = Envelope::new("x", "p", "c", "", &serde_json::json!({})).unwrap();
        cause.trace = TraceContext::parse(Some(TRACEPARENT_OF_TEST.as_bytes()), None);
        let next = cause.follow_up("y", "q", &serde_json::json!({})).unwrap();
        assert_eq!(next.trace, cause.trace);
        assert_eq!(next.causation_id, cause.event_id.to_string());
    }
}
