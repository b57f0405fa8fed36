//! Requests a browser could forge. Once the socket is forwarded to a TCP port (`ssh -L
//! 8080:/run/vigil/vigil.sock`), any web page can send "simple" requests to it without a
//! CORS preflight: form posts (`text/plain`, `application/x-www-form-urlencoded`) and
//! requests with its own `Origin`, or through DNS rebinding a foreign `Host`. So a body is
//! taken only as `application/json` (which a page cannot send cross-origin without a
//! preflight, which this API never grants), and a request whose `Host` is not a loopback
//! name, or whose `Origin` is not a loopback origin, is refused.

use axum::extract::Request;
use axum::http::{header, HeaderMap};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::ApiError;
use crate::proto::ErrorCode;

/// Whether `host` (a `Host` header or an origin's host, with or without a port) names this
/// machine's loopback: `localhost`, `*.localhost`, `127.0.0.0/8` or `[::1]`.
pub fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((inside, port)) if port.is_empty() || valid_port(port) => inside,
            _ => return false,
        },
        None => match host.rsplit_once(':') {
            Some((name, port)) if valid_port(&format!(":{port}")) => name,
            Some(_) => return false,
            None => host,
        },
    };
    let name = name.to_ascii_lowercase();
    name == "localhost"
        || name.ends_with(".localhost")
        || name == "::1"
        || name
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn valid_port(p: &str) -> bool {
    p.strip_prefix(':')
        .is_some_and(|n| !n.is_empty() && n.parse::<u16>().is_ok())
}

/// Whether an `Origin` header value is a loopback origin (`http://localhost:8080`).
fn is_loopback_origin(origin: &str) -> bool {
    origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .is_some_and(|host| !host.contains('/') && is_loopback_host(host))
}

fn has_body(headers: &HeaderMap) -> bool {
    if headers.contains_key(header::TRANSFER_ENCODING) {
        return true;
    }
    match headers.get(header::CONTENT_LENGTH) {
        Some(v) => v.to_str().map_or(true, |n| n.trim() != "0"),
        None => false,
    }
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
}

/// Refuses forgeable requests before any handler sees them.
pub async fn refuse_forgeable(request: Request, next: Next) -> Response {
    let headers = request.headers();
    let refusal = if let Some(host) = headers.get(header::HOST) {
        match host.to_str() {
            Ok(h) if is_loopback_host(h) => None,
            _ => Some(ApiError::forbidden(
                "the Host header names another machine; vigild answers only requests for \
                 localhost (its socket is local)",
            )),
        }
    } else {
        None
    };
    let refusal = refusal.or_else(|| match headers.get(header::ORIGIN) {
        Some(o) if !o.to_str().is_ok_and(is_loopback_origin) => Some(ApiError::forbidden(
            "requests from a web page of another origin are refused",
        )),
        _ => None,
    });
    let refusal = refusal.or_else(|| {
        (has_body(headers) && !is_json(headers)).then(|| {
            ApiError::new(
                ErrorCode::UnsupportedMediaType,
                "request bodies must be JSON: send them with content-type: application/json",
            )
        })
    });
    match refusal {
        Some(e) => {
            // Read (and drop) the body first, bounded: see `only_users_beyond_status`.
            let _ = axum::body::to_bytes(request.into_body(), super::MAX_BODY).await;
            e.into_response()
        }
        None => next.run(request).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for h in [
            "localhost",
            "LOCALHOST:8080",
            "vigil.localhost",
            "127.0.0.1",
            "127.1.2.3:80",
            "[::1]",
            "[::1]:8080",
        ] {
            assert!(is_loopback_host(h), "{h}");
        }
        for h in [
            "example.com",
            "localhost.example.com",
            "10.0.0.1",
            "[::2]",
            "localhost:x",
            "evil.com:80",
            "",
        ] {
            assert!(!is_loopback_host(h), "{h}");
        }
    }

    #[test]
    fn loopback_origins() {
        assert!(is_loopback_origin("http://localhost:8080"));
        assert!(is_loopback_origin("https://127.0.0.1"));
        assert!(!is_loopback_origin("https://evil.example"));
        assert!(!is_loopback_origin("null"));
        assert!(!is_loopback_origin("http://localhost/x"));
    }
}
