//! The fingerprint of a drift finding: the change set *by destination*. Two nodes that
//! reached the same state by the same changes get the same fingerprint, even if they came
//! from different states (a patch that moves openssl to one new version on 100 nodes).

use crate::proto::{ChangeKind, PluginDrift};

/// Sorted (plugin, key, change kind, current value digest) of every change, hashed; `None`
/// when there is no change.
pub fn fingerprint(drifts: &[PluginDrift]) -> Option<String> {
    let mut parts: Vec<(String, String, &'static str, String)> = drifts
        .iter()
        .flat_map(|d| {
            d.changes.iter().map(move |c| {
                let kind = match c.kind {
                    ChangeKind::Added => "added",
                    ChangeKind::Removed => "removed",
                    ChangeKind::Modified => "modified",
                };
                (
                    d.plugin.clone(),
                    c.key.clone(),
                    kind,
                    c.current_digest.clone().unwrap_or_default(),
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
        for field in [plugin.as_str(), key.as_str(), kind, digest.as_str()] {
            hasher.update(&(field.len() as u64).to_le_bytes());
            hasher.update(field.as_bytes());
        }
    }
    Some(hasher.finalize().to_hex()[..32].to_owned())
}
