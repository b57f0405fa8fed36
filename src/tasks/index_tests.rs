//! Unit tests of the task index: ordering, counts, text search, revisions.

use super::*;
use chrono::TimeZone;

use crate::proto::UserTaskState;

fn task(id: u64, revision: u64, minute: u32) -> UserTask {
    let at = Utc.with_ymd_and_hms(2026, 4, 1, 12, minute, 0).unwrap();
    UserTask {
        id,
        kind: UserTaskKind::Drift,
        title: format!("Drift: Task {id}"),
        description: format!("Changes on node {id}\nopenssl {}", id % 3),
        state: UserTaskState::Open,
        assignee: None,
        created_at: at,
        last_event_at: at,
        events: 1,
        nodes: 1,
        first_nodes: Vec::new(),
        fingerprint: format!("drift:{id}"),
        recurrence_of: None,
        revision,
        changes: Vec::new(),
        change_count: 0,
        destination: None,
        siblings: Vec::new(),
        dedup_key: format!("vigil/0000000000000001/task/{id}"),
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
        .filter(|t| t.status() == UserTaskStatus::Open)
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
                t.state = UserTaskState::Closed {
                    by: "test".into(),
                    at: t.last_event_at,
                };
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
