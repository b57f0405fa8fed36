//! Cross-reference checks on a deserialized config: names that must exist, things that must
//! be unique, values serde cannot judge (cron, timezone, globs). Every problem is reported.

use std::collections::HashMap;

use croner::parser::{CronParser, Seconds};

use super::locate::Seg::{self, Index as I, Key as K};
use super::report::Reporter;
use super::{Config, QueueTaskKind, Scope};

pub(super) fn validate(config: &mut Config, r: &mut Reporter<'_>) {
    daemon(config, r);
    email(config, r);
    users(config, r);
    groups(config, r);
    nodes(config, r);
    ssh(config, r);
    plugins(config, r);
    schedules(config, r);
    super::webhook::validate(config, r);
}

/// Parses a cron expression exactly as the scheduler will (six fields, seconds first).
pub fn parse_cron(expr: &str) -> Result<croner::Cron, String> {
    CronParser::builder()
        .seconds(Seconds::Required)
        .dom_and_dow(true)
        .build()
        .parse(expr)
        .map_err(|e| format!("invalid cron expression {expr:?}: {e} (expected six fields: sec min hour day month weekday)"))
}

fn daemon(c: &Config, r: &mut Reporter<'_>) {
    let d = &c.daemon;
    if d.slots == 0 {
        r.at(
            &[K("daemon"), K("slots")],
            "slots must be at least 1: no task could ever run",
        );
    }
    if d.queue_capacity == 0 {
        r.at(
            &[K("daemon"), K("queue_capacity")],
            "queue_capacity must be at least 1",
        );
    }
    if d.max_connections == 0 {
        r.at(
            &[K("daemon"), K("max_connections")],
            "max_connections must be at least 1: no client could connect",
        );
    }
    for (key, value) in [
        ("client_timeout", d.client_timeout),
        ("request_timeout", d.request_timeout),
    ] {
        if value.is_zero() {
            r.at(
                &[K("daemon"), K(key)],
                format!("{key} must be longer than 0s: every request would time out"),
            );
        }
    }
    if d.retention_days == 0 {
        r.at(
            &[K("daemon"), K("retention_days")],
            "retention_days must be at least 1: the previous day's snapshot is the baseline",
        );
    }
    if d.timezone.parse::<chrono_tz::Tz>().is_err() {
        r.at(
            &[K("daemon"), K("timezone")],
            format!(
                "unknown timezone {:?}: use an IANA name such as \"UTC\" or \"Europe/Berlin\"",
                d.timezone
            ),
        );
    }
    if let Some(group) = &d.socket_group {
        match nix::unistd::Group::from_name(group) {
            Ok(Some(_)) => {}
            _ => r.at(
                &[K("daemon"), K("socket_group")],
                format!("socket_group {group:?} is not a group on this system: create it or remove the key"),
            ),
        }
    }
}

fn email(c: &Config, r: &mut Reporter<'_>) {
    let e = &c.email;
    if let Err(why) = super::email::check_mailbox(&e.from) {
        r.at(&[K("email"), K("from")], format!("email.from {why}"));
    }
    let Some(smtp) = &e.smtp else { return };
    let at = |k| [K("email"), K("smtp"), K(k)];
    if smtp.host.trim().is_empty() {
        r.at(
            &at("host"),
            "email.smtp.host is empty: name the mail server",
        );
    }
    match (&smtp.username, &smtp.password_file) {
        (Some(_), None) => r.at(
            &at("username"),
            "email.smtp.username is set but password_file is not: give the file holding              the password (the password itself never goes in the config)",
        ),
        (None, Some(_)) => r.at(
            &at("password_file"),
            "email.smtp.password_file is set but username is not: set the SMTP username",
        ),
        _ => {}
    }
    // A password over a connection without TLS is readable on every network it crosses.
    let loopback = {
        let h = smtp
            .host
            .trim()
            .trim_start_matches('[')
            .trim_end_matches(']');
        h.eq_ignore_ascii_case("localhost")
            || h.parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    };
    if smtp.tls == super::TlsMode::None && smtp.username.is_some() && !loopback {
        r.at(
            &at("tls"),
            format!(
                "email.smtp.tls = \"none\" with a username would send the password in clear \
                 to {}: use tls = \"starttls\" or \"tls\" (\"none\" is only for a server on \
                 this machine)",
                smtp.host
            ),
        );
    }
    // The password file must not be readable by others (issue 16).
    if let Some(path) = &smtp.password_file {
        use std::os::unix::fs::MetadataExt;
        if let Ok(meta) = std::fs::metadata(path) {
            if meta.mode() & 0o004 != 0 {
                r.at(
                    &at("password_file"),
                    format!(
                        "email.smtp.password_file {} is readable by every user: make it \
                         readable by root only (chmod 600)",
                        path.display()
                    ),
                );
            }
        }
    }
}

