//! One module per page; each calls meshctl's data functions and fills its template
//! (`meshctl/templates/console/`). Every signed-in page carries the session's CSRF token for the
//! log-out form of the header.

pub mod dead_letters;
pub mod entry;
pub mod group;
pub mod groups;
pub mod login;
pub mod streams;
pub mod timeline;

use crate::fmt;

/// `2026-01-02 03:04:05 (12m 03s ago)` for a stream id, `-` for none.
fn when(id: Option<&str>) -> String {
    fmt::id_when(id)
}

/// A duration in milliseconds as people read it, `-` for none.
fn ms(v: Option<u64>) -> String {
    fmt::opt(v.map(fmt::duration))
}
