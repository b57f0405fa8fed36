//! The in-memory index of user tasks: the newest committed copy of every task, its nodes and
//! its text in lower case, kept in newest-first order, with the open counts maintained as
//! copies come in. Filtered lists and counts never touch the store.
//!
//! Copies arrive after their commits, from scans and API actions running at once, so they
//! may arrive out of commit order. Every stored change raises the task's `revision`; the
//! index never replaces a copy with one of a lower or equal revision, so a late copy cannot
//! make it stale, and the counters (derived from the copies held) stay exact.

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};

use super::TaskError;
use crate::api::Caller;
use crate::proto::{TaskFilter, UserTask, UserTaskKind, UserTaskStatus};

/// Newest last event first; the higher id first among equal times.
type Key = (Reverse<DateTime<Utc>>, Reverse<u64>);

fn key_of(t: &UserTask) -> Key {
    (Reverse(t.last_event_at), Reverse(t.id))
}

fn text_of(t: &UserTask) -> String {
    format!("{}\n{}", t.title, t.description).to_lowercase()
}

struct Entry {
    task: UserTask,
    /// Title and description in lower case, for the text filter.
    text: String,
    /// Interned node names (see `TaskIndex::node_ids`), sorted.
    nodes: Vec<u32>,
}

/// Every task, newest first, with the open counts.
#[derive(Default)]
pub struct TaskIndex {
    entries: BTreeMap<Key, Entry>,
    keys: HashMap<u64, Key>,
    /// Node names are shared by many tasks: each is stored once.
    node_ids: HashMap<String, u32>,
    open: u64,
    open_by_assignee: HashMap<String, u64>,
}

impl TaskIndex {
    /// Takes a committed copy of a task. A copy no newer than the one held is ignored;
    /// returns whether this one was taken.
    pub fn apply(&mut self, task: UserTask) -> bool {
        let old = match self.keys.get(&task.id) {
            Some(key) => {
                let key = *key;
                match self.entries.get(&key) {
                    Some(held) if held.task.revision >= task.revision => return false,
                    _ => self.entries.remove(&key),
                }
            }
            None => None,
        };
        let (text, nodes) = match old {
            Some(old) => {
                self.count(&old.task, false);
                let same_text =
                    old.task.title == task.title && old.task.description == task.description;
                let text = if same_text { old.text } else { text_of(&task) };
                (text, old.nodes)
            }
            None => (text_of(&task), Vec::new()),
        };
        self.count(&task, true);
        let key = key_of(&task);
        self.keys.insert(task.id, key);
        self.entries.insert(key, Entry { task, text, nodes });
        true
    }

    /// Records that `node` has an event in task `id` (nodes are never taken out of a task).
    pub fn add_node(&mut self, id: u64, node: &str) {
        let next = self.node_ids.len() as u32;
        let node_id = match self.node_ids.get(node) {
            Some(n) => *n,
            None => {
                self.node_ids.insert(node.to_owned(), next);
                next
            }
        };
        let Some(entry) = self.keys.get(&id).and_then(|k| self.entries.get_mut(k)) else {
            return;
        };
        if let Err(at) = entry.nodes.binary_search(&node_id) {
            entry.nodes.insert(at, node_id);
        }
    }

    fn count(&mut self, t: &UserTask, add: bool) {
        if t.status != UserTaskStatus::Open {
            return;
        }
        if add {
            self.open += 1;
        } else {
            self.open -= 1;
        }
        if let Some(a) = &t.assignee {
            let n = self.open_by_assignee.entry(a.clone()).or_default();
            if add {
                *n += 1;
            } else {
                *n -= 1;
                if *n == 0 {
                    self.open_by_assignee.remove(a);
                }
            }
        }
    }

    pub fn get(&self, id: u64) -> Option<&UserTask> {
        self.keys
            .get(&id)
            .and_then(|k| self.entries.get(k))
            .map(|e| &e.task)
    }

    /// (the organisation's open tasks, the open tasks assigned to `email`).
    pub fn open_counts(&self, email: Option<&str>) -> (u64, u64) {
        let mine = email
            .and_then(|e| self.open_by_assignee.get(e))
            .copied()
            .unwrap_or(0);
        (self.open, mine)
    }

