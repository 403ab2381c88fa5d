//! Outgoing mail: SMTP through `lettre` when `MESH_SMTP_URL` is set, otherwise one file per mail
//! in `<data_dir>/maildrop/` (what a laptop and the tests read).

use std::path::PathBuf;

use anyhow::Context as _;
use lettre::{
    AsyncSmtpTransport, AsyncTransport as _, Message, Tokio1Executor, message::Mailbox,
    transport::smtp::authentication::Credentials,
};

/// Where mails go.
#[derive(Clone)]
pub enum Mailer {
    Smtp {
        transport: AsyncSmtpTransport<Tokio1Executor>,
        from: Mailbox,
    },
    Maildrop {
        dir: PathBuf,
        from: String,
    },
}

/// File name suffix of a dropped mail.
pub const MAILDROP_EXTENSION: &str = "eml";

impl Mailer {
    /// SMTP when `smtp_url` is set, the mail drop in `data_dir` otherwise.
    pub fn new(
        smtp_url: Option<&str>,
        from: &str,
        data_dir: &std::path::Path,
    ) -> anyhow::Result<Self> {
        match smtp_url {
            Some(url) => Ok(Self::Smtp {
                transport: smtp_transport(url).context("MESH_SMTP_URL")?,
                from: from.parse().context("MESH_MAIL_FROM")?,
            }),
            None => {
                let dir = data_dir.join("maildrop");
                create_private_dir(&dir).with_context(|| format!("create {}", dir.display()))?;
                Ok(Self::Maildrop {
                    dir,
                    from: from.to_owned(),
                })
            }
        }
    }

    /// Sends one plain-text mail.
    pub async fn send(&self, to: &str, subject: &str, body: &str) -> anyhow::Result<()> {
        match self {
            Self::Smtp { transport, from } => {
                let message = Message::builder()
                    .from(from.clone())
                    .to(to.parse().context("recipient address")?)
                    .subject(subject)
                    .body(body.to_owned())
                    .context("build mail")?;
                transport
                    .send(message)
                    .await
                    .context("send mail over SMTP")?;
                Ok(())
            }
            Self::Maildrop { dir, from } => {
                let text = format!(
                    "From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: {}\r\n\r\n{body}\r\n",
                    chrono::Utc::now().to_rfc2822()
                );
                let name = format!(
                    "{}-{}",
                    chrono::Utc::now().format("%Y%m%dT%H%M%S%.6fZ"),
                    uuid::Uuid::new_v4().simple()
                );
                // Write then rename, so a reader never sees half a mail.
                let tmp = dir.join(format!(".{name}.tmp"));
                let path = dir.join(format!("{name}.{MAILDROP_EXTENSION}"));
                write_private(&tmp, text.as_bytes())
                    .await
                    .context("write mail drop")?;
                tokio::fs::rename(&tmp, &path)
                    .await
                    .context("write mail drop")?;
                tracing::info!(file = %path.display(), "mail dropped");
                Ok(())
            }
        }
    }
}

/// The mail drop holds live reset links: readable by the service's own user only (0700), also
/// when the folder already existed with wider permissions.
fn create_private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
    }
    #[cfg(not(unix))]
    std::fs::create_dir_all(dir)
}

/// Writes a new file readable by the service's own user only (0600).
async fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use tokio::io::AsyncWriteExt as _;
    let mut options = tokio::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut file = options.open(path).await?;
    file.write_all(bytes).await?;
    file.sync_all().await
}

/// An SMTP transport for `smtp://[user:password@]host[:port]` (default port 25). Plain SMTP only:
/// the relay is expected inside the deployment (TLS is not compiled in).
fn smtp_transport(url: &str) -> anyhow::Result<AsyncSmtpTransport<Tokio1Executor>> {
    let rest = url
        .strip_prefix("smtp://")
        .context("expected smtp://[user:password@]host[:port] (TLS is not supported)")?;
    let rest = rest.trim_end_matches('/');
    let (credentials, address) = match rest.rsplit_once('@') {
        Some((credentials, address)) => (Some(credentials), address),
        None => (None, rest),
    };
    let (host, port) = match address.rsplit_once(':') {
        Some((host, port)) => (host, port.parse::<u16>().context("SMTP port")?),
        None => (address, 25),
    };
    anyhow::ensure!(!host.is_empty(), "SMTP host missing");
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host).port(port);
    if let Some(credentials) = credentials {
        let (user, password) = credentials.split_once(':').unwrap_or((credentials, ""));
        builder = builder.credentials(Credentials::new(user.to_owned(), password.to_owned()));
    }
    Ok(builder.build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smtp_urls_parse() {
        assert!(smtp_transport("smtp://mailpit:1025").is_ok());
        assert!(smtp_transport("smtp://me:secret@mail.example.com").is_ok());
        assert!(smtp_transport("smtps://mail.example.com").is_err());
        assert!(smtp_transport("smtp://host:notaport").is_err());
    }
}
