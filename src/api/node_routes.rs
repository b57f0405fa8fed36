//! Nodes, their drift and their items: `/v1/nodes`, `/v1/nodes/{name}/drift`,
//! `/v1/nodes/{name}/items`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::error::{ApiError, ApiQuery};
use super::AppState;
use crate::drift::DiffRules;
use crate::proto::{NodeDrift, NodeInfo, Value};
use crate::queue::persist;
use crate::snapshot;
use crate::store::StoreError;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/nodes", get(list))
        .route("/v1/nodes/{name}/drift", get(drift))
        .route("/v1/nodes/{name}/items", get(item))
}

fn unknown_node(name: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("there is no node {name:?} in the config"),
    )
}

async fn list(State(state): State<AppState>) -> Result<Json<Vec<NodeInfo>>, ApiError> {
    let config = state.daemon.config();
    let nodes: Vec<(String, Vec<String>, String)> = config
        .nodes
        .iter()
        .map(|n| {
            (
                n.name.clone(),
                n.groups.clone(),
                n.root.display().to_string(),
            )
        })
        .collect();
    let infos = state
        .daemon
        .store
        .read(move |tx| -> Result<_, StoreError> {
            let mut out = Vec::new();
            for (name, groups, root) in nodes {
                let latest = snapshot::latest_per_plugin(tx, &name)?;
                out.push(NodeInfo {
                    last_scan: persist::last_scan(tx, &name)?,
                    items: latest
                        .iter()
                        .map(|(p, (_, m))| (p.clone(), m.items))
                        .collect(),
                    snapshot_days: latest.iter().map(|(p, (d, _))| (p.clone(), *d)).collect(),
                    name,
                    groups,
                    root,
                });
            }
            Ok(out)
        })
        .await?;
    Ok(Json(infos))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DriftQuery {
    /// `YYYY-MM-DD`; default: the newest day with a recorded scan.
    date: Option<NaiveDate>,
    plugin: Option<String>,
}

async fn drift(
    State(state): State<AppState>,
    Path(name): Path<String>,
    ApiQuery(q): ApiQuery<DriftQuery>,
) -> Result<Json<NodeDrift>, ApiError> {
    if state.daemon.config().node(&name).is_none() {
        return Err(unknown_node(&name));
    }
    let node = name.clone();
    let config = state.daemon.config();
    let found = state
        .daemon
        .store
        .read(move |tx| -> Result<_, StoreError> {
            let day = match q.date {
                Some(d) => Some(d),
                None => snapshot::latest_drift_day(tx, &node)?,
            };
            let Some(day) = day else { return Ok(None) };
            let rules = |plugin: &str| config.plugin(plugin).map(DiffRules::for_plugin);
            let mut plugins = snapshot::drift_of_day_now(tx, &node, day, rules)?;
            if let Some(p) = &q.plugin {
                plugins.retain(|d| &d.plugin == p);
            }
            Ok(Some((day, plugins)))
        })
        .await?;
    let Some((day, plugins)) = found else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("node {name:?} has not been scanned yet: run `vigil scan --scope node:{name}`"),
        ));
    };
    if plugins.is_empty() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no scan of node {name:?} is recorded for {day}"),
        ));
    }
    let changes = plugins.iter().map(|p| p.changes.len()).sum();
    Ok(Json(NodeDrift {
        node: name,
        day,
        plugins,
        changes,
    }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ItemQuery {
    plugin: String,
    key: String,
}

/// `GET /v1/nodes/{name}/items`: an item's value in the newest snapshot.
#[derive(Debug, Serialize)]
struct ItemValue {
    node: String,
    plugin: String,
    key: String,
    day: NaiveDate,
    attributes: std::collections::BTreeMap<String, Value>,
    content: Option<String>,
}

async fn item(
    State(state): State<AppState>,
    Path(name): Path<String>,
    ApiQuery(q): ApiQuery<ItemQuery>,
) -> Result<Json<ItemValue>, ApiError> {
    if state.daemon.config().node(&name).is_none() {
        return Err(unknown_node(&name));
    }
    let (node, plugin, key) = (name.clone(), q.plugin.clone(), q.key.clone());
    let found = state
        .daemon
        .store
        .read(move |tx| snapshot::current_item(tx, &node, &plugin, &key))
        .await?;
    let Some((day, value)) = found else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!(
                "no item {:?} from plugin {:?} in the newest snapshot of {name:?}",
                q.key, q.plugin
            ),
        ));
    };
    Ok(Json(ItemValue {
        node: name,
        plugin: q.plugin,
        key: q.key,
        day,
        attributes: value.attributes,
        content: value.content,
    }))
}
