//! The config in force: the config file and the policies it points at, loaded and
//! validated together (a reload or `vigild --check-config` accepts both or neither, with
//! every error in one list), held in one [`SetupCell`] that a reload swaps whole.
//!
//! Work takes the [`Setup`] in force when it starts and keeps it to its end, so a reload
//! never changes the config under a running request or task.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};

use crate::config::locate::{self, Seg::Index, Seg::Key};
use crate::config::{self, Config};
use crate::located::{LocatedError, LocatedErrors};
use crate::policy::{self, Policy};
use crate::proto::QueueTaskKind;

/// The config and policies the daemon runs with, and when they were loaded. Cheap to
/// clone: both halves are shared.
#[derive(Debug, Clone)]
pub struct Setup {
    pub config: Arc<Config>,
    pub policies: Arc<Vec<Policy>>,
    pub loaded_at: DateTime<Utc>,
    /// What is wrong but need not stop the daemon: a node root that is not there (it may
    /// be mounted later), a plugin library that is missing or would be refused. Only that
    /// node's or that plugin's scans fail, with the reason.
    pub warnings: Arc<Vec<LocatedError>>,
}

impl Setup {
    pub fn new(config: Config, policies: Vec<Policy>) -> Setup {
        Setup {
            config: Arc::new(config),
            policies: Arc::new(policies),
            loaded_at: Utc::now(),
            warnings: Arc::new(Vec::new()),
        }
    }
}

/// The [`Setup`] in force, shared by everything that needs it; swapped whole on reload.
pub struct SetupCell(RwLock<Setup>);

impl SetupCell {
    pub fn new(setup: Setup) -> SetupCell {
        SetupCell(RwLock::new(setup))
    }

    /// The setup in force now. Callers keep it for the whole of one piece of work.
    pub fn current(&self) -> Setup {
        crate::sync::read(&self.0).clone()
    }

    /// The config in force now (see [`SetupCell::current`]).
    pub fn config(&self) -> Arc<Config> {
        crate::sync::read(&self.0).config.clone()
    }

    /// The policies in force now (see [`SetupCell::current`]).
    pub fn policies(&self) -> Arc<Vec<Policy>> {
        crate::sync::read(&self.0).policies.clone()
    }

    /// Puts a new setup in force, in one step.
    pub fn replace(&self, setup: Setup) {
        *crate::sync::write(&self.0) = setup;
    }
}

/// Loads the config at `path`, then every policy in its `policy_dir`.
pub fn load(path: &Path) -> Result<Setup, LocatedErrors> {
    let config = config::load(path)?;
    let plugins: BTreeSet<String> = config.plugins.iter().map(|p| p.name.clone()).collect();
    let policies = policy::load_dir(&config.policy_dir, &plugins)?;
    let mut errors = Vec::new();
    for (i, s) in config.schedules.iter().enumerate() {
        if s.kind != QueueTaskKind::Audit {
            continue;
        }
        for (j, name) in s.policies.iter().flatten().enumerate() {
            if !policies.iter().any(|p| &p.name == name) {
                let at = [Key("schedule"), Index(i), Key("policies"), Index(j)];
                let (line, column) = locate::in_file(path, &at);
                errors.push(LocatedError {
                    file: path.to_owned(),
                    line,
                    column,
                    message: format!(
                        "schedule {:?} names policy {name:?}, which is not in {}",
                        s.name,
                        config.policy_dir.display()
                    ),
                });
            }
        }
    }
    if !errors.is_empty() {
        return Err(LocatedErrors(errors));
    }
    let warnings = warnings(path, &config);
    let mut setup = Setup::new(config, policies);
    setup.warnings = Arc::new(warnings);
    Ok(setup)
}

