//! `vigild --check-config PATH`: validate a config file and print every problem.

use std::path::Path;
use std::process::ExitCode;

/// Prints every error (file:line:column: message) and returns 1, or a one-line summary and 0.
pub fn run(path: &Path) -> ExitCode {
    match super::load(path) {
        Ok(config) => {
            let counts: Vec<String> = config
                .summary()
                .iter()
                .map(|(k, v)| format!("{v} {k}"))
                .collect();
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
