//! Webhooks for administrators: `GET /v1/webhooks`, `POST /v1/webhooks/retry`,
//! `POST /v1/webhooks/{name}/test`. Handlers read or commit delivery rows; the webhook
//! senders deliver (a test is sent by `webhook::sender` too).

use super::endpoint::{Req, Routes};
use super::error::ApiError;
use crate::proto::endpoints::{ListWebhooks, RetryWebhooks, TestWebhook};
use crate::proto::{WebhookInfo, WebhookRetryResponse, WebhookTestResponse};

pub fn add(routes: Routes) -> Routes {
    routes
        .json::<ListWebhooks, _, _>(list)
        .json::<RetryWebhooks, _, _>(retry)
        .json::<TestWebhook, _, _>(test)
}

async fn list(req: Req<ListWebhooks>) -> Result<Vec<WebhookInfo>, ApiError> {
    req.caller.require_admin("reading the webhooks")?;
    Ok(req.state.app.webhooks.list().await?)
}

async fn retry(req: Req<RetryWebhooks>) -> Result<WebhookRetryResponse, ApiError> {
    req.caller.require_admin("retrying webhook deliveries")?;
    let body = req.body;
    let name = match (body.all, body.name) {
        (true, None) => None,
        (false, Some(n)) => {
            if req.state.app.config().webhook(&n).is_none() {
                return Err(unknown(&n));
            }
            Some(n)
        }
        _ => {
            return Err(ApiError::bad_request(
                "name the endpoint with {\"name\": \"ops\"} or say {\"all\": true}, not both",
            ))
        }
    };
    Ok(req.state.app.webhooks.retry(name).await?)
}

async fn test(req: Req<TestWebhook>) -> Result<WebhookTestResponse, ApiError> {
    req.caller.require_admin("testing a webhook")?;
    let name = req.param;
    req.state
        .app
        .webhooks
        .test(&name, &req.caller.name())
        .await
        .ok_or_else(|| unknown(&name))
}

fn unknown(name: &str) -> ApiError {
    ApiError::not_found(format!(
        "no webhook named {name:?} in the config: `vigil webhooks` lists them"
    ))
}
