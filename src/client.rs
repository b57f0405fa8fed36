//! The CLI's side of the control API: HTTP/1.1 requests over the Unix socket, decoded into
//! the `proto` types, with errors a person can act on.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;

use crate::proto::endpoints::{query_string, Endpoint, Method, NoBody, NoQuery};
use crate::proto::{ErrorBody, ErrorCode};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach vigild at {path}: {reason}; is it running?")]
    Unreachable { path: PathBuf, reason: String },
    /// The socket is there (so vigild most likely runs), but its mode keeps this user out.
    #[error(
        "vigild's socket {path} exists, but {user} may not connect to it: it is open to the \
         group {group}; add {user} to that group (`usermod -aG {group} {user}`, then log in \
         again) or run vigil as root"
    )]
    Denied {
        path: PathBuf,
        user: String,
        group: String,
    },
    /// The daemon answered with an error envelope.
    #[error("{message}")]
    Api {
        status: StatusCode,
        code: ErrorCode,
        message: String,
    },
    #[error("unexpected answer from vigild: {0}")]
    Protocol(String),
}

/// A filter for the text of replies and error messages (the CLI's terminal sanitiser).
pub type TextFilter = fn(&str) -> Cow<'_, str>;

pub struct Client {
    socket: PathBuf,
    /// Applied to every string of a decoded reply and to the daemon's error messages.
    replies: Option<TextFilter>,
    /// Stored rows the replies so far left out as undecodable (their header).
    left_out: AtomicU64,
}

impl Client {
    pub fn new(socket: impl Into<PathBuf>) -> Self {
        Client {
            socket: socket.into(),
            replies: None,
            left_out: AtomicU64::new(0),
        }
    }

    /// Passes every string of every decoded reply (values and object keys) and every error
    /// message of the daemon through `filter`.
    pub fn filter_replies(mut self, filter: TextFilter) -> Self {
        self.replies = Some(filter);
        self
    }

    /// Why connecting was refused, naming the caller and the socket's group.
    fn denied(&self) -> ClientError {
        use nix::unistd::{getuid, Gid, Group, User};
        use std::os::unix::fs::MetadataExt;
        let uid = getuid();
        let user = match User::from_uid(uid) {
            Ok(Some(u)) => u.name,
            _ => format!("uid {uid}"),
        };
        let group = match std::fs::metadata(&self.socket) {
            Ok(m) => match Group::from_gid(Gid::from_raw(m.gid())) {
                Ok(Some(g)) => g.name,
                _ => format!("gid {}", m.gid()),
            },
            // The directory above it is what refused: its group is the one to join.
            Err(_) => self
                .socket
                .parent()
                .and_then(|dir| std::fs::metadata(dir).ok())
                .and_then(|m| Group::from_gid(Gid::from_raw(m.gid())).ok().flatten())
                .map_or_else(|| "that owns it".to_owned(), |g| g.name),
        };
        ClientError::Denied {
            path: self.socket.clone(),
            user,
            group,
        }
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Stored rows that the daemon's replies so far left out because they do not decode.
    pub fn undecodable_rows_left_out(&self) -> u64 {
        self.left_out.load(Ordering::Relaxed)
    }

    /// Calls endpoint `E`: its path filled with `param`, `query` as its query string and
    /// `body` as JSON (for a POST); the reply decoded.
    pub async fn call<E: Endpoint>(
        &self,
        param: &E::Param,
        query: &E::Query,
        body: &E::Body,
    ) -> Result<E::Reply, ClientError> {
        let bytes = self.send_to::<E>(param, query, body).await?;
        self.decode(&bytes)
    }

    /// Calls endpoint `E` and returns the reply's body as text, undecoded (CSV export), and
    /// unfiltered: the caller decides whether it goes to a terminal.
    pub async fn call_text<E: Endpoint>(
        &self,
        param: &E::Param,
        query: &E::Query,
        body: &E::Body,
    ) -> Result<String, ClientError> {
        let bytes = self.send_to::<E>(param, query, body).await?;
        String::from_utf8(bytes.to_vec())
            .map_err(|e| ClientError::Protocol(format!("the answer is not UTF-8: {e}")))
    }

    /// Calls endpoint `E`, whose reply is NDJSON (one `E::Reply` per line), and gives each
    /// line to `line` as it arrives (filtered like [`Client::call`]'s replies) until the
    /// stream ends or `line` returns false.
    pub async fn call_lines<E: Endpoint>(
        &self,
        param: &E::Param,
        query: &E::Query,
        mut line: impl FnMut(E::Reply) -> bool,
    ) -> Result<(), ClientError> {
        let uri = format!(
            "{}{}",
            E::path(param),
            query_string(query).map_err(ClientError::Protocol)?
        );
        let resp = self.request(E::METHOD, &uri, None).await?;
        let status = resp.status();
        let mut body = resp.into_body();
        if !status.is_success() {
            let bytes = body
                .collect()
                .await
                .map_err(|e| ClientError::Protocol(format!("reading the response: {e}")))?
                .to_bytes();
            return Err(self.api_error(status, &bytes));
        }
        let mut pending: Vec<u8> = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| ClientError::Unreachable {
                path: self.socket.clone(),
                reason: format!("the stream broke: {e}"),
            })?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            pending.extend_from_slice(&data);
            while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                let text: Vec<u8> = pending.drain(..=end).collect();
                if text.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                if !line(self.decode(&text)?) {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// A reply decoded, its strings filtered.
    fn decode<T: serde::de::DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, ClientError> {
        let invalid = |e: serde_json::Error| ClientError::Protocol(format!("invalid JSON: {e}"));
        match self.replies {
            None => serde_json::from_slice(bytes).map_err(invalid),
            Some(filter) => {
                let mut value: serde_json::Value =
                    serde_json::from_slice(bytes).map_err(invalid)?;
                filter_json(&mut value, filter);
                serde_json::from_value(value).map_err(invalid)
            }
        }
    }

    async fn send_to<E: Endpoint>(
        &self,
        param: &E::Param,
        query: &E::Query,
        body: &E::Body,
    ) -> Result<Bytes, ClientError> {
        let uri = format!(
            "{}{}",
            E::path(param),
            query_string(query).map_err(ClientError::Protocol)?
        );
        let body = match E::METHOD {
            Method::Get => None,
            Method::Post => {
                Some(serde_json::to_vec(body).map_err(|e| ClientError::Protocol(e.to_string()))?)
            }
        };
        self.send(E::METHOD, &uri, body).await
    }

    /// Sends one request; the body of a success, or the daemon's error envelope as an error.
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Bytes, ClientError> {
        let resp = self.request(method, path, body).await?;
        let status = resp.status();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| ClientError::Protocol(format!("reading the response: {e}")))?
            .to_bytes();
        if !status.is_success() {
            return Err(self.api_error(status, &bytes));
        }
        Ok(bytes)
    }

    /// Sends one request and returns the response with its body still to read.
    async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<hyper::Response<hyper::body::Incoming>, ClientError> {
        let unreachable = |reason: String| ClientError::Unreachable {
            path: self.socket.clone(),
            reason,
        };
        let stream = UnixStream::connect(&self.socket)
            .await
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::PermissionDenied => self.denied(),
                _ => unreachable(e.to_string()),
            })?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let method = match method {
            Method::Get => hyper::Method::GET,
            Method::Post => hyper::Method::POST,
        };
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, "localhost");
        if body.is_some() {
            req = req.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| unreachable(format!("connection failed: {e}")))?;
        let left_out = resp
            .headers()
            .get(crate::proto::UNDECODABLE_ROWS_HEADER)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
            .unwrap_or(0);
        self.left_out.fetch_add(left_out, Ordering::Relaxed);
        Ok(resp)
    }

    /// The error of a reply that is not a success: the daemon's envelope, its message
    /// filtered.
    fn api_error(&self, status: StatusCode, bytes: &[u8]) -> ClientError {
        match serde_json::from_slice::<ErrorBody>(bytes) {
            Ok(e) => ClientError::Api {
                status,
                code: e.error.code,
                message: match self.replies {
                    Some(filter) => filter(&e.error.message).into_owned(),
                    None => e.error.message,
                },
            },
            Err(_) => ClientError::Protocol(format!("HTTP {status} without an error body")),
        }
    }
}

