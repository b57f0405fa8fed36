//! Logging for both binaries: a `RUST_LOG`-style filter (default `info`), plain lines
//! without timestamps under systemd (the journal adds its own), timestamps otherwise.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let under_journal = std::env::var_os("JOURNAL_STREAM").is_some();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let result = if under_journal {
        builder.without_time().with_ansi(false).compact().try_init()
    } else {
        builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init()
    };
    // A second init (tests, or a library user that set up its own) is not an error.
    let _ = result;
}
