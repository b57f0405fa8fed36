//! Building the benchmark store through the real ingest code, and the in-process ingest
//! timings (one durable commit per finding, then grouped commits).

use super::*;

/// The `j`-th finding of task `i`, made by the constructors scans and audits use.
pub(crate) fn finding(i: u64, j: u64) -> NodeFindings {
    let n = node((i * 7 + j * 1013) % NODES);
    let source = scan(i * 10 + j + 1);
    let d = day(i % 300 + j);
    let mut f = NodeFindings::new(&n, source, d);
    match if is_marker(i) { 0 } else { i % 10 } {
        0..=5 => {
            let pkg = if is_marker(i) {
                MARKER.to_owned()
            } else {
                PACKAGES[(i / 10 % 20) as usize].to_owned()
            };
            let mut changes = vec![Change {
                key: pkg,
                kind: ChangeKind::Modified,
                attributes: vec![AttributeChange {
                    name: "version".into(),
                    previous: Some(Value::from(format!("1.{}.{}-1", i % 50, i % 7))),
                    current: Some(Value::from(format!("1.{}.{}-1", i % 50, i % 7 + 1))),
                }],
                content_diff: None,
                content_private: false,
                current_digest: Some(format!("{:016x}", i.wrapping_mul(0x9e37_79b9_7f4a_7c15))),
                previous_digest: Some(format!("{:016x}", i)),
            }];
            if i % 3 == 0 {
                changes.push(Change {
                    key: format!("/etc/app-{}/app.conf", i % 200),
                    kind: ChangeKind::Modified,
                    attributes: vec![AttributeChange {
                        name: "blake3".into(),
                        previous: Some(Value::from(format!("{:064x}", i))),
                        current: Some(Value::from(format!("{:064x}", i + 1))),
                    }],
                    content_diff: None,
                    content_private: false,
                    current_digest: Some(format!("{:016x}", i + 1)),
                    previous_digest: Some(format!("{:016x}", i)),
                });
            }
            f.baseline = d.pred_opt();
            f.changes = changes.iter().map(|c| task_change("packages", c)).collect();
        }
        6 | 7 => {
            let policy = POLICIES[(i % 8) as usize];
            let check = format!("check-{}", i / 10);
            f.failed_checks.push(FailedCheck {
                policy: policy.to_owned(),
                policy_description: "Baseline hardening of every Debian node".to_owned(),
                check,
                check_description: String::new(),
                plugin: "files".to_owned(),
                evidence: format!("/etc/ssh/sshd_config: PermitRootLogin is yes on {n}"),
            });
        }
        _ => f.failures.push(PluginFailed {
            plugin: format!("plugin-{i}"),
            message: format!("cannot read /srv/{n}/data: permission denied after {j} tries"),
        }),
    }
    f
}

/// Ingests a batch in one transaction; closes the tasks that should be closed.
pub(crate) fn commit_batch(
    store: &Store,
    config: &Config,
    batch: &mut Vec<(u64, NodeFindings)>,
) -> Result<(), StoreError> {
    let findings: Vec<NodeFindings> = batch.iter().map(|(_, f)| f.clone()).collect();
    let owners: Vec<u64> = batch.iter().map(|(i, _)| *i).collect();
    store.write_blocking(
        vigil::store::Commit::Durable,
        |tx| -> Result<(), StoreError> {
            let mut created = Vec::new();
            for f in &findings {
                created.extend(ingest::ingest_single(tx, config, f)?.created);
            }
            let mut created = created.iter();
            let mut last = None;
            for i in owners {
                if last == Some(i) {
                    continue;
                }
                last = Some(i);
                let id = *created.next().expect("each bulk task is new");
                assert_eq!(id, i + 1, "task ids follow the build order");
                if is_closed(i) {
                    let mut tables = persist::Tables::open(tx)?;
                    let mut task = tables.get(id)?.expect("just created");
                    tables.set_open(&mut task, false, "ops@example.com")?;
                }
            }
            Ok(())
        },
    )?;
    batch.clear();
    Ok(())
}

