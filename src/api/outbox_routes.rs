//! The outbox for administrators: `GET /v1/outbox`, `POST /v1/outbox/retry`,
//! `POST /v1/outbox/test`. Handlers only read or commit outbox rows; the sender delivers.

use super::endpoint::{Req, Routes};
use super::error::ApiError;
use crate::proto::endpoints::{ListOutbox, RetryOutbox, TestOutbox};
use crate::proto::{OutboxEntry, OutboxRetryResponse, OutboxTestResponse};

pub fn add(routes: Routes) -> Routes {
    routes
        .json::<ListOutbox, _, _>(list)
        .json::<RetryOutbox, _, _>(retry)
        .json::<TestOutbox, _, _>(test)
}

async fn list(req: Req<ListOutbox>) -> Result<Vec<OutboxEntry>, ApiError> {
    req.caller.require_admin("reading the outbox")?;
    let mut mails = req.state.app.outbox.list().await?;
    if let Some(s) = req.query.state {
        mails.retain(|m| m.state == s);
    }
    Ok(mails)
}

async fn retry(req: Req<RetryOutbox>) -> Result<OutboxRetryResponse, ApiError> {
    req.caller.require_admin("retrying dead letters")?;
    let body = req.body;
    let ids =
        match (body.all, body.ids.is_empty()) {
            (true, true) => None,
            (false, false) => Some(body.ids),
            _ => return Err(ApiError::bad_request(
                "name the mails to retry with {\"ids\": [3, 4]} or say {\"all\": true}, not both",
            )),
        };
    Ok(req.state.app.outbox.retry(ids).await?)
}

async fn test(req: Req<TestOutbox>) -> Result<OutboxTestResponse, ApiError> {
    req.caller.require_admin("sending a test mail")?;
    let to = req.body.to.trim();
    crate::config::email::check_address(to).map_err(ApiError::bad_request)?;
    Ok(req
        .state
        .app
        .outbox
        .send_test(to, &req.caller.name())
        .await?)
}
