//! The `vigil` command line client. Every command talks to vigild over the control socket
//! and prints aligned tables (or JSON with `--json`).

mod outbox;
mod status;
pub mod table;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::client::{Client, ClientError};
use crate::config::DEFAULT_SOCKET;

const EXIT_CODES: &str = "\
Exit codes:
  0   success
  1   vigild refused or failed the request (the message says why)
  2   vigild could not be reached (not running, or wrong --socket)
  64  the command line was invalid";

/// Control a running vigild.
#[derive(Parser)]
#[command(name = "vigil", version, after_help = EXIT_CODES)]
pub struct Cli {
    /// Control socket of vigild.
    #[arg(long, global = true, env = "VIGIL_SOCKET", default_value = DEFAULT_SOCKET, value_name = "PATH")]
    socket: PathBuf,

    /// Print the daemon's JSON answer instead of a table.
    #[arg(long, global = true)]
    json: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Daemon status: version, uptime, config, who you are.
    Status,
    /// Re-read the config file now (admin).
    Reload,
    /// Mails not yet delivered, and dead letters (admin).
    Outbox {
        #[command(subcommand)]
        command: Option<outbox::OutboxCommand>,
    },
}

/// What a command produced: success, or an error already decided on an exit code.
pub type CmdResult = Result<(), ClientError>;

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(64)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("vigil: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let client = Client::new(&cli.socket);
    let result = runtime.block_on(async {
        match cli.command {
            Command::Status => status::status(&client, cli.json).await,
            Command::Reload => status::reload(&client, cli.json).await,
            Command::Outbox { command } => outbox::run(&client, cli.json, command).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vigil: {e}");
            match e {
                ClientError::Unreachable { .. } => ExitCode::from(2),
                _ => ExitCode::FAILURE,
            }
        }
    }
}

/// Prints a value as pretty JSON (for `--json`).
pub fn print_json<T: serde::Serialize>(value: &T) {
    match serde_json::to_string_pretty(value) {
        Ok(s) => println!("{s}"),
        Err(e) => eprintln!("vigil: cannot encode JSON: {e}"),
    }
}
