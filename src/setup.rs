//! The config file and the policies it points at, loaded and validated together: a reload
//! or `vigild --check-config` accepts both or neither, with every error in one list.

use std::collections::BTreeSet;
use std::path::Path;

use crate::config::locate::{self, Seg::Index, Seg::Key};
use crate::config::{self, Config, ConfigError, ConfigErrors, TaskKind};
use crate::policy::{self, Policy};

/// What the daemon runs with.
#[derive(Debug, Clone)]
pub struct Setup {
    pub config: Config,
    pub policies: Vec<Policy>,
}

/// Loads the config at `path`, then every policy in its `policy_dir`.
pub fn load(path: &Path) -> Result<Setup, ConfigErrors> {
    let config = config::load(path)?;
    let plugins: BTreeSet<String> = config.plugins.iter().map(|p| p.name.clone()).collect();
    let policies = policy::load_dir(&config.policy_dir, &plugins).map_err(|errors| {
        ConfigErrors(
            errors
                .0
                .into_iter()
                .map(|e| ConfigError {
                    file: e.file,
                    line: e.line,
                    column: e.column,
                    message: e.message,
                })
                .collect(),
        )
    })?;
    let mut errors = Vec::new();
    for (i, s) in config.schedules.iter().enumerate() {
        if s.kind != TaskKind::Audit {
            continue;
        }
        for (j, name) in s.policies.iter().flatten().enumerate() {
            if !policies.iter().any(|p| &p.name == name) {
                let at = [Key("schedule"), Index(i), Key("policies"), Index(j)];
                let (line, column) = locate::in_file(path, &at);
                errors.push(ConfigError {
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
        return Err(ConfigErrors(errors));
    }
    Ok(Setup { config, policies })
}

#[cfg(test)]
mod tests {
    use super::*;

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
