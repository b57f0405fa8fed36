//! The config file: typed tree, loading, validation.

pub mod check;

pub const DEFAULT_CONFIG_PATH: &str = "/etc/vigil/config.toml";
