//! Audit results: each policy check's latest outcome per node (written in the commit that
//! ends the audit), and the policy views built from them: per check, how many nodes pass,
//! fail or could not be evaluated, and which nodes do not pass and why.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use redb::{ReadTransaction, WriteTransaction};
use serde::{Deserialize, Serialize};

use crate::policy::Policy;
use crate::proto::{CheckInfo, CheckOutcome, CheckRecord, PolicyInfo, QueueTaskId};
use crate::setup::SetupCell;
use crate::store::{tables, JsonTable, Store, StoreError};

/// Its tables of encoded rows, for `vigild check` (every row decoded).
pub(crate) const STORED_ROWS: &[&dyn crate::store::RowCheck] = &[&POLICY_RESULTS];

const POLICY_RESULTS: JsonTable<(&str, &str, &str), StoredCheckRecord> =
    JsonTable::new(tables::POLICY_RESULTS, "check result");

/// One check's result on one node, as stored (with the audit's log row, and as the
/// latest result per check and node).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredCheckRecord {
    policy: String,
    check: String,
    outcome: CheckOutcome,
    evidence: String,
    #[serde(default)]
    node: String,
    #[serde(default)]
    audit: Option<QueueTaskId>,
    #[serde(default)]
    at: Option<DateTime<Utc>>,
    #[serde(default)]
    plugin: String,
    #[serde(default)]
    description: String,
}

impl From<&CheckRecord> for StoredCheckRecord {
    fn from(c: &CheckRecord) -> Self {
        StoredCheckRecord {
            policy: c.policy.clone(),
            check: c.check.clone(),
            outcome: c.outcome,
            evidence: c.evidence.clone(),
            node: c.node.clone(),
            audit: c.audit,
            at: c.at,
            plugin: c.plugin.clone(),
            description: c.description.clone(),
        }
    }
}

impl From<StoredCheckRecord> for CheckRecord {
    fn from(c: StoredCheckRecord) -> Self {
        CheckRecord {
            policy: c.policy,
            check: c.check,
            outcome: c.outcome,
            evidence: c.evidence,
            node: c.node,
            audit: c.audit,
            at: c.at,
            plugin: c.plugin,
            description: c.description,
        }
    }
}

/// Keeps each check's latest result per node (for `GET /v1/policies`).
pub fn record_checks(tx: &WriteTransaction, checks: &[CheckRecord]) -> Result<(), StoreError> {
    if checks.is_empty() {
        return Ok(());
    }
    let mut table = POLICY_RESULTS.write(tx)?;
    for c in checks {
        table.put(
            (c.policy.as_str(), c.check.as_str(), c.node.as_str()),
            &StoredCheckRecord::from(c),
        )?;
    }
    Ok(())
}

/// Latest results of one policy's checks: check → results per node.
pub fn policy_results(
    tx: &ReadTransaction,
    policy: &str,
) -> Result<BTreeMap<String, Vec<CheckRecord>>, StoreError> {
    let table = POLICY_RESULTS.read(tx)?;
    let mut out: BTreeMap<String, Vec<CheckRecord>> = BTreeMap::new();
    for entry in table.range((policy, "", "")..)? {
        let (k, r) = entry?;
        let (p, check, _) = k.value();
        if p != policy {
            break;
        }
        out.entry(check.to_owned()).or_default().push(r.into());
    }
    Ok(out)
}

/// The policy views; cheap to clone.
#[derive(Clone)]
pub struct Audits {
    store: Store,
    setup: Arc<SetupCell>,
}

impl Audits {
    pub fn new(store: Store, setup: Arc<SetupCell>) -> Audits {
        Audits { store, setup }
    }

    /// Every policy in force with per-check counts.
    pub async fn policies(&self) -> Result<Vec<PolicyInfo>, StoreError> {
        let policies = self.setup.policies();
        let mut out = Vec::with_capacity(policies.len());
        for p in policies.iter() {
            out.push(self.info(p, false).await?);
        }
        Ok(out)
    }

    /// One policy with, per check, the nodes that do not pass and why; `None` if no policy
    /// of that name is in force.
    pub async fn policy(&self, name: &str) -> Result<Option<PolicyInfo>, StoreError> {
        let policies = self.setup.policies();
        match policies.iter().find(|p| p.name == name) {
            Some(p) => Ok(Some(self.info(p, true).await?)),
            None => Ok(None),
        }
    }

    /// A policy with, per check, pass/fail/error counts over the nodes' latest audits (and,
    /// in detail, the nodes that do not pass and why). Results of nodes no longer
    /// configured, or of checks no longer in the policy, are left out.
    async fn info(&self, policy: &Policy, detail: bool) -> Result<PolicyInfo, StoreError> {
        let name = policy.name.clone();
        let results = self.store.read(move |tx| policy_results(tx, &name)).await?;
        let config = self.setup.config();
        let checks = policy
            .checks
            .iter()
            .map(|c| {
                let latest: Vec<&CheckRecord> = results
                    .get(&c.id)
                    .map(|v| {
                        v.iter()
                            .filter(|r| config.node(&r.node).is_some())
                            .collect()
                    })
                    .unwrap_or_default();
                let count = |o| latest.iter().filter(|r| r.outcome == o).count() as u64;
                CheckInfo {
                    id: c.id.clone(),
                    description: c.description.clone().unwrap_or_default(),
                    plugin: c.plugin.clone(),
                    pass: count(CheckOutcome::Pass),
                    fail: count(CheckOutcome::Fail),
                    error: count(CheckOutcome::Error),
                    failing: if detail {
                        latest
                            .into_iter()
                            .filter(|r| r.outcome != CheckOutcome::Pass)
                            .cloned()
                            .collect()
                    } else {
                        Vec::new()
                    },
                }
            })
            .collect();
        Ok(PolicyInfo {
            name: policy.name.clone(),
            description: policy.description.clone(),
            scope: policy.scope.clone(),
            file: policy.file.display().to_string(),
            checks,
        })
    }
}
