//! Running an audit task: the node's policies decide which plugins run; each plugin's items
//! stream once through an `Evaluator` for all the checks that read them (never kept in
//! memory), and every check ends Pass, Fail (with evidence) or Error.

use std::collections::BTreeMap;

use chrono::Utc;
use tokio::time::Instant;

use super::runner::{
    unseen_note, Env, Failure, Link, QueueTaskResult, RunEnd, Start, Stop, MAX_NOTES_PER_PLUGIN,
};
use crate::plugin::supervisor::{self, ScanEvent, ScanOutcome, ScanSpec};
use crate::policy::{Check, Evaluator, Outcome, Policy, Selector};
use crate::proto::{CheckOutcome, CheckRecord, FinalStatus, PluginRun, QueueTask};

/// Audits the task's node against `policies` (`None`: every policy that applies to it).
pub async fn audit(
    task: &QueueTask,
    policies: Option<&[String]>,
    env: &Env<'_>,
    stop: &Stop,
) -> RunEnd {
    let config = env.config;
    let Start {
        node,
        deadline,
        timeout,
    } = match Start::of(task, env) {
        Ok(s) => s,
        Err(ended) => return Ok(*ended),
    };
    let mut result = QueueTaskResult::empty(FinalStatus::Finished);
    let policies: Vec<&Policy> = match policies {
        Some(names) => {
            let mut out = Vec::new();
            for name in names {
                match env.policies.iter().find(|p| &p.name == name) {
                    Some(p) => out.push(p),
                    None => result.messages.push(format!(
                        "policy {name:?} is not loaded; see `vigil policies`"
                    )),
                }
            }
            out
        }
        None => env
            .policies
            .iter()
            .filter(|p| p.applies_to(&node.name, &node.groups))
            .collect(),
    };
    if !result.messages.is_empty() {
        result.status = FinalStatus::Failed;
        return Ok(result);
    }
    let mut by_plugin: BTreeMap<&str, Vec<&Check>> = BTreeMap::new();
    for p in &policies {
        for c in &p.checks {
            by_plugin.entry(c.plugin.as_str()).or_default().push(c);
        }
    }
    let mut link = match Link::open(task, node, env, stop, deadline).await {
        Ok(link) => link,
        Err(Ok(mut ended)) => {
            // Nothing could be read: every check is unevaluated, with the reason.
            let why = ended.messages.first().cloned().unwrap_or_default();
            for checks in by_plugin.values() {
                ended.checks.extend(not_evaluated(checks, task, &why));
            }
            return Ok(ended);
        }
        Err(interrupted) => return interrupted,
    };
    let mut timed_out = false;
    for (plugin, checks) in by_plugin {
        if timed_out {
            // The task's time is used up: what the remaining plugins would read is unknown.
            result
                .checks
                .extend(not_evaluated(&checks, task, "the audit timed out"));
            continue;
        }
        let mut run = PluginRun {
            plugin: plugin.to_owned(),
            items: 0,
            notes: Vec::new(),
            error: None,
        };
        let outcome = match config.plugin(plugin) {
            None => Err(Failure::Other(format!(
                "plugin {plugin:?} is not configured"
            ))),
            Some(_) if Instant::now() >= deadline => Err(Failure::TimedOut),
            Some(pc) => {
                let mut spec = ScanSpec::new(
                    plugin,
                    pc.library_path(&config.daemon.plugin_dir),
                    &node.root,
                );
                spec.config = narrowed_config(
                    plugin,
                    serde_json::to_value(&pc.config).unwrap_or_default(),
                    &checks,
                );
                spec.timeout = Some(deadline.saturating_duration_since(Instant::now()));
                spec.cancel = stop.cancel.child_token();
                match link.prepare(&mut spec).await {
                    Err(e) => Err(e.into()),
                    Ok(()) => evaluate(env, spec, &checks, &mut run).await,
                }
            }
        };
        result.items += run.items;
        match outcome {
            Ok(results) => result
                .checks
                .extend(results.into_iter().map(|r| record(r, &checks, task))),
            Err(failure) => {
                if let Some(stopped) = result.stopped_during(stop, plugin) {
                    link.close().await;
                    stopped?;
                    return Ok(result);
                }
                let message = failure.message(plugin, timeout);
                let evidence = match failure {
                    Failure::TimedOut => {
                        timed_out = true;
                        "the audit timed out".to_owned()
                    }
                    Failure::Other(_) => message.clone(),
                };
                result.status = FinalStatus::Failed;
                result.messages.push(message.clone());
                result
                    .checks
                    .extend(not_evaluated(&checks, task, &evidence));
                run.error = Some(message);
            }
        }
        result.plugins.push(run);
    }
    link.close().await;
    let count = |o| result.checks.iter().filter(|c| c.outcome == o).count();
    let (pass, fail, error) = (
        count(CheckOutcome::Pass),
        count(CheckOutcome::Fail),
        count(CheckOutcome::Error),
    );
    let checks = match result.checks.len() {
        1 => "1 check".to_owned(),
        n => format!("{n} checks"),
    };
    let of = match policies.as_slice() {
        [one] => format!("policy {}", one.name),
        many => format!("{} policies", many.len()),
    };
    result.summary = Some(format!(
        "{checks} of {of}: {pass} passed, {fail} failed, {error} could not be evaluated"
    ));
    Ok(result)
}

