//! Scanner plugins: the isolated worker process and the daemon-side supervisor.

pub mod devtool;
pub mod worker;
