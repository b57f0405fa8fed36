//! `[[webhook]]` entries: where the event log is pushed (see `webhook`), and their checks.
//! The secret is read from its file at load, so a reload picks up a rotated one; it is
//! never printed (`Debug` is written by hand).

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use serde::Deserialize;

use super::locate::Seg::{Index as I, Key as K};
use super::report::Reporter;
use super::Config;
use crate::proto::EventKind;

/// The prefix of a Standard Webhooks secret.
pub const SECRET_PREFIX: &str = "whsec_";
/// Fewest key bytes a secret may decode to (Standard Webhooks uses 24 to 64).
pub const MIN_KEY_BYTES: usize = 16;
/// The most of a secret file read.
const MAX_SECRET_BYTES: u64 = 4096;

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    pub name: String,
    /// `https://…`, or `http://` to this machine (loopback) unless `allow_insecure`.
    pub url: String,
    /// Allows `http://` to another host: the events travel readable on the network.
    #[serde(default)]
    pub allow_insecure: bool,
    /// A file holding a Standard Webhooks secret (`whsec_` + base64 key), not readable by
    /// others.
    pub secret_file: PathBuf,
    /// The event kinds sent; default every `task.*` kind.
    #[serde(default)]
    pub events: Option<Vec<String>>,
    #[serde(default)]
    pub format: WebhookFormat,
    /// The PagerDuty integration key (Events API v2); required by `format = "pagerduty"`.
    #[serde(default)]
    pub routing_key: Option<String>,
    /// Longest a request may take, connection and answer included.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Longest wait between retries (the first comes after about 10 s, then doubling).
    #[serde(default = "default_max_backoff", with = "humantime_serde")]
    pub max_backoff: Duration,
    /// An event still undelivered after this long is a dead letter.
    #[serde(default = "default_give_up_after", with = "humantime_serde")]
    pub give_up_after: Duration,
    /// The key the secret decodes to; filled in by validation.
    #[serde(skip)]
    pub key: Vec<u8>,
}

impl fmt::Debug for WebhookConfig {
    // By hand: the key and the routing key are secrets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("allow_insecure", &self.allow_insecure)
            .field("secret_file", &self.secret_file)
            .field("events", &self.events)
            .field("format", &self.format)
            .field("routing_key", &self.routing_key.as_ref().map(|_| "<set>"))
            .field("timeout", &self.timeout)
            .field("max_backoff", &self.max_backoff)
            .field("give_up_after", &self.give_up_after)
            .finish()
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookFormat {
    /// A CloudEvents 1.0 structured-mode JSON envelope, `type` `vigil.<kind>`.
    #[default]
    Cloudevents,
    /// PagerDuty Events API v2.
    Pagerduty,
}

impl WebhookFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookFormat::Cloudevents => "cloudevents",
            WebhookFormat::Pagerduty => "pagerduty",
        }
    }
}

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_max_backoff() -> Duration {
    Duration::from_secs(3600)
}
fn default_give_up_after() -> Duration {
    Duration::from_secs(5 * 24 * 3600)
}

impl WebhookConfig {
    /// The event kinds this endpoint receives as requests: those it asked for (default:
    /// every task kind), and for PagerDuty only those it maps (opened, reopened, updated:
    /// trigger; closed: resolve).
    pub fn kinds(&self) -> Vec<EventKind> {
        let asked: Vec<EventKind> = match &self.events {
            Some(names) => names.iter().filter_map(|n| EventKind::parse(n)).collect(),
            None => EventKind::ALL
                .into_iter()
                .filter(|k| k.as_str().starts_with("task."))
                .collect(),
        };
        match self.format {
            WebhookFormat::Cloudevents => asked,
            WebhookFormat::Pagerduty => asked
                .into_iter()
                .filter(|k| crate::proto::pagerduty_action(*k).is_some())
                .collect(),
        }
    }
}

/// Reads and checks a secret file: not readable by others, `whsec_` + base64 of at least
/// [`MIN_KEY_BYTES`]. Returns the key.
pub fn read_secret(path: &Path) -> Result<Vec<u8>, String> {
    use std::os::unix::fs::MetadataExt;
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| {
        format!("cannot read secret_file {shown}: {e}; create it with `vigil webhooks secret`")
    })?;
    if meta.mode() & 0o004 != 0 {
        return Err(format!(
            "secret_file {shown} is readable by every user (mode {:04o}): chmod 600 {shown} \
             (or 640 with a group only vigild's admins are in)",
            meta.mode() & 0o7777
        ));
    }
    if !meta.is_file() {
        return Err(format!("secret_file {shown} is not a regular file"));
    }
    // A secret is a line; a bounded read keeps a wrong path (a device, a huge file) harmless.
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_SECRET_BYTES).read_to_string(&mut text))
        .map_err(|e| format!("cannot read secret_file {shown}: {e}"))?;
    parse_secret(text.trim()).map_err(|why| format!("secret_file {shown}: {why}"))
}

/// The key of a `whsec_<base64>` secret.
pub fn parse_secret(text: &str) -> Result<Vec<u8>, String> {
    let hint = "it must hold one Standard Webhooks secret, `whsec_` followed by a base64 key \
                (`vigil webhooks secret` makes one)";
    let Some(b64) = text.strip_prefix(SECRET_PREFIX) else {
        return Err(format!("no `{SECRET_PREFIX}` prefix: {hint}"));
    };
    let key = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|e| format!("the key is not base64 ({e}): {hint}"))?;
    if key.len() < MIN_KEY_BYTES {
        return Err(format!(
            "the key is {} bytes, fewer than {MIN_KEY_BYTES}: {hint}",
            key.len()
        ));
    }
    Ok(key)
}

