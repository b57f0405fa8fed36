//! Turning an outbox row into an RFC 5322 message (lettre's typed builders only) and handing
//! it to the configured transport: SMTP, or the maildir under the state dir by default.
//!
//! Every failure is classified: permanent ones (5xx, an invalid recipient) make a dead letter
//! at once; transient ones are retried, and those that say "the server is unreachable" pause
//! the whole outbox instead of being met again by every mail in turn.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use lettre::address::{Address, Envelope};
use lettre::message::header::{self, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls as LettreTls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::{Deserialize, Serialize};

use super::StoredMail;
use crate::config::{Config, SmtpConfig, TlsMode};

/// Why a delivery attempt failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The mail can never be delivered as it is (5xx reply, invalid recipient).
    #[error("{0}")]
    Permanent(String),
    /// This mail may go through later (4xx reply).
    #[error("{0}")]
    Transient(String),
    /// The transport as a whole is not working (connection refused, timeout, TLS, unreadable
    /// password file, maildir not writable): no other mail will fare better right now.
    #[error("{0}")]
    Unavailable(String),
}

/// `Auto-Submitted: auto-generated` (RFC 3834), so that vacation responders stay quiet.
#[derive(Debug, Clone)]
struct AutoSubmitted;

impl header::Header for AutoSubmitted {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("Auto-Submitted")
    }
    fn parse(_: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(AutoSubmitted)
    }
    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), "auto-generated".to_owned())
    }
}

/// Builds the message for `mail`, From `from`. The same row always builds the same headers
/// (Message-ID and Date come from the row), so a re-sent mail is recognisable as a duplicate.
pub fn build_message(from: &str, mail: &StoredMail) -> Result<Message, SendError> {
    let from: Mailbox = crate::config::email::check_mailbox(from)
        .map_err(|why| SendError::Unavailable(format!("email.from {why}; fix it in the config")))?;
    let to: Mailbox = crate::config::email::check_mailbox(&mail.to)
        .map_err(|why| SendError::Permanent(format!("recipient {why}")))?;
    let builder = Message::builder()
        .from(from)
        .to(to)
        .subject(super::content::clean_subject(&mail.subject))
        .message_id(Some(mail.message_id.clone()))
        .date(SystemTime::from(mail.created_at))
        .header(AutoSubmitted);
    let built = match &mail.html {
        Some(html) => builder.multipart(MultiPart::alternative_plain_html(
            mail.text.clone(),
            html.clone(),
        )),
        None => builder.singlepart(SinglePart::plain(mail.text.clone())),
    };
    built.map_err(|e| SendError::Permanent(format!("cannot build the message: {e}")))
}

/// Where mail goes, decided from the config in force for one round of deliveries.
pub enum Transport {
    /// SMTP, one delivery process per attempt (`outbox::attempt`).
    Smtp(SmtpTarget),
    Maildir(PathBuf),
}

impl Transport {
    /// The transport `config` asks for. Reads the SMTP password file: an error here is
    /// [`SendError::Unavailable`] and shows in `/v1/status` until it is fixed.
    pub fn from_config(config: &Config) -> Result<Transport, SendError> {
        match &config.email.smtp {
            None => Ok(Transport::Maildir(config.daemon.state_dir.join("maildir"))),
            Some(smtp) => SmtpTarget::from_config(smtp).map(Transport::Smtp),
        }
    }

    /// A short name for logs: `smtp.example.com:587` or the maildir path.
    pub fn describe(&self) -> String {
        match self {
            Transport::Smtp(target) => format!("SMTP {}", target.server()),
            Transport::Maildir(dir) => format!("maildir {}", dir.display()),
        }
    }
}

/// Maildir delivery of mail `id`. Idempotent: the file's name comes from the row (`id` and
/// its creation time), so a delivery repeated after a crash finds the mail there (in `new/`,
/// or read in `cur/`) and writes nothing.
pub async fn send_maildir(
    dir: &Path,
    id: u64,
    created: SystemTime,
    message: &Message,
) -> Result<(), SendError> {
    let dir = dir.to_owned();
    let bytes = message.formatted();
    tokio::task::spawn_blocking(move || write_maildir(&dir, id, created, &bytes))
        .await
        .map_err(|e| SendError::Unavailable(format!("maildir task failed: {e}")))?
}

/// What a delivery process needs of `email.smtp`, the password read already. Travels to the
/// process over a pipe, never in its arguments or environment; `Debug` leaves it out.
#[derive(Clone, Serialize, Deserialize)]
pub struct SmtpTarget {
    host: String,
    port: u16,
    tls: Tls,
    /// One attempt, connect to the last reply, at most this long.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    username: Option<String>,
    password: Option<String>,
}

