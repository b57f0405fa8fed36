//! Nodes, their drift and their items: `/v1/nodes`, `/v1/nodes/{name}/drift`,
//! `/v1/nodes/{name}/items`.

use super::endpoint::{Req, Routes};
use super::error::ApiError;
use crate::nodes::NodeError;
use crate::proto::endpoints::{GetNodeDrift, GetNodeItem, ListNodes};
use crate::proto::{ItemValue, NodeDrift, NodeInfo};

pub fn add(routes: Routes) -> Routes {
    routes
        .json::<ListNodes, _, _>(list)
        .json::<GetNodeDrift, _, _>(drift)
        .json::<GetNodeItem, _, _>(item)
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
