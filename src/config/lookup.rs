//! Name lookups in a loaded config: fleets have thousands of nodes, and grouping a run asks
//! for every node's groups several times, so a linear search per lookup is quadratic in the
//! fleet. The map is built on first use; a loaded `Config` is immutable, and a hit is
//! checked against the list so a config changed after its first lookup (tests build them
//! by hand) is still answered correctly, by the linear search.

use std::collections::HashMap;
use std::sync::OnceLock;

/// Positions by name, of one list of a config.
#[derive(Debug, Clone, Default)]
pub struct NameIndex(OnceLock<HashMap<String, usize>>);

impl NameIndex {
    /// The entry of `items` named `name`: `name_of` gives an entry's name.
    pub fn find<'a, T>(
        &self,
        items: &'a [T],
        name: &str,
        name_of: impl Fn(&T) -> &str,
    ) -> Option<&'a T> {
        let map = self.0.get_or_init(|| {
            let mut map = HashMap::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                // The first of duplicate names wins, as the linear search's does.
                map.entry(name_of(item).to_owned()).or_insert(i);
            }
            map
        });
        match map.get(name).and_then(|&i| items.get(i)) {
            Some(item) if name_of(item) == name => Some(item),
            _ => items.iter().find(|item| name_of(item) == name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_by_name_and_the_first_of_duplicates() {
        let items = [("a", 1), ("b", 2), ("a", 3)];
        let index = NameIndex::default();
        assert_eq!(index.find(&items, "a", |s| s.0), Some(&("a", 1)));
        assert_eq!(index.find(&items, "b", |s| s.0), Some(&("b", 2)));
        assert_eq!(index.find(&items, "c", |s| s.0), None);
    }

    #[test]
    fn a_list_changed_after_the_first_lookup_is_still_answered_right() {
        let index = NameIndex::default();
        let before = vec![("a", 1), ("b", 2)];
        assert_eq!(index.find(&before, "a", |s| s.0), Some(&("a", 1)));
        let after = vec![("b", 2), ("c", 3), ("a", 4)];
        assert_eq!(index.find(&after, "a", |s| s.0), Some(&("a", 4)));
        assert_eq!(index.find(&after, "c", |s| s.0), Some(&("c", 3)));
    }
}