#[derive(Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Tls {
    None,
    Starttls,
    Wrapper,
}

impl std::fmt::Debug for SmtpTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpTarget")
            .field("server", &self.server())
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl SmtpTarget {
    fn from_config(smtp: &SmtpConfig) -> Result<SmtpTarget, SendError> {
        let server = format!("{}:{}", smtp.host, smtp.port);
        let password = match (&smtp.username, &smtp.password_file) {
            (Some(_), Some(path)) => Some(read_password(path).map_err(|reason| {
                SendError::Unavailable(format!(
                    "SMTP {server}: cannot read email.smtp.password_file {}: {reason}; \
                     make it readable by vigild",
                    path.display()
                ))
            })?),
            (Some(_), None) => Some(String::new()),
            (None, _) => None,
        };
        Ok(SmtpTarget {
            host: smtp.host.clone(),
            port: smtp.port,
            tls: match smtp.tls {
                TlsMode::None => Tls::None,
                TlsMode::Starttls => Tls::Starttls,
                TlsMode::Tls => Tls::Wrapper,
            },
            timeout: smtp.timeout,
            username: smtp.username.clone(),
            password,
        })
    }

    /// `host:port`, for messages.
    pub fn server(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// Delivers `message` (formatted bytes) from `from` to `to`: the whole exchange, from
    /// connect to the final reply, takes at most `timeout`. Runs in the delivery process.
    pub async fn send_raw(
        &self,
        from: &str,
        to: &[String],
        message: &[u8],
    ) -> Result<(), SendError> {
        let server = self.server();
        let bad = |what: &str, e: &dyn std::fmt::Display| {
            SendError::Permanent(format!("SMTP {server}: bad envelope {what}: {e}"))
        };
        let from: Address = from.parse().map_err(|e| bad("sender", &e))?;
        let to = to
            .iter()
            .map(|t| t.parse::<Address>().map_err(|e| bad("recipient", &e)))
            .collect::<Result<Vec<_>, _>>()?;
        let envelope = Envelope::new(Some(from), to).map_err(|e| bad("", &e))?;
        let transport = self.transport()?;
        match tokio::time::timeout(self.timeout, transport.send_raw(&envelope, message)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(classify(&server, &e)),
            Err(_) => Err(SendError::Unavailable(format!(
                "SMTP {server}: no complete answer within {} (email.smtp.timeout)",
                humantime::format_duration(self.timeout)
            ))),
        }
    }

    fn transport(&self) -> Result<AsyncSmtpTransport<Tokio1Executor>, SendError> {
        let tls_params = || {
            TlsParameters::new(self.host.clone()).map_err(|e| {
                SendError::Unavailable(format!("SMTP {}: cannot set up TLS: {e}", self.server()))
            })
        };
        let tls = match self.tls {
            Tls::None => LettreTls::None,
            Tls::Starttls => LettreTls::Required(tls_params()?),
            Tls::Wrapper => LettreTls::Wrapper(tls_params()?),
        };
        let mut builder =
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(self.host.clone())
                .port(self.port)
                .tls(tls)
                .timeout(Some(self.timeout));
        if let Some(user) = &self.username {
            builder = builder.credentials(Credentials::new(
                user.clone(),
                self.password.clone().unwrap_or_default(),
            ));
        }
        Ok(builder.build())
    }
}

/// The password is the file's first line; it never leaves this function except inside
/// lettre's `Credentials` (whose `Debug` prints nothing).
fn read_password(path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    Ok(text.lines().next().unwrap_or("").to_owned())
}

fn classify(server: &str, e: &lettre::transport::smtp::Error) -> SendError {
    let message = format!("SMTP {server}: {}", one_line(&e.to_string()));
    if e.is_permanent() {
        SendError::Permanent(message)
    } else if e.is_transient() {
        SendError::Transient(message)
    } else {
        SendError::Unavailable(message)
    }
}

/// Server replies can span lines; status and tables want one.
fn one_line(s: &str) -> String {
    super::content::clean_line(s, 500)
}

/// Maildir delivery: write to `tmp/`, fsync, rename into `new/`, fsync the directory. Lines
/// end in LF as maildir readers expect.
fn write_maildir(dir: &Path, id: u64, created: SystemTime, crlf: &[u8]) -> Result<(), SendError> {
    let fail = |what: &str, path: &Path, e: std::io::Error| {
        SendError::Unavailable(format!(
            "maildir: cannot {what} {}: {e}; check space and permissions of the state dir",
            path.display()
        ))
    };
    for sub in ["cur", "new", "tmp"] {
        let p = dir.join(sub);
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&p)
            .map_err(|e| fail("create", &p, e))?;
    }
    let at = created
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let host = super::message_id_host();
    let name = format!("{}.M{}Q{id}.{host}", at.as_secs(), at.subsec_micros());
    if delivered_before(dir, &name) {
        return Ok(());
    }
    let tmp = dir.join("tmp").join(&name);
    let new = dir.join("new").join(&name);
    let lf = crlf_to_lf(crlf);
    // A tmp file of the same name is an earlier attempt that did not finish: replaced.
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| fail("create", &tmp, e))?;
    file.write_all(&lf)
        .and_then(|()| file.sync_all())
        .map_err(|e| fail("write", &tmp, e))?;
    drop(file);
    std::fs::rename(&tmp, &new).map_err(|e| fail("move into new/", &tmp, e))?;
    let newdir = dir.join("new");
    File::open(&newdir)
        .and_then(|d| d.sync_all())
        .map_err(|e| fail("sync", &newdir, e))?;
    Ok(())
}

