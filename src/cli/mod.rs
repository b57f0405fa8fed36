//! The `vigil` command line client. Every command talks to vigild over the control socket
//! and prints aligned tables (or JSON with `--json`).

mod drift_view;
mod events;
mod log;
mod nodes;
mod outbox;
mod policies;
mod queue;
mod scan;
mod status;
pub mod table;
mod tasks;
pub mod term;
mod text;
pub mod ui;
pub mod vigild;
mod webhooks;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

use crate::client::{Client, ClientError};
use crate::config::DEFAULT_SOCKET;

const EXIT_CODES: &str = "\
Exit codes:
  0   success
  1   vigild refused or failed the request, or a task did not end as asked
      (failed or cancelled under --wait; not cancelled by `queue cancel`)
  2   vigild could not be reached (not running, wrong --socket, or the socket's
      group does not include you)
  64  the command line was invalid";

/// Control a running vigild.
#[derive(Parser)]
#[command(name = "vigil", version = crate::VERSION, after_help = EXIT_CODES)]
pub struct Cli {
    /// Control socket of vigild.
    #[arg(long, global = true, env = "VIGIL_SOCKET", default_value = DEFAULT_SOCKET, value_name = "PATH")]
    socket: PathBuf,

    /// Print the daemon's JSON answer instead of a table.
    #[arg(long, global = true)]
    json: bool,

    /// Never cut text in tables to the terminal's width (it is never cut when piped).
    #[arg(long, global = true)]
    wide: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Daemon status: version, uptime, config, who you are.
    Status {
        /// Print only the open task counts, `ALL MINE` (`-` for mine when you have no
        /// email): for a shell prompt, the motd or a monitoring check.
        #[arg(long, visible_alias = "open")]
        count: bool,
    },
    /// Re-read the config file now (admin).
    Reload {
        /// Accept a config that removes every node or every admin (refused otherwise, since
        /// a half-written file looks like that).
        #[arg(long)]
        allow_empty: bool,
    },
    /// Active scans and audits; `vigil queue cancel ID…` cancels them (admin).
    Queue(queue::QueueArgs),
    /// Scan nodes now (admin): one task per node in the scope.
    Scan(scan::ScanArgs),
    /// Audit nodes now (admin): one task per node in the scope.
    Audit(scan::AuditArgs),
    /// Ended scans or audits: the Scan log and the Audit log.
    Log(log::LogArgs),
    /// User tasks: findings to look at; show, changes, assign, close, close-all, export.
    Tasks(tasks::TasksArgs),
    /// The configured nodes: how each is reached, its last scan; `vigil nodes trust NODE`.
    Nodes(nodes::NodesArgs),
    /// A node's drift for one day against its baseline.
    Drift(nodes::DriftArgs),
    /// Loaded policies with their latest results; `vigil policies show NAME` for one.
    Policies {
        #[command(subcommand)]
        command: Option<policies::PoliciesCommand>,
    },
    /// The event log: every user-task change and failed scan or audit, in order;
    /// `--follow` streams new ones as they commit.
    Events(events::EventsArgs),
    /// Mails not yet delivered, and dead letters (admin).
    Outbox {
        #[command(subcommand)]
        command: Option<outbox::OutboxCommand>,
    },
    /// Webhook endpoints with their pending and dead deliveries and last error (admin).
    Webhooks {
        #[command(subcommand)]
        command: Option<webhooks::WebhooksCommand>,
    },
    /// The User Tasks and Active tasks screens in the terminal (`?` lists the keys).
    Ui(ui::UiArgs),
    /// Print a shell completion script for vigil.
    ///
    /// For example `vigil completions bash > /etc/bash_completion.d/vigil`; the Debian
    /// package installs the scripts for bash, zsh and fish.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// Why a command did not succeed; each variant decides the exit code.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The daemon answered, but the outcome is a failure (a task failed, an id was not
    /// cancelled): exit 1 with this message.
    #[error("{0}")]
    Failed(String),
}

/// What a command produced: success, or an error already decided on an exit code.
pub type CmdResult = Result<(), CliError>;

