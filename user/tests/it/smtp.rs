//! Reset mails over SMTP (`MESH_SMTP_URL`): a tiny SMTP server on a free port, speaking just
//! enough of RFC 5321 for one plain, unauthenticated delivery (`220`, `EHLO`/`HELO` → `250`,
//! `MAIL`/`RCPT` → `250`, `DATA` → `354` … `.` → `250`, `QUIT` → `221`), hands each mail it
//! receives to the test, which follows the link in it.

use std::time::Duration;

use base64::Engine as _;
use redis::AsyncCommands as _;
use serde_json::json;
use tokio::{
    io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader},
    net::{TcpListener, TcpStream},
    sync::mpsc,
};
use user::UserArgs;

use crate::{PASSWORD, UserApp, assert_problem, spawn_app_with};

/// One mail as the server received it.
#[derive(Debug)]
struct Received {
    mail_from: String,
    rcpt_to: Vec<String>,
    /// Headers and body, dot-stuffing undone, CRLF line ends.
    data: String,
}

/// Starts the server; returns its port and the mails it receives.
async fn fake_smtp() -> (u16, mpsc::UnboundedReceiver<Received>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                if let Err(e) = session(socket, tx).await {
                    eprintln!("fake SMTP session: {e}");
                }
            });
        }
    });
    (port, rx)
}

async fn session(socket: TcpStream, tx: mpsc::UnboundedSender<Received>) -> std::io::Result<()> {
    let (read, mut write) = socket.into_split();
    let mut lines = BufReader::new(read);
    write.write_all(b"220 fake.test ESMTP\r\n").await?;
    let (mut mail_from, mut rcpt_to) = (String::new(), Vec::new());
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let command = line.trim_end().to_owned();
        let verb = command
            .split([' ', ':'])
            .next()
            .unwrap_or_default()
            .to_ascii_uppercase();
        let reply: &[u8] = match verb.as_str() {
            "EHLO" | "HELO" => b"250 fake.test\r\n",
            "MAIL" => {
                mail_from = command["MAIL FROM:".len().min(command.len())..].to_owned();
                b"250 sender ok\r\n"
            }
            "RCPT" => {
                rcpt_to.push(command["RCPT TO:".len().min(command.len())..].to_owned());
                b"250 recipient ok\r\n"
            }
            "DATA" => {
                write.write_all(b"354 end with <CRLF>.<CRLF>\r\n").await?;
                let mut data = String::new();
                loop {
                    line.clear();
                    if lines.read_line(&mut line).await? == 0 {
                        return Ok(());
                    }
                    if line == ".\r\n" || line == ".\n" {
                        break;
                    }
                    data.push_str(line.strip_prefix('.').unwrap_or(&line));
                }
                let _ = tx.send(Received {
                    mail_from: std::mem::take(&mut mail_from),
                    rcpt_to: std::mem::take(&mut rcpt_to),
                    data,
                });
                b"250 queued\r\n"
            }
            "RSET" | "NOOP" => b"250 ok\r\n",
            "QUIT" => {
                write.write_all(b"221 bye\r\n").await?;
                return Ok(());
            }
            _ => b"502 not implemented\r\n",
        };
        write.write_all(reply).await?;
    }
}

/// The body of a single-part mail, decoded from its `Content-Transfer-Encoding`.
fn decoded_body(data: &str) -> String {
    let (headers, body) = data
        .split_once("\r\n\r\n")
        .expect("headers, blank line, body");
    let encoding = headers
        .lines()
        .find_map(|h| {
            let (name, value) = h.split_once(':')?;
            name.eq_ignore_ascii_case("content-transfer-encoding")
                .then(|| value.trim().to_ascii_lowercase())
        })
        .unwrap_or_else(|| "7bit".into());
    match encoding.as_str() {
        "quoted-printable" => quoted_printable(body),
        "base64" => {
            let compact: String = body.split_whitespace().collect();
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(compact)
                .expect("base64 body");
            String::from_utf8(bytes).expect("UTF-8 body")
        }
        _ => body.to_owned(),
    }
}

/// RFC 2045 quoted-printable: `=` + CRLF is a soft line break, `=XX` a byte.
fn quoted_printable(body: &str) -> String {
    let joined = body.replace("=\r\n", "");
    let mut out = Vec::new();
    let bytes = joined.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'='
            && let Some(hex) = joined.get(i + 1..i + 3)
            && let Ok(byte) = u8::from_str_radix(hex, 16)
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).expect("UTF-8 body")
}

#[tokio::test]
async fn with_mesh_smtp_url_the_reset_link_is_mailed_over_smtp_and_works() {
    let (port, mut inbox) = fake_smtp().await;
    let app = spawn_app_with(UserArgs {
        smtp_url: Some(format!("smtp://127.0.0.1:{port}")),
        password_reset_url: "https://shop.example/reset".into(),
        ..UserArgs::default()
    })
    .await;
    app.register("sue@example.com", PASSWORD).await;
    let response = app
        .post("/auth/password-reset", &json!({"email": "sue@example.com"}))
        .await;
    assert_eq!(response.status(), 202);

    let mail = tokio::time::timeout(Duration::from_secs(20), inbox.recv())
        .await
        .expect("a mail within 20 s")
        .expect("the server is running");
    assert!(
        mail.mail_from.contains("no-reply@mesh.localhost"),
        "{mail:?}"
    );
    assert_eq!(mail.rcpt_to.len(), 1, "{mail:?}");
    assert!(mail.rcpt_to[0].contains("sue@example.com"), "{mail:?}");
    assert!(
        mail.data.contains("Subject: Reset your password"),
        "{mail:?}"
    );
    let body = decoded_body(&mail.data);
    let start = body
        .find("https://shop.example/reset#token=")
        .unwrap_or_else(|| panic!("no reset link in {body}"))
        + "https://shop.example/reset#token=".len();
    let token: String = body[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    assert_eq!(token.len(), 43, "a 32-byte base64url secret: {body}");

    // Nothing went to the mail drop: SMTP replaced it.
    assert!(!app.home.data.path().join("maildrop").exists());
    // The request travelled as one `password-reset-requested` event, without the secret: that
    // is made by the worker and leaves the service only in the mail.
    let entries: redis::streams::StreamRangeReply = app
        .redis
        .clone()
        .xrange_all(format!("{}password-reset-requested", app.keys.prefix()))
        .await
        .unwrap();
    assert_eq!(entries.ids.len(), 1);
    let event = &entries.ids[0];
    assert_eq!(
        event.get::<String>("type").as_deref(),
        Some("password-reset-requested")
    );
    let fields = format!("{:?}", event.map);
    assert!(fields.contains("sue@example.com"), "{fields}");
    assert!(
        !fields.contains(&token),
        "the secret is on the stream: {fields}"
    );

    // The mailed link works, once.
    let confirm = json!({"token": token, "new_password": "mailed new password"});
    let response = app.post("/auth/password-reset/confirm", &confirm).await;
    assert_eq!(response.status(), 204);
    assert_problem(app.login("sue@example.com", PASSWORD).await, 401).await;
    app.session_with("sue@example.com", "mailed new password")
        .await;
    assert_problem(
        app.post("/auth/password-reset/confirm", &confirm).await,
        400,
    )
    .await;
    assert!(inbox.try_recv().is_err(), "exactly one mail");
}
