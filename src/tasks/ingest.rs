//! Findings into user tasks. A run's findings go in together when its last task has ended
//! ([`ingest_run`]): its drift as clusters (`grouping`), its failures per destination. A
//! single-node scan goes in at its end ([`ingest_single`]): its drift joins the open tasks
//! whose change set it contains, and what is left is a task of its own. Both resolve what
//! the findings show fixed: a check passing again, a plugin scanning cleanly again.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use chrono::{DateTime, Utc};
use redb::WriteTransaction;

use super::change;
use super::finding::{normalise, NodeFindings};
use super::grouping::{self, Destination};
use super::persist::{Added, NewEvent, NewTask, Tables};
use crate::config::Config;
use crate::drift::{ChangeId, Fingerprint};
use crate::proto::{QueueTaskId, TaskChange, UserTask, UserTaskKind};
use crate::store::StoreError;

/// The name a failed node root goes by among a scan's plugin runs (`queue::runner`).
const ROOT: &str = "root";
/// What `queue::runner::TRANSPORT` names: a remote node's connection.
const TRANSPORT: &str = "ssh";

/// A new assignment to announce by mail.
#[derive(Debug, Clone)]
pub struct Assignment {
    pub task: UserTask,
    pub assigned_by: String,
}

/// A task that closed itself, and why.
#[derive(Debug, Clone)]
pub struct SelfClosed {
    pub task: UserTask,
    /// `Audit #4` or `Scan #9`.
    pub by: String,
    /// Why, for its assignee: "the check passes again on every node it failed on".
    pub why: &'static str,
    /// The queue task whose findings closed it, and the node it resolved last.
    pub source: QueueTaskId,
    pub node: String,
}

/// What ingesting findings did.
#[derive(Debug, Default)]
pub struct Ingested {
    pub created: Vec<u64>,
    pub updated: Vec<u64>,
    /// Tasks as they are after this transaction (for the in-memory index).
    pub changed: Vec<UserTask>,
    /// Nodes newly added to tasks: (task, node).
    pub new_nodes: Vec<(u64, String)>,
    pub assignments: Vec<Assignment>,
    /// Tasks that closed themselves: every node passes or scans cleanly again.
    pub closed: Vec<SelfClosed>,
    /// Per node: the tasks created and updated with its events (for its log row). A task
    /// created for several nodes counts as created on the first (by name) and updated on
    /// the others, so the rows of a run add up to the run's counts.
    pub per_node: BTreeMap<String, (BTreeSet<u64>, BTreeSet<u64>)>,
    /// Created tasks already counted as created on some node.
    credited: HashSet<u64>,
    /// Where each task is in `changed` and `assignments`, and which are in `created` and
    /// `updated`: a run of 10,000 nodes makes as many tasks, and a search of those lists per
    /// event would be quadratic in the fleet.
    positions: Positions,
}

#[derive(Debug, Default)]
struct Positions {
    changed: HashMap<u64, usize>,
    assignments: HashMap<u64, usize>,
    created: HashSet<u64>,
    updated: HashSet<u64>,
}

impl Ingested {
    fn changed(&mut self, task: &UserTask) {
        match self.positions.changed.get(&task.id) {
            Some(&i) => self.changed[i] = task.clone(),
            None => {
                self.positions.changed.insert(task.id, self.changed.len());
                self.changed.push(task.clone());
            }
        }
        // The assignment mail counts the events of this transaction too.
        if let Some(&i) = self.positions.assignments.get(&task.id) {
            self.assignments[i].task = task.clone();
        }
    }

    fn created(&mut self, task: &UserTask) {
        self.positions.created.insert(task.id);
        self.created.push(task.id);
    }

    fn assigned(&mut self, assignment: Assignment) {
        let id = assignment.task.id;
        self.positions
            .assignments
            .insert(id, self.assignments.len());
        self.assignments.push(assignment);
    }

    fn event(&mut self, task: &UserTask, node: &str, added: Added) {
        if added == Added::No {
            return;
        }
        let created = self.positions.created.contains(&task.id);
        if !created && self.positions.updated.insert(task.id) {
            self.updated.push(task.id);
        }
        if added == Added::NewNode {
            self.new_nodes.push((task.id, node.to_owned()));
        }
        let entry = self.per_node.entry(node.to_owned()).or_default();
        if created && self.credited.insert(task.id) {
            entry.0.insert(task.id);
        } else {
            entry.1.insert(task.id);
        }
    }
}

