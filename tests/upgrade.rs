//! A state dir written before the wave-2 renovation (see `fixtures/pre-renovation/make.sh`)
//! opens with today's vigild, which reads the same tasks, events, logs, snapshots, drift
//! and policy results from it, and answers as vigil did then.

use std::path::Path;

use serde_json::Value;

use crate::common::{Daemon, TestDir};

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/pre-renovation");
const NODES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/nodes/debian");

/// `want` holds in `got`: every field recorded then has the same value now (fields added
/// since are allowed); arrays match element by element.
fn contains(got: &Value, want: &Value, at: &str) -> Result<(), String> {
    match (got, want) {
        (Value::Object(g), Value::Object(w)) => {
            for (k, wv) in w {
                let gv = g
                    .get(k)
                    .ok_or_else(|| format!("{at}.{k}: missing (was {wv})"))?;
                contains(gv, wv, &format!("{at}.{k}"))?;
            }
            Ok(())
        }
        (Value::Array(g), Value::Array(w)) => {
            if g.len() != w.len() {
                return Err(format!("{at}: {} elements, was {}", g.len(), w.len()));
            }
            for (i, (gv, wv)) in g.iter().zip(w).enumerate() {
                contains(gv, wv, &format!("{at}[{i}]"))?;
            }
            Ok(())
        }
        _ if got == want => Ok(()),
        _ => Err(format!("{at}: {got}, was {want}")),
    }
}

/// The one stored change the upgrade makes: an open policy or scan-failure task written
/// before tasks were grouped per destination gets its destination in its fingerprint
/// (`policy:P/C` → `policy:web:P/C`), which is one more stored change of the task (its
/// revision goes up). Checks exactly that and makes the two copies compare equal.
fn upgraded_fingerprints(got: &mut Value, want: &mut Value) {
    fn tasks_in(v: &mut Value) -> Vec<&mut Value> {
        if v.get("tasks").is_some_and(Value::is_array) {
            return v["tasks"].as_array_mut().unwrap().iter_mut().collect();
        }
        match v.get_mut("task") {
            Some(t) => vec![t],
            None => Vec::new(),
        }
    }
    for (g, w) in tasks_in(got).into_iter().zip(tasks_in(want)) {
        let (Some(gf), Some(wf)) = (g["fingerprint"].as_str(), w["fingerprint"].as_str()) else {
            continue;
        };
        if gf == wf {
            continue;
        }
        let (kind, rest) = wf.split_once(':').unwrap();
        assert_eq!(gf, format!("{kind}:web:{rest}"), "the upgraded fingerprint");
        assert!(g["revision"].as_u64() > w["revision"].as_u64());
        g["fingerprint"] = w["fingerprint"].clone();
        g["revision"] = w["revision"].clone();
    }
}

fn expected(name: &str) -> String {
    std::fs::read_to_string(Path::new(FIXTURE).join("expected").join(name)).unwrap()
}

#[test]
fn a_state_dir_written_before_the_renovation_reads_the_same() {
    let dir = TestDir::new();
    std::fs::copy(Path::new(FIXTURE).join("config.toml"), dir.config_path()).unwrap();
    std::fs::create_dir(dir.path().join("policies")).unwrap();
    std::fs::copy(
        Path::new(FIXTURE).join("policy.toml"),
        dir.path().join("policies/policy.toml"),
    )
    .unwrap();
    dir.plugin_dir();
    for n in ["n1", "n2"] {
        dir.copy_tree(Path::new(NODES), n);
    }
    std::fs::create_dir(dir.path().join("state")).unwrap();
    std::fs::copy(
        Path::new(FIXTURE).join("vigil.redb"),
        dir.path().join("state/vigil.redb"),
    )
    .unwrap();
    // The fixture's second night: nothing is old enough to be pruned.
    dir.set_today("2026-03-02");
    let mut d = Daemon::start_on(&dir).expect("vigild starts on the old state dir");
    d.socket = dir.path().join("vigil.sock");

    let tasks: Value = serde_json::from_str(&expected("tasks.json")).unwrap();
    let mut checks = vec![
        ("/v1/tasks?status=all".to_owned(), "tasks.json".to_owned()),
        ("/v1/logs/scans".into(), "scans.json".into()),
        ("/v1/logs/audits".into(), "audits.json".into()),
        (
            "/v1/nodes/n1/drift?date=2026-03-02".into(),
            "drift-n1.json".into(),
        ),
        (
            "/v1/nodes/n2/drift?date=2026-03-02".into(),
            "drift-n2.json".into(),
        ),
        ("/v1/policies/fixture".into(), "policy.json".into()),
        ("/v1/outbox".into(), "outbox.json".into()),
    ];
    for t in tasks["tasks"].as_array().unwrap() {
        let id = t["id"].as_u64().unwrap();
        checks.push((format!("/v1/tasks/{id}"), format!("task-{id}.json")));
        checks.push((
            format!("/v1/tasks/{id}/report"),
            format!("report-{id}.json"),
        ));
    }
    assert!(checks.len() > 10, "the fixture has tasks");
    for (path, file) in &checks {
        let (code, body) = d.http("GET", path, None);
        assert_eq!(code, 200, "{path}: {body}");
        let mut got: Value = serde_json::from_str(&body).unwrap();
        let mut want: Value = serde_json::from_str(&expected(file)).unwrap();
        // A policy's file is where this test put it.
        for v in [&mut got, &mut want] {
            if let Some(o) = v.as_object_mut() {
                o.remove("file");
            }
        }
        upgraded_fingerprints(&mut got, &mut want);
        if let Err(e) = contains(&got, &want, path) {
            panic!("{path} differs from {file}: {e}\nnow: {body}");
        }
    }

    // Nodes: the same snapshots and last scans (roots are where this test put them).
    let (code, body) = d.http("GET", "/v1/nodes", None);
    assert_eq!(code, 200, "{body}");
    let mut got: Value = serde_json::from_str(&body).unwrap();
    let mut want: Value = serde_json::from_str(&expected("nodes.json")).unwrap();
    for v in [&mut got, &mut want] {
        for n in v.as_array_mut().unwrap() {
            n.as_object_mut().unwrap().remove("root");
        }
    }
    contains(&got, &want, "/v1/nodes").unwrap();

    // The CSV export is field for field what it was, with each task's dedup key (given to
    // the old tasks at the upgrade) as a last column.
    let (code, body) = d.http("GET", "/v1/tasks/export?status=all&format=csv", None);
    assert_eq!(code, 200);
    let records = |text: &str| -> Vec<Vec<String>> {
        csv::Reader::from_reader(text.as_bytes())
            .records()
            .map(|r| r.unwrap().iter().map(str::to_owned).collect())
            .collect()
    };
    let want = records(&expected("export.csv"));
    let mut got = records(&body);
    assert_eq!(got.len(), want.len());
    for row in &mut got {
        let key = row.pop().unwrap();
        assert!(
            key.starts_with("vigil/") && key.ends_with(&format!("/task/{}", row[0])),
            "{key}"
        );
    }
    assert_eq!(got, want);
    assert!(body.starts_with(expected("export.csv").lines().next().unwrap().trim_end()));
}
