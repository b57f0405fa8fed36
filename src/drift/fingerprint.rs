//! The fingerprint of a drift finding: the change set *by destination*. Two nodes that
//! reached the same state by the same changes get the same fingerprint, even if they came
//! from different states (a patch that moves openssl to one new version on 100 nodes).

use crate::proto::{ChangeKind, PluginDrift};

/// The identity of a set of changes: 32 hex digits of a hash over the sorted (plugin, key,
/// change kind, current value digest) of every change.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint(String);

impl Fingerprint {
    /// The fingerprint of every change in `drifts`; `None` when nothing changed.
    pub fn of(drifts: &[PluginDrift]) -> Option<Fingerprint> {
        let mut parts: Vec<(&str, &str, &'static str, &str)> = drifts
            .iter()
            .flat_map(|d| {
                d.changes.iter().map(move |c| {
                    let kind = match c.kind {
                        ChangeKind::Added => "added",
                        ChangeKind::Removed => "removed",
                        ChangeKind::Modified => "modified",
                    };
                    (
                        d.plugin.as_str(),
                        c.key.as_str(),
                        kind,
                        c.current_digest.as_deref().unwrap_or_default(),
                    )
                })
            })
            .collect();
        if parts.is_empty() {
            return None;
        }
        parts.sort();
        let mut hasher = blake3::Hasher::new();
        for (plugin, key, kind, digest) in &parts {
            for field in [*plugin, *key, *kind, *digest] {
                hasher.update(&(field.len() as u64).to_le_bytes());
                hasher.update(field.as_bytes());
            }
        }
        Some(Fingerprint(hasher.finalize().to_hex()[..32].to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
