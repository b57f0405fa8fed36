//! Audit tasks in the queue: the Audit log row's errors count only real errors, and an
//! audit stops at its timeout.

use super::*;

/// Config for audits over the fixture plugins: policies `fine` (a check `ok` passes),
/// `broken` (that, and one on `bad`, which fails) and `slow` (checks on `hang` and `ok`).
fn audit_config(dir: &TestDir, daemon: &str) -> String {
    let policies = dir.path().join("policies");
    std::fs::create_dir_all(&policies).unwrap();
    let check = |id: &str, plugin: &str| {
        format!(
            "[[check]]\nid = \"{id}\"\nplugin = \"{plugin}\"\nkey = \"item-0\"\npresent = true\n\n"
        )
    };
    for (name, checks) in [
        ("fine", check("ok-item", "ok")),
        ("broken", check("ok-item", "ok") + &check("bad-item", "bad")),
        (
            "slow",
            check("hang-item", "hang") + &check("ok-item", "ok") + &check("ok-other", "ok"),
        ),
    ] {
        std::fs::write(
            policies.join(format!("{name}.toml")),
            format!("name = \"{name}\"\ndescription = \"{name} checks\"\n\n{checks}"),
        )
        .unwrap();
    }
    queue_config(dir, 1, daemon).replacen(
        "policy_dir = \"no-policies\"",
        &format!("policy_dir = \"{}\"", policies.display()),
        1,
    )
}

fn audit_row(d: &Daemon, policy: &str) -> Value {
    let mut rows = d.queue_and_wait(json!({"kind": "audit", "policies": [policy]}));
    assert_eq!(rows.len(), 1, "{rows:?}");
    rows.remove(0)
}

#[test]
fn audit_errors_count_real_errors_only() {
    let dir = TestDir::new();
    dir.write_config(&audit_config(&dir, ""));
    let d = Daemon::start_on(&dir).unwrap();

    let fine = audit_row(&d, "fine");
    assert_eq!(fine["status"], "Finished", "{fine}");
    assert_eq!(fine["errors"], 0);
    assert_eq!(fine["messages"], json!([]));
    assert_eq!(
        fine["summary"],
        "1 check of policy fine: 1 passed, 0 failed, 0 could not be evaluated"
    );

    let broken = audit_row(&d, "broken");
    assert_eq!(broken["status"], "Failed", "{broken}");
    assert_eq!(broken["errors"], 1, "one plugin error: {broken}");
    let messages = broken["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 1, "{broken}");
    assert!(
        messages[0].as_str().unwrap().starts_with("bad: ")
            && messages[0].as_str().unwrap().contains("fixture error"),
        "{broken}"
    );
    assert_eq!(
        broken["summary"],
        "2 checks of policy broken: 1 passed, 0 failed, 1 could not be evaluated"
    );

    // `vigil log audits` shows the error of the Failed row and the summary of the other.
    let out = d.vigil(&["log", "audits"]);
    let out = String::from_utf8_lossy(&out.stdout);
    let line = |id: &str| {
        out.lines()
            .find(|l| l.starts_with(id))
            .expect(&out)
            .to_owned()
    };
    assert!(line("Audit #2").contains("bad: "), "{out}");
    assert!(line("Audit #1").contains("1 passed"), "{out}");
}

#[test]
fn an_audit_stops_at_its_timeout() {
    let dir = TestDir::new();
    dir.write_config(&audit_config(&dir, "task_timeout = \"1s\""));
    let d = Daemon::start_on(&dir).unwrap();
    let row = audit_row(&d, "slow");
    assert_eq!(row["status"], "Failed", "{row}");
    assert_eq!(
        row["messages"],
        json!(["hang: timed out after 1s (daemon.task_timeout)"]),
        "one clear message: {row}"
    );
    assert_eq!(row["errors"], 1);
    let mut checks = check_results(&row);
    checks.sort();
    let not_evaluated = |id: &str| {
        (
            id.to_owned(),
            "error".to_owned(),
            "not evaluated: the audit timed out".to_owned(),
        )
    };
    assert_eq!(
        checks,
        [
            not_evaluated("hang-item"),
            not_evaluated("ok-item"),
            not_evaluated("ok-other")
        ],
        "{row}"
    );
    // The plugins after the deadline did not run at all.
    let plugins: Vec<&str> = row["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["plugin"].as_str().unwrap())
        .collect();
    assert_eq!(plugins, ["hang"], "{row}");
    assert_eq!(
        row["summary"],
        "3 checks of policy slow: 0 passed, 0 failed, 3 could not be evaluated"
    );
}