    /// The matching tasks from `offset` on, at most `limit`, newest first; and how many match.
    pub fn page(&self, f: &Filter, offset: usize, limit: usize) -> (Vec<UserTask>, usize) {
        let mut page = Vec::new();
        let mut seen = 0;
        let total = self.each_match(f, |e| {
            if seen >= offset && page.len() < limit {
                page.push(e.task.clone());
            }
            seen += 1;
        });
        (page, total)
    }

    /// The ids of the matching tasks for which `also` holds, ascending.
    pub fn ids(&self, f: &Filter, also: impl Fn(&UserTask) -> bool) -> Vec<u64> {
        let mut ids = Vec::new();
        self.each_match(f, |e| {
            if also(&e.task) {
                ids.push(e.task.id);
            }
        });
        ids.sort_unstable();
        ids
    }

    /// Calls `each` on every matching entry, newest first; returns how many matched.
    fn each_match(&self, f: &Filter, mut each: impl FnMut(&Entry)) -> usize {
        let node = match &f.node {
            None => None,
            Some(name) => match self.node_ids.get(name) {
                Some(id) => Some(*id),
                // A node no task has an event on.
                None => return 0,
            },
        };
        let finder = f.q.as_deref().map(memchr::memmem::Finder::new);
        let mut n = 0;
        for e in self.entries.values() {
            if !f.matches_task(&e.task)
                || node.is_some_and(|id| e.nodes.binary_search(&id).is_err())
                || finder
                    .as_ref()
                    .is_some_and(|q| q.find(e.text.as_bytes()).is_none())
            {
                continue;
            }
            each(e);
            n += 1;
        }
        n
    }
}

/// A task filter resolved against the caller (`me`).
#[derive(Debug, Clone)]
pub struct Filter {
    pub status: Option<UserTaskStatus>,
    /// `Some(None)`: unassigned tasks.
    pub assignee: Option<Option<String>>,
    /// In lower case.
    pub q: Option<String>,
    pub kind: Option<UserTaskKind>,
    pub node: Option<String>,
}

impl Filter {
    pub fn resolve(f: &TaskFilter, caller: &Caller) -> Result<Filter, TaskError> {
        let status = match f.status.as_deref() {
            None | Some("open") => Some(UserTaskStatus::Open),
            Some("closed") => Some(UserTaskStatus::Closed),
            Some("all") => None,
            Some(other) => {
                return Err(TaskError::BadRequest(format!(
                    "status {other:?}: use open, closed or all"
                )))
            }
        };
        let assignee = match f.assignee.as_deref() {
            None => None,
            Some("none") => Some(None),
            Some("me") => Some(Some(caller.email.clone().ok_or_else(|| {
                TaskError::BadRequest(
                    "`me` needs a caller with an email: this uid is not a configured user".into(),
                )
            })?)),
            Some(email) => Some(Some(email.to_owned())),
        };
        Ok(Filter {
            status,
            assignee,
            q: f.q
                .as_ref()
                .filter(|q| !q.is_empty())
                .map(|q| q.to_lowercase()),
            kind: f.kind,
            node: f.node.clone(),
        })
    }

