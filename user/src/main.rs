//! The `user` binary: `user [serve]` runs the service, `user migrate` migrates its database,
//! `user create-admin --email … --password …` makes the first admin (`user::admin`). Everything
//! else lives in the library (`user::User`), so tests run the same code.

fn main() -> anyhow::Result<()> {
    common::service::main::<user::User>()
}
