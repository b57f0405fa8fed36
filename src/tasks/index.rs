//! The in-memory index of user tasks: the newest committed copy of every task, its nodes and
//! its text in lower case, kept in newest-first order, with the open counts maintained as
//! copies come in. Filtered lists and counts never touch the store.
//!
//! Copies arrive after their commits, from scans and API actions running at once, so they
//! may arrive out of commit order. Every stored change raises the task's `revision`; the
//! index never replaces a copy with one of a lower or equal revision, so a late copy cannot
//! make it stale, and the counters (derived from the copies held) stay exact.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use memchr::memmem;

use super::UserTaskError;
use crate::caller::Caller;
use crate::proto::{UserTask, UserTaskFilter, UserTaskKind, UserTaskStatus};

/// Oldest last event first, the lower id first among equal times; lists walk it backwards.
type Key = (DateTime<Utc>, u64);

fn key_of(t: &UserTask) -> Key {
    (t.last_event_at, t.id)
}

/// A task's trigram filter: 512 bits, one set for every 3-byte window of its lower-case
/// text. A query can only be in a text whose filter has every bit of the query's own.
type Trigrams = [u64; 8];

fn trigrams(text: &[u8]) -> Trigrams {
    let mut bits = [0u64; 8];
    for w in text.windows(3) {
        let v = u32::from_le_bytes([w[0], w[1], w[2], 0]);
        let bit = (v.wrapping_mul(0x9e37_79b1) >> 23) as usize;
        bits[bit / 64] |= 1 << (bit % 64);
    }
    bits
}

fn has_all(bits: &Trigrams, of: &Trigrams) -> bool {
    bits.iter().zip(of).all(|(b, o)| b & o == *o)
}

/// The slot of an `order` entry whose task has moved on to a newer key.
const MOVED: u32 = u32::MAX;

/// `rows[slot].assignee` of an unassigned task.
const NOBODY: u32 = u32::MAX;

/// What filters look at, per task, kept small so that a scan over every task stays in cache.
#[derive(Debug, Clone, Copy)]
struct Row {
    status: UserTaskStatus,
    kind: UserTaskKind,
    /// Interned assignee, or [`NOBODY`].
    assignee: u32,
    /// The task's text in [`TaskIndex::text`].
    text_start: usize,
    text_end: usize,
}

/// Every task, newest first, with the open counts. Tasks live in slots (never removed:
/// tasks are never deleted); `order` walks the slots newest first.
#[derive(Default)]
pub struct TaskIndex {
    slot_of: HashMap<u64, u32>,
    tasks: Vec<UserTask>,
    rows: Vec<Row>,
    /// Per interned node name: the slots of the tasks with an event on it, ascending.
    node_slots: Vec<Vec<u32>>,
    /// (key, slot), ascending by key; entries of tasks that moved on (a new event) stay as
    /// [`MOVED`] until `moved` outnumbers the live ones. A vector, not a tree: a list walks
    /// it whole, and that must be one pass over contiguous memory. Changed tasks usually get
    /// the newest key, so an insertion lands at or near the end.
    order: Vec<(Key, u32)>,
    moved: usize,
    /// While [`TaskIndex::build`] runs: `order` is sorted once at the end.
    loading: bool,
    /// Title and description of every task in lower case, each followed by a NUL (which
    /// none contains: NULs become spaces), so that one search over all of it finds every
    /// task whose text contains a query.
    text: Vec<u8>,
    /// (start in `text`, slot) of every text, ascending; a text replaced later (a task whose
    /// title or description changed) stays as garbage, and is ignored: its slot's row no
    /// longer starts there.
    text_starts: Vec<(usize, u32)>,
    /// Per slot: the trigrams of its text.
    trigrams: Vec<Trigrams>,
    node_ids: HashMap<String, u32>,
    assignee_ids: HashMap<String, u32>,
    open: u64,
    /// Open tasks per interned assignee.
    open_by_assignee: Vec<u64>,
}