/// A fresh Standard Webhooks secret: `whsec_` + base64 of 32 random bytes.
pub fn new_secret() -> Result<String, String> {
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).map_err(|e| format!("cannot get random bytes: {e}"))?;
    Ok(format!(
        "{}{}",
        SECRET_PREFIX,
        base64::engine::general_purpose::STANDARD.encode(key)
    ))
}

/// True for a host name or address that stays on this machine.
pub fn is_loopback(host: &url::Host<&str>) -> bool {
    match host {
        url::Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => ip.is_loopback(),
    }
}

pub(super) fn validate(c: &mut Config, r: &mut Reporter<'_>) {
    let mut seen = std::collections::HashMap::new();
    for (i, w) in c.webhooks.iter_mut().enumerate() {
        let at = |k| [K("webhook"), I(i), K(k)];
        super::validate::check_name(&w.name, &at("name"), r);
        if let Some(first) = seen.insert(w.name.clone(), i) {
            r.at(
                &at("name"),
                format!(
                    "duplicate webhook name {:?} (also webhook #{})",
                    w.name,
                    first + 1
                ),
            );
        }
        match url::Url::parse(&w.url) {
            Err(e) => r.at(
                &at("url"),
                format!("bad url {:?}: {e}; write https://host[:port]/path", w.url),
            ),
            Ok(u) => match (u.scheme(), u.host()) {
                (_, None) => r.at(&at("url"), format!("url {:?} names no host", w.url)),
                ("https", Some(_)) => {}
                ("http", Some(h)) if is_loopback(&h) || w.allow_insecure => {}
                ("http", Some(h)) => r.at(
                    &at("url"),
                    format!(
                        "url {:?} is http:// to {h}, another machine: the events would cross \
                         the network readable by anyone on the way; use https://, or set \
                         allow_insecure = true if that network is yours",
                        w.url
                    ),
                ),
                (scheme, _) => r.at(
                    &at("url"),
                    format!("url {:?}: scheme {scheme:?} is not http or https", w.url),
                ),
            },
        }
        if w.events.as_ref().is_some_and(Vec::is_empty) {
            r.at(
                &at("events"),
                "events = [] sends nothing: leave it out for every task kind, or name kinds",
            );
        }
        if let Some(names) = &w.events {
            for (j, n) in names.iter().enumerate() {
                if EventKind::parse(n).is_none() {
                    let known: Vec<&str> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
                    r.at(
                        &[K("webhook"), I(i), K("events"), I(j)],
                        format!("unknown event kind {n:?}: use {}", known.join(", ")),
                    );
                }
            }
        }
        match (w.format, &w.routing_key) {
            (WebhookFormat::Pagerduty, None) => r.at(
                &at("format"),
                "format = \"pagerduty\" needs routing_key: the integration key of the \
                 PagerDuty service (Events API v2)",
            ),
            (WebhookFormat::Pagerduty, Some(k)) if k.trim().is_empty() => {
                r.at(&at("routing_key"), "routing_key is empty")
            }
            (WebhookFormat::Cloudevents, Some(_)) => r.at(
                &at("routing_key"),
                "routing_key is only for format = \"pagerduty\"",
            ),
            _ => {}
        }
        if w.timeout.is_zero() {
            r.at(&at("timeout"), "timeout must be longer than 0s");
        }
        if w.max_backoff.is_zero() {
            r.at(&at("max_backoff"), "max_backoff must be longer than 0s");
        }
        match read_secret(&w.secret_file) {
            Ok(key) => w.key = key,
            Err(why) => r.at(&at("secret_file"), why),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    use super::*;

    fn secret_in(dir: &Path) -> PathBuf {
        let p = dir.join("s");
        std::fs::write(&p, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        p
    }

    #[test]
    fn defaults_and_the_kinds_each_format_sends() {
        let dir = tempfile::tempdir().unwrap();
        let s = secret_in(dir.path());
        let text = format!(
            "[[webhook]]\nname = \"a\"\nurl = \"https://h/x\"\nsecret_file = \"{s}\"\n\
             [[webhook]]\nname = \"pd\"\nurl = \"http://[::1]:8/x\"\nsecret_file = \"{s}\"\nformat = \"pagerduty\"\nrouting_key = \"k\"\n",
            s = s.display()
        );
        let c = crate::config::parse(Path::new("c.toml"), &text, Path::new("/")).unwrap();
        let a = &c.webhooks[0];
        assert_eq!(a.format, WebhookFormat::Cloudevents);
        assert_eq!(a.timeout, Duration::from_secs(10));
        assert_eq!(a.key.len(), 24);
        assert_eq!(
            a.kinds().iter().map(|k| k.as_str()).collect::<Vec<_>>(),
            [
                "task.opened",
                "task.updated",
                "task.assigned",
                "task.closed",
                "task.reopened"
            ]
        );
        assert_eq!(
            c.webhooks[1]
                .kinds()
                .iter()
                .map(|k| k.as_str())
                .collect::<Vec<_>>(),
            [
                "task.opened",
                "task.updated",
                "task.closed",
                "task.reopened"
            ],
            "PagerDuty is not sent assignments"
        );
        assert!(!format!("{a:?}").contains("MfKQ"), "no secret in Debug");
    }

    #[test]
    fn a_new_secret_parses_back_to_32_bytes() {
        assert_eq!(parse_secret(&new_secret().unwrap()).unwrap().len(), 32);
    }

    #[test]
    fn secrets_must_be_whsec_base64_of_enough_bytes() {
        assert!(parse_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_ok());
        assert!(parse_secret("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
            .unwrap_err()
            .contains("prefix"));
        assert!(parse_secret("whsec_!!!").unwrap_err().contains("base64"));
        assert!(parse_secret("whsec_c2hvcnQ=")
            .unwrap_err()
            .contains("fewer"));
    }
}
