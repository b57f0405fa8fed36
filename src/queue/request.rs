//! Checks an ad-hoc scan or audit request against the config and policies in force before
//! anything is queued: a request that names what does not exist is refused whole.

use super::QueueError;
use crate::config::{Config, QueueTaskKind, Scope};
use crate::proto::EnqueueRequest;

/// Checks an ad-hoc request against the config; returns the nodes it covers.
pub(super) fn check_request(
    config: &Config,
    policies: &[crate::policy::Policy],
    req: &EnqueueRequest,
) -> Result<Vec<String>, QueueError> {
    let bad = |m: String| Err(QueueError::BadRequest(m));
    match &req.scope {
        Scope::Group(g) if config.group(g).is_none() => {
            return bad(format!("unknown group {g:?} in scope"))
        }
        Scope::Node(n) if config.node(n).is_none() => {
            return bad(format!("unknown node {n:?} in scope"))
        }
        _ => {}
    }
    match req.kind {
        QueueTaskKind::Scan => {
            if req.policies.is_some() {
                return bad("a scan takes `plugins`, not `policies`".into());
            }
            for p in req.plugins.iter().flatten() {
                if config.plugin(p).is_none() {
                    return bad(format!(
                        "unknown plugin {p:?}; configured: {}",
                        names(config)
                    ));
                }
            }
            if req.plugins.as_ref().is_some_and(Vec::is_empty) {
                return bad(
                    "`plugins` is empty: name at least one, or leave it out for all".into(),
                );
            }
        }
        QueueTaskKind::Audit => {
            if req.plugins.is_some() {
                return bad("an audit takes `policies`, not `plugins`".into());
            }
            for name in req.policies.iter().flatten() {
                if !policies.iter().any(|p| &p.name == name) {
                    let loaded: Vec<&str> = policies.iter().map(|p| p.name.as_str()).collect();
                    return bad(format!(
                        "unknown policy {name:?}; loaded: {}",
                        if loaded.is_empty() {
                            "none".to_owned()
                        } else {
                            loaded.join(", ")
                        }
                    ));
                }
            }
            if req.policies.as_ref().is_some_and(Vec::is_empty) {
                return bad(
                    "`policies` is empty: name at least one, or leave it out for all".into(),
                );
            }
            if policies.is_empty() {
                return bad(
                    "no policies are loaded: put *.toml policy files in the config's policy_dir"
                        .into(),
                );
            }
        }
    }
    let nodes: Vec<String> = config
        .nodes_in(&req.scope)
        .into_iter()
        .map(|n| n.name.clone())
        .collect();
    if nodes.is_empty() {
        return bad(format!("scope {} covers no node", req.scope));
    }
    Ok(nodes)
}

pub(super) fn names(config: &Config) -> String {
    config
        .plugins
        .iter()
        .map(|p| p.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}