fn users(c: &mut Config, r: &mut Reporter<'_>) {
    let mut emails: HashMap<String, usize> = HashMap::new();
    let mut uids: HashMap<u32, usize> = HashMap::new();
    for (i, u) in c.users.iter_mut().enumerate() {
        if let Err(why) = super::email::check_address(&u.email) {
            r.at(&[K("user"), I(i), K("email")], why);
        }
        if let Some(first) = emails.insert(u.email.to_lowercase(), i) {
            r.at(
                &[K("user"), I(i), K("email")],
                format!(
                    "duplicate user email {:?} (also user #{})",
                    u.email,
                    first + 1
                ),
            );
        }
        let uid = match (&u.unix_user, u.uid) {
            (Some(_), Some(_)) => {
                r.at(&[K("user"), I(i)], "give either unix_user or uid, not both");
                continue;
            }
            (None, None) => {
                r.at(
                    &[K("user"), I(i)],
                    format!("user {:?} needs unix_user or uid", u.email),
                );
                continue;
            }
            (None, Some(uid)) => uid,
            (Some(name), None) => match nix::unistd::User::from_name(name) {
                Ok(Some(user)) => user.uid.as_raw(),
                _ => {
                    r.at(
                        &[K("user"), I(i), K("unix_user")],
                        format!("unix_user {name:?} does not exist on this system: create it or use uid = N"),
                    );
                    continue;
                }
            },
        };
        u.resolved_uid = uid;
        if let Some(first) = uids.insert(uid, i) {
            r.at(
                &[K("user"), I(i)],
                format!(
                    "uid {uid} is mapped twice (also user #{}): a caller must map to one user",
                    first + 1
                ),
            );
        }
    }
}

fn groups(c: &Config, r: &mut Reporter<'_>) {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, g) in c.groups.iter().enumerate() {
        check_name(&g.name, &[K("group"), I(i), K("name")], r);
        if let Some(first) = seen.insert(&g.name, i) {
            r.at(
                &[K("group"), I(i), K("name")],
                format!(
                    "duplicate group name {:?} (also group #{})",
                    g.name,
                    first + 1
                ),
            );
        }
        for (j, owner) in g.owners.iter().enumerate() {
            if let Err(why) = super::email::check_address(owner) {
                r.at(
                    &[K("group"), I(i), K("owners"), I(j)],
                    format!("owner {why}"),
                );
            }
        }
    }
}

fn nodes(c: &Config, r: &mut Reporter<'_>) {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, n) in c.nodes.iter().enumerate() {
        check_name(&n.name, &[K("node"), I(i), K("name")], r);
        if let Some(first) = seen.insert(&n.name, i) {
            r.at(
                &[K("node"), I(i), K("name")],
                format!(
                    "duplicate node name {:?} (also node #{})",
                    n.name,
                    first + 1
                ),
            );
        }
        match &n.ssh {
            Some(target) => {
                if let Err(why) = super::SshTarget::parse(target) {
                    r.at(&[K("node"), I(i), K("ssh")], why);
                }
                if !n.root.is_absolute() {
                    r.at(
                        &[K("node"), I(i), K("root")],
                        format!(
                            "the root of remote node {:?} must be an absolute path on its host",
                            n.name
                        ),
                    );
                }
            }
            None if n.root.as_os_str().is_empty() => r.at(
                &[K("node"), I(i), K("name")],
                format!(
                    "node {:?} has no `root`: say which filesystem root to scan (\"/\" for this \
                     machine), or give it an `ssh` target",
                    n.name
                ),
            ),
            None => {}
        }
        for (j, g) in n.groups.iter().enumerate() {
            if c.group(g).is_none() && r.complete("group") {
                r.at(
                    &[K("node"), I(i), K("groups"), I(j)],
                    format!(
                        "node {:?} names unknown group {g:?}: add a [[group]] with that name",
                        n.name
                    ),
                );
            }
        }
    }
}

