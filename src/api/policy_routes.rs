//! Policies and their latest results: `/v1/policies`, `/v1/policies/{name}`.

use super::endpoint::{Req, Routes};
use super::error::ApiError;
use crate::proto::endpoints::{GetPolicy, ListPolicies};
use crate::proto::PolicyInfo;

pub fn add(routes: Routes) -> Routes {
    routes
        .json::<ListPolicies, _, _>(list)
        .json::<GetPolicy, _, _>(show)
}

async fn list(req: Req<ListPolicies>) -> Result<Vec<PolicyInfo>, ApiError> {
    Ok(req.state.app.audits.policies().await?)
}

async fn show(req: Req<GetPolicy>) -> Result<PolicyInfo, ApiError> {
    let name = &req.param;
    req.state.app.audits.policy(name).await?.ok_or_else(|| {
        ApiError::not_found(format!(
            "there is no policy {name:?}; `vigil policies` lists them"
        ))
    })
}