/// Whether a mail file `name` is in `new/`, or in `cur/` (where a reader moves it, adding
/// `:2,FLAGS`).
fn delivered_before(dir: &Path, name: &str) -> bool {
    if dir.join("new").join(name).exists() {
        return true;
    }
    let read = format!("{name}:");
    std::fs::read_dir(dir.join("cur")).is_ok_and(|entries| {
        entries.flatten().any(|e| {
            let n = e.file_name();
            let n = n.to_string_lossy();
            *n == *name || n.starts_with(&read)
        })
    })
}

fn crlf_to_lf(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\r' && bytes.get(i + 1) == Some(&b'\n') {
            i += 1;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbox::MailState;
    use chrono::Utc;

    fn row(to: &str, subject: &str) -> StoredMail {
        StoredMail {
            to: to.into(),
            subject: subject.into(),
            text: "line one\n.\nlast".into(),
            html: Some("<p>x</p>".into()),
            message_id: "<outbox-7.00ff@host>".into(),
            cause: "test".into(),
            created_at: Utc::now(),
            queued_at: Utc::now(),
            attempts: 0,
            last_error: None,
            state: MailState::Pending {
                next_attempt_at: Utc::now(),
            },
        }
    }

    #[test]
    fn message_has_one_subject_and_our_message_id() {
        let m = build_message("vigil@example.com", &row("a@example.com", "a\r\nBcc: x@y")).unwrap();
        let text = String::from_utf8(m.formatted()).unwrap();
        let head = text.split("\r\n\r\n").next().unwrap();
        assert_eq!(head.matches("Subject:").count(), 1, "{head}");
        assert!(!head.contains("\r\nBcc:"), "{head}");
        assert!(head.contains("Message-ID: <outbox-7.00ff@host>"), "{head}");
        assert!(head.contains("Auto-Submitted: auto-generated"), "{head}");
    }

    #[test]
    fn bad_recipient_is_permanent_bad_from_is_not() {
        let e = build_message("vigil@example.com", &row("not an address", "s")).unwrap_err();
        assert!(matches!(e, SendError::Permanent(_)), "{e}");
        let e = build_message("nope", &row("a@example.com", "s")).unwrap_err();
        assert!(matches!(e, SendError::Unavailable(_)), "{e}");
        assert!(e.to_string().contains("email.from"));
    }

    #[test]
    fn maildir_delivery_is_one_lf_file_in_new() {
        let tmp = tempfile::tempdir().unwrap();
        let created = SystemTime::now();
        write_maildir(tmp.path(), 3, created, b"Subject: x\r\n\r\nbody\r\n").unwrap();
        // Delivered again after a crash: found, not written twice, also once it was read.
        write_maildir(tmp.path(), 3, created, b"Subject: x\r\n\r\nbody\r\n").unwrap();
        let files: Vec<_> = std::fs::read_dir(tmp.path().join("new"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(files.len(), 1);
        assert_eq!(std::fs::read(&files[0]).unwrap(), b"Subject: x\n\nbody\n");
        assert_eq!(
            std::fs::read_dir(tmp.path().join("tmp")).unwrap().count(),
            0
        );
        assert!(tmp.path().join("cur").is_dir());
        let name = files[0].file_name().unwrap().to_owned();
        let mut read = tmp.path().join("cur").join(&name).into_os_string();
        read.push(":2,S");
        std::fs::rename(&files[0], &read).unwrap();
        write_maildir(tmp.path(), 3, created, b"Subject: x\r\n\r\nbody\r\n").unwrap();
        assert_eq!(
            std::fs::read_dir(tmp.path().join("new")).unwrap().count(),
            0
        );
    }

    #[test]
    fn password_is_the_first_line_of_its_file() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("pw");
        std::fs::write(&p, "s3cret\n").unwrap();
        assert_eq!(read_password(&p).unwrap(), "s3cret");
        assert!(read_password(&tmp.path().join("missing")).is_err());
    }
}