/// The findings of a whole run, in one transaction.
pub fn ingest_run(
    tx: &WriteTransaction,
    config: &Config,
    findings: &[NodeFindings],
) -> Result<Ingested, StoreError> {
    let mut t = Tables::open(tx)?;
    let mut out = Ingested::default();
    let now = Utc::now();
    // Clusters, then failures, then what is fixed: each in node order, so that task ids
    // do not depend on the order the nodes were scanned in.
    let mut sorted: Vec<&NodeFindings> = findings.iter().collect();
    sorted.sort_by(|a, b| a.node.cmp(&b.node));
    let clusters = grouping::clusters(findings, |n| grouping::destination(config, n));
    let mut by_change_set: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for c in &clusters {
        let nodes: Vec<&str> = c.nodes.iter().map(|n| n.node.as_str()).collect();
        let changes: Vec<TaskChange> = c.changes.clone();
        let Some((fp, set)) = drift_fingerprint(&c.destination, &changes) else {
            continue;
        };
        let baseline = c.nodes.iter().find_map(|n| n.baseline);
        let mut task = open_or_create(
            &mut t,
            &mut out,
            config,
            &c.destination,
            &nodes,
            now,
            || drift_task(&c.destination, &changes, fp.clone(), nodes.len(), baseline),
        )?;
        let details = format!("{} change(s)", task.change_count);
        for n in &c.nodes {
            let e = NewEvent {
                node: &n.node,
                source: n.source,
                day: n.day,
                time: now,
                details: &details,
            };
            let added = t.add_event(&mut task, &e)?;
            out.event(&task, &n.node, added);
        }
        t.put(&mut task)?;
        out.changed(&task);
        by_change_set.entry(set).or_default().push(task.id);
    }
    link_siblings(&mut t, &mut out, &by_change_set)?;
    for f in &sorted {
        failures(&mut t, &mut out, config, f, now)?;
    }
    for f in &sorted {
        resolutions(&mut t, &mut out, config, f)?;
    }
    Ok(out)
}

/// The findings of a single-node scan or audit, in one transaction.
pub fn ingest_single(
    tx: &WriteTransaction,
    config: &Config,
    f: &NodeFindings,
) -> Result<Ingested, StoreError> {
    let mut t = Tables::open(tx)?;
    let mut out = Ingested::default();
    let now = Utc::now();
    let dest = grouping::destination(config, &f.node);
    let remaining = join_open(&mut t, &mut out, &dest, f, now)?;
    if let Some((fp, _)) = drift_fingerprint(&dest, &remaining) {
        let nodes = [f.node.as_str()];
        let mut task = open_or_create(&mut t, &mut out, config, &dest, &nodes, now, || {
            drift_task(&dest, &remaining, fp.clone(), 1, f.baseline)
        })?;
        let details = format!("{} change(s)", task.change_count);
        add_one(&mut t, &mut out, &mut task, f, &details, now)?;
    }
    failures(&mut t, &mut out, config, f, now)?;
    resolutions(&mut t, &mut out, config, f)?;
    Ok(out)
}

/// `drift:DEST:SET` and the change set's own fingerprint, for a non-empty change list.
fn drift_fingerprint(dest: &Destination, changes: &[TaskChange]) -> Option<(String, String)> {
    let ids: Vec<ChangeId> = changes
        .iter()
        .map(|c| ChangeId::from_string(c.id.clone()))
        .collect();
    let set = Fingerprint::of_ids(ids.iter())?;
    Some((format!("drift:{}:{set}", dest.key), set.to_string()))
}

/// Adds one event of `f`'s node to `task` and stores it.
fn add_one(
    t: &mut Tables<'_>,
    out: &mut Ingested,
    task: &mut UserTask,
    f: &NodeFindings,
    details: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let e = NewEvent {
        node: &f.node,
        source: f.source,
        day: f.day,
        time: now,
        details,
    };
    let added = t.add_event(task, &e)?;
    out.event(task, &f.node, added);
    if added != Added::No {
        t.put(task)?;
    }
    out.changed(task);
    Ok(())
}

/// The open task with `fp`, or a new one made by `make` (auto-assigned to the
/// destination's owner, which writes an assignment to mail).
#[allow(clippy::too_many_arguments)]
fn open_or_create(
    t: &mut Tables<'_>,
    out: &mut Ingested,
    config: &Config,
    dest: &Destination,
    nodes: &[&str],
    now: DateTime<Utc>,
    make: impl FnOnce() -> NewTask,
) -> Result<UserTask, StoreError> {
    let mut new = make();
    if let Some(task) = t
        .open_with_fingerprint(&new.fingerprint)?
        .map(|id| t.get(id))
        .transpose()?
        .flatten()
    {
        return Ok(task);
    }
    let assigned = grouping::assignee(config, dest, nodes);
    new.assignee = assigned.as_ref().map(|(owner, _)| owner.clone());
    let task = t.create(new, now)?;
    out.created(&task);
    if let Some((owner, group)) = assigned {
        let why = if dest.key == grouping::EVERYONE {
            format!("auto-assign (owner of group {group}, which has the most affected nodes)")
        } else {
            format!("auto-assign (owner of group {group})")
        };
        tracing::info!(task = task.id, assignee = %owner, "user task auto-assigned");
        out.assigned(Assignment {
            task: task.clone(),
            assigned_by: why,
        });
    }
    Ok(task)
}