/// Builds the store in `state`: 99,900 tasks with 990,000 events in bulk, then 10,000
/// findings (100 fingerprints on 100 nodes each) one durable transaction each, as scans
/// commit them, timed.
pub(crate) fn build(state: &Path, config: &Config) {
    let store = Store::open(state).expect("open the store");
    let start = Instant::now();
    let mut batch = Vec::with_capacity(BATCH + 10);
    let mut events = 0;
    for i in 0..BULK_TASKS {
        for j in 0..events_of(i) {
            batch.push((i, finding(i, j)));
            events += 1;
        }
        if batch.len() >= BATCH {
            commit_batch(&store, config, &mut batch).expect("bulk ingest");
        }
        if i % 20_000 == 19_999 {
            println!(
                "  built {} tasks, {events} events, {:.0} s",
                i + 1,
                start.elapsed().as_secs_f64()
            );
        }
    }
    commit_batch(&store, config, &mut batch).expect("bulk ingest");
    println!(
        "bulk build: {BULK_TASKS} tasks, {events} events in {:.1} s",
        start.elapsed().as_secs_f64()
    );

    // One finding per node, as 10,000 scans would commit them: each node's scan is one
    // durable transaction through the daemon's own ingest (grouping, auto-assignment mail).
    let (took, times, created, updated) = ingest_timed(&store, config, 400, 1);
    events += TIMED_TASKS * 100;
    println!(
        "in-process ingest of 10,000 findings, one durable commit per finding (as the daemon \
         commits each scan): {:.2} s; {created} tasks created, {updated} updated; per commit p50 {} p99 {}",
        took.as_secs_f64(),
        ms(percentile(&times, 50)),
        ms(percentile(&times, 99))
    );
    assert_eq!(events, EVENTS, "the store holds {EVENTS} events");
    let size = std::fs::metadata(store.path())
        .map(|m| m.len())
        .unwrap_or(0);
    println!(
        "store: {TASKS} tasks, {EVENTS} events, {:.0} MB",
        size as f64 / 1e6
    );
}

/// The finding of the scan of node `n` in the timed ingest: 100 fingerprints, each on 100
/// nodes.
pub(crate) fn timed_finding(n: u64, on: u64) -> NodeFindings {
    let t = BULK_TASKS + n % TIMED_TASKS;
    let nd = node(n);
    let mut f = NodeFindings::new(&nd, scan(10_000_000 + on * 100_000 + n), day(on));
    f.failures.push(PluginFailed {
        plugin: format!("timed-{t}"),
        message: format!("{nd}: cannot stat /var/lib/{nd}/state: input/output error"),
    });
    f
}

/// Ingests the 10,000 timed findings of day `on` through `UserTasks::ingest`, `group` of
/// them per durable commit. Returns the time, the sorted commit times, created, updated.
pub(crate) fn ingest_timed(
    store: &Store,
    config: &Config,
    on: u64,
    group: u64,
) -> (Duration, Vec<Duration>, usize, usize) {
    let mut times = Vec::new();
    let (mut created, mut updated) = (0, 0);
    let start = Instant::now();
    for first in (0..TIMED_TASKS * 100).step_by(group as usize) {
        let findings: Vec<NodeFindings> = (first..(first + group).min(TIMED_TASKS * 100))
            .map(|n| timed_finding(n, on))
            .collect();
        let t0 = Instant::now();
        let out = store
            .write_blocking(vigil::store::Commit::Durable, |tx| {
                let mut all = Vec::new();
                for f in &findings {
                    all.push(UserTasks::ingest_single(tx, config, f)?);
                }
                Ok::<_, StoreError>(all)
            })
            .expect("ingest");
        times.push(t0.elapsed());
        created += out.iter().map(|o| o.created.len()).sum::<usize>();
        updated += out.iter().map(|o| o.updated.len()).sum::<usize>();
    }
    let took = start.elapsed();
    times.sort();
    (took, times, created, updated)
}

/// On a scratch copy of the built store: what a durable commit costs by itself, and the
/// same 10,000 findings ingested with their commits grouped.
pub(crate) fn ingest_probe(work: &Path, pristine: &Path, config: &Config) {
    let dir = work.join("probe");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(pristine, dir.join(vigil::store::DB_FILE)).unwrap();
    let store = Store::open(&dir).expect("open the copy");
    let mut floor = Vec::new();
    for i in 0..200u64 {
        let t0 = Instant::now();
        store
            .write_blocking(
                vigil::store::Commit::Durable,
                |tx| -> Result<(), StoreError> {
                    vigil::store::tables::META
                        .write(tx)?
                        .insert("bench.probe", i)?;
                    Ok(())
                },
            )
            .expect("probe commit");
        floor.push(t0.elapsed());
    }
    floor.sort();
    println!(
        "a durable commit of one small row on this store: p50 {} p99 {} (the floor of any \
         per-scan commit)",
        ms(percentile(&floor, 50)),
        ms(percentile(&floor, 99))
    );
    for (on, group) in [(401, 100), (402, 10_000)] {
        let (took, times, _, updated) = ingest_timed(&store, config, on, group);
        println!(
            "in-process ingest of the 10,000 findings of another day, {group} per commit: {:.2} s \
             ({} commits, p50 {} each); {updated} tasks updated",
            took.as_secs_f64(),
            times.len(),
            ms(percentile(&times, 50))
        );
    }
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}
