//! `vigild plugin run LIBRARY --root DIR [--config ...]`: runs one plugin through the same
//! worker path as the daemon and prints its items as NDJSON, for plugin authors and
//! benchmarks.
//!
//! Items go to stdout one JSON object per line, exactly as the plugin encoded them (checked,
//! not re-serialized); notes go to stderr as `note: ...` and unseen records as
//! `unseen: {"key":"...","reason":"..."}`, then a `done: ...` line with the item count and
//! the worker's peak RSS. Exit 0 on success, 1 with one `error: ...` line
//! otherwise.

use std::io::{self, Write};
use std::path::Path;
use std::process::ExitCode;

use super::supervisor::{self, ItemForm, ScanEvent, ScanOutcome, ScanSpec, WorkerCommand};

pub fn run(library: &Path, root: &Path, config: Option<&str>) -> ExitCode {
    match try_run(library, root, config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("error: {msg}");
            ExitCode::FAILURE
        }
    }
}

fn try_run(library: &Path, root: &Path, config: Option<&str>) -> Result<(), String> {
    let config = match config {
        Some(c) => parse_config(c)?,
        None => serde_json::Value::Object(Default::default()),
    };
    if !root.is_dir() {
        return Err(format!("node root {} is not a directory", root.display()));
    }
    let worker =
        WorkerCommand::locate().map_err(|e| format!("cannot find the plugin worker: {e}"))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    let name = library
        .file_stem()
        .map_or_else(|| "plugin".to_owned(), |s| s.to_string_lossy().into_owned());
    let mut spec = ScanSpec::new(name, library, root);
    spec.config = config;
    spec.item_form = ItemForm::Json;
    runtime.block_on(scan(&worker, spec, library))
}

async fn scan(worker: &WorkerCommand, spec: ScanSpec, library: &Path) -> Result<(), String> {
    let shown = library.display().to_string();
    let cancel = spec.cancel.clone();
    let interrupted = async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            cancel.cancel();
        }
    };
    let interrupt = tokio::spawn(interrupted);
    let mut running = supervisor::start(worker, spec)
        .await
        .map_err(|e| format!("plugin {shown}: {e}"))?;
    let info = running.info().clone();
    let stdout = io::stdout();
    let mut out = io::BufWriter::with_capacity(1 << 20, stdout.lock());
    let mut write_error = None;
    while let Some(event) = running.next().await {
        match event {
            ScanEvent::ItemJson(json) => {
                if let Err(e) = out.write_all(&json).and_then(|()| out.write_all(b"\n")) {
                    write_error = Some(e);
                    break;
                }
            }
            ScanEvent::Item(item) => {
                let r = serde_json::to_writer(&mut out, &item)
                    .map_err(io::Error::from)
                    .and_then(|()| out.write_all(b"\n"));
                if let Err(e) = r {
                    write_error = Some(e);
                    break;
                }
            }
            ScanEvent::Note(note) => {
                // Keep stdout and stderr in step for whoever reads both.
                let _ = out.flush();
                eprintln!("note: {note}");
            }
            ScanEvent::Unseen { key, reason } => {
                let _ = out.flush();
                eprintln!(
                    "unseen: {}",
                    serde_json::json!({"key": key, "reason": reason})
                );
            }
        }
    }
    if write_error.is_none() {
        write_error = out.flush().err();
    }
    if let Some(e) = write_error {
        running.cancel_handle().cancel();
        let _ = running.finish().await;
        interrupt.abort();
        return Err(format!("cannot write items to stdout: {e}"));
    }
    let outcome = running.finish().await;
    interrupt.abort();
    match outcome {
        ScanOutcome::Succeeded { items, .. } => {
            let rss = worker_peak_rss_kb()
                .map_or_else(String::new, |kb| format!("; worker peak RSS {kb} KiB"));
            eprintln!(
                "done: plugin {} {} emitted {items} items{rss}",
                info.name, info.version
            );
            Ok(())
        }
        ScanOutcome::Failed(f) => Err(format!("plugin {} ({shown}): {f}", info.name)),
    }
}

/// Peak RSS of the largest reaped child, which here is the one worker (already reaped when
/// the scan has finished).
fn worker_peak_rss_kb() -> Option<i64> {
    // SAFETY: an all-zero rusage is a valid out value; getrusage only writes to it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: valid `who` and out pointer.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) };
    (rc == 0 && ru.ru_maxrss > 0).then_some(ru.ru_maxrss)
}

/// `--config`: inline JSON, inline TOML, or `@FILE` (a .json or .toml file).
pub fn parse_config(arg: &str) -> Result<serde_json::Value, String> {
    let (text, hint) = match arg.strip_prefix('@') {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read config file {path}: {e}"))?;
            let hint = Path::new(path)
                .extension()
                .and_then(|e| e.to_str())
                .map(str::to_owned);
            (text, hint)
        }
        None => (arg.to_owned(), None),
    };
    let value = match hint.as_deref() {
        Some("json") => {
            serde_json::from_str(&text).map_err(|e| format!("config is not valid JSON: {e}"))?
        }
        Some("toml") => parse_toml(&text)?,
        _ => match serde_json::from_str::<serde_json::Value>(&text) {
            Ok(v) => v,
            Err(json_err) => parse_toml(&text).map_err(|toml_err| {
                if text.trim_start().starts_with('{') {
                    format!("config is neither JSON nor TOML: as JSON, {json_err}")
                } else {
                    toml_err
                }
            })?,
        },
    };
    if !value.is_object() {
        return Err("config must be a table / JSON object".to_owned());
    }
    Ok(value)
}

fn parse_toml(text: &str) -> Result<serde_json::Value, String> {
    match toml::from_str::<serde_json::Value>(text) {
        Ok(v) => Ok(v),
        Err(e) => {
            // An inline table (`{ mode = "ok" }`) is not a TOML document; accept it anyway.
            let wrapped = format!("config = {text}");
            if let Ok(mut v) = toml::from_str::<serde_json::Value>(&wrapped) {
                if let Some(inner) = v.get_mut("config").map(serde_json::Value::take) {
                    return Ok(inner);
                }
            }
            Err(format!(
                "config is not valid TOML: {}",
                e.to_string().trim()
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn config_forms() {
        assert_eq!(
            parse_config(r#"{"mode":"ok","count":3}"#).unwrap(),
            json!({"mode":"ok","count":3})
        );
        assert_eq!(
            parse_config("mode = \"ok\"\ncount = 3").unwrap(),
            json!({"mode":"ok","count":3})
        );
        assert_eq!(
            parse_config(r#"{ mode = "ok", count = 3 }"#).unwrap(),
            json!({"mode":"ok","count":3})
        );
        let dir = tempfile::tempdir().unwrap();
        let t = dir.path().join("c.toml");
        std::fs::write(&t, "paths = [\"/etc\"]\n[limits]\nmax = 1\n").unwrap();
        assert_eq!(
            parse_config(&format!("@{}", t.display())).unwrap(),
            json!({"paths":["/etc"],"limits":{"max":1}})
        );
        let j = dir.path().join("c.json");
        std::fs::write(&j, r#"{"a":true}"#).unwrap();
        assert_eq!(
            parse_config(&format!("@{}", j.display())).unwrap(),
            json!({"a":true})
        );
    }

    #[test]
    fn bad_config_says_why() {
        assert!(parse_config("[1,2]").unwrap_err().contains("table"));
        assert!(parse_config("mode = ").unwrap_err().contains("TOML"));
        assert!(parse_config("@/nonexistent/c.toml")
            .unwrap_err()
            .contains("/nonexistent/c.toml"));
    }
}
