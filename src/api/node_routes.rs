//! Nodes, their drift and their items: `/v1/nodes`, `/v1/nodes/{name}/drift`,
//! `/v1/nodes/{name}/items`.

use super::endpoint::{Req, Routes};
use super::error::ApiError;
use crate::nodes::NodeError;
use crate::plugin::ssh::trust;
use crate::proto::endpoints::{GetNodeDrift, GetNodeItem, ListNodes, TrustNode};
use crate::proto::{ItemValue, NodeDrift, NodeInfo, TrustResponse};

pub fn add(routes: Routes) -> Routes {
    routes
        .json::<ListNodes, _, _>(list)
        .json::<GetNodeDrift, _, _>(drift)
        .json::<GetNodeItem, _, _>(item)
        .json::<TrustNode, _, _>(trust_node)
}

impl From<NodeError> for ApiError {
    fn from(e: NodeError) -> Self {
        match e {
            NodeError::Store(s) => s.into(),
            e => ApiError::not_found(e.to_string()),
        }
    }
}

async fn list(req: Req<ListNodes>) -> Result<Vec<NodeInfo>, ApiError> {
    Ok(req.state.app.nodes.list().await?)
}

async fn drift(req: Req<GetNodeDrift>) -> Result<NodeDrift, ApiError> {
    let mut drift = req.state.app.nodes.drift(&req.param, req.query).await?;
    if !req.caller.sees_private_content() {
        drift.redact_private();
    }
    Ok(drift)
}

async fn item(req: Req<GetNodeItem>) -> Result<ItemValue, ApiError> {
    let mut item = req.state.app.nodes.item(&req.param, req.query).await?;
    if !req.caller.sees_private_content() {
        item.redact_private();
    }
    Ok(item)
}

async fn trust_node(req: Req<TrustNode>) -> Result<TrustResponse, ApiError> {
    req.caller.require_admin("trusting host keys")?;
    let config = req.state.app.config();
    let Some(node) = config.node(&req.param) else {
        return Err(ApiError::not_found(format!(
            "no node {:?} in the config",
            req.param
        )));
    };
    let (Some(shown), Some(target)) = (node.ssh.clone(), node.ssh_target()) else {
        return Err(ApiError::bad_request(format!(
            "node {:?} is not reached over SSH (it has no `ssh` target)",
            node.name
        )));
    };
    let keys = trust::scan(&target, config.ssh.connect_timeout)
        .await
        .map_err(ApiError::bad_request)?;
    let trusted = match &req.body.fingerprint {
        Some(fp) => {
            trust::record(&config.ssh.known_hosts, &keys, fp).map_err(ApiError::bad_request)?;
            true
        }
        None => false,
    };
    Ok(TrustResponse {
        node: node.name.clone(),
        target: shown,
        offered: keys
            .iter()
            .map(|k| format!("{} ({})", k.fingerprint, k.kind))
            .collect(),
        trusted,
        known_hosts: config.ssh.known_hosts.display().to_string(),
    })
}