/// Error records for checks that were never evaluated.
fn not_evaluated<'a>(
    checks: &'a [&Check],
    task: &'a QueueTask,
    why: &'a str,
) -> impl Iterator<Item = CheckRecord> + 'a {
    checks.iter().map(move |c| CheckRecord {
        policy: c.policy.clone(),
        check: c.id.clone(),
        outcome: CheckOutcome::Error,
        evidence: format!("not evaluated: {why}"),
        node: task.target.clone(),
        audit: Some(task.id()),
        at: Some(Utc::now()),
        plugin: c.plugin.clone(),
        description: c.description.clone().unwrap_or_default(),
    })
}

async fn evaluate(
    env: &Env<'_>,
    spec: ScanSpec,
    checks: &[&Check],
    run: &mut PluginRun,
) -> Result<Vec<crate::policy::CheckResult>, Failure> {
    let mut scan = supervisor::start(env.worker, spec).await?;
    let mut eval = Evaluator::new(checks);
    while let Some(event) = scan.next().await {
        match event {
            ScanEvent::Item(item) => {
                eval.observe(&item);
                run.items += 1;
            }
            ScanEvent::ItemJson(_) => {}
            ScanEvent::Note(note) => {
                if run.notes.len() < MAX_NOTES_PER_PLUGIN {
                    run.notes.push(note);
                }
            }
            ScanEvent::Unseen { key, reason } => {
                if run.notes.len() < MAX_NOTES_PER_PLUGIN {
                    let unseen = supervisor::Unseen { key, reason };
                    run.notes.push(unseen_note(&unseen));
                }
            }
        }
    }
    match scan.finish().await {
        ScanOutcome::Succeeded { .. } => Ok(eval.finish()),
        ScanOutcome::Failed(e) => Err(e.into()),
    }
}

fn record(r: crate::policy::CheckResult, checks: &[&Check], task: &QueueTask) -> CheckRecord {
    let check = checks
        .iter()
        .find(|c| c.policy == r.policy && c.id == r.check);
    CheckRecord {
        outcome: match r.outcome {
            Outcome::Pass => CheckOutcome::Pass,
            Outcome::Fail => CheckOutcome::Fail,
            Outcome::Error => CheckOutcome::Error,
        },
        evidence: r.evidence,
        node: task.target.clone(),
        audit: Some(task.id()),
        at: Some(Utc::now()),
        plugin: check.map(|c| c.plugin.clone()).unwrap_or_default(),
        description: check
            .and_then(|c| c.description.clone())
            .unwrap_or_default(),
        policy: r.policy,
        check: r.check,
    }
}

/// Asks the `files` plugin for only what the checks read: their exact keys and the literal
/// directories their globs start from, with content captured for the keys content checks
/// need. Other plugins read small, fixed sources and get their configured settings.
fn narrowed_config(
    plugin: &str,
    mut config: serde_json::Value,
    checks: &[&Check],
) -> serde_json::Value {
    if plugin != "files" {
        return config;
    }
    let mut paths = Vec::new();
    let mut content = Vec::new();
    for c in checks {
        let (path, pattern) = match &c.selector {
            Selector::Key(k) => (k.clone(), k.clone()),
            Selector::Keys(g) => (literal_prefix(&g.pattern), g.pattern.clone()),
        };
        if !paths.contains(&path) {
            paths.push(path);
        }
        if c.reads_content() && !content.contains(&pattern) {
            content.push(pattern);
        }
    }
    if let Some(obj) = config.as_object_mut() {
        obj.insert("paths".into(), serde_json::json!(paths));
        let mut globs: Vec<serde_json::Value> = obj
            .get("content")
            .and_then(|v| v.as_array())
            .cloned()
            .unwrap_or_default();
        globs.extend(content.into_iter().map(serde_json::Value::from));
        obj.insert("content".into(), serde_json::Value::Array(globs));
    }
    config
}

/// `/etc/ssh/**/*.conf` → `/etc/ssh`; `/etc/**` → `/etc`; `/**` → `/`.
fn literal_prefix(glob: &str) -> String {
    let mut out = String::new();
    for part in glob.split('/').skip(1) {
        if part.contains(['*', '?', '[', '{']) {
            break;
        }
        out.push('/');
        out.push_str(part);
    }
    if out.is_empty() {
        "/".into()
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn literal_prefixes() {
        assert_eq!(super::literal_prefix("/etc/**"), "/etc");
        assert_eq!(super::literal_prefix("/etc/ssh/**/*.conf"), "/etc/ssh");
        assert_eq!(super::literal_prefix("/**"), "/");
        assert_eq!(super::literal_prefix("/etc/passwd"), "/etc/passwd");
    }
}
