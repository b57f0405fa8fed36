//! The identities of drift: a [`ChangeId`] names one change *by destination* — plugin, key,
//! kind and the value it leads to, as drift sees it after the ignore rules — so that a patch
//! applied on 100 nodes is the same change 100 times, even where the nodes started from
//! different versions; a [`Fingerprint`] names a set of changes.

use crate::proto::{Change, ChangeKind, PluginDrift};

/// One change's identity: 32 hex digits of a hash over its plugin, key, kind and the
/// digest of its current value (none for a removal: gone is gone, whatever it was).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChangeId(String);

impl ChangeId {
    pub fn of(plugin: &str, c: &Change) -> ChangeId {
        let kind = match c.kind {
            ChangeKind::Added => "added",
            ChangeKind::Removed => "removed",
            ChangeKind::Modified => "modified",
        };
        let current = match c.kind {
            ChangeKind::Removed => "",
            _ => c.current_digest.as_deref().unwrap_or_default(),
        };
        ChangeId(hash_fields([plugin, c.key.as_str(), kind, current]))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A change id as stored or sent (not checked: an unknown id matches nothing).
    pub fn from_string(s: String) -> ChangeId {
        ChangeId(s)
    }
}

impl std::fmt::Display for ChangeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The identity of a set of changes: 32 hex digits of a hash over its sorted change ids.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint(String);

impl Fingerprint {
    /// The fingerprint of every change in `drifts`; `None` when nothing changed.
    pub fn of(drifts: &[PluginDrift]) -> Option<Fingerprint> {
        let ids: Vec<ChangeId> = drifts
            .iter()
            .flat_map(|d| d.changes.iter().map(|c| ChangeId::of(&d.plugin, c)))
            .collect();
        Fingerprint::of_ids(ids.iter())
    }

    /// The fingerprint of a set of changes, whatever their order; `None` for no change.
    pub fn of_ids<'a>(ids: impl IntoIterator<Item = &'a ChangeId>) -> Option<Fingerprint> {
        let mut ids: Vec<&str> = ids.into_iter().map(ChangeId::as_str).collect();
        if ids.is_empty() {
            return None;
        }
        ids.sort_unstable();
        ids.dedup();
        Some(Fingerprint(hash_fields(ids)))
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

/// 32 hex digits of a BLAKE3 hash over length-prefixed fields (so no two field lists hash
/// alike by running into each other).
fn hash_fields<'a>(fields: impl IntoIterator<Item = &'a str>) -> String {
    let mut hasher = blake3::Hasher::new();
    for field in fields {
        hasher.update(&(field.len() as u64).to_le_bytes());
        hasher.update(field.as_bytes());
    }
    hasher.finalize().to_hex()[..32].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(key: &str, from: Option<&str>, to: Option<&str>) -> Change {
        Change {
            key: key.into(),
            kind: ChangeKind::Modified,
            attributes: Vec::new(),
            content_diff: None,
            content_private: false,
            current_digest: to.map(str::to_owned),
            previous_digest: from.map(str::to_owned),
        }
    }

    #[test]
    fn the_same_change_has_the_same_id_and_sets_do_not_depend_on_order() {
        let a = ChangeId::of("packages", &change("openssl", Some("p1"), Some("c1")));
        let b = ChangeId::of("packages", &change("openssl", Some("p1"), Some("c1")));
        let other_start = ChangeId::of("packages", &change("openssl", Some("p0"), Some("c1")));
        let other_end = ChangeId::of("packages", &change("openssl", Some("p1"), Some("c2")));
        let other_plugin = ChangeId::of("files", &change("openssl", Some("p1"), Some("c1")));
        assert_eq!(a, b);
        assert_eq!(a, other_start, "by destination: the start does not matter");
        assert_ne!(a, other_end);
        assert_ne!(a, other_plugin);
        let c = ChangeId::of("files", &change("/etc/hosts", Some("x"), Some("y")));
        assert_eq!(
            Fingerprint::of_ids([&a, &c]),
            Fingerprint::of_ids([&c, &a, &c])
        );
        assert_ne!(Fingerprint::of_ids([&a]), Fingerprint::of_ids([&a, &c]));
        assert_eq!(Fingerprint::of_ids(std::iter::empty()), None);
    }
}
