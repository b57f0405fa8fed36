//! The table of every endpoint of the control API: method, path, path parameter, query,
//! body and reply types. The daemon's router registers exactly these (a test pins the two
//! together) and the CLI's client builds every request from them, so no path or query
//! string is ever spelled by hand on either side.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::*;

/// The HTTP methods the API uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Method {
    Get,
    Post,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
        }
    }
}

/// One endpoint of the API.
pub trait Endpoint {
    const METHOD: Method;
    /// The path as the router matches it; `{name}` stands for the path parameter.
    const PATH: &'static str;
    /// The path parameter: `()` for none, else the one `{name}` segment.
    type Param: PathParam;
    /// The query string, encoded as `application/x-www-form-urlencoded`.
    type Query: Serialize + DeserializeOwned + Send + 'static;
    /// The JSON request body.
    type Body: RequestBody;
    /// The JSON reply of a success.
    type Reply: Serialize + DeserializeOwned + Send + 'static;

    /// The request path for `param`, its segment percent-encoded.
    fn path(param: &Self::Param) -> String {
        param.fill(Self::PATH)
    }
}

/// A path parameter type.
pub trait PathParam: Sized + Send + 'static {
    /// `template` with its `{name}` segment replaced by this value, percent-encoded.
    fn fill(&self, template: &str) -> String;
    /// The value of the `{name}` segment (`None` for an endpoint without one).
    fn parse(segment: Option<&str>) -> Result<Self, String>;
}

/// Bytes left as they are in a path segment or query value: RFC 3986's unreserved set.
const UNRESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

fn fill_segment(template: &str, value: &str) -> String {
    let encoded = percent_encoding::utf8_percent_encode(value, UNRESERVED).to_string();
    match (template.find('{'), template.find('}')) {
        (Some(open), Some(close)) if open < close => {
            format!("{}{encoded}{}", &template[..open], &template[close + 1..])
        }
        _ => template.to_owned(),
    }
}

impl PathParam for () {
    fn fill(&self, template: &str) -> String {
        template.to_owned()
    }
    fn parse(_: Option<&str>) -> Result<(), String> {
        Ok(())
    }
}

impl PathParam for u64 {
    fn fill(&self, template: &str) -> String {
        fill_segment(template, &self.to_string())
    }
    fn parse(segment: Option<&str>) -> Result<u64, String> {
        let s = segment.unwrap_or_default();
        s.parse()
            .map_err(|_| format!("{s:?} is not a task id: write a number, e.g. 12"))
    }
}

impl PathParam for String {
    fn fill(&self, template: &str) -> String {
        fill_segment(template, self)
    }
    fn parse(segment: Option<&str>) -> Result<String, String> {
        Ok(segment.unwrap_or_default().to_owned())
    }
}

/// A request body type, and what an empty body means for it.
pub trait RequestBody: Serialize + DeserializeOwned + Send + 'static {
    /// The value of an empty body, or why the endpoint needs one.
    fn empty() -> Result<Self, &'static str>;
}

/// The body of an endpoint that takes none.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoBody {}

/// The query of an endpoint that takes none (a query string is ignored).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct NoQuery {}

/// Decodes a request body as the API does: a body of whitespace only is the type's
/// [`RequestBody::empty`], anything else must be its JSON. The error is the message the
/// client gets (400).
pub fn decode_body<B: RequestBody>(bytes: &[u8]) -> Result<B, String> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        B::empty().map_err(str::to_owned)
    } else {
        serde_json::from_slice(bytes).map_err(|e| format!("invalid request body: {e}"))
    }
}

/// Bodies whose fields are all optional: an empty body is the default (so that
/// `curl -X POST` works).
macro_rules! optional_bodies {
    ($($t:ty),* $(,)?) => {$(
        impl RequestBody for $t {
            fn empty() -> Result<Self, &'static str> {
                Ok(<$t>::default())
            }
        }
    )*};
}
optional_bodies!(
    NoBody,
    ReloadRequest,
    CancelRequest,
    OutboxRetryRequest,
    WebhookRetryRequest,
    UserTaskFilter,
    TrustRequest
);

