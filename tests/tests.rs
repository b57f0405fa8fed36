//! Integration tests: one binary, one module per area. They start the real `vigild`.

mod common;
mod email;
mod foundation;
mod plugin_worker;
mod queue;
mod systemd_unit;
