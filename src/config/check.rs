//! `vigild --check-config`.

use std::path::Path;
use std::process::ExitCode;

pub fn run(_path: &Path) -> ExitCode {
    ExitCode::FAILURE
}