/// Bodies an endpoint cannot do without: an empty one is refused with this message.
macro_rules! required_bodies {
    ($($t:ty => $why:expr),* $(,)?) => {$(
        impl RequestBody for $t {
            fn empty() -> Result<Self, &'static str> {
                Err($why)
            }
        }
    )*};
}
required_bodies!(
    EnqueueRequest => "the request needs a body: {\"kind\": \"scan\"|\"audit\", ...}",
    AssignRequest => "the request needs a body: {\"assignee\": EMAIL}",
    OutboxTestRequest => "the request needs a body: {\"to\": \"you@example.com\"}",
);

/// Declares each endpoint as a unit struct implementing [`Endpoint`], and [`ALL`].
macro_rules! endpoints {
    ($(
        $(#[$doc:meta])*
        $name:ident: $method:ident $path:literal,
            param $param:ty, query $query:ty, body $body:ty => $reply:ty;
    )*) => {
        $(
            $(#[$doc])*
            pub struct $name;
            impl Endpoint for $name {
                const METHOD: Method = Method::$method;
                const PATH: &'static str = $path;
                type Param = $param;
                type Query = $query;
                type Body = $body;
                type Reply = $reply;
            }
        )*
        /// Every endpoint: (method, path), in table order.
        pub const ALL: &[(Method, &str)] = &[$((Method::$method, $path)),*];
    };
}

endpoints! {
    /// Daemon status; readable by any uid.
    GetStatus: Get "/v1/status", param (), query NoQuery, body NoBody => Status;
    /// Re-read the config and policies now (admin).
    Reload: Post "/v1/reload", param (), query NoQuery, body ReloadRequest => Reloaded;
    /// The configured users, to assign tasks to (admin).
    ListUsers: Get "/v1/users", param (), query NoQuery, body NoBody => Vec<UserInfo>;

    /// Active queue tasks.
    ListQueue: Get "/v1/queue", param (), query QueueQuery, body NoBody => Vec<QueueTask>;
    /// Queue a scan or audit of a scope (admin).
    Enqueue: Post "/v1/queue", param (), query NoQuery, body EnqueueRequest => EnqueueResponse;
    /// Cancel queue tasks (admin).
    CancelQueueTasks: Post "/v1/queue/cancel", param (), query NoQuery, body CancelRequest
        => CancelResponse;
    /// A run: the tasks of one request or schedule fire over several nodes.
    GetRun: Get "/v1/runs/{id}", param u64, query NoQuery, body NoBody => RunInfo;
    /// The Scan log (`scans`) or the Audit log (`audits`).
    GetLog: Get "/v1/logs/{log}", param String, query LogQuery, body NoBody => LogPage;

    /// Nodes with their last scan.
    ListNodes: Get "/v1/nodes", param (), query NoQuery, body NoBody => Vec<NodeInfo>;
    /// A node's drift of one day.
    GetNodeDrift: Get "/v1/nodes/{name}/drift", param String, query DriftQuery, body NoBody
        => NodeDrift;
    /// An item's value in a node's newest snapshot.
    GetNodeItem: Get "/v1/nodes/{name}/items", param String, query ItemQuery, body NoBody
        => ItemValue;
    /// A remote node's host keys; with a fingerprint, record that key (admin).
    TrustNode: Post "/v1/nodes/{name}/trust", param String, query NoQuery, body TrustRequest
        => TrustResponse;

    /// User tasks, filtered and paged.
    ListUserTasks: Get "/v1/tasks", param (), query UserTaskQuery, body NoBody => UserTaskList;
    /// User tasks with their events, as JSON or CSV (see the query's `format`).
    ExportUserTasks: Get "/v1/tasks/export", param (), query ExportQuery, body NoBody
        => Vec<ExportedUserTask>;
    /// Close every open task matching a filter.
    CloseAllUserTasks: Post "/v1/tasks/close", param (), query NoQuery, body UserTaskFilter
        => CloseAllResponse;
    /// One user task with its nodes and events.
    GetUserTask: Get "/v1/tasks/{id}", param u64, query EventsPage, body NoBody => UserTaskDetail;
    /// A user task's report ("view changes").
    GetUserTaskReport: Get "/v1/tasks/{id}/report", param u64, query NoQuery, body NoBody
        => UserTaskReport;
    /// Assign a user task.
    AssignUserTask: Post "/v1/tasks/{id}/assign", param u64, query NoQuery, body AssignRequest
        => UserTask;
    /// Close a user task.
    CloseUserTask: Post "/v1/tasks/{id}/close", param u64, query NoQuery, body NoBody => UserTask;
    /// Reopen a user task (admin).
    ReopenUserTask: Post "/v1/tasks/{id}/reopen", param u64, query NoQuery, body NoBody
        => UserTask;

    /// The event log as NDJSON after a sequence number; `follow` keeps streaming (every
    /// configured user).
    GetEvents: Get "/v1/events", param (), query EventsQuery, body NoBody => EventLine;

    /// Policies with their latest results.
    ListPolicies: Get "/v1/policies", param (), query NoQuery, body NoBody => Vec<PolicyInfo>;
    /// One policy, with the nodes that do not pass each check.
    GetPolicy: Get "/v1/policies/{name}", param String, query NoQuery, body NoBody
        => PolicyInfo;

    /// Mails not yet delivered and dead letters (admin).
    ListOutbox: Get "/v1/outbox", param (), query OutboxQuery, body NoBody => Vec<OutboxEntry>;
    /// Send dead letters again (admin).
    RetryOutbox: Post "/v1/outbox/retry", param (), query NoQuery, body OutboxRetryRequest
        => OutboxRetryResponse;
    /// Queue a test mail (admin).
    TestOutbox: Post "/v1/outbox/test", param (), query NoQuery, body OutboxTestRequest
        => OutboxTestResponse;

    /// Webhook endpoints with their backlog (admin).
    ListWebhooks: Get "/v1/webhooks", param (), query NoQuery, body NoBody => Vec<WebhookInfo>;
    /// Deliver dead webhook deliveries again, pending ones now (admin).
    RetryWebhooks: Post "/v1/webhooks/retry", param (), query NoQuery, body WebhookRetryRequest
        => WebhookRetryResponse;
    /// Send a test request to one endpoint and say what it answered (admin).
    TestWebhook: Post "/v1/webhooks/{name}/test", param String, query NoQuery, body NoBody
        => WebhookTestResponse;
}

/// The query string of a request to `E` (empty, or `?k=v&…`).
pub fn query_string<Q: Serialize>(query: &Q) -> Result<String, String> {
    let encoded = serde_urlencoded::to_string(query).map_err(|e| e.to_string())?;
    Ok(if encoded.is_empty() {
        encoded
    } else {
        format!("?{encoded}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_fill_their_one_parameter_percent_encoded() {
        assert_eq!(GetStatus::path(&()), "/v1/status");
        assert_eq!(GetUserTask::path(&12), "/v1/tasks/12");
        assert_eq!(
            GetNodeDrift::path(&"web 1/ü".to_owned()),
            "/v1/nodes/web%201%2F%C3%BC/drift"
        );
    }

    #[test]
    fn queries_leave_out_what_is_not_set_and_encode_values() {
        let q = QueueQuery {
            node: Some("a b&c".into()),
            ..QueueQuery::default()
        };
        assert_eq!(query_string(&q).unwrap(), "?node=a+b%26c");
        assert_eq!(query_string(&NoQuery {}).unwrap(), "");
    }

    #[test]
    fn every_endpoint_is_listed_once() {
        let mut seen = std::collections::BTreeSet::new();
        for e in ALL {
            assert!(seen.insert(*e), "{e:?} is listed twice");
        }
    }
}
