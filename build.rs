//! Records the git commit the binaries are built from, for `vigil --version` and `vigild
//! --version` ("vigil 0.1.0 (commit abc1234)"). Outside a git checkout, or without git, the
//! commit is "unknown". Reruns only when HEAD or the branch it points at moves.

use std::path::PathBuf;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let dir = std::env::var_os("CARGO_MANIFEST_DIR")?;
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let text = text.trim();
    (out.status.success() && !text.is_empty()).then(|| text.to_owned())
}

/// Watches a file of the git directory, if it exists: a missing file would make cargo rerun
/// this script (and rebuild the crate) on every build.
fn watch_git_path(name: &str) -> bool {
    let Some(path) = git(&["rev-parse", "--path-format=absolute", "--git-path", name]) else {
        return false;
    };
    let path = PathBuf::from(path);
    if path.is_file() {
        println!("cargo:rerun-if-changed={}", path.display());
        true
    } else {
        false
    }
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let commit = git(&["rev-parse", "--short=7", "HEAD"]);
    if commit.is_some() {
        watch_git_path("HEAD");
        if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
            // A branch lives in its own file until `git pack-refs` moves it to packed-refs.
            if !watch_git_path(&branch) {
                watch_git_path("packed-refs");
            }
        }
    }
    println!(
        "cargo:rustc-env=VIGIL_COMMIT={}",
        commit.as_deref().unwrap_or("unknown")
    );
}
