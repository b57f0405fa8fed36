//! `vigild plugin run`: runs one plugin through the worker path, prints NDJSON.

use std::path::Path;
use std::process::ExitCode;

pub fn run(_library: &Path, _root: &Path, _config: Option<&str>) -> ExitCode {
    eprintln!("vigild plugin run: not implemented yet");
    ExitCode::FAILURE
}
