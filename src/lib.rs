//! vigil: keeps watch over a fleet's configuration.
//!
//! The daemon (`vigild`) and the CLI (`vigil`) are thin binaries over this library; see
//! ARCHITECTURE.md for the module map and the invariants between modules.

pub mod api;
pub mod app;
pub mod audits;
pub mod caller;
pub mod cli;
pub mod client;
pub mod config;
pub mod daemon;
pub mod drift;
pub mod events;
pub mod fuzzing;
pub mod located;
pub mod logging;
pub mod nodes;
pub mod outbox;
pub mod plugin;
pub mod policy;
pub mod proto;
pub mod queue;
pub mod schedule;
pub mod setup;
pub mod snapshot;
pub mod store;
pub mod sync;
pub mod tasks;
pub mod webhook;

/// What `vigil --version` and `vigild --version` print after the program's name: the crate
/// version and the git commit it was built from ("0.1.0 (commit abc1234)"; `build.rs`).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("VIGIL_COMMIT"),
    ")"
);