impl TaskIndex {
    /// The index of every task (with its nodes) as loaded from the store.
    pub fn build(all: impl IntoIterator<Item = (UserTask, Vec<String>)>) -> TaskIndex {
        let mut index = TaskIndex::loading();
        for (task, nodes) in all {
            index.load(task, nodes.iter().map(String::as_str));
        }
        index.loaded()
    }

    /// An empty index to [`TaskIndex::load`] the stored tasks into, one at a time (so that
    /// loading never holds more than the index and one task).
    pub fn loading() -> TaskIndex {
        TaskIndex {
            loading: true,
            ..TaskIndex::default()
        }
    }

    /// Adds a stored task and its nodes while loading.
    pub fn load<'a>(&mut self, task: UserTask, nodes: impl IntoIterator<Item = &'a str>) {
        let id = task.id;
        self.apply(task);
        for node in nodes {
            self.add_node(id, node);
        }
    }

    /// Ends loading: the index is ready for lists.
    pub fn loaded(mut self) -> TaskIndex {
        self.order.sort_unstable_by_key(|(k, _)| *k);
        self.loading = false;
        self.text.shrink_to_fit();
        self
    }

    /// Takes a committed copy of a task. A copy no newer than the one held is ignored;
    /// returns whether this one was taken.
    pub fn apply(&mut self, task: UserTask) -> bool {
        let assignee = match &task.assignee {
            Some(a) => self.intern_assignee(a),
            None => NOBODY,
        };
        let key = key_of(&task);
        let slot = match self.slot_of.get(&task.id).copied() {
            Some(slot) => {
                let old = &self.tasks[slot as usize];
                if old.revision >= task.revision {
                    return false;
                }
                let old_key = key_of(old);
                let text_changed = old.title != task.title
                    || old.description != task.description
                    || old.changes.len() != task.changes.len();
                self.count(self.rows[slot as usize], false);
                if text_changed {
                    let (start, end) = self.push_text(&task, slot);
                    let row = &mut self.rows[slot as usize];
                    row.text_start = start;
                    row.text_end = end;
                }
                if old_key != key {
                    self.unorder(old_key);
                    self.reorder(key, slot);
                }
                slot
            }
            None => {
                let slot = self.tasks.len() as u32;
                let (text_start, text_end) = self.push_text(&task, slot);
                self.rows.push(Row {
                    status: task.status(),
                    kind: task.kind,
                    assignee,
                    text_start,
                    text_end,
                });
                self.slot_of.insert(task.id, slot);
                self.reorder(key, slot);
                self.tasks.push(task.clone());
                slot
            }
        };
        let row = &mut self.rows[slot as usize];
        row.status = task.status();
        row.kind = task.kind;
        row.assignee = assignee;
        let row = *row;
        self.count(row, true);
        self.tasks[slot as usize] = task;
        true
    }

    fn reorder(&mut self, key: Key, slot: u32) {
        if self.loading {
            self.order.push((key, slot));
            return;
        }
        let at = self.order.partition_point(|(k, _)| *k < key);
        self.order.insert(at, (key, slot));
    }

    fn unorder(&mut self, key: Key) {
        let at = self.order.partition_point(|(k, _)| *k < key);
        if let Some(entry) = self.order.get_mut(at).filter(|(k, _)| *k == key) {
            entry.1 = MOVED;
            self.moved += 1;
        }
        if self.moved > 1024 && self.moved > self.order.len() / 2 {
            self.order.retain(|(_, slot)| *slot != MOVED);
            self.moved = 0;
        }
    }

    fn push_text(&mut self, task: &UserTask, slot: u32) -> (usize, usize) {
        let start = self.text.len();
        // What a filter searches: the title, the description and every change's key.
        let mut text = format!("{}\n{}", task.title, task.description);
        for c in &task.changes {
            text.push('\n');
            text.push_str(&c.key);
        }
        let lower = text.to_lowercase();
        self.text
            .extend(lower.bytes().map(|b| if b == 0 { b' ' } else { b }));
        let end = self.text.len();
        self.text.push(0);
        self.text_starts.push((start, slot));
        let bits = trigrams(&self.text[start..end]);
        match self.trigrams.get_mut(slot as usize) {
            Some(b) => *b = bits,
            None => self.trigrams.push(bits),
        }
        (start, end)
    }

    fn intern_assignee(&mut self, email: &str) -> u32 {
        if let Some(id) = self.assignee_ids.get(email) {
            return *id;
        }
        let id = self.open_by_assignee.len() as u32;
        self.assignee_ids.insert(email.to_owned(), id);
        self.open_by_assignee.push(0);
        id
    }

    /// Records that `node` has an event in task `id` (nodes are never taken out of a task).
    pub fn add_node(&mut self, id: u64, node: &str) {
        let Some(&slot) = self.slot_of.get(&id) else {
            return;
        };
        let node_id = match self.node_ids.get(node) {
            Some(n) => *n as usize,
            None => {
                self.node_ids
                    .insert(node.to_owned(), self.node_slots.len() as u32);
                self.node_slots.push(Vec::new());
                self.node_slots.len() - 1
            }
        };
        let slots = &mut self.node_slots[node_id];
        if let Err(at) = slots.binary_search(&slot) {
            slots.insert(at, slot);
        }
    }

    fn count(&mut self, row: Row, add: bool) {
        if row.status != UserTaskStatus::Open {
            return;
        }
        let by = (row.assignee != NOBODY).then_some(row.assignee as usize);
        if add {
            self.open += 1;
            if let Some(a) = by {
                self.open_by_assignee[a] += 1;
            }
        } else {
            self.open -= 1;
            if let Some(a) = by {
                self.open_by_assignee[a] -= 1;
            }
        }
    }

    pub fn get(&self, id: u64) -> Option<&UserTask> {
        self.slot_of.get(&id).map(|&s| &self.tasks[s as usize])
    }

    /// (the organisation's open tasks, the open tasks assigned to `email`).
    pub fn open_counts(&self, email: Option<&str>) -> (u64, u64) {
        let mine = email
            .and_then(|e| self.assignee_ids.get(e))
            .map_or(0, |&a| self.open_by_assignee[a as usize]);
        (self.open, mine)
    }

    /// The matching tasks from `offset` on, at most `limit`, newest first; and how many match.
    pub fn page(&self, f: &Filter, offset: usize, limit: usize) -> (Vec<UserTask>, usize) {
        self.page_where(f, offset, limit, |_| true)
    }

    /// [`TaskIndex::page`] of the matching tasks for which `also` holds.
    pub fn page_where(
        &self,
        f: &Filter,
        offset: usize,
        limit: usize,
        also: impl Fn(&UserTask) -> bool,
    ) -> (Vec<UserTask>, usize) {
        let mut page = Vec::new();
        let mut seen = 0;
        self.each_match(f, |slot| {
            if !also(&self.tasks[slot]) {
                return;
            }
            if seen >= offset && page.len() < limit {
                page.push(self.tasks[slot].clone());
            }
            seen += 1;
        });
        (page, seen)
    }

    /// The ids of the matching tasks for which `also` holds, ascending.
    pub fn ids(&self, f: &Filter, also: impl Fn(&UserTask) -> bool) -> Vec<u64> {
        let mut ids = Vec::new();
        self.each_match(f, |slot| {
            let t = &self.tasks[slot];
            if also(t) {
                ids.push(t.id);
            }
        });
        ids.sort_unstable();
        ids
    }

    /// The slots whose text contains `q` (lower case), as a bitmap.
    fn text_matches(&self, q: &str) -> Vec<u64> {
        let mut hits = vec![0u64; self.rows.len().div_ceil(64)];
        let q = q.as_bytes();
        if q.contains(&0) {
            return hits;
        }
        let finder = memmem::Finder::new(q);
        if q.len() >= 3 {
            // Search only the texts whose trigrams hold the query's.
            let want = trigrams(q);
            for (slot, bits) in self.trigrams.iter().enumerate() {
                if !has_all(bits, &want) {
                    continue;
                }
                let row = &self.rows[slot];
                if finder
                    .find(&self.text[row.text_start..row.text_end])
                    .is_some()
                {
                    hits[slot / 64] |= 1 << (slot % 64);
                }
            }
            return hits;
        }
        // Too short for trigrams: one pass over all text.
        let mut at = 0;
        while let Some(found) = finder.find(&self.text[at..]) {
            let pos = at + found;
            // The text holding `pos`: the last one starting at or before it.
            let i = self.text_starts.partition_point(|&(start, _)| start <= pos) - 1;
            let (start, slot) = self.text_starts[i];
            if self.rows[slot as usize].text_start == start {
                hits[slot as usize / 64] |= 1 << (slot % 64);
            }
            // On to the next text: one hit per text is enough.
            at = memchr::memchr(0, &self.text[pos..]).map_or(self.text.len(), |n| pos + n + 1);
        }
        hits
    }

    /// Calls `each` with the slot of every matching task, newest first.
    fn each_match(&self, f: &Filter, mut each: impl FnMut(usize)) {
        let assignee = match &f.assignee {
            None => None,
            Some(None) => Some(NOBODY),
            Some(Some(email)) => match self.assignee_ids.get(email) {
                Some(id) => Some(*id),
                None => return,
            },
        };
        let row_matches = |row: &Row| {
            f.status.is_none_or(|st| st == row.status)
                && assignee.is_none_or(|a| a == row.assignee)
                && f.kind.is_none_or(|k| k == row.kind)
        };
        if let Some(name) = &f.node {
            // Few tasks have an event on any one node: look at those alone.
            let Some(&node) = self.node_ids.get(name) else {
                return;
            };
            let finder = match f.q.as_deref() {
                Some(q) if q.as_bytes().contains(&0) => return,
                Some(q) => Some(memmem::Finder::new(q.as_bytes())),
                None => None,
            };
            let mut hits: Vec<(Key, u32)> = self.node_slots[node as usize]
                .iter()
                .filter(|&&slot| {
                    let row = &self.rows[slot as usize];
                    row_matches(row)
                        && finder.as_ref().is_none_or(|q| {
                            q.find(&self.text[row.text_start..row.text_end]).is_some()
                        })
                })
                .map(|&slot| (key_of(&self.tasks[slot as usize]), slot))
                .collect();
            hits.sort_unstable_by_key(|h| std::cmp::Reverse(h.0));
            for (_, slot) in hits {
                each(slot as usize);
            }
            return;
        }
        let text = f.q.as_deref().map(|q| self.text_matches(q));
        for &(_, slot) in self.order.iter().rev() {
            if slot == MOVED {
                continue;
            }
            let s = slot as usize;
            if row_matches(&self.rows[s])
                && text
                    .as_ref()
                    .is_none_or(|hits| hits[s / 64] & (1 << (s % 64)) != 0)
            {
                each(s);
            }
        }
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
    pub fn resolve(f: &UserTaskFilter, caller: &Caller) -> Result<Filter, UserTaskError> {
        let status = f.status.unwrap_or_default().status();
        let assignee = match f.assignee.as_deref() {
            None => None,
            Some("none") => Some(None),
            Some("me") => Some(Some(caller.email.clone().ok_or_else(|| {
                UserTaskError::BadRequest(
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
        self.status.is_none_or(|s| s == t.status())
            && self
                .assignee
                .as_ref()
                .is_none_or(|a| a.as_deref() == t.assignee.as_deref())
            && self.kind.is_none_or(|k| k == t.kind)
    }
}

#[cfg(test)]
#[path = "index_tests.rs"]
mod tests;
