//! The user worker: group `user` on `password-reset-requested`, delivering reset links through
//! the [`mailer`].

pub mod mailer;
pub mod password_reset;

use common::{
    events::{Event as _, PasswordResetRequested},
    runtime::{Worker, WorkerConfig},
    service::Service,
};

pub use password_reset::PasswordResetHandler;

/// The worker of a running service.
pub fn worker(service: &Service, handler: PasswordResetHandler) -> Worker<PasswordResetHandler> {
    let cfg = WorkerConfig::new(
        service.keys.clone(),
        crate::SERVICE,
        &[PasswordResetRequested::TYPE],
    )
    .with_args(&service.args.worker);
    Worker::new(service.redis_client.clone(), cfg, handler)
}
