//! The config file: one typed tree with serde defaults, loaded and validated as a whole.
//!
//! `load` turns a file into a [`Config`] or into *every* error it can find, each with
//! file:line:column; `validate` checks cross-references. A loaded `Config` is immutable and
//! shared by `Arc`; a reload swaps in a new one (see `daemon::reload`).

pub mod email;
mod load;
pub mod locate;
mod lookup;
mod report;
pub mod validate;
pub mod webhook;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub use load::{load, parse};
pub use webhook::{WebhookConfig, WebhookFormat};

pub use crate::proto::{QueueTaskKind, Role, Scope};

/// Where `vigild` looks for its config when `--config` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/vigil/config.toml";
/// Where the daemon listens and the CLI connects when nothing else is said.
pub const DEFAULT_SOCKET: &str = "/run/vigil/vigil.sock";

/// The whole config file. Relative paths in it are resolved against the file's directory.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default = "defaults::policy_dir")]
    pub policy_dir: PathBuf,
    #[serde(default)]
    pub daemon: DaemonConfig,
    #[serde(default)]
    pub email: EmailConfig,
    #[serde(default)]
    pub tasks: TasksConfig,
    #[serde(default)]
    pub ssh: SshConfig,
    #[serde(default, rename = "user")]
    pub users: Vec<UserConfig>,
    #[serde(default, rename = "group")]
    pub groups: Vec<GroupConfig>,
    #[serde(default, rename = "node")]
    pub nodes: Vec<NodeConfig>,
    #[serde(default, rename = "plugin")]
    pub plugins: Vec<PluginConfig>,
    #[serde(default, rename = "schedule")]
    pub schedules: Vec<ScheduleConfig>,
    #[serde(default, rename = "webhook")]
    pub webhooks: Vec<WebhookConfig>,
    #[serde(skip)]
    node_index: lookup::NameIndex,
    #[serde(skip)]
    group_index: lookup::NameIndex,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DaemonConfig {
    #[serde(default = "defaults::state_dir")]
    pub state_dir: PathBuf,
    #[serde(default = "defaults::socket")]
    pub socket: PathBuf,
    /// Group that owns the control socket (mode 0660); none keeps the daemon's group.
    #[serde(default)]
    pub socket_group: Option<String>,
    #[serde(default = "defaults::plugin_dir")]
    pub plugin_dir: PathBuf,
    #[serde(default = "defaults::slots")]
    pub slots: u32,
    #[serde(default = "defaults::queue_capacity")]
    pub queue_capacity: u32,
    #[serde(default = "defaults::task_timeout", with = "humantime_serde")]
    pub task_timeout: Duration,
    #[serde(default = "defaults::shutdown_grace", with = "humantime_serde")]
    pub shutdown_grace: Duration,
    #[serde(default = "defaults::timezone")]
    pub timezone: String,
    #[serde(default = "defaults::retention_days")]
    pub retention_days: u32,
    /// Verify the database's checksums at start (refusing a corrupt one).
    #[serde(default = "defaults::check_integrity")]
    pub check_integrity: bool,
    /// Control-socket connections served at once; more clients wait until one closes.
    #[serde(default = "defaults::max_connections")]
    pub max_connections: u32,
    /// Time a client has to send a request's headers, and longest idle keep-alive wait.
    #[serde(default = "defaults::client_timeout", with = "humantime_serde")]
    pub client_timeout: Duration,
    /// Longest time from a request's headers to its response, body upload included (408).
    #[serde(default = "defaults::request_timeout", with = "humantime_serde")]
    pub request_timeout: Duration,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            state_dir: defaults::state_dir(),
            socket: defaults::socket(),
            socket_group: None,
            plugin_dir: defaults::plugin_dir(),
            slots: defaults::slots(),
            queue_capacity: defaults::queue_capacity(),
            task_timeout: defaults::task_timeout(),
            shutdown_grace: defaults::shutdown_grace(),
            timezone: defaults::timezone(),
            retention_days: defaults::retention_days(),
            check_integrity: defaults::check_integrity(),
            max_connections: defaults::max_connections(),
            client_timeout: defaults::client_timeout(),
            request_timeout: defaults::request_timeout(),
        }
    }
}

