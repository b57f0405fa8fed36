//! Why a remote scan failed, typed, read from what `ssh` (and `sudo`, and the dynamic loader
//! on the node) print and from ssh's exit status (255 is ssh's own failure; anything else is
//! the remote command's). The messages name no host, address or port — the scan-failure task
//! groups the same failure of many nodes by its message — and say what to do.

use std::time::Duration;

/// Why a node could not be reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unreachable {
    Refused,
    TimedOut,
    NoRoute,
    Dns,
}

/// A remote scan's failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RemoteFailure {
    #[error("unreachable: {}", unreachable_text(.0))]
    Unreachable(Unreachable),
    #[error(
        "authentication refused: the node did not accept vigil's key; add the public key of \
         ssh.identity_file (or the group's identity_file) to the login user's \
         ~/.ssh/authorized_keys on the node"
    )]
    AuthRefused,
    #[error(
        "host key unknown: vigil's known_hosts has no key for this node, and none is learned \
         silently; check the node's fingerprint and record it with `vigil nodes trust NODE`"
    )]
    HostKeyUnknown,
    #[error(
        "host key changed: the node offered a host key other than the one in vigil's \
         known_hosts (a reinstalled node, or someone in between); verify the new key, delete \
         the node's old line from ssh.known_hosts and run `vigil nodes trust NODE`"
    )]
    HostKeyChanged,
    #[error(
        "sudo needs a password on the node: become = \"sudo\" runs the worker with `sudo -n`; \
         give the login user a NOPASSWD sudoers rule for the worker_dir's vigil-worker-* (see \
         README), or set become = \"none\""
    )]
    SudoPassword,
    #[error("sudo refused to run the worker on the node: {0}")]
    SudoRefused(String),
    #[error("worker push failed: {0}")]
    PushFailed(String),
    #[error("worker incompatible: {0}")]
    WorkerIncompatible(String),
    #[error("connection lost mid-scan ({0}); the node or the network dropped the SSH connection")]
    ConnectionLost(String),
    #[error("the SSH connection could not be set up within {}; is the node overloaded?", humantime::format_duration(*.0))]
    SetupTimedOut(Duration),
    #[error("ssh failed: {0}")]
    Ssh(String),
    /// The node root on the remote host cannot be scanned (what follows "node root …").
    #[error("{0}")]
    NodeRoot(String),
}

fn unreachable_text(u: &Unreachable) -> &'static str {
    match u {
        Unreachable::Refused => {
            "connection refused (is sshd running on the node, and is the port in its ssh \
             target right?)"
        }
        Unreachable::TimedOut => {
            "connection timed out (ssh.connect_timeout): the node is down, or a firewall drops \
             the connection"
        }
        Unreachable::NoRoute => "no route to the host: the node or its network is down",
        Unreachable::Dns => {
            "the host name does not resolve: check the node's ssh target and the DNS"
        }
    }
}

