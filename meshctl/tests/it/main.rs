//! `meshctl`, the real binary, against a real `redis-server` whose state was made by the runtime:
//! groups read by workers, entries left pending by a consumer that stopped with them in hand,
//! entries dead-lettered by a failing handler. Each command's JSON is asserted field by field;
//! exit codes are asserted for `check` and for every error the operator can make.

mod support;

mod check;
mod cli;
mod dlq;
mod errors;
mod inspect;
mod migrate;
mod mutate;
mod tail;
