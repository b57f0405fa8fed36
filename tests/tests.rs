//! Integration tests: one binary, one module per area. They start the real `vigild`.

mod cli_queue;
mod cli_tasks;
mod common;
mod drift;
mod email;
mod faults;
mod foundation;
mod grouping;
mod hardening;
mod packaging;
mod plugin_isolation;
mod plugin_worker;
mod policies;
mod queue;
mod remote;
mod snapshot_deltas;
mod snapshot_storage;
mod std_plugins;
mod systemd_unit;
mod ui;
mod upgrade;
mod user_tasks;