impl DaemonConfig {
    /// The timezone, parsed. Validation guarantees it parses; UTC is the safe fallback.
    pub fn tz(&self) -> chrono_tz::Tz {
        self.timezone.parse().unwrap_or(chrono_tz::UTC)
    }
}

/// How findings become user tasks.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TasksConfig {
    /// One task for the whole organisation per change set (assigned to the owner of the
    /// group with the most affected nodes), instead of one per owner group.
    #[serde(default)]
    pub group_across_owners: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    #[serde(default = "defaults::from")]
    pub from: String,
    /// Without it, mail goes to `state_dir/maildir`.
    #[serde(default)]
    pub smtp: Option<SmtpConfig>,
    #[serde(default = "defaults::max_backoff", with = "humantime_serde")]
    pub max_backoff: Duration,
    #[serde(default = "defaults::give_up_after", with = "humantime_serde")]
    pub give_up_after: Duration,
}

impl Default for EmailConfig {
    fn default() -> Self {
        EmailConfig {
            from: defaults::from(),
            smtp: None,
            max_backoff: defaults::max_backoff(),
            give_up_after: defaults::give_up_after(),
        }
    }
}

/// SMTP transport settings. The password lives in a file, never in the config itself.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    pub host: String,
    #[serde(default = "defaults::smtp_port")]
    pub port: u16,
    #[serde(default)]
    pub tls: TlsMode,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    #[serde(default = "defaults::smtp_timeout", with = "humantime_serde")]
    pub timeout: Duration,
}

impl fmt::Debug for SmtpConfig {
    // Written by hand so that nothing secret-adjacent is ever printed by accident.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("username", &self.username)
            .field(
                "password_file",
                &self.password_file.as_ref().map(|_| "<set>"),
            )
            .field("timeout", &self.timeout)
            .finish()
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    #[default]
    Starttls,
    Tls,
    None,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    pub email: String,
    #[serde(default)]
    pub unix_user: Option<String>,
    #[serde(default)]
    pub uid: Option<u32>,
    pub role: Role,
    /// The uid after `unix_user` was looked up; filled in by validation.
    #[serde(skip)]
    pub resolved_uid: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupConfig {
    pub name: String,
    #[serde(default)]
    pub owners: Vec<String>,
    #[serde(default = "defaults::yes")]
    pub auto_assign: bool,
    /// Overrides `ssh.identity_file` for the group's remote nodes.
    #[serde(default)]
    pub identity_file: Option<PathBuf>,
    /// Overrides `ssh.become` for the group's remote nodes.
    #[serde(default, rename = "become")]
    pub become_: Option<Become>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    pub name: String,
    #[serde(default)]
    pub groups: Vec<String>,
    /// The filesystem root plugins read: on this machine, or with `ssh` on the remote host
    /// (default `/` there). Empty until validation for a node that did not set it.
    #[serde(default)]
    pub root: PathBuf,
    /// `[user@]host[:port]`: the node is scanned on that host over SSH.
    #[serde(default)]
    pub ssh: Option<String>,
}

/// The shared settings of remote (`ssh`) nodes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SshConfig {
    /// The private key `ssh -i` uses; default: ssh's own choice (agent, ~/.ssh).
    #[serde(default)]
    pub identity_file: Option<PathBuf>,
    /// vigil's own known_hosts (`UserKnownHostsFile`); default `state_dir/known_hosts`,
    /// filled in at load.
    #[serde(default)]
    pub known_hosts: PathBuf,
    #[serde(default = "defaults::connect_timeout", with = "humantime_serde")]
    pub connect_timeout: Duration,
    #[serde(default, rename = "become")]
    pub become_: Become,
    /// Where the pushed worker and plugin libraries live on the remote host.
    #[serde(default = "defaults::worker_dir")]
    pub worker_dir: PathBuf,
    /// SSH sessions (remote queue tasks) at once; default `daemon.slots`.
    #[serde(default)]
    pub max_connections: Option<u32>,
}

