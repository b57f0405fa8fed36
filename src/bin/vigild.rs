//! `vigild`: the vigil daemon. Thin: parse arguments, set up logging, call the library.

use std::process::ExitCode;

use clap::Parser;
use vigil::cli::vigild::{Args, Command, PluginCommand};

fn main() -> ExitCode {
    let args = Args::parse();
    vigil::plugin::supervisor::seal_inherited_fds();
    match args.command {
        Some(Command::Compact { config }) => vigil::daemon::tools::compact(&config),
        Some(Command::Check { repair, config }) => vigil::daemon::tools::check(&config, repair),
        Some(Command::DeliverMail) => vigil::outbox::deliver_main(),
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
