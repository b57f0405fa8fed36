//! `vigil nodes trust`: fetches a node's host keys with `ssh-keyscan`, fingerprints them with
//! `ssh-keygen -lf`, and records the one the administrator confirmed (by its SHA256
//! fingerprint) in vigil's known_hosts. Nothing is recorded without a matching fingerprint.

use std::io::Write;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

use crate::config::SshTarget;

/// One host key the node offered.
#[derive(Debug, Clone)]
pub struct OfferedKey {
    /// `SHA256:…`
    pub fingerprint: String,
    /// `ED25519`, `RSA`, …
    pub kind: String,
    /// The known_hosts line.
    line: String,
}

/// The node's host keys, fingerprinted.
pub async fn scan(target: &SshTarget, timeout: Duration) -> Result<Vec<OfferedKey>, String> {
    let mut cmd = Command::new("ssh-keyscan");
    cmd.arg("-T").arg(timeout.as_secs().max(1).to_string());
    if let Some(port) = target.port {
        cmd.arg("-p").arg(port.to_string());
    }
    let out = cmd
        .arg("--")
        .arg(&target.host)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| format!("cannot run ssh-keyscan: {e}; install openssh-client"))?;
    let mut keys = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let mut child = Command::new("ssh-keygen")
            .args(["-l", "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot run ssh-keygen: {e}"))?;
        if let Some(mut stdin) = child.stdin.take() {
            use tokio::io::AsyncWriteExt;
            let _ = stdin.write_all(format!("{line}\n").as_bytes()).await;
        }
        let fp = child
            .wait_with_output()
            .await
            .map_err(|e| format!("ssh-keygen failed: {e}"))?;
        let text = String::from_utf8_lossy(&fp.stdout);
        let fields: Vec<&str> = text.split_whitespace().collect();
        if let (Some(fingerprint), Some(kind)) = (fields.get(1), fields.last()) {
            keys.push(OfferedKey {
                fingerprint: fingerprint.to_string(),
                kind: kind.trim_matches(|c| c == '(' || c == ')').to_owned(),
                line: line.to_owned(),
            });
        }
    }
    if keys.is_empty() {
        return Err(format!(
            "the node offered no host key: is it reachable, and does sshd run there? ({})",
            super::failure::clean(String::from_utf8_lossy(&out.stderr).trim())
        ));
    }
    Ok(keys)
}

/// Records the offered key with this fingerprint in `known_hosts`; `Err` when none has it.
pub fn record(known_hosts: &Path, keys: &[OfferedKey], fingerprint: &str) -> Result<(), String> {
    let Some(key) = keys.iter().find(|k| k.fingerprint == fingerprint) else {
        let offered: Vec<String> = keys
            .iter()
            .map(|k| format!("{} ({})", k.fingerprint, k.kind))
            .collect();
        return Err(format!(
            "the node offered no key with fingerprint {fingerprint} (it offered {}); nothing \
             was recorded: check the fingerprint on the node with `ssh-keygen -lf \
             /etc/ssh/ssh_host_ed25519_key.pub`",
            offered.join(", ")
        ));
    };
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(known_hosts)
        .map_err(|e| format!("cannot open {}: {e}", known_hosts.display()))?;
    writeln!(file, "{}", key.line)
        .and_then(|()| file.sync_all())
        .map_err(|e| format!("cannot write {}: {e}", known_hosts.display()))
}