impl Default for SshConfig {
    fn default() -> Self {
        SshConfig {
            identity_file: None,
            known_hosts: PathBuf::new(),
            connect_timeout: defaults::connect_timeout(),
            become_: Become::None,
            worker_dir: defaults::worker_dir(),
            max_connections: None,
        }
    }
}

/// How the remote worker gets its rights.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Become {
    /// As the login user.
    #[default]
    None,
    /// As root through `sudo -n` when the login user is not root.
    Sudo,
}

/// A remote node's `ssh` target, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshTarget {
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
}

impl SshTarget {
    /// Parses `[user@]host[:port]` (an IPv6 address in brackets: `[::1]:2222`). Refuses what
    /// ssh could take for an option or that has no host.
    pub fn parse(text: &str) -> Result<SshTarget, String> {
        let bad = |why: &str| {
            Err(format!(
                "bad ssh target {text:?}: {why}; write [user@]host[:port]"
            ))
        };
        if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return bad("no spaces or control characters");
        }
        let (user, rest) = match text.rsplit_once('@') {
            Some((u, r)) => (Some(u.to_owned()), r),
            None => (None, text),
        };
        if user
            .as_deref()
            .is_some_and(|u| u.is_empty() || u.starts_with('-'))
        {
            return bad("empty user name, or one that starts with '-'");
        }
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let Some((h, after)) = v6.split_once(']') else {
                return bad("unclosed '['");
            };
            match after.strip_prefix(':') {
                Some(p) => (h, Some(p)),
                None if after.is_empty() => (h, None),
                None => return bad("text after ']'"),
            }
        } else {
            match rest.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (rest, None),
            }
        };
        if host.is_empty() || host.starts_with('-') {
            return bad("empty host name, or one that starts with '-'");
        }
        let port = match port {
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n > 0 => Some(n),
                _ => return bad("the port must be a number from 1 to 65535"),
            },
            None => None,
        };
        Ok(SshTarget {
            user,
            host: host.to_owned(),
            port,
        })
    }

    /// `user@host` as ssh takes it (the port goes in `-p`).
    pub fn destination(&self) -> String {
        match &self.user {
            Some(u) => format!("{u}@{}", self.host),
            None => self.host.clone(),
        }
    }
}