/// What the config names that is not there now, but may be later: node roots and plugin
/// libraries (see [`Setup::warnings`]).
fn warnings(path: &Path, config: &Config) -> Vec<LocatedError> {
    let mut out = Vec::new();
    let mut at = |place: &[locate::Seg<'_>], message: String| {
        let (line, column) = locate::in_file(path, place);
        out.push(LocatedError {
            file: path.to_owned(),
            line,
            column,
            message,
        });
    };
    for (i, n) in config.nodes.iter().enumerate() {
        let why = match std::fs::metadata(&n.root) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some("does not exist".to_owned()),
            Err(e) => Some(format!("cannot be examined ({e})")),
            Ok(m) if !m.is_dir() => Some("is not a directory".to_owned()),
            Ok(_) => None,
        };
        if let Some(why) = why {
            at(
                &[Key("node"), Index(i), Key("root")],
                format!(
                    "node {:?}: root {} {why}; its scans fail until it is there",
                    n.name,
                    n.root.display()
                ),
            );
        }
    }
    // Whoever can write the config or a policy can make themselves admin or silence a check.
    let mut files = vec![path.to_owned()];
    if let Ok(dir) = std::fs::read_dir(&config.policy_dir) {
        let mut policies: Vec<_> = dir
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        policies.sort();
        files.extend(policies);
    }
    for file in files {
        if let Some(why) = writable_by_others(&file) {
            at(
                &[],
                format!(
                    "{} {why}: whoever can write it can change who is admin and what is checked; \
                     make it owned by root and not writable by group or others \
                     (chown root {0}; chmod go-w {0})",
                    file.display()
                ),
            );
        }
    }
    for (i, p) in config.plugins.iter().enumerate() {
        let library = p.library_path(&config.daemon.plugin_dir);
        if let Err(e) = crate::plugin::library::check(&library) {
            let place = if p.library.is_some() {
                vec![Key("plugin"), Index(i), Key("library")]
            } else {
                vec![Key("plugin"), Index(i), Key("name")]
            };
            at(
                &place,
                format!("plugin {:?}: {e}; its scans fail until it is fixed", p.name),
            );
        }
    }
    out
}

/// Why `file` may be written by someone other than root and the daemon's user, if it may.
fn writable_by_others(file: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(file).ok()?;
    let euid = nix::unistd::geteuid().as_raw();
    let mode = meta.mode() & 0o7777;
    if meta.uid() != 0 && meta.uid() != euid {
        Some(format!("is owned by uid {}", meta.uid()))
    } else if mode & 0o022 != 0 {
        Some(format!(
            "is writable by {} (mode {mode:04o})",
            if mode & 0o002 != 0 {
                "everyone"
            } else {
                "its group"
            }
        ))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_and_policy_files_others_may_write_are_warned_about() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "policy_dir = \"policies\"\n").unwrap();
        let policies = dir.path().join("policies");
        std::fs::create_dir(&policies).unwrap();
        let policy = policies.join("p.toml");
        std::fs::write(
            &policy,
            "name = \"p\"\ndescription = \"d\"\nscope = \"all\"\n",
        )
        .unwrap();
        let mode =
            |p: &Path, m| std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
        mode(&path, 0o644);
        mode(&policy, 0o644);
        let shown =
            |s: &Setup| -> Vec<String> { s.warnings.iter().map(|w| w.to_string()).collect() };
        assert_eq!(shown(&load(&path).unwrap()), Vec::<String>::new());
        mode(&path, 0o666);
        mode(&policy, 0o664);
        let w = shown(&load(&path).unwrap());
        assert_eq!(w.len(), 2, "{w:#?}");
        assert!(
            w[0].contains("c.toml is writable by everyone (mode 0666)"),
            "{w:#?}"
        );
        assert!(
            w[1].contains("p.toml is writable by its group (mode 0664)"),
            "{w:#?}"
        );
        assert!(w[1].contains("chmod go-w"), "{w:#?}");
    }

    #[test]
    fn a_schedule_naming_a_missing_policy_is_located() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        let text = "policy_dir = \"none\"\n\n[[schedule]]\nname = \"a\"\nkind = \"audit\"\n\
                    cron = \"0 0 2 * * *\"\npolicies = [\"x\", \"gone\"]\n";
        std::fs::write(&path, text).unwrap();
        let errs = load(&path).unwrap_err().0;
        let shown: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        assert_eq!(shown.len(), 2, "{shown:#?}");
        assert!(
            shown[0].contains("c.toml:7:13: schedule \"a\" names policy \"x\", which is not in "),
            "{shown:#?}"
        );
        assert!(
            shown[1].contains("c.toml:7:18: schedule \"a\" names policy \"gone\""),
            "{shown:#?}"
        );
    }
}