/// The `[ssh]` section and the groups' overrides: an identity file must exist and be private.
fn ssh(c: &Config, r: &mut Reporter<'_>) {
    let s = &c.ssh;
    if let Some(id) = &s.identity_file {
        if let Err(why) = identity_file(id) {
            r.at(&[K("ssh"), K("identity_file")], why);
        }
    }
    for (i, g) in c.groups.iter().enumerate() {
        if let Some(id) = &g.identity_file {
            if let Err(why) = identity_file(id) {
                r.at(&[K("group"), I(i), K("identity_file")], why);
            }
        }
    }
    if s.connect_timeout.is_zero() {
        r.at(
            &[K("ssh"), K("connect_timeout")],
            "ssh.connect_timeout must be more than 0 (for example \"10s\")",
        );
    }
    if s.max_connections == Some(0) {
        r.at(
            &[K("ssh"), K("max_connections")],
            "ssh.max_connections must be at least 1 (or left out: daemon.slots)",
        );
    }
    if !s.worker_dir.is_absolute() || s.worker_dir == std::path::Path::new("/") {
        r.at(
            &[K("ssh"), K("worker_dir")],
            format!(
                "ssh.worker_dir {} must be an absolute directory path on the remote hosts \
                 (not /), for example \"/var/tmp/vigil\"",
                s.worker_dir.display()
            ),
        );
    }
}

/// An identity file must be a regular file that only its owner can read (ssh refuses others).
fn identity_file(path: &std::path::Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let shown = path.display();
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(format!(
            "identity file {shown} does not exist: create the key (ssh-keygen -t ed25519 -f \
             {shown}) or fix the path"
        )),
        Err(e) => Err(format!("identity file {shown} cannot be read: {e}")),
        Ok(m) if !m.is_file() => Err(format!("identity file {shown} is not a regular file")),
        Ok(m) if m.permissions().mode() & 0o077 != 0 => Err(format!(
            "identity file {shown} is readable by others (mode {:04o}): chmod 600 {shown}",
            m.permissions().mode() & 0o7777
        )),
        Ok(_) => Ok(()),
    }
}

fn plugins(c: &Config, r: &mut Reporter<'_>) {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, p) in c.plugins.iter().enumerate() {
        check_name(&p.name, &[K("plugin"), I(i), K("name")], r);
        if let Some(first) = seen.insert(&p.name, i) {
            r.at(
                &[K("plugin"), I(i), K("name")],
                format!(
                    "duplicate plugin name {:?} (also plugin #{})",
                    p.name,
                    first + 1
                ),
            );
        }
        for (j, glob) in p.ignore_keys.iter().enumerate() {
            if let Err(e) = globset::Glob::new(glob) {
                r.at(
                    &[K("plugin"), I(i), K("ignore_keys"), I(j)],
                    format!("invalid glob {glob:?}: {e}"),
                );
            }
        }
    }
}

fn schedules(c: &Config, r: &mut Reporter<'_>) {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, s) in c.schedules.iter().enumerate() {
        let at = |k| [K("schedule"), I(i), K(k)];
        check_name(&s.name, &at("name"), r);
        if let Some(first) = seen.insert(&s.name, i) {
            r.at(
                &at("name"),
                format!(
                    "duplicate schedule name {:?} (also schedule #{})",
                    s.name,
                    first + 1
                ),
            );
        }
        if let Err(e) = parse_cron(&s.cron) {
            r.at(&at("cron"), e);
        }
        match &s.scope {
            Scope::All => {}
            Scope::Group(g) if c.group(g).is_none() && r.complete("group") => {
                r.at(&at("scope"), format!("scope names unknown group {g:?}"));
            }
            Scope::Node(n) if c.node(n).is_none() && r.complete("node") => {
                r.at(&at("scope"), format!("scope names unknown node {n:?}"));
            }
            _ => {}
        }
        match s.kind {
            QueueTaskKind::Scan => {
                if s.policies.is_some() {
                    r.at(
                        &at("policies"),
                        "a scan schedule takes `plugins`, not `policies`",
                    );
                }
                for (j, p) in s.plugins.iter().flatten().enumerate() {
                    if c.plugin(p).is_none() && r.complete("plugin") {
                        r.at(
                            &[K("schedule"), I(i), K("plugins"), I(j)],
                            format!(
                                "schedule {:?} names unknown plugin {p:?}: add a [[plugin]]",
                                s.name
                            ),
                        );
                    }
                }
            }
            QueueTaskKind::Audit => {
                if s.plugins.is_some() {
                    r.at(
                        &at("plugins"),
                        "an audit schedule takes `policies`, not `plugins`",
                    );
                }
            }
        }
    }
}