/// Applies `filter` to every string of a JSON value, object keys included.
fn filter_json(value: &mut serde_json::Value, filter: TextFilter) {
    use serde_json::Value;
    match value {
        Value::String(s) => {
            if let Cow::Owned(clean) = filter(s) {
                *s = clean;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| filter_json(v, filter)),
        Value::Object(map) => {
            let dirty: Vec<String> = map
                .keys()
                .filter(|k| matches!(filter(k), Cow::Owned(_)))
                .cloned()
                .collect();
            for key in dirty {
                if let Some(v) = map.remove(&key) {
                    map.insert(filter(&key).into_owned(), v);
                }
            }
            map.values_mut().for_each(|v| filter_json(v, filter));
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

impl Client {
    /// GET an endpoint that takes no query.
    pub async fn get<E: Endpoint<Query = NoQuery, Body = NoBody>>(
        &self,
        param: &E::Param,
    ) -> Result<E::Reply, ClientError> {
        self.call::<E>(param, &NoQuery {}, &NoBody {}).await
    }

    /// GET an endpoint with a query.
    pub async fn query<E: Endpoint<Body = NoBody>>(
        &self,
        param: &E::Param,
        query: &E::Query,
    ) -> Result<E::Reply, ClientError> {
        self.call::<E>(param, query, &NoBody {}).await
    }

    /// POST a body to an endpoint that takes no query.
    pub async fn post<E: Endpoint<Query = NoQuery>>(
        &self,
        param: &E::Param,
        body: &E::Body,
    ) -> Result<E::Reply, ClientError> {
        self.call::<E>(param, &NoQuery {}, body).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strip_escape(s: &str) -> Cow<'_, str> {
        if s.contains('\x1b') {
            Cow::Owned(s.replace('\x1b', "ESC"))
        } else {
            Cow::Borrowed(s)
        }
    }

    #[test]
    fn every_string_of_a_reply_is_filtered_keys_included() {
        let mut v = serde_json::json!({
            "name": "evil\x1b[2J",
            "list": ["ok", "\x1bx"],
            "evil\x1b]0;t": {"n": 1, "b": true},
        });
        filter_json(&mut v, strip_escape);
        assert!(!v.to_string().contains('\x1b'), "{v}");
        assert_eq!(v["name"], "evilESC[2J");
        assert_eq!(v["list"][1], "ESCx");
        assert_eq!(v["evilESC]0;t"]["n"], 1);
    }
}