pub fn main() -> ExitCode {
    restore_default_sigpipe();
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
    // Every string of the daemon's replies passes the terminal sanitiser, except under
    // --json, whose output stays exactly what the daemon said.
    table::init_width(cli.wide);
    let client = Client::new(&cli.socket);
    let client = if cli.json {
        client
    } else {
        client.filter_replies(term::for_terminal)
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Status { count: true } => status::count(&client, cli.json).await,
            Command::Status { count: false } => status::status(&client, cli.json).await,
            Command::Reload { allow_empty } => status::reload(&client, allow_empty, cli.json).await,
            Command::Queue(args) => queue::run(&client, args, cli.json).await,
            Command::Scan(args) => scan::scan(&client, args, cli.json).await,
            Command::Audit(args) => scan::audit(&client, args, cli.json).await,
            Command::Log(args) => log::run(&client, args, cli.json).await,
            Command::Tasks(args) => tasks::run(&client, args, cli.json).await,
            Command::Nodes(args) => nodes::nodes(&client, args, cli.json).await,
            Command::Drift(args) => nodes::drift(&client, args, cli.json).await,
            Command::Policies { command } => policies::run(&client, command, cli.json).await,
            Command::Outbox { command } => outbox::run(&client, cli.json, command).await,
            Command::Events(args) => events::run(&client, args, cli.json).await,
            Command::Webhooks { command } => webhooks::run(&client, cli.json, command).await,
            Command::Ui(args) => ui::run(&client, args).await,
            Command::Completions { shell } => {
                clap_complete::generate(
                    shell,
                    &mut Cli::command(),
                    "vigil",
                    &mut std::io::stdout(),
                );
                Ok(())
            }
        }
    });
    let left_out = client.undecodable_rows_left_out();
    if left_out > 0 {
        eprintln!(
            "vigil: warning: {left_out} stored row(s) could not be read and are missing from \
             this answer; the database is damaged: stop vigild and run `vigild check`"
        );
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if cli.json {
                eprintln!("{}", error_json(&e));
            } else {
                eprintln!("vigil: {}", term::for_terminal(&e.to_string()));
            }
            match e {
                CliError::Client(ClientError::Unreachable { .. } | ClientError::Denied { .. }) => {
                    ExitCode::from(2)
                }
                _ => ExitCode::FAILURE,
            }
        }
    }
}

/// A CLI that writes into a closed pipe (`vigil log scans | head -1`) ends as every Unix
/// filter does, killed quietly by SIGPIPE (status 141 in a shell), instead of Rust's default
/// (SIGPIPE ignored, so `println!` panics on EPIPE). The one socket the CLI writes to is
/// vigild's, which reads each request whole before it answers.
fn restore_default_sigpipe() {
    use nix::sys::signal::{signal, SigHandler, Signal};
    // SAFETY: restores the default disposition before any other thread exists; no handler
    // code runs.
    let _ = unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) };
}

/// An error as `--json` shows it on stderr: `{"error": {"code", "message"}}`, the API's own
/// envelope (with `unreachable`, `protocol` and `failed` for what the CLI itself decided).
fn error_json(e: &CliError) -> String {
    let code = match e {
        CliError::Client(ClientError::Api { code, .. }) => {
            serde_json::to_value(code).unwrap_or(serde_json::Value::Null)
        }
        CliError::Client(ClientError::Unreachable { .. }) => "unreachable".into(),
        CliError::Client(ClientError::Denied { .. }) => "permission_denied".into(),
        CliError::Client(ClientError::Protocol(_)) => "protocol".into(),
        CliError::Failed(_) => "failed".into(),
    };
    serde_json::json!({"error": {"code": code, "message": e.to_string()}}).to_string()
}

/// Prints a value as pretty JSON (for `--json`).
pub fn print_json<T: serde::Serialize>(value: &T) {
    match serde_json::to_string_pretty(value) {
        Ok(s) => println!("{s}"),
        Err(e) => eprintln!("vigil: cannot encode JSON: {e}"),
    }
}
