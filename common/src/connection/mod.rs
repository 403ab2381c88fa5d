//! Redis connections for a single server or a Redis Cluster, chosen by `REDIS_URL`
//! (`target.rs`: `redis://…` is one server, `redis+cluster://host:port,host:port` a cluster).
//! [`Conn`] is what the rest of the mesh holds: it implements redis-rs's
//! [`ConnectionLike`](redis::aio::ConnectionLike), so commands, pipelines and scripts are written
//! once for both. `slots.rs`: the hash slot of a key, and the split of a pipeline whose commands
//! live in several slots (a cluster refuses a cross-slot pipeline; the mesh's keys are laid out
//! so that every atomic one stays in one slot, `crate::keys`). `scan.rs`: `SCAN` on every master.

mod conn;
mod scan;
mod slots;
mod target;

pub use conn::Conn;
pub use scan::scan_keys;
pub use slots::{key_slot, same_slot};
pub use target::RedisTarget;