    /// The parts of the filter on what can change in a task (status, assignee) and its kind.
    /// Text never changes and nodes are only ever added, so a task that matched the whole
    /// filter once still matches it if this holds on a newer copy.
    pub fn matches_task(&self, t: &UserTask) -> bool {
        self.status.is_none_or(|s| s == t.status)
            && self
                .assignee
                .as_ref()
                .is_none_or(|a| a.as_deref() == t.assignee.as_deref())
            && self.kind.is_none_or(|k| k == t.kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn task(id: u64, revision: u64, minute: u32) -> UserTask {
        let at = Utc.with_ymd_and_hms(2026, 4, 1, 12, minute, 0).unwrap();
        UserTask {
            id,
            kind: UserTaskKind::Drift,
            title: format!("Drift: Task {id}"),
            description: format!("Changes on node {id}\nopenssl {}", id % 3),
            status: UserTaskStatus::Open,
            assignee: None,
            created_at: at,
            last_event_at: at,
            closed_by: None,
            closed_at: None,
            events: 1,
            nodes: 1,
            first_nodes: Vec::new(),
            fingerprint: format!("drift:{id}"),
            recurrence_of: None,
            revision,
        }
    }

    fn all() -> Filter {
        Filter {
            status: None,
            assignee: None,
            q: None,
            kind: None,
            node: None,
        }
    }

    /// The counts recomputed from the copies held.
    fn recount(index: &TaskIndex, email: &str) -> (u64, u64) {
        let (tasks, _) = index.page(&all(), 0, usize::MAX);
        let open: Vec<_> = tasks
            .iter()
            .filter(|t| t.status == UserTaskStatus::Open)
            .collect();
        let mine = open
            .iter()
            .filter(|t| t.assignee.as_deref() == Some(email))
            .count();
        (open.len() as u64, mine as u64)
    }

    #[test]
    fn a_late_older_copy_does_not_overwrite_a_newer_one() {
        // A scan's ingest commits revision 2; an assignment then commits revision 3 and
        // reaches the index first; the scan's copy arrives last.
        let mut index = TaskIndex::default();
        index.apply(task(1, 1, 0));
        let mut assigned = task(1, 3, 5);
        assigned.assignee = Some("bob@example.com".into());
        let mut ingested = task(1, 2, 5);
        ingested.events = 2;
        assert!(index.apply(assigned.clone()));
        assert!(!index.apply(ingested), "an older copy is refused");
        assert_eq!(index.get(1), Some(&assigned));
        assert_eq!(index.open_counts(Some("bob@example.com")), (1, 1));
        assert!(
            !index.apply(assigned),
            "the same copy twice changes nothing"
        );
        assert_eq!(index.page(&all(), 0, 0).1, 1);
    }

    #[test]
    fn counts_stay_exact_whatever_order_copies_arrive_in() {
        let people = ["a@example.com", "b@example.com"];
        let mut rng = fastrand::Rng::with_seed(7);
        // Ten versions of each of 50 tasks, each changing status or assignee at random.
        let mut copies = Vec::new();
        let mut newest = HashMap::new();
        for id in 1..=50 {
            for rev in 1..=10 {
                let mut t = task(id, rev, (id % 60) as u32);
                if rng.bool() {
                    t.status = UserTaskStatus::Closed;
                }
                t.assignee = match rng.u8(0..3) {
                    0 => None,
                    n => Some(people[n as usize - 1].to_owned()),
                };
                newest.insert(id, t.clone());
                copies.push(t);
            }
        }
        rng.shuffle(&mut copies);
        let mut index = TaskIndex::default();
        for (i, c) in copies.into_iter().enumerate() {
            index.apply(c);
            if i % 37 == 0 {
                assert_eq!(
                    index.open_counts(Some(people[0])),
                    recount(&index, people[0])
                );
            }
        }
        for (id, t) in &newest {
            assert_eq!(index.get(*id), Some(t), "task {id} holds its newest copy");
        }
        for p in people {
            assert_eq!(index.open_counts(Some(p)), recount(&index, p));
        }
        assert_eq!(index.open_counts(None).1, 0);
    }

    #[test]
    fn pages_are_newest_first_and_filters_apply() {
        let mut index = TaskIndex::default();
        for id in 1..=5 {
            index.apply(task(id, 1, id as u32));
            index.add_node(id, if id % 2 == 0 { "even" } else { "odd" });
        }
        // Task 2 gets a new event: it moves to the top.
        index.apply(task(2, 2, 30));
        let ids = |tasks: Vec<UserTask>| tasks.iter().map(|t| t.id).collect::<Vec<_>>();
        let (page, total) = index.page(&all(), 0, 10);
        assert_eq!((ids(page), total), (vec![2, 5, 4, 3, 1], 5));
        let (page, total) = index.page(&all(), 1, 2);
        assert_eq!((ids(page), total), (vec![5, 4], 5));
        let (page, total) = index.page(&all(), 9, 2);
        assert_eq!((ids(page), total), (vec![], 5));
        let even = Filter {
            node: Some("even".into()),
            ..all()
        };
        assert_eq!(
            ids(index.page(&even, 0, 10).0),
            vec![2, 4],
            "nodes survive updates"
        );
        let unknown = Filter {
            node: Some("nowhere".into()),
            ..all()
        };
        assert_eq!(index.page(&unknown, 0, 10).1, 0);
        let text = Filter {
            q: Some("openssl 1".into()),
            ..all()
        };
        assert_eq!(ids(index.page(&text, 0, 10).0), vec![4, 1]);
        assert_eq!(index.ids(&all(), |t| t.id > 3), vec![4, 5]);
    }
}
