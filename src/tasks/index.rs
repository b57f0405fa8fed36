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

use super::TaskError;
use crate::api::Caller;
use crate::proto::{TaskFilter, UserTask, UserTaskKind, UserTaskStatus};

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
        let mut index = TaskIndex {
            loading: true,
            ..TaskIndex::default()
        };
        for (task, nodes) in all {
            let id = task.id;
            index.apply(task);
            for node in nodes {
                index.add_node(id, &node);
            }
        }
        index.order.sort_unstable_by_key(|(k, _)| *k);
        index.loading = false;
        index
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
                let text_changed = old.title != task.title || old.description != task.description;
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
                    status: task.status,
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
        row.status = task.status;
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
        let lower = format!("{}\n{}", task.title, task.description).to_lowercase();
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
        let mut page = Vec::new();
        let mut seen = 0;
        self.each_match(f, |slot| {
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
    fn order_survives_many_moves_and_a_build_from_any_order() {
        let at = |secs: i64| Utc.timestamp_opt(1_780_000_000 + secs, 0).unwrap();
        let mut index = TaskIndex::default();
        for id in 1..=10 {
            let mut t = task(id, 1, 0);
            t.last_event_at = at(id as i64);
            index.apply(t);
        }
        // 3,000 new events, round robin over the tasks: enough moves to compact.
        for n in 0..3000u64 {
            let id = n % 10 + 1;
            let mut t = task(id, n + 2, 0);
            t.last_event_at = at(100 + n as i64);
            assert!(index.apply(t));
        }
        let ids = |index: &TaskIndex| {
            let (page, total) = index.page(&all(), 0, usize::MAX);
            assert_eq!(total, 10);
            page.iter().map(|t| t.id).collect::<Vec<_>>()
        };
        assert_eq!(ids(&index), vec![10, 9, 8, 7, 6, 5, 4, 3, 2, 1]);
        assert!(index.order.len() < 3000, "moved entries were compacted");
        // Built from the store, newest first whatever order the rows come in.
        let mut tasks: Vec<UserTask> = (1..=10).map(|id| index.get(id).unwrap().clone()).collect();
        tasks.reverse();
        let built = TaskIndex::build(tasks.into_iter().map(|t| (t, vec!["n".to_owned()])));
        assert_eq!(ids(&built), ids(&index));
        let on_n = Filter {
            node: Some("n".into()),
            ..all()
        };
        assert_eq!(built.page(&on_n, 0, 0).1, 10);
    }

    #[test]
    fn text_search_finds_exactly_what_a_plain_search_finds() {
        let mut rng = fastrand::Rng::with_seed(11);
        let words = [
            "openssl",
            "Bash",
            "sshd_config",
            "→",
            "1.2.3-1",
            "/etc/passwd",
            "Drift",
        ];
        let mut index = TaskIndex::default();
        let mut texts = Vec::new();
        for id in 1..=300 {
            let mut t = task(id, 1, (id % 60) as u32);
            t.title = (0..3)
                .map(|_| words[rng.usize(..words.len())])
                .collect::<Vec<_>>()
                .join(" ");
            t.description = (0..rng.usize(0..12))
                .map(|_| words[rng.usize(..words.len())])
                .collect::<Vec<_>>()
                .join(if rng.bool() { " " } else { "\n" });
            texts.push((id, format!("{}\n{}", t.title, t.description).to_lowercase()));
            index.apply(t);
        }
        let mut queries: Vec<String> = vec!["a".into(), "ss".into(), "zzz".into(), "h s".into()];
        for _ in 0..200 {
            let (_, text) = &texts[rng.usize(..texts.len())];
            let chars: Vec<char> = text.chars().collect();
            let from = rng.usize(..chars.len());
            let len = rng.usize(1..=12.min(chars.len() - from));
            queries.push(chars[from..from + len].iter().collect());
        }
        for q in queries {
            let mut want: Vec<u64> = texts
                .iter()
                .filter(|(_, t)| t.contains(q.as_str()))
                .map(|(id, _)| *id)
                .collect();
            want.sort_unstable();
            let f = Filter {
                q: Some(q.clone()),
                ..all()
            };
            assert_eq!(index.ids(&f, |_| true), want, "query {q:?}");
        }
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
        let odd_text = Filter {
            node: Some("odd".into()),
            ..text.clone()
        };
        assert_eq!(ids(index.page(&odd_text, 0, 10).0), vec![1]);
        let odd_closed = Filter {
            node: Some("odd".into()),
            status: Some(UserTaskStatus::Closed),
            ..all()
        };
        assert_eq!(index.page(&odd_closed, 0, 10).1, 0);
        let (page, total) = index.page(
            &Filter {
                node: Some("odd".into()),
                ..all()
            },
            1,
            1,
        );
        assert_eq!((ids(page), total), (vec![3], 3), "node pages newest first");
        assert_eq!(index.ids(&all(), |t| t.id > 3), vec![4, 5]);
        let short = Filter {
            q: Some("k 3".into()),
            ..all()
        };
        assert_eq!(
            ids(index.page(&short, 0, 10).0),
            vec![3],
            "3 bytes: trigrams"
        );
        let two = Filter {
            q: Some("\n".into()),
            ..all()
        };
        assert_eq!(index.page(&two, 0, 10).1, 5, "1 byte: the whole-text pass");
        // No match across two tasks' texts.
        let across = Filter {
            q: Some("openssl 2\ndrift".into()),
            ..all()
        };
        assert_eq!(index.page(&across, 0, 10).1, 0);
        // A changed text is searched as it is now, not as it was.
        let mut renamed = task(4, 2, 4);
        renamed.description = "Nothing about that package".into();
        index.apply(renamed);
        assert_eq!(ids(index.page(&text, 0, 10).0), vec![1]);
        let now = Filter {
            q: Some("that package".into()),
            ..all()
        };
        assert_eq!(ids(index.page(&now, 0, 10).0), vec![4]);
    }
}
