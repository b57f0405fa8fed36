//! Integration tests: one binary, one module per area. They start the real `vigild`.

mod plugin_worker;
