//! `vigild`: the vigil daemon. Thin: parse arguments, set up logging, call the library.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// vigil daemon: scans nodes with plugins, audits them, turns drift into user tasks.
#[derive(Parser)]
#[command(name = "vigild", version, args_conflicts_with_subcommands = true)]
struct Args {
    /// Config file to run with.
    #[arg(long, value_name = "PATH", default_value = vigil::config::DEFAULT_CONFIG_PATH)]
    config: PathBuf,

    /// Validate a config file (and its policies), print every error, exit 1 if any.
    #[arg(long, value_name = "PATH")]
    check_config: Option<PathBuf>,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Developer tools for plugin authors.
    #[command(subcommand)]
    Plugin(PluginCommand),

    /// Shrink the database file after pruning (stop vigild first).
    Compact {
        /// Config file naming the daemon.state_dir to compact.
        #[arg(long, value_name = "PATH", default_value = vigil::config::DEFAULT_CONFIG_PATH)]
        config: PathBuf,
    },

    /// Internal: the isolated plugin worker process. Not for direct use.
    #[command(name = "__worker", hide = true)]
    Worker {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
}

#[derive(Subcommand)]
enum PluginCommand {
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

fn main() -> ExitCode {
    let args = Args::parse();
    if !matches!(args.command, Some(Command::Worker { .. })) {
        vigil::plugin::supervisor::seal_inherited_fds();
    }
    match args.command {
        Some(Command::Worker { args }) => vigil::plugin::worker::main(args),
        Some(Command::Compact { config }) => vigil::daemon::tools::compact(&config),
        Some(Command::Plugin(PluginCommand::Run {
            library,
            root,
            config,
        })) => {
            vigil::logging::init();
            vigil::plugin::devtool::run(&library, &root, config.as_deref())
        }
        None => {
            if let Some(path) = args.check_config {
                return vigil::daemon::tools::check_config(&path);
            }
            vigil::logging::init();
            vigil::daemon::main(args.config)
        }
    }
}
