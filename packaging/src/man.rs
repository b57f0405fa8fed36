//! Man pages: `vigil(1)` and `vigild(8)` with one page per subcommand (`vigil-tasks(1)`,
//! `vigil-tasks-show(1)`, `vigild-compact(8)`, ...) rendered by clap_mangen from the clap
//! definitions the binaries parse, and `vigil.toml(5)` from the config example's comments.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use clap_mangen::roff::{bold, roman, Inline, Roff};
use clap_mangen::Man;

use crate::example::Doc;
use crate::keys::{Key, Shape};

const MANUAL: &str = "vigil manual";

fn source() -> String {
    format!("vigil {}", env!("CARGO_PKG_VERSION"))
}

/// Extra sections of a page, after the generated ones: (heading, paragraphs).
type Sections = Vec<(&'static str, Vec<String>)>;

/// `vigil`'s exit codes from its help text ("  2   vigild could not be reached ..." with
/// continuation lines) as `CODE: text` paragraphs.
fn exit_codes(help: &str) -> Vec<String> {
    let mut codes: Vec<String> = Vec::new();
    for line in help.lines().map(str::trim).filter(|l| !l.is_empty()) {
        match line.split_once(char::is_whitespace) {
            Some((code, text)) if code.parse::<u8>().is_ok() => {
                codes.push(format!("{code}: {}", text.trim()))
            }
            _ if line.ends_with(':') => {}
            _ => {
                if let Some(last) = codes.last_mut() {
                    last.push(' ');
                    last.push_str(line);
                }
            }
        }
    }
    codes
}

/// Writes `vigil.1` and a page per (visible) subcommand into `dir`; returns the files.
pub fn vigil(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let cmd = <vigil::cli::Cli as clap::CommandFactory>::command();
    let help = cmd
        .get_after_help()
        .map(|h| h.to_string())
        .unwrap_or_default();
    let mut root = vec![("EXIT STATUS", exit_codes(&help))];
    root.push((
        "ENVIRONMENT",
        vec!["VIGIL_SOCKET: the control socket, like --socket.".to_owned()],
    ));
    root.push((
        "FILES",
        vec![format!(
            "{}: the control socket of vigild. Its group (daemon.socket_group, \
             \"vigil\" in the installed config) may connect; the daemon maps each \
             caller's uid to a [[user]] and its role.",
            vigil::config::DEFAULT_SOCKET
        )],
    ));
    let see_also = "vigild(8), vigil.toml(5)";
    let mut files = Vec::new();
    pages(cmd, "1", &mut root, see_also, dir, &mut files)?;
    Ok(files)
}

/// Writes `vigild.8` and a page per (visible) subcommand into `dir`; returns the files.
pub fn vigild(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let cmd = <vigil::cli::vigild::Args as clap::CommandFactory>::command();
    let mut root: Sections = vec![
        (
            "SIGNALS",
            vec![
                "SIGHUP: re-read and validate the config and its policies; a bad config is \
                 refused, logged and shown in `vigil status`, and the old one stays in force. \
                 Saving the config file or a policy has the same effect."
                    .to_owned(),
                "SIGTERM, SIGINT: stop taking work, give running tasks daemon.shutdown_grace \
                 to finish, then stop them; they are queued again at the next start."
                    .to_owned(),
            ],
        ),
        (
            "SYSTEMD",
            vec![
                "vigild.service runs `vigild --config /etc/vigil/config.toml` with \
                 Type=notify: READY=1 once the control socket accepts connections, STATUS= \
                 lines, and watchdog pings when WatchdogSec= is set. `systemctl reload \
                 vigild` sends SIGHUP."
                    .to_owned(),
            ],
        ),
        (
            "FILES",
            vec![
                format!(
                    "{}: the config, see vigil.toml(5).",
                    vigil::config::DEFAULT_CONFIG_PATH
                ),
                "/etc/vigil/policies/*.toml: policies (policy_dir).".to_owned(),
                "/var/lib/vigil/vigil.redb: the database; /var/lib/vigil/maildir: mail \
                 without SMTP (daemon.state_dir)."
                    .to_owned(),
                format!(
                    "{}: the control socket (daemon.socket).",
                    vigil::config::DEFAULT_SOCKET
                ),
                "/usr/lib/vigil/plugins/libvigil_NAME.so: the scanner plugins \
                 (daemon.plugin_dir)."
                    .to_owned(),
            ],
        ),
    ];
    let see_also = "vigil(1), vigil.toml(5), systemctl(1)";
    let mut files = Vec::new();
    pages(cmd, "8", &mut root, see_also, dir, &mut files)?;
    Ok(files)
}

/// Renders `cmd` and its visible subcommands, recursively. `extra` goes on the top page only.
fn pages(
    cmd: clap::Command,
    section: &str,
    extra: &mut Sections,
    see_also: &str,
    dir: &Path,
    files: &mut Vec<PathBuf>,
) -> io::Result<()> {
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    let top = cmd.get_name().to_owned();
    render_tree(&cmd, section, extra, see_also, &top, dir, files)
}

fn render_tree(
    cmd: &clap::Command,
    section: &str,
    extra: &mut Sections,
    see_also: &str,
    top: &str,
    dir: &Path,
    files: &mut Vec<PathBuf>,
) -> io::Result<()> {
    let name = cmd.get_display_name().unwrap_or(cmd.get_name());
    let man = Man::new(cmd.clone())
        .title(name.to_uppercase())
        .section(section)
        .source(source())
        .manual(MANUAL);
    let path = dir.join(man.get_filename());
    let mut out = io::BufWriter::new(std::fs::File::create(&path)?);
    man.render_title(&mut out)?;
    man.render_name_section(&mut out)?;
    man.render_synopsis_section(&mut out)?;
    man.render_description_section(&mut out)?;
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(&mut out)?;
    }
    if cmd.get_subcommands().any(|s| !s.is_hide_set()) {
        man.render_subcommands_section(&mut out)?;
    }
    let mut roff = Roff::new();
    for (heading, paragraphs) in std::mem::take(extra) {
        roff.control("SH", [heading]);
        paragraphs_to(&mut roff, &paragraphs);
    }
    roff.control("SH", ["SEE ALSO"]);
    let see = if cmd.get_name() == top {
        see_also.to_owned()
    } else {
        format!("{top}({section}), {see_also}")
    };
    roff.text([roman(see)]);
    roff.to_writer(&mut out)?;
    if cmd.get_version().is_some() {
        man.render_version_section(&mut out)?;
    }
    out.flush()?;
    files.push(path);
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        render_tree(sub, section, &mut Vec::new(), see_also, top, dir, files)?;
    }
    Ok(())
}

