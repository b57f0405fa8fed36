//! The config file and the policies it points at, loaded and validated together: a reload
//! or `vigild --check-config` accepts both or neither, with every error in one list.

use std::collections::BTreeSet;
use std::path::Path;

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
    for s in config
        .schedules
        .iter()
        .filter(|s| s.kind == TaskKind::Audit)
    {
        for name in s.policies.iter().flatten() {
            if !policies.iter().any(|p| &p.name == name) {
                errors.push(ConfigError {
                    file: path.to_owned(),
                    line: 0,
                    column: 0,
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
