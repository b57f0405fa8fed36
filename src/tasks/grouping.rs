//! Grouping: which nodes' findings make one user task. Every node has a *destination* — the
//! owner group whose owner its tasks go to — and within one destination the changes of a
//! run that happened on exactly the same set of nodes form one *cluster*: one task. So a
//! patch on 100 nodes is one task with 100 events, an extra change on one node is a task of
//! its own, and the result does not depend on the order the nodes were scanned in (nodes
//! and changes are ordered by name and identity, never by arrival).

use std::collections::{BTreeMap, HashMap};

use super::finding::NodeFindings;
use crate::config::{Config, GroupConfig};
use crate::proto::TaskChange;

/// The destination key of nodes with no owner group.
pub const UNASSIGNED: &str = "-";
/// The destination key of every node with `[tasks] group_across_owners`.
pub const EVERYONE: &str = "*";

/// Where a node's tasks go.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Destination {
    /// A group name, [`UNASSIGNED`] or [`EVERYONE`]; part of every fingerprint.
    pub key: String,
}

impl Destination {
    /// The owner group's name, if the destination is one.
    pub fn group(&self) -> Option<&str> {
        (self.key != UNASSIGNED && self.key != EVERYONE).then_some(self.key.as_str())
    }
}

/// The node's owner group: the first of its own groups that has owners and auto-assigns.
pub fn owner_group<'c>(config: &'c Config, node: &str) -> Option<&'c GroupConfig> {
    let node = config.node(node)?;
    node.groups
        .iter()
        .filter_map(|g| config.group(g))
        .find(|g| g.auto_assign && !g.owners.is_empty())
}

/// The destination of a node's tasks.
pub fn destination(config: &Config, node: &str) -> Destination {
    let key = if config.tasks.group_across_owners {
        EVERYONE.to_owned()
    } else {
        owner_group(config, node).map_or(UNASSIGNED.to_owned(), |g| g.name.clone())
    };
    Destination { key }
}

/// Who a new task for `nodes` in `dest` is assigned to, and the group that decided it: the
/// destination's owner; for the whole organisation, the owner of the group with the most
/// affected nodes (the first such group in the config on a tie).
pub fn assignee(config: &Config, dest: &Destination, nodes: &[&str]) -> Option<(String, String)> {
    let group = match dest.group() {
        Some(name) => config.group(name)?,
        None if dest.key == EVERYONE => {
            let mut count: HashMap<&str, usize> = HashMap::new();
            for n in nodes {
                if let Some(g) = owner_group(config, n) {
                    *count.entry(g.name.as_str()).or_default() += 1;
                }
            }
            let most = count.values().copied().max()?;
            config
                .groups
                .iter()
                .find(|g| count.get(g.name.as_str()) == Some(&most))?
        }
        None => return None,
    };
    let owner = group.owners.first()?.clone();
    Some((owner, group.name.clone()))
}

/// One task's worth of a run's drift: changes that occurred on exactly these nodes.
#[derive(Debug)]
pub struct Cluster<'a> {
    pub destination: Destination,
    /// Sorted by node name.
    pub nodes: Vec<&'a NodeFindings>,
    /// Sorted by change identity. Where the nodes came from different values (a package
    /// upgraded from two old versions to one new one), the summary says so.
    pub changes: Vec<TaskChange>,
}

/// The clusters of a run's findings, per destination, in a fixed order (destination, then
/// the first node's name, then the changes).
pub fn clusters<'a>(
    findings: &'a [NodeFindings],
    destination_of: impl Fn(&str) -> Destination,
) -> Vec<Cluster<'a>> {
    // Each node once (its last findings), in name order, per destination.
    let mut by_dest: BTreeMap<Destination, BTreeMap<&str, &NodeFindings>> = BTreeMap::new();
    for f in findings {
        by_dest
            .entry(destination_of(&f.node))
            .or_default()
            .insert(f.node.as_str(), f);
    }
    let mut out = Vec::new();
    for (dest, nodes) in by_dest {
        let nodes: Vec<&NodeFindings> = nodes.into_values().collect();
        // Change → the nodes it happened on (indices into `nodes`, ascending), and whether
        // they came to it from different values.
        let mut on: BTreeMap<&str, (&TaskChange, Vec<u32>, bool)> = BTreeMap::new();
        for (i, f) in nodes.iter().enumerate() {
            for c in &f.changes {
                let entry = on.entry(c.id.as_str()).or_insert((c, Vec::new(), false));
                if entry.1.last() != Some(&(i as u32)) {
                    entry.1.push(i as u32);
                }
                entry.2 |= entry.0.summary != c.summary;
            }
        }
        // Node set → the changes that happened on exactly that set.
        let mut sets: BTreeMap<Vec<u32>, Vec<TaskChange>> = BTreeMap::new();
        for (_, (change, set, mixed)) in on {
            let mut change = change.clone();
            if mixed {
                change.summary.push_str(super::change::MIXED_START);
            }
            sets.entry(set).or_default().push(change);
        }
        for (set, changes) in sets {
            out.push(Cluster {
                destination: dest.clone(),
                nodes: set.iter().map(|&i| nodes[i as usize]).collect(),
                changes,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{ChangeKind, QueueTaskId, QueueTaskKind};

    fn change(id: &str) -> TaskChange {
        TaskChange {
            id: id.into(),
            plugin: "packages".into(),
            key: id.into(),
            kind: ChangeKind::Modified,
            summary: String::new(),
        }
    }

    fn node(name: &str, changes: &[&str]) -> NodeFindings {
        let mut f = NodeFindings::new(
            name,
            QueueTaskId {
                kind: QueueTaskKind::Scan,
                number: 1,
            },
            chrono::NaiveDate::from_ymd_opt(2026, 3, 2).unwrap(),
        );
        f.changes = changes.iter().map(|c| change(c)).collect();
        f
    }

    fn shape(cs: &[Cluster<'_>]) -> Vec<(String, Vec<String>, Vec<String>)> {
        cs.iter()
            .map(|c| {
                (
                    c.destination.key.clone(),
                    c.nodes.iter().map(|n| n.node.clone()).collect(),
                    c.changes.iter().map(|c| c.id.clone()).collect(),
                )
            })
            .collect()
    }

    /// The night: a three-change patch on six nodes, one extra change on one of
    /// them, one node that got only part of the patch; two owners.
    #[test]
    fn changes_on_the_same_nodes_cluster_whatever_the_scan_order() {
        let patch = ["openssl", "libssl3", "sshd_config"];
        let mut findings = vec![
            node("web01", &patch),
            node("web02", &[&patch[..], &["toor"]].concat()),
            node("web03", &patch),
            node("db01", &patch),
            node("db02", &patch),
            node("db03", &["openssl"]),
        ];
        let dest = |n: &str| Destination {
            key: if n.starts_with("web") { "web" } else { "db" }.to_owned(),
        };
        let want = vec![
            (
                "db".into(),
                vec!["db01".into(), "db02".into()],
                vec!["libssl3".into(), "sshd_config".into()],
            ),
            (
                "db".into(),
                vec!["db01".into(), "db02".into(), "db03".into()],
                vec!["openssl".into()],
            ),
            (
                "web".into(),
                vec!["web01".into(), "web02".into(), "web03".into()],
                vec!["libssl3".into(), "openssl".into(), "sshd_config".into()],
            ),
            ("web".into(), vec!["web02".into()], vec!["toor".into()]),
        ];
        assert_eq!(shape(&clusters(&findings, dest)), want);
        findings.reverse();
        findings.swap(1, 4);
        assert_eq!(shape(&clusters(&findings, dest)), want);
    }
}