/// The typed failure that ssh's stderr and exit status show, if they show one. `greeted`: the
/// worker's hello had arrived, so an ssh failure now is a connection lost mid-scan.
pub fn classify(code: Option<i32>, stderr: &str, greeted: bool) -> Option<RemoteFailure> {
    let has = |s: &str| stderr.contains(s);
    if has("sudo: a password is required") || has("sudo: a terminal is required") {
        return Some(RemoteFailure::SudoPassword);
    }
    if let Some(line) = stderr.lines().find(|l| l.trim_start().starts_with("sudo:")) {
        return Some(RemoteFailure::SudoRefused(clean(line)));
    }
    if has("version `GLIBC_") || has("GLIBC_") && has("not found") {
        return Some(RemoteFailure::WorkerIncompatible(format!(
            "the node's C library is older than the one vigil-worker was built against ({}); \
             build vigil on a distribution at least as old as the nodes, or upgrade the node",
            clean(
                stderr
                    .lines()
                    .find(|l| l.contains("GLIBC_"))
                    .unwrap_or_default()
            )
        )));
    }
    if has("exec format error") || has("cannot execute binary file") {
        return Some(RemoteFailure::WorkerIncompatible(
            "the node cannot execute vigil-worker (another CPU architecture?)".into(),
        ));
    }
    if code != Some(255) {
        return None;
    }
    if has("REMOTE HOST IDENTIFICATION HAS CHANGED") || has("Host key for") && has("has changed") {
        return Some(RemoteFailure::HostKeyChanged);
    }
    if has("host key is known for") || has("Host key verification failed") {
        return Some(RemoteFailure::HostKeyUnknown);
    }
    if has("Permission denied (") || has("Too many authentication failures") {
        return Some(RemoteFailure::AuthRefused);
    }
    if has("Could not resolve hostname") || has("Name or service not known") {
        return Some(RemoteFailure::Unreachable(Unreachable::Dns));
    }
    if has("Connection refused") {
        return Some(RemoteFailure::Unreachable(Unreachable::Refused));
    }
    if has("No route to host") || has("Network is unreachable") {
        return Some(RemoteFailure::Unreachable(Unreachable::NoRoute));
    }
    if has("Connection timed out") || has("Operation timed out") {
        return Some(RemoteFailure::Unreachable(Unreachable::TimedOut));
    }
    let last = clean(
        stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("ssh exited with status 255 and said nothing"),
    );
    let lost = has("closed by remote host") || has("Connection reset") || has("Broken pipe");
    Some(if greeted || lost {
        RemoteFailure::ConnectionLost(last)
    } else {
        RemoteFailure::Ssh(last)
    })
}

/// One line of remote output, trimmed and bounded, with control characters taken out.
pub fn clean(line: &str) -> String {
    let mut s: String = line
        .trim()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if s.len() > 300 {
        let mut cut = 300;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_openssh_prints_is_typed() {
        let cases: &[(&str, RemoteFailure)] = &[
            (
                "ssh: connect to host 127.0.0.1 port 1: Connection refused\r\n",
                RemoteFailure::Unreachable(Unreachable::Refused),
            ),
            (
                "ssh: connect to host 10.255.255.1 port 22: Connection timed out\r\n",
                RemoteFailure::Unreachable(Unreachable::TimedOut),
            ),
            (
                "ssh: connect to host 10.0.0.9 port 22: No route to host\r\n",
                RemoteFailure::Unreachable(Unreachable::NoRoute),
            ),
            (
                "ssh: Could not resolve hostname nowhere.invalid: Name or service not known\r\n",
                RemoteFailure::Unreachable(Unreachable::Dns),
            ),
            (
                "No ED25519 host key is known for [127.0.0.1]:2222 and you have requested strict checking.\r\nHost key verification failed.\r\n",
                RemoteFailure::HostKeyUnknown,
            ),
            (
                "@@@@@@@@\r\n@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\r\nHost key verification failed.\r\n",
                RemoteFailure::HostKeyChanged,
            ),
            (
                "vigil@127.0.0.1: Permission denied (publickey).\r\n",
                RemoteFailure::AuthRefused,
            ),
        ];
        for (stderr, want) in cases {
            assert_eq!(
                classify(Some(255), stderr, false).as_ref(),
                Some(want),
                "{stderr}"
            );
        }
        assert_eq!(
            classify(Some(1), "sudo: a password is required\n", false),
            Some(RemoteFailure::SudoPassword)
        );
        assert!(matches!(
            classify(Some(1), "/var/tmp/vigil/vigil-worker-x: /lib/x86_64-linux-gnu/libc.so.6: version `GLIBC_2.39' not found\n", false),
            Some(RemoteFailure::WorkerIncompatible(_))
        ));
        assert!(matches!(
            classify(
                Some(255),
                "client_loop: send disconnect: Broken pipe\r\n",
                true
            ),
            Some(RemoteFailure::ConnectionLost(_))
        ));
        // The remote command's own failure is not ssh's.
        assert_eq!(classify(Some(1), "boom", false), None);
    }

    #[test]
    fn messages_name_no_host() {
        for f in [
            RemoteFailure::Unreachable(Unreachable::Refused),
            RemoteFailure::HostKeyUnknown,
            RemoteFailure::AuthRefused,
        ] {
            let m = f.to_string();
            assert!(!m.contains("127.0.0.1"), "{m}");
        }
    }
}