fn drift_task(
    dest: &Destination,
    changes: &[TaskChange],
    fingerprint: String,
    nodes: usize,
    baseline: Option<chrono::NaiveDate>,
) -> NewTask {
    let total = changes.len() as u64;
    let mut sorted: Vec<TaskChange> = changes.to_vec();
    sorted.sort_by(|a, b| (&a.plugin, &a.key).cmp(&(&b.plugin, &b.key)));
    let on = if nodes == 1 {
        "1 node".to_owned()
    } else {
        format!("{nodes} nodes")
    };
    let against = baseline
        .map(|b| format!(", each compared with its snapshot of {b} or earlier"))
        .unwrap_or_default();
    let description = format!(
        "Configuration drift: {total} change(s), the same on {on}{against}.\n\n{}",
        change::lines(&sorted, total)
    );
    NewTask {
        kind: UserTaskKind::Drift,
        fingerprint,
        title: change::title(&sorted, total),
        description,
        destination: dest.group().map(str::to_owned),
        assignee: None,
        change_ids: sorted.iter().map(|c| c.id.clone()).collect(),
        changes: sorted,
    }
}

/// Puts a single node's drift into the open tasks of its destination whose change set it
/// contains (the largest first; no change in two of them); returns the changes left over.
fn join_open(
    t: &mut Tables<'_>,
    out: &mut Ingested,
    dest: &Destination,
    f: &NodeFindings,
    now: DateTime<Utc>,
) -> Result<Vec<TaskChange>, StoreError> {
    let mine: HashSet<&str> = f.changes.iter().map(|c| c.id.as_str()).collect();
    let mut candidates: BTreeSet<u64> = BTreeSet::new();
    for c in &f.changes {
        candidates.extend(t.open_drift_with(&dest.key, &c.id)?);
    }
    let mut fits: Vec<(u64, Vec<String>)> = Vec::new();
    for id in candidates {
        let ids = t.change_ids_of(id)?;
        if !ids.is_empty() && ids.iter().all(|c| mine.contains(c.as_str())) {
            fits.push((id, ids));
        }
    }
    fits.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then(a.0.cmp(&b.0)));
    let mut taken: HashSet<String> = HashSet::new();
    for (id, ids) in fits {
        if ids.iter().any(|c| taken.contains(c)) {
            continue;
        }
        let Some(mut task) = t.get(id)? else { continue };
        if !task.is_open() {
            continue;
        }
        let details = format!("{} change(s)", task.change_count);
        add_one(t, out, &mut task, f, &details, now)?;
        taken.extend(ids);
    }
    Ok(f.changes
        .iter()
        .filter(|c| !taken.contains(&c.id))
        .cloned()
        .collect())
}

/// Tasks of one run for the same change set in other destinations name each other.
fn link_siblings(
    t: &mut Tables<'_>,
    out: &mut Ingested,
    by_change_set: &BTreeMap<String, Vec<u64>>,
) -> Result<(), StoreError> {
    for ids in by_change_set.values().filter(|ids| ids.len() > 1) {
        let tasks: Vec<UserTask> = ids
            .iter()
            .filter_map(|id| t.get(*id).transpose())
            .collect::<Result<_, _>>()?;
        for task in &tasks {
            let others: Vec<&UserTask> = tasks.iter().filter(|o| o.id != task.id).collect();
            let mut task = task.clone();
            let before = task.siblings.clone();
            for o in &others {
                if !task.siblings.contains(&o.id) {
                    task.siblings.push(o.id);
                }
            }
            if task.siblings == before {
                continue;
            }
            let also: Vec<String> = others
                .iter()
                .map(|o| {
                    format!(
                        "#{} ({} node{}, {})",
                        o.id,
                        o.nodes,
                        if o.nodes == 1 { "" } else { "s" },
                        o.assignee.as_deref().unwrap_or("unassigned")
                    )
                })
                .collect();
            task.description.push_str(&format!(
                "\nThe same changes are also on {}.\n",
                also.join(", ")
            ));
            t.put(&mut task)?;
            out.changed(&task);
        }
    }
    Ok(())
}

