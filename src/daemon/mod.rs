//! The daemon's lifecycle.

use std::path::PathBuf;
use std::process::ExitCode;

pub fn main(_config: PathBuf) -> ExitCode {
    ExitCode::FAILURE
}
