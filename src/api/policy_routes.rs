//! Policies and their latest results: `/v1/policies`, `/v1/policies/{name}`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};

use super::error::ApiError;
use super::AppState;
use crate::policy::Policy;
use crate::proto::{CheckInfo, CheckOutcome, CheckRecord, PolicyInfo};
use crate::queue::persist;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/policies", get(list))
        .route("/v1/policies/{name}", get(show))
}

/// A policy with, per check, pass/fail/error counts over the nodes' latest audits (and, in
/// detail, the nodes that do not pass and why). Results of nodes no longer configured, or of
/// checks no longer in the policy, are left out.
async fn info(state: &AppState, policy: &Policy, detail: bool) -> Result<PolicyInfo, ApiError> {
    let name = policy.name.clone();
    let results = state
        .daemon
        .store
        .read(move |tx| persist::policy_results(tx, &name))
        .await?;
    let config = state.daemon.config();
    let checks = policy
        .checks
        .iter()
        .map(|c| {
            let latest: Vec<&CheckRecord> = results
                .get(&c.id)
                .map(|v| {
                    v.iter()
                        .filter(|r| config.node(&r.node).is_some())
                        .collect()
                })
                .unwrap_or_default();
            let count = |o| latest.iter().filter(|r| r.outcome == o).count() as u64;
            CheckInfo {
                id: c.id.clone(),
                description: c.description.clone().unwrap_or_default(),
                plugin: c.plugin.clone(),
                pass: count(CheckOutcome::Pass),
                fail: count(CheckOutcome::Fail),
                error: count(CheckOutcome::Error),
                failing: if detail {
                    latest
                        .into_iter()
                        .filter(|r| r.outcome != CheckOutcome::Pass)
                        .cloned()
                        .collect()
                } else {
                    Vec::new()
                },
            }
        })
        .collect();
    Ok(PolicyInfo {
        name: policy.name.clone(),
        description: policy.description.clone(),
        scope: policy.scope.clone(),
        file: policy.file.display().to_string(),
        checks,
    })
}

async fn list(State(state): State<AppState>) -> Result<Json<Vec<PolicyInfo>>, ApiError> {
    let policies = state.daemon.setup().policies;
    let mut out = Vec::with_capacity(policies.len());
    for p in policies.iter() {
        out.push(info(&state, p, false).await?);
    }
    Ok(Json(out))
}

async fn show(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<PolicyInfo>, ApiError> {
    let policies = state.daemon.setup().policies;
    let policy = policies.iter().find(|p| p.name == name).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("there is no policy {name:?}; `vigil policies` lists them"),
        )
    })?;
    Ok(Json(info(&state, policy, true).await?))
}