impl NodeConfig {
    /// The parsed `ssh` target of a remote node; `None` for a local one. Validation has
    /// checked that it parses.
    pub fn ssh_target(&self) -> Option<SshTarget> {
        self.ssh.as_deref().and_then(|s| SshTarget::parse(s).ok())
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginConfig {
    pub name: String,
    /// Relative to `daemon.plugin_dir`, or absolute. Default: `libvigil_<name>.so`.
    #[serde(default)]
    pub library: Option<PathBuf>,
    #[serde(default)]
    pub ignore_attributes: Vec<String>,
    #[serde(default)]
    pub ignore_keys: Vec<String>,
    /// Handed to the plugin as-is (encoded as JSON).
    #[serde(default)]
    pub config: toml::Table,
}

impl PluginConfig {
    /// The library file to load, resolved against `plugin_dir`.
    pub fn library_path(&self, plugin_dir: &Path) -> PathBuf {
        let lib = self
            .library
            .clone()
            .unwrap_or_else(|| PathBuf::from(format!("libvigil_{}.so", self.name)));
        plugin_dir.join(lib)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    pub name: String,
    pub kind: QueueTaskKind,
    /// Six fields: sec min hour day month weekday.
    pub cron: String,
    #[serde(default = "defaults::scope")]
    pub scope: Scope,
    /// Default: all configured plugins.
    #[serde(default)]
    pub plugins: Option<Vec<String>>,
    /// Default: all policies.
    #[serde(default)]
    pub policies: Option<Vec<String>>,
}

impl Config {
    /// The configured user with this uid, if any.
    pub fn user_by_uid(&self, uid: u32) -> Option<&UserConfig> {
        self.users.iter().find(|u| u.resolved_uid == uid)
    }

    pub fn node(&self, name: &str) -> Option<&NodeConfig> {
        self.node_index.find(&self.nodes, name, |n| &n.name)
    }

    pub fn group(&self, name: &str) -> Option<&GroupConfig> {
        self.group_index.find(&self.groups, name, |g| &g.name)
    }

    /// The identity file and become mode for a remote node: the first of its groups that
    /// sets one overrides `[ssh]`.
    pub fn ssh_identity(&self, node: &NodeConfig) -> (Option<&Path>, Become) {
        let groups = || node.groups.iter().filter_map(|g| self.group(g));
        let identity = groups()
            .find_map(|g| g.identity_file.as_deref())
            .or(self.ssh.identity_file.as_deref());
        let become_ = groups().find_map(|g| g.become_).unwrap_or(self.ssh.become_);
        (identity, become_)
    }

    /// SSH sessions at once.
    pub fn ssh_max_connections(&self) -> u32 {
        self.ssh.max_connections.unwrap_or(self.daemon.slots).max(1)
    }

    pub fn webhook(&self, name: &str) -> Option<&WebhookConfig> {
        self.webhooks.iter().find(|w| w.name == name)
    }

    pub fn plugin(&self, name: &str) -> Option<&PluginConfig> {
        self.plugins.iter().find(|p| p.name == name)
    }

    /// Nodes a scope covers, in config order.
    pub fn nodes_in(&self, scope: &Scope) -> Vec<&NodeConfig> {
        self.nodes
            .iter()
            .filter(|n| match scope {
                Scope::All => true,
                Scope::Group(g) => n.groups.iter().any(|x| x == g),
                Scope::Node(name) => &n.name == name,
            })
            .collect()
    }

    /// Counts for a one-line summary.
    pub fn summary(&self) -> BTreeMap<&'static str, usize> {
        BTreeMap::from([
            ("users", self.users.len()),
            ("groups", self.groups.len()),
            ("nodes", self.nodes.len()),
            ("plugins", self.plugins.len()),
            ("schedules", self.schedules.len()),
        ])
    }
}

/// Default values, one function each so serde and `Default` agree.
mod defaults {
    use std::path::PathBuf;
    use std::time::Duration;

    pub fn policy_dir() -> PathBuf {
        "/etc/vigil/policies".into()
    }
    pub fn state_dir() -> PathBuf {
        "/var/lib/vigil".into()
    }
    pub fn socket() -> PathBuf {
        super::DEFAULT_SOCKET.into()
    }
    pub fn plugin_dir() -> PathBuf {
        "/usr/lib/vigil/plugins".into()
    }
    pub fn slots() -> u32 {
        4
    }
    pub fn queue_capacity() -> u32 {
        10_000
    }
    pub fn task_timeout() -> Duration {
        Duration::from_secs(2 * 3600)
    }
    pub fn shutdown_grace() -> Duration {
        Duration::from_secs(30)
    }
    pub fn max_connections() -> u32 {
        64
    }
    pub fn client_timeout() -> Duration {
        Duration::from_secs(10)
    }
    pub fn request_timeout() -> Duration {
        Duration::from_secs(60)
    }
    pub fn timezone() -> String {
        "UTC".into()
    }
    pub fn check_integrity() -> bool {
        true
    }
    pub fn retention_days() -> u32 {
        30
    }
    pub fn from() -> String {
        "vigil@localhost".into()
    }
    pub fn smtp_port() -> u16 {
        587
    }
    pub fn smtp_timeout() -> Duration {
        Duration::from_secs(30)
    }
    pub fn max_backoff() -> Duration {
        Duration::from_secs(3600)
    }
    pub fn give_up_after() -> Duration {
        Duration::from_secs(5 * 24 * 3600)
    }
    pub fn scope() -> super::Scope {
        super::Scope::All
    }
    pub fn yes() -> bool {
        true
    }
    pub fn connect_timeout() -> Duration {
        Duration::from_secs(10)
    }
    pub fn worker_dir() -> PathBuf {
        "/var/tmp/vigil".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smtp_debug_hides_password_file_path() {
        let smtp = SmtpConfig {
            host: "h".into(),
            port: 25,
            tls: TlsMode::None,
            username: Some("u".into()),
            password_file: Some("/secret/path".into()),
            timeout: Duration::from_secs(1),
        };
        assert!(!format!("{smtp:?}").contains("/secret/path"));
    }
}