/// Writes `vigil.toml.5` into `dir` from the config's documentation.
pub fn config(doc: &Doc, accepted: &[Key], dir: &Path) -> io::Result<PathBuf> {
    let shape = |path: &str| accepted.iter().find(|k| k.path == path).map(|k| k.shape);
    let mut roff = Roff::new();
    roff.control("TH", ["VIGIL.TOML", "5", "", &source(), MANUAL]);
    roff.control("SH", ["NAME"]);
    roff.text([roman("vigil.toml - the configuration file of vigild")]);
    roff.control("SH", ["SYNOPSIS"]);
    roff.text([bold(vigil::config::DEFAULT_CONFIG_PATH)]);
    roff.control("SH", ["DESCRIPTION"]);
    let mut description = vec![
        "vigild(8) reads one TOML file: what to scan (nodes and their groups), with which \
         plugins, on which schedules, who may use the control socket, and where mail goes. \
         It is validated whole at start, on `systemctl reload vigild` (SIGHUP) and whenever \
         it is saved; a file with an error is refused with file:line:column and the config \
         in force stays. `vigild --check-config PATH` checks a file and its policies."
            .to_owned(),
    ];
    // The first paragraph of the file's introduction is its title.
    description.extend(doc.intro.iter().skip(1).cloned());
    paragraphs_to(&mut roff, &description);

    roff.control("SH", ["KEYS"]);
    for table in &doc.tables {
        if !table.name.is_empty() && shape(&table.name) == Some(Shape::Map) {
            // A free-form table (plugin.config): described as a key of its parent.
            continue;
        }
        let heading = match (table.name.as_str(), table.array) {
            ("", _) => "Top level".to_owned(),
            (name, true) => format!("[[{name}]]"),
            (name, false) => format!("[{name}]"),
        };
        roff.control("SS", [heading.as_str()]);
        paragraphs_to(&mut roff, &table.text);
        for key in &table.keys {
            roff.control("TP", []);
            let mut line = vec![bold(key.name.clone())];
            if let Some(value) = &key.value {
                line.push(roman(format!(" = {value}")));
            }
            roff.text(line);
            for (i, text) in key.text.iter().enumerate() {
                if i > 0 {
                    roff.control("br", []);
                }
                roff.text(inline(text));
            }
        }
    }

    roff.control("SH", ["FILES"]);
    paragraphs_to(
        &mut roff,
        &[
            format!(
                "{}: the config vigild.service runs with.",
                vigil::config::DEFAULT_CONFIG_PATH
            ),
            "/usr/share/doc/vigil/examples/config.toml.example: the example this page is \
             made from, with the paths of a source checkout."
                .to_owned(),
        ],
    );
    roff.control("SH", ["SEE ALSO"]);
    roff.text([roman("vigild(8), vigil(1)")]);

    let path = dir.join("vigil.toml.5");
    std::fs::write(&path, roff.render())?;
    Ok(path)
}

/// Paragraphs separated by `.PP`, with `code` in bold.
fn paragraphs_to(roff: &mut Roff, paragraphs: &[String]) {
    for (i, p) in paragraphs.iter().enumerate() {
        if i > 0 {
            roff.control("PP", []);
        }
        roff.text(inline(p));
    }
}

/// Text with `backquoted` parts in bold.
fn inline(text: &str) -> Vec<Inline> {
    text.split('`')
        .enumerate()
        .filter(|(_, part)| !part.is_empty())
        .map(
            |(i, part)| {
                if i % 2 == 1 {
                    bold(part)
                } else {
                    roman(part)
                }
            },
        )
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn exit_codes_are_read_from_the_help_text() {
        let help = "Exit codes:\n  0   success\n  1   refused, or\n      not done\n  64  bad";
        assert_eq!(
            super::exit_codes(help),
            ["0: success", "1: refused, or not done", "64: bad"]
        );
    }
}
