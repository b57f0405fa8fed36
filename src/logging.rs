//! Logging setup for both binaries.

pub fn init() {}
