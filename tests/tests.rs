//! Integration tests: one binary, one module per area. They start the real `vigild`.

mod common;
mod foundation;
mod plugin_worker;
mod queue;
mod std_plugins;
mod systemd_unit;
