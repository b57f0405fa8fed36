//! Faults (issue 17): an emptied config, a full disk, a corrupt database, a broken pipe, a
//! timed-out scan — each survived loudly, against the real daemon.

use std::path::{Path, PathBuf};

use crate::common::{Daemon, TestDir, VIGILD};

mod cli_pipe;
mod config_storm;
mod corrupt;
mod crash;
mod enospc;
mod timeout_evidence;

pub fn fixture_lib() -> PathBuf {
    Path::new(VIGILD)
        .parent()
        .unwrap()
        .join("libvigil_test_plugins.so")
}

/// `nodes` nodes `n1..` (roots in the test dir), the fixture plugin as `gated` (waits for
/// `dir/gate`) and `ok`, one admin (uid 4243), `daemon` lines in `[daemon]`, plus `extra`.
pub fn config(dir: &TestDir, nodes: usize, daemon: &str, extra: &str) -> String {
    let mut c = format!(
        "policy_dir = \"no-policies\"\n[daemon]\nstate_dir = \"state\"\nsocket = \"run/vigil.sock\"\nshutdown_grace = \"2s\"\n{daemon}\n\n"
    );
    for i in 1..=nodes {
        let root = dir.node_root(&format!("root-{i}"));
        c += &format!(
            "[[node]]\nname = \"n{i}\"\nroot = \"{}\"\n\n",
            root.display()
        );
    }
    let gate = dir.path().join("gate");
    for (name, cfg) in [
        (
            "gated",
            format!("mode = \"gate\"\ngate = \"{}\"\ncount = 4", gate.display()),
        ),
        ("ok", "mode = \"ok\"\ncount = 7".to_owned()),
        ("stall", "mode = \"stall\"\ncount = 5".to_owned()),
    ] {
        c += &format!(
            "[[plugin]]\nname = \"{name}\"\nlibrary = \"{}\"\n[plugin.config]\n{cfg}\n\n",
            fixture_lib().display()
        );
    }
    c += "[[user]]\nemail = \"admin@example.org\"\nuid = 4243\nrole = \"admin\"\n\n";
    c + extra
}

pub fn start(dir: &TestDir, nodes: usize, daemon: &str, extra: &str) -> Daemon {
    dir.write_config(&config(dir, nodes, daemon, extra));
    Daemon::start_on(dir).expect("vigild starts")
}

pub fn open_gate(dir: &TestDir) {
    std::fs::write(dir.path().join("gate"), b"open").unwrap();
}