/// The node's failed plugins and failing checks, into their destination's tasks.
fn failures(
    t: &mut Tables<'_>,
    out: &mut Ingested,
    config: &Config,
    f: &NodeFindings,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let dest = grouping::destination(config, &f.node);
    let nodes = [f.node.as_str()];
    // The node's SSH target and host are its names too.
    let target = config.node(&f.node).and_then(|n| n.ssh.clone());
    let host = config
        .node(&f.node)
        .and_then(|n| n.ssh_target())
        .map(|t| t.host);
    let names: Vec<&str> = [Some(f.node.as_str()), target.as_deref(), host.as_deref()]
        .into_iter()
        .flatten()
        .collect();
    for failed in &f.failures {
        let normal = normalise(&failed.message, &names);
        let hash = blake3::hash(format!("{}\0{normal}", failed.plugin).as_bytes()).to_hex()[..32]
            .to_owned();
        let fp = format!("scan-failure:{}:{hash}", dest.key);
        let mut task = open_or_create(t, out, config, &dest, &nodes, now, || NewTask {
            kind: UserTaskKind::ScanFailure,
            fingerprint: fp.clone(),
            title: change::cap(&if failed.plugin == ROOT {
                format!("Scan failure: node root: {normal}")
            } else if failed.plugin == TRANSPORT {
                format!("Scan failure: {normal}")
            } else {
                format!("Scan failure: {} plugin: {normal}", failed.plugin)
            }),
            description: format!(
                "{what} (first seen on {node}, {source}).\n\n\
                 Message: {message}\n\nGrouped by: {normal}\n\nThe task closes itself when a \
                 later scan of each of its nodes succeeds{with}.\n",
                what = if failed.plugin == ROOT {
                    "The node root could not be scanned".to_owned()
                } else if failed.plugin == TRANSPORT {
                    "The node could not be scanned over SSH".to_owned()
                } else {
                    format!("The {} plugin failed while scanning", failed.plugin)
                },
                with = if failed.plugin == ROOT || failed.plugin == TRANSPORT {
                    String::new()
                } else {
                    format!(" with the {} plugin", failed.plugin)
                },
                node = f.node,
                source = f.source,
                message = failed.message,
            ),
            destination: dest.group().map(str::to_owned),
            assignee: None,
            changes: Vec::new(),
            change_ids: Vec::new(),
        })?;
        add_one(t, out, &mut task, f, &failed.message, now)?;
        t.note_failing(&f.node, &failed.plugin, task.id)?;
    }
    for c in &f.failed_checks {
        let what = if c.check_description.is_empty() {
            c.check.as_str()
        } else {
            c.check_description.as_str()
        };
        let fp = format!("policy:{}:{}/{}", dest.key, c.policy, c.check);
        let mut task = open_or_create(t, out, config, &dest, &nodes, now, || NewTask {
            kind: UserTaskKind::Policy,
            fingerprint: fp.clone(),
            title: change::cap(&format!(
                "Policy {}: {what} (check {} fails)",
                c.policy, c.check
            )),
            description: format!(
                "Policy {} ({}), check {}: {what}.\nEvaluated on items of the {} plugin.\n\n\
                 First failed on {} ({}): {}\n\nThe task closes itself when a later audit finds \
                 the check passing on every node.\n",
                c.policy, c.policy_description, c.check, c.plugin, f.node, f.source, c.evidence
            ),
            destination: dest.group().map(str::to_owned),
            assignee: None,
            changes: Vec::new(),
            change_ids: Vec::new(),
        })?;
        add_one(t, out, &mut task, f, &c.evidence, now)?;
    }
    Ok(())
}

/// What the node's findings show fixed: checks passing and plugins scanning cleanly resolve
/// the node in their open tasks; a task with every node resolved closes itself.
fn resolutions(
    t: &mut Tables<'_>,
    out: &mut Ingested,
    config: &Config,
    f: &NodeFindings,
) -> Result<(), StoreError> {
    let dest = grouping::destination(config, &f.node);
    let by = f.source.to_string();
    for c in &f.passing_checks {
        let fp = format!("policy:{}:{}/{}", dest.key, c.policy, c.check);
        let Some(id) = t.open_with_fingerprint(&fp)? else {
            continue;
        };
        if let Some(task) = t.resolve_node(id, &f.node, &by)? {
            closed(
                out,
                task,
                f,
                "the check passes again on every node it failed on",
            );
        }
    }
    for plugin in &f.clean_plugins {
        for id in t.take_failing(&f.node, plugin)? {
            if let Some(task) = t.resolve_node(id, &f.node, &by)? {
                closed(
                    out,
                    task,
                    f,
                    "the plugin scans every node it failed on cleanly again",
                );
            }
        }
    }
    Ok(())
}

fn closed(out: &mut Ingested, task: UserTask, f: &NodeFindings, why: &'static str) {
    out.changed(&task);
    out.closed.push(SelfClosed {
        task,
        by: f.source.to_string(),
        why,
        source: f.source,
        node: f.node.clone(),
    });
}
