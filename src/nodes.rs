//! Nodes as the API shows them: each configured node with its last scan and newest
//! snapshot per plugin, a node's drift of one day (re-diffed with the ignore rules in
//! force), and an item's current value. Read-only views over the store.

use std::sync::Arc;

use crate::config::Config;
use crate::drift::{self, DiffRules};
use crate::proto::{DriftQuery, ItemQuery, ItemValue, NodeDrift, NodeInfo};
use crate::queue::persist;
use crate::setup::SetupCell;
use crate::snapshot;
use crate::store::{Store, StoreError};

/// Why a node view cannot be given.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("there is no node {0:?} in the config")]
    Unknown(String),
    #[error("node {0:?} has not been scanned yet: run `vigil scan --scope node:{0}`")]
    NotScanned(String),
    #[error("no scan of node {node:?} is recorded for {day}")]
    NoScanOn {
        node: String,
        day: chrono::NaiveDate,
    },
    #[error("no item {key:?} from plugin {plugin:?} in the newest snapshot of {node:?}")]
    NoItem {
        node: String,
        plugin: String,
        key: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The node views; cheap to clone.
#[derive(Clone)]
pub struct Nodes {
    store: Store,
    setup: Arc<SetupCell>,
}

impl Nodes {
    pub fn new(store: Store, setup: Arc<SetupCell>) -> Nodes {
        Nodes { store, setup }
    }

    fn node_config(&self, name: &str) -> Result<Arc<Config>, NodeError> {
        let config = self.setup.config();
        match config.node(name) {
            Some(_) => Ok(config),
            None => Err(NodeError::Unknown(name.to_owned())),
        }
    }

    /// Every configured node with its last scan and newest snapshot per plugin.
    pub async fn list(&self) -> Result<Vec<NodeInfo>, StoreError> {
        let config = self.setup.config();
        self.store
            .read(move |tx| -> Result<_, StoreError> {
                let mut out = Vec::with_capacity(config.nodes.len());
                for node in &config.nodes {
                    let latest = snapshot::latest_per_plugin(tx, &node.name)?;
                    let last_scan = persist::last_scan(tx, &node.name)?;
                    out.push(NodeInfo {
                        reached: match &node.ssh {
                            Some(t) => format!("ssh {t}"),
                            None => "local".to_owned(),
                        },
                        reachable: last_scan.as_ref().map(|s| s.reached),
                        last_scan,
                        items: latest
                            .iter()
                            .map(|(p, (_, m))| (p.clone(), m.items))
                            .collect(),
                        snapshot_days: latest.iter().map(|(p, (d, _))| (p.clone(), *d)).collect(),
                        name: node.name.clone(),
                        groups: node.groups.clone(),
                        root: node.root.display().to_string(),
                    });
                }
                Ok(out)
            })
            .await
    }

    /// A node's drift of one day (default: the newest with a recorded scan), every plugin
    /// or one, with the ignore rules in force now.
    pub async fn drift(&self, name: &str, q: DriftQuery) -> Result<NodeDrift, NodeError> {
        let config = self.node_config(name)?;
        let node = name.to_owned();
        let found = self
            .store
            .read(move |tx| -> Result<_, StoreError> {
                let day = match q.date {
                    Some(d) => Some(d),
                    None => drift::latest_day(tx, &node)?,
                };
                let Some(day) = day else { return Ok(None) };
                let rules = |plugin: &str| config.plugin(plugin).map(DiffRules::for_plugin);
                let mut plugins = drift::of_day_now(tx, &node, day, rules)?;
                if let Some(p) = &q.plugin {
                    plugins.retain(|d| &d.plugin == p);
                }
                Ok(Some((day, plugins)))
            })
            .await?;
        let Some((day, plugins)) = found else {
            return Err(NodeError::NotScanned(name.to_owned()));
        };
        if plugins.is_empty() {
            return Err(NodeError::NoScanOn {
                node: name.to_owned(),
                day,
            });
        }
        let changes = plugins.iter().map(|p| p.changes.len()).sum();
        Ok(NodeDrift {
            node: name.to_owned(),
            day,
            plugins,
            changes,
        })
    }

    /// An item's value in the newest snapshot of a node's plugin.
    pub async fn item(&self, name: &str, q: ItemQuery) -> Result<ItemValue, NodeError> {
        self.node_config(name)?;
        let (node, plugin, key) = (name.to_owned(), q.plugin.clone(), q.key.clone());
        let found = self
            .store
            .read(move |tx| snapshot::current_item(tx, &node, &plugin, &key))
            .await?;
        let Some((day, value)) = found else {
            return Err(NodeError::NoItem {
                node: name.to_owned(),
                plugin: q.plugin,
                key: q.key,
            });
        };
        Ok(ItemValue {
            node: name.to_owned(),
            plugin: q.plugin,
            key: q.key,
            day,
            content_private: value.content_is_private(),
            attributes: value.attributes,
            content: value.content,
        })
    }
}
