//! `vigild`'s command line. It lives in the library, beside `vigil`'s, so that the man pages
//! and shell completions are generated from the same clap definitions the binaries parse.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// vigil daemon: scans nodes with plugins, audits them, turns drift into user tasks.
#[derive(Parser)]
#[command(name = "vigild", version = crate::VERSION, args_conflicts_with_subcommands = true)]
pub struct Args {
    /// Config file to run with.
    #[arg(long, value_name = "PATH", default_value = crate::config::DEFAULT_CONFIG_PATH)]
    pub config: PathBuf,

    /// Validate a config file (and its policies), print every error, exit 1 if any.
    #[arg(long, value_name = "PATH")]
    pub check_config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand)]
pub enum Command {
    /// Developer tools for plugin authors.
    #[command(subcommand)]
    Plugin(PluginCommand),

    /// Shrink the database file after pruning (stop vigild first).
    Compact {
        /// Config file naming the daemon.state_dir to compact.
        #[arg(long, value_name = "PATH", default_value = crate::config::DEFAULT_CONFIG_PATH)]
        config: PathBuf,
    },

    /// Verify the database (stop vigild first): exit 1 with a message containing "corrupt" if
    /// it is damaged.
    Check {
        /// Repair the database in place if it can be (otherwise the check runs on a copy and
        /// changes nothing).
        #[arg(long)]
        repair: bool,
        /// Config file naming the daemon.state_dir to check.
        #[arg(long, value_name = "PATH", default_value = crate::config::DEFAULT_CONFIG_PATH)]
        config: PathBuf,
    },

    /// Internal: one mail delivery attempt, started by vigild itself (request on stdin,
    /// outcome on stdout).
    #[command(hide = true)]
    DeliverMail,
}

#[derive(Subcommand)]
pub enum PluginCommand {
    /// Run one plugin through the worker, print its items as NDJSON on stdout.
    Run {
        /// Path of the plugin library (.so).
        library: PathBuf,
        /// Node root the plugin scans.
        #[arg(long)]
        root: PathBuf,
        /// Plugin config as inline TOML or JSON, or @FILE to read it from a file.
        #[arg(long)]
        config: Option<String>,
    },
}
