//! Daemon-side tools an administrator runs by hand: `vigild --check-config PATH` (validate
//! a config file and its policies, print every problem), `vigild check` and `vigild compact`.

use std::path::Path;
use std::process::ExitCode;

use crate::store::Store;

/// Prints every error (file:line:column: message) and returns 1, or a one-line summary and 0.
pub fn check_config(path: &Path) -> ExitCode {
    match crate::setup::load(path) {
        Ok(setup) => {
            for w in setup.warnings.iter() {
                eprintln!("warning: {w}");
            }
            let mut counts: Vec<String> = setup
                .config
                .summary()
                .iter()
                .map(|(k, v)| format!("{v} {k}"))
                .collect();
            counts.push(format!("{} policies", setup.policies.len()));
            if !setup.warnings.is_empty() {
                counts.push(format!("{} warning(s)", setup.warnings.len()));
            }
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

/// `vigild compact`: shrinks the database of the config's state dir (vigild must be stopped).
pub fn compact(config_path: &std::path::Path) -> ExitCode {
    let config = match crate::config::load(config_path) {
        Ok(c) => c,
        Err(errors) => {
            eprintln!("vigild: the config was not accepted:\n{errors}");
            return ExitCode::FAILURE;
        }
    };
    let dir = &config.daemon.state_dir;
    match Store::compact(dir) {
        Ok((before, after)) => {
            println!(
                "{}: compacted from {} to {} bytes",
                dir.join(crate::store::DB_FILE).display(),
                before,
                after
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!(
                "vigild: cannot compact the database in {}: {e}",
                dir.display()
            );
            ExitCode::FAILURE
        }
    }
}

/// `vigild check [--repair]`: verifies the database of the config's state dir (vigild must
/// be stopped). Exit 0: intact (or, with `--repair`, repaired); 1: damaged, with a message
/// containing "corrupt" and how to restore.
pub fn check(config_path: &Path, repair: bool) -> ExitCode {
    let config = match crate::config::load(config_path) {
        Ok(c) => c,
        Err(errors) => {
            eprintln!("vigild: the config was not accepted:\n{errors}");
            return ExitCode::FAILURE;
        }
    };
    match Store::check_file(&config.daemon.state_dir, repair, &crate::app::stored_rows()) {
        Ok(c) if c.repaired => {
            println!(
                "{}: was corrupt and is repaired ({} bytes, {:.2?}); the newest commit may \
                 be lost: compare with your backup before starting vigild",
                c.path.display(),
                c.bytes,
                c.took
            );
            ExitCode::SUCCESS
        }
        Ok(c) => {
            let rows: u64 = c.tables.iter().map(|t| t.rows).sum();
            println!(
                "{}: OK, no damage found ({} bytes checked, {rows} rows of {} tables decoded, \
                 in {:.2?})",
                c.path.display(),
                c.bytes,
                c.tables.len(),
                c.took
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("vigild: {e}");
            ExitCode::FAILURE
        }
    }
}
