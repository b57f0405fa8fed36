//! `vigild --check-config PATH`: validate a config file and its policies, print every problem.

use std::path::Path;
use std::process::ExitCode;

/// Prints every error (file:line:column: message) and returns 1, or a one-line summary and 0.
pub fn run(path: &Path) -> ExitCode {
    match crate::setup::load(path) {
        Ok(setup) => {
            let mut counts: Vec<String> = setup
                .config
                .summary()
                .iter()
                .map(|(k, v)| format!("{v} {k}"))
                .collect();
            counts.push(format!("{} policies", setup.policies.len()));
            println!("{}: OK ({})", path.display(), counts.join(", "));
            ExitCode::SUCCESS
        }
        Err(errors) => {
            for e in &errors.0 {
                eprintln!("{e}");
            }
            eprintln!(
                "{}: {} error(s); the config was not accepted",
                path.display(),
                errors.0.len()
            );
            ExitCode::FAILURE
        }
    }
}
