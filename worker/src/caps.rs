//! Least privilege for a plugin: before the library is loaded, the worker keeps only the
//! capabilities its plugin needs and sets no-new-privs, so neither the plugin nor anything it
//! executes can use the rest of the daemon's privileges.
//!
//! [`PROFILES`] is the one table of what each standard plugin keeps. The daemon names the
//! plugin (its configured name) on the worker's command line; a plugin the table does not
//! name (a third-party one) gets [`DEFAULT`]. The sets are applied with the `caps` crate:
//!
//! - the bounding set loses everything not kept, when this process may change it
//!   (`CAP_SETPCAP` in its effective set, as root outside systemd); under vigild's unit it
//!   cannot, and does not need to: the unit's bounding set is already small, and no-new-privs
//!   stops an `execve` from gaining anything beyond the permitted set kept here;
//! - the permitted, effective and inheritable sets become the kept set (intersected with
//!   what the worker has: dropping a capability it lacks is no error, so a worker run as an
//!   ordinary user on a remote node, with no capabilities at all, keeps none);
//! - the ambient set is cleared.
//!
//! Capabilities are per thread: this runs before the worker starts any thread, so every
//! thread, the plugin's own ones included, has the reduced sets.

// The `caps` crate (capget/capset/prctl), named apart from this module.
use ::caps as capctl;
use capctl::{CapSet, Capability, CapsHashSet};

/// What a plugin the table does not name keeps: reading every file of the node root
/// (other users' 0600 files and 0700 directories).
pub const DEFAULT: &[Capability] = &[Capability::CAP_DAC_READ_SEARCH];

/// The capabilities each standard plugin keeps, by configured name. Everything else —
/// `CAP_CHOWN`, `CAP_FOWNER`, `CAP_SETUID`/`CAP_SETGID`, `CAP_NET_*`, `CAP_SYS_ADMIN`,
/// `CAP_DAC_OVERRIDE` (writing), … — is dropped for every plugin.
pub const PROFILES: &[(&str, &[Capability])] = &[
    ("files", DEFAULT),
    ("packages", DEFAULT),
    ("accounts", DEFAULT),
    ("services", DEFAULT),
    ("sysctl", DEFAULT),
    // `ports` reads `/proc/PID/fd` of every process to find a socket's owner: the kernel
    // allows that for another user's process (or a more privileged one) only with
    // CAP_SYS_PTRACE (ptrace access mode "read").
    (
        "ports",
        &[Capability::CAP_DAC_READ_SEARCH, Capability::CAP_SYS_PTRACE],
    ),
];

/// The capabilities `plugin` keeps (see [`PROFILES`]).
pub fn profile(plugin: Option<&str>) -> &'static [Capability] {
    plugin
        .and_then(|name| PROFILES.iter().find(|(n, _)| *n == name))
        .map_or(DEFAULT, |(_, keep)| keep)
}

/// Reduces this process's capabilities to `keep` and sets no-new-privs. An error says
/// which step failed; the worker then refuses to load the plugin rather than run it with
/// more than it should have.
pub fn confine(keep: &[Capability]) -> Result<(), String> {
    let keep: CapsHashSet = keep.iter().copied().collect();
    let fail = |what: &str, e: capctl::errors::CapsError| {
        format!("cannot drop the worker's capabilities ({what}: {e}); the plugin is not loaded")
    };
    let effective = capctl::read(None, CapSet::Effective).map_err(|e| fail("read", e))?;
    if effective.contains(&Capability::CAP_SETPCAP) {
        for cap in capctl::read(None, CapSet::Bounding).map_err(|e| fail("read bounding", e))? {
            if !keep.contains(&cap) {
                capctl::drop(None, CapSet::Bounding, cap).map_err(|e| fail("bounding set", e))?;
            }
        }
    }
    if capctl::runtime::ambient_set_supported().is_ok() {
        capctl::clear(None, CapSet::Ambient).map_err(|e| fail("ambient set", e))?;
    }
    let permitted = capctl::read(None, CapSet::Permitted).map_err(|e| fail("read", e))?;
    let kept: CapsHashSet = permitted.intersection(&keep).copied().collect();
    // Effective first: it must stay within permitted at every step.
    capctl::set(None, CapSet::Effective, &kept).map_err(|e| fail("effective set", e))?;
    capctl::set(None, CapSet::Inheritable, &CapsHashSet::new())
        .map_err(|e| fail("inheritable set", e))?;
    capctl::set(None, CapSet::Permitted, &kept).map_err(|e| fail("permitted set", e))?;
    // SAFETY: prctl with integer arguments; it only affects this process and its children.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(format!(
            "cannot set no-new-privs: {}; the plugin is not loaded",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_ports_keeps_ptrace_and_nobody_keeps_chown() {
        for (name, keep) in PROFILES {
            assert!(!keep.contains(&Capability::CAP_CHOWN), "{name}");
            assert!(!keep.contains(&Capability::CAP_SETUID), "{name}");
            assert!(!keep.contains(&Capability::CAP_SYS_ADMIN), "{name}");
            assert_eq!(
                keep.contains(&Capability::CAP_SYS_PTRACE),
                *name == "ports",
                "{name}"
            );
            assert!(keep.contains(&Capability::CAP_DAC_READ_SEARCH), "{name}");
        }
        assert_eq!(profile(None), DEFAULT);
        assert_eq!(profile(Some("my-plugin")), DEFAULT);
        assert!(profile(Some("ports")).contains(&Capability::CAP_SYS_PTRACE));
    }
}