/// Names end up in URLs, CLI arguments and scopes (`group:NAME`): keep them plain.
pub(super) fn check_name(name: &str, path: &[Seg<'_>], r: &mut Reporter<'_>) {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !ok {
        r.at(
            path,
            format!("invalid name {name:?}: use 1-128 letters, digits, '-', '_' or '.'"),
        );
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::parse;

    fn errors(text: &str) -> Vec<String> {
        match parse(Path::new("c.toml"), text, Path::new("/")) {
            Ok(_) => Vec::new(),
            Err(e) => e.0.into_iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn cross_reference_errors_are_all_reported() {
        let text = r#"
[daemon]
slots = 0
timezone = "Mars/Olympus"

[[user]]
email = "a@example.com"
uid = 1000
role = "admin"

[[user]]
email = "a@example.com"
uid = 1000
role = "user"

[[group]]
name = "web"

[[node]]
name = "n1"
groups = ["web", "db"]
root = "/"

[[node]]
name = "n1"
root = "/"

[[schedule]]
name = "s"
kind = "scan"
cron = "every night"
scope = "group:nope"
"#;
        let errs = errors(text);
        let want = [
            "c.toml:3:9: slots must be at least 1",
            "c.toml:4:12: unknown timezone",
            "c.toml:12:9: duplicate user email",
            "c.toml:11:1: uid 1000 is mapped twice",
            "c.toml:21:18: node \"n1\" names unknown group \"db\"",
            "c.toml:25:8: duplicate node name",
            "c.toml:31:8: invalid cron expression",
            "c.toml:32:9: scope names unknown group",
        ];
        for w in want {
            assert!(
                errs.iter().any(|e| e.starts_with(w)),
                "missing {w:?} in {errs:#?}"
            );
        }
        assert_eq!(errs.len(), want.len(), "{errs:#?}");
    }

    #[test]
    fn control_socket_limits_must_leave_room_to_serve() {
        let errs = errors(
            "[daemon]\nmax_connections = 0\nclient_timeout = \"0s\"\nrequest_timeout = \"0s\"\n",
        );
        let want = [
            "c.toml:2:19: max_connections must be at least 1",
            "c.toml:3:18: client_timeout must be longer than 0s",
            "c.toml:4:19: request_timeout must be longer than 0s",
        ];
        assert_eq!(errs.len(), want.len(), "{errs:#?}");
        for (e, w) in errs.iter().zip(want) {
            assert!(e.starts_with(w), "{w:?} in {errs:#?}");
        }
    }

    /// A rejected entry must not shift the location of errors in later entries, nor make
    /// references to the section it would have defined look dangling.
    #[test]
    fn a_rejected_entry_does_not_shift_later_locations() {
        let text = "[[group]]\nname = \"web\"\ncolour = \"red\"\n\n\
                    [[node]]\nname = \"a\"\nroot = 5\n\n\
                    [[node]]\nname = \"b\"\nroot = \"/\"\ngroups = [\"web\"]\n\n\
                    [[node]]\nname = \"b\"\nroot = \"/\"\n";
        let errs = errors(text);
        assert_eq!(errs.len(), 3, "{errs:#?}");
        assert!(
            errs[0].starts_with("c.toml:3:1: in [[group]]: unknown field `colour`"),
            "{errs:#?}"
        );
        assert!(errs[1].starts_with("c.toml:7:8: in [[node]]"), "{errs:#?}");
        // The duplicate is the third [[node]] (line 15), not the second.
        assert!(
            errs[2].starts_with("c.toml:15:8: duplicate node name \"b\""),
            "{errs:#?}"
        );
    }

    #[test]
    fn email_settings_are_checked_at_load() {
        let errs = errors(
            "[email]\nfrom = \"not an address\"\n[email.smtp]\nhost = \"mx\"\nusername = \"u\"\n",
        );
        assert_eq!(errs.len(), 2, "{errs:#?}");
        assert!(
            errs[0].starts_with("c.toml:2:8: email.from \"not an address\" is not a valid address"),
            "{errs:#?}"
        );
        assert!(
            errs[1].starts_with("c.toml:5:12: email.smtp.username is set but password_file is not"),
            "{errs:#?}"
        );
        let errs = errors("[email.smtp]\nhost = \"mx\"\npassword_file = \"/p\"\n");
        assert_eq!(errs.len(), 1, "{errs:#?}");
        assert!(errs[0].contains("username is not"), "{errs:#?}");
    }

    #[test]
    fn a_password_in_clear_goes_only_to_this_machine() {
        let smtp = |host: &str| {
            format!(
                "[email.smtp]\nhost = \"{host}\"\ntls = \"none\"\nusername = \"u\"\npassword_file = \"/nonexistent/p\"\n"
            )
        };
        let errs = errors(&smtp("mx.example.com"));
        assert_eq!(errs.len(), 1, "{errs:#?}");
        assert!(
            errs[0].contains("send the password in clear to mx.example.com"),
            "{errs:#?}"
        );
        for host in ["localhost", "127.0.0.1", "::1"] {
            assert_eq!(errors(&smtp(host)), Vec::<String>::new(), "{host}");
        }
    }

    #[test]
    fn a_password_file_readable_by_everyone_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pw");
        std::fs::write(&p, "secret\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let text = format!(
            "[email.smtp]\nhost = \"mx\"\nusername = \"u\"\npassword_file = \"{}\"\n",
            p.display()
        );
        let errs = errors(&text);
        assert_eq!(errs.len(), 1, "{errs:#?}");
        assert!(errs[0].contains("readable by every user"), "{errs:#?}");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(errors(&text), Vec::<String>::new());
    }

    #[test]
    fn bad_scope_syntax_is_located() {
        let errs = errors("[[schedule]]\nname = \"s\"\nkind = \"scan\"\ncron = \"0 0 2 * * *\"\nscope = \"everything\"\n");
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(errs[0].starts_with("c.toml:5:9:"), "{errs:?}");
        assert!(errs[0].contains("invalid scope"));
    }

    #[test]
    fn valid_cron_with_seconds() {
        assert!(super::parse_cron("0 30 2 * * *").is_ok());
        assert!(super::parse_cron("30 2 * * *").is_err());
    }

    #[test]
    fn root_user_by_name_resolves() {
        let text = "[[user]]\nemail = \"root@localhost\"\nunix_user = \"root\"\nrole = \"admin\"\n";
        assert!(errors(text).is_empty());
        let text = "[[user]]\nemail = \"x@localhost\"\nunix_user = \"no-such-user-vigil\"\nrole = \"admin\"\n";
        assert!(errors(text)[0].contains("does not exist on this system"));
    }

    #[test]
    fn ssh_settings_are_checked_with_locations() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let open = dir.path().join("open_key");
        std::fs::write(&open, "k").unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o644)).unwrap();
        let text = format!(
            "[ssh]\nidentity_file = \"{}/missing\"\nworker_dir = \"rel\"\nmax_connections = 0\n\n\
             [[group]]\nname = \"g\"\nidentity_file = \"{}\"\n\n\
             [[node]]\nname = \"a\"\nssh = \"-oProxyCommand=x\"\n\n\
             [[node]]\nname = \"b\"\nssh = \"vigil@web:99999\"\nroot = \"relative\"\n\n\
             [[node]]\nname = \"c\"\n\n\
             [[node]]\nname = \"d\"\nssh = \"root@[::1]:2222\"\n",
            dir.path().display(),
            open.display()
        );
        let errs = errors(&text);
        let has = |line: u32, what: &str| {
            assert!(
                errs.iter()
                    .any(|e| e.contains(&format!(":{line}:")) && e.contains(what)),
                "line {line} {what:?} in {errs:#?}"
            )
        };
        has(2, "does not exist");
        has(3, "worker_dir");
        has(4, "max_connections");
        has(8, "readable by others");
        has(12, "bad ssh target");
        has(16, "the port must be");
        has(17, "absolute path");
        has(20, "has no `root`");
        assert_eq!(errs.len(), 8, "{errs:#?}");
        let t = super::super::SshTarget::parse("root@[::1]:2222").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("::1", Some(2222)));
    }
}
