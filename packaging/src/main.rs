//! `vigil-dist`: generates what vigil ships besides its binaries, from the sources they are
//! built from, so that it cannot drift from them:
//!
//!     vigil-dist [--config FILE] OUTDIR
//!
//! writes `OUTDIR/man/` (vigil(1), vigild(8) and a page per subcommand of each, from the clap
//! definitions; vigil.toml(5) from the comments of FILE, by default the built-in copy of
//! `config.toml.example`) and `OUTDIR/completions/{bash,zsh,fish}/` for vigil and vigild. It
//! refuses (exit 1) when the config's documentation and `vigil::config` disagree on a key.
//! `packaging/build-deb` runs it before `cargo deb`.

mod example;
mod keys;
mod man;
mod parity;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::CommandFactory;
use clap_complete::Shell;

/// The config example as this binary was built with it.
pub const EXAMPLE: &str = include_str!("../../config.toml.example");

const USAGE: &str = "usage: vigil-dist [--config FILE] OUTDIR";

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let mut config: Option<PathBuf> = None;
    let mut out: Option<PathBuf> = None;
    while let Some(arg) = args.next() {
        match arg.to_str() {
            Some("--config") => config = args.next().map(PathBuf::from),
            Some("-h" | "--help") => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            _ if out.is_none() => out = Some(arg.into()),
            _ => {
                eprintln!("{USAGE}");
                return ExitCode::from(64);
            }
        }
    }
    let Some(out) = out else {
        eprintln!("{USAGE}");
        return ExitCode::from(64);
    };
    let text = match &config {
        None => EXAMPLE.to_owned(),
        Some(path) => match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) => {
                eprintln!("vigil-dist: cannot read {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
        },
    };
    let name = config
        .as_deref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "config.toml.example".into());
    match run(&text, &name, &out) {
        Ok(files) => {
            for f in files {
                println!("{}", f.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("vigil-dist: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(config: &str, name: &str, out: &Path) -> Result<Vec<PathBuf>, String> {
    let doc = example::parse(config);
    let accepted = keys::accepted::<vigil::config::Config>();
    let problems = parity::problems(&doc, &accepted);
    if !problems.is_empty() {
        return Err(format!(
            "{name} and vigil::config disagree:\n  {}",
            problems.join("\n  ")
        ));
    }
    let io =
        |what: &str, e: std::io::Error| format!("cannot write {what} under {}: {e}", out.display());
    let man_dir = out.join("man");
    std::fs::create_dir_all(&man_dir).map_err(|e| io("man pages", e))?;
    let mut files = man::vigil(&man_dir).map_err(|e| io("vigil(1)", e))?;
    files.extend(man::vigild(&man_dir).map_err(|e| io("vigild(8)", e))?);
    files.push(man::config(&doc, &accepted, &man_dir).map_err(|e| io("vigil.toml(5)", e))?);
    files.extend(completions(&out.join("completions")).map_err(|e| io("completions", e))?);
    Ok(files)
}

/// Completion scripts under the names each shell looks for: `bash/vigil`, `zsh/_vigil`,
/// `fish/vigil.fish`, and the same for vigild.
fn completions(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for (shell, sub) in [
        (Shell::Bash, "bash"),
        (Shell::Zsh, "zsh"),
        (Shell::Fish, "fish"),
    ] {
        let dir = dir.join(sub);
        std::fs::create_dir_all(&dir)?;
        for (bin, mut cmd) in [
            ("vigil", vigil::cli::Cli::command()),
            ("vigild", vigil::cli::vigild::Args::command()),
        ] {
            let file = match shell {
                Shell::Zsh => format!("_{bin}"),
                Shell::Fish => format!("{bin}.fish"),
                _ => bin.to_owned(),
            };
            let path = dir.join(file);
            let mut out = std::fs::File::create(&path)?;
            clap_complete::generate(shell, &mut cmd, bin, &mut out);
            files.push(path);
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn visible_commands(cmd: &clap::Command) -> usize {
        1 + cmd
            .get_subcommands()
            .filter(|s| !s.is_hide_set() && s.get_name() != "help")
            .map(visible_commands)
            .sum::<usize>()
    }

    /// Every subcommand has a page, and vigil.toml(5) names every documented key.
    #[test]
    fn generates_a_page_per_command_and_every_key() {
        let out = tempfile::tempdir().unwrap();
        let files = run(EXAMPLE, "config.toml.example", out.path()).unwrap();
        let pages = |suffix: &str| {
            files
                .iter()
                .filter(|f| f.to_string_lossy().ends_with(suffix))
                .count()
        };
        let mut vigil = vigil::cli::Cli::command();
        vigil.build();
        let mut vigild = vigil::cli::vigild::Args::command();
        vigild.build();
        assert_eq!(pages(".1"), visible_commands(&vigil));
        assert_eq!(pages(".8"), visible_commands(&vigild));
        let man = out.path().join("man");
        for page in [
            "vigil.1",
            "vigil-tasks-close-all.1",
            "vigil-completions.1",
            "vigild.8",
        ] {
            assert!(man.join(page).is_file(), "{page} missing");
        }
        assert!(
            !man.join("vigild-__worker.8").exists(),
            "hidden commands get no page"
        );
        let toml5 = std::fs::read_to_string(man.join("vigil.toml.5")).unwrap();
        let doc = example::parse(EXAMPLE);
        for table in &doc.tables {
            if table.name == "plugin.config" {
                continue;
            }
            for key in &table.keys {
                let name = key.name.replace('_', "\\_").replace('-', "\\-");
                assert!(
                    toml5.contains(&key.name) || toml5.contains(&name),
                    "vigil.toml(5) lacks {}.{}",
                    table.name,
                    key.name
                );
            }
        }
        // The unit's Documentation= names generated pages.
        let unit = include_str!("../../systemd/vigild.service");
        let docs: Vec<&str> = unit
            .lines()
            .filter_map(|l| l.strip_prefix("Documentation="))
            .flat_map(str::split_whitespace)
            .collect();
        assert!(docs.contains(&"man:vigild(8)") && docs.contains(&"man:vigil.toml(5)"));
        for doc in docs {
            let (name, section) = doc
                .strip_prefix("man:")
                .and_then(|p| p.strip_suffix(')'))
                .and_then(|p| p.split_once('('))
                .unwrap_or_else(|| panic!("Documentation={doc} is not a man page"));
            assert!(
                man.join(format!("{name}.{section}")).is_file(),
                "{doc} is not generated"
            );
        }
        assert_eq!(pages("completions/bash/vigil"), 1);
        assert_eq!(files.len(), pages(".1") + pages(".8") + 1 + 6);
    }

    #[test]
    fn refuses_a_config_that_disagrees_with_the_structs() {
        let out = tempfile::tempdir().unwrap();
        let edited = EXAMPLE.replace("slots = 4", "slotz = 4");
        let err = run(&edited, "edited", out.path()).unwrap_err();
        assert!(
            err.contains("daemon.slots") && err.contains("daemon.slotz"),
            "{err}"
        );
    }
}
