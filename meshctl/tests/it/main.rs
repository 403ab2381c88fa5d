//! `meshctl`, the real binary, against a real `redis-server` whose state was made by the runtime:
//! groups read by workers, entries left pending by a consumer that stopped with them in hand,
//! entries dead-lettered by a failing handler. Each command's JSON is asserted field by field;
//! exit codes are asserted for `check` and for every error the operator can make. The web console
//! (`meshctl serve`) is tested over HTTP (`console_http`) and in a real headless Chromium
//! (`console_browser`), with the harness in `console`.

mod support;

mod check;
mod cli;
mod console;
mod console_browser;
mod console_http;
mod dlq;
mod errors;
mod inspect;
mod migrate;
mod mutate;
mod tail;
