//! The hidden worker mode of `vigild`: the only code that calls libloading.

use std::ffi::OsString;
use std::process::ExitCode;

pub fn main(_args: Vec<OsString>) -> ExitCode {
    eprintln!("vigild worker: not implemented yet");
    ExitCode::FAILURE
}
