//! Bench and debugging harness: runs the `files` scan logic directly (no plugin host) and
//! writes each item as one JSON line to stdout, notes and unseen records to stderr — the same
//! serialization work the host's emitter does per item.
//!
//! `cargo run --release -p vigil-files --example scan -- ROOT '{"paths":["/"]}'`

use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use vigil_files::{scan, Config, Output};
use vigil_plugin::{Item, Stopped};

struct JsonLines<W: Write> {
    out: W,
    items: u64,
    notes: u64,
}

impl<W: Write> Output for JsonLines<W> {
    fn item(&mut self, item: &Item) -> Result<(), Stopped> {
        self.items += 1;
        serde_json::to_writer(&mut self.out, item).map_err(|_| Stopped)?;
        self.out.write_all(b"\n").map_err(|_| Stopped)
    }
    fn note(&mut self, message: &str) -> Result<(), Stopped> {
        self.notes += 1;
        eprintln!("note: {message}");
        Ok(())
    }
    fn unseen(&mut self, key: &str, reason: &str) -> Result<(), Stopped> {
        self.notes += 1;
        eprintln!(
            "unseen: {}",
            serde_json::json!({"key": key, "reason": reason})
        );
        Ok(())
    }
}

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let Some(root) = args.next().map(PathBuf::from) else {
        eprintln!("usage: scan ROOT [CONFIG_JSON]");
        return ExitCode::from(2);
    };
    let config: Config = match args
        .next()
        .map(|c| serde_json::from_str(&c.to_string_lossy()))
    {
        None => Config::default(),
        Some(Ok(c)) => c,
        Some(Err(e)) => {
            eprintln!("bad config: {e}");
            return ExitCode::from(2);
        }
    };
    let stdout = std::io::stdout().lock();
    let mut out = JsonLines {
        out: BufWriter::with_capacity(1 << 16, stdout),
        items: 0,
        notes: 0,
    };
    let r = scan(&root, &config, &mut out);
    let flushed = out.out.flush();
    eprintln!("{} items, {} notes", out.items, out.notes);
    match (r, flushed) {
        (Ok(()), Ok(())) => ExitCode::SUCCESS,
        (Err(e), _) => {
            eprintln!("scan failed: {e}");
            ExitCode::FAILURE
        }
        (_, Err(e)) => {
            eprintln!("write failed: {e}");
            ExitCode::FAILURE
        }
    }
}
