//! Extractors whose rejections are [`ApiError`]s, so a bad request gets the same JSON
//! error shape as everything else; and the client's address.

use std::net::{IpAddr, SocketAddr};

use axum::extract::ConnectInfo;
use axum::extract::FromRequest;
use axum::extract::FromRequestParts;
use axum::extract::RawPathParams;
use axum::http::HeaderMap;
use axum::http::request::Parts;
use framecart_domain::EventMetadata;
use framecart_domain::text::forbidden_char;
use ipnet::IpNet;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::ApiError;
use crate::state::AppState;

/// A JSON body. Before it is deserialized, every string in it (object keys included) is
/// checked for NUL and other control characters: such a value would be refused by
/// Postgres or corrupt a view, so it is refused at the door (422 `invalid_text`), whatever
/// the handler does with it.
pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        let axum::Json(value) = axum::Json::<Value>::from_request(request, state).await?;
        check_json_text(&value, &mut String::new())?;
        serde_json::from_value(value)
            .map(Json)
            .map_err(|e| ApiError::invalid("invalid_body", format!("Failed to deserialize the JSON body: {e}")))
    }
}

/// Walks `value`, keeping the JSON pointer of the current node in `at` for the message.
fn check_json_text(value: &Value, at: &mut String) -> Result<(), ApiError> {
    match value {
        Value::String(s) => refuse_forbidden(s, || format!("the body's `{}`", pointer(at).escape_debug())),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let len = at.len();
                at.push_str(&format!("/{i}"));
                check_json_text(item, at)?;
                at.truncate(len);
            }
            Ok(())
        }
        Value::Object(fields) => {
            for (key, item) in fields {
                refuse_forbidden(key, || format!("a key of the body's `{}`", pointer(at).escape_debug()))?;
                let len = at.len();
                at.push('/');
                at.push_str(key);
                check_json_text(item, at)?;
                at.truncate(len);
            }
            Ok(())
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => Ok(()),
    }
}

fn pointer(at: &str) -> &str {
    if at.is_empty() { "/" } else { at }
}

/// A JSON body's bad text is a 422 (a value the command would store); a query's or a
/// path's is a 400 (the request itself is malformed).
fn refuse_forbidden(value: &str, place: impl FnOnce() -> String) -> Result<(), ApiError> {
    forbidden_message(value, place).map_or(Ok(()), |message| Err(ApiError::invalid("invalid_text", message)))
}

fn refuse_forbidden_in_request(value: &str, place: impl FnOnce() -> String) -> Result<(), ApiError> {
    forbidden_message(value, place).map_or(Ok(()), |message| Err(ApiError::bad_request("invalid_text", message)))
}

fn forbidden_message(value: &str, place: impl FnOnce() -> String) -> Option<String> {
    forbidden_char(value).map(|c| {
        format!("{} contains the control character U+{:04X}; text may not hold control characters", place(), c as u32)
    })
}

/// A query string. Its decoded names and values are checked like a JSON body's strings
/// (400 `invalid_text`), then it is deserialized as `axum::extract::Query` does.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if let Some(query) = parts.uri.query() {
            for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
                for text in [&name, &value] {
                    refuse_forbidden_in_request(text, || format!("the query parameter `{}`", name.escape_debug()))?;
                }
            }
        }
        let axum::extract::Query(value) = axum::extract::Query::<T>::from_request_parts(parts, state).await?;
        Ok(Query(value))
    }
}

/// Path parameters, checked like a query string (400 `invalid_text`), then deserialized
/// as `axum::extract::Path` does.
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let raw = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::bad_request("invalid_path", e.body_text()))?;
        for (name, value) in &raw {
            refuse_forbidden_in_request(value, || format!("the path parameter `{name}`"))?;
        }
        let axum::extract::Path(value) = axum::extract::Path::<T>::from_request_parts(parts, state).await?;
        Ok(Path(value))
    }
}

/// The raw body, for what must be checked on its bytes (a provider's signed webhook). Too
/// large a body is the JSON `413 payload_too_large`, as everywhere else.
pub struct RawBody(pub axum::body::Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::body::Bytes::from_request(request, state).await {
            Ok(bytes) => Ok(Self(bytes)),
            Err(e) if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE => Err(ApiError::PayloadTooLarge),
            Err(e) => Err(ApiError::bad_request("unreadable_body", e.body_text())),
        }
    }
}

pub struct Multipart(pub axum::extract::Multipart);

impl<S: Send + Sync> FromRequest<S> for Multipart {
    type Rejection = ApiError;

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(axum::extract::Multipart::from_request(request, state).await?))
    }
}

/// The header carrying a request's id (given by the client, or made by the router).
pub const REQUEST_ID: &str = "x-request-id";

/// The metadata of the commands a request sends: its request id (`x-request-id`, or a
/// new one) and correlation id (`x-correlation-id`), acting as `anonymous` until
/// [`Self::by`] names the caller.
#[derive(Debug, Clone)]
pub struct RequestMetadata(pub EventMetadata);

impl RequestMetadata {
    /// The metadata of a command sent on behalf of `actor`.
    pub fn by(self, actor: String) -> EventMetadata {
        EventMetadata { actor, ..self.0 }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RequestMetadata {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let headers = &parts.headers;
        let request_id = header_token(headers, REQUEST_ID, 128).unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
        let correlation = header_token(headers, "x-correlation-id", 128);
        Ok(Self(EventMetadata::for_request(&request_id, correlation.as_deref(), "anonymous".to_owned())))
    }
}

/// The client's address, as [`client_ip`] finds it behind the configured trusted
/// proxies (`FRAMECART_TRUSTED_PROXIES`): what clicks record and what limits count.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub IpAddr);

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, Self::Rejection> {
        let ConnectInfo(peer) =
            parts.extensions.get::<ConnectInfo<SocketAddr>>().copied().ok_or_else(|| {
                ApiError::internal(anyhow::anyhow!("served without the peer's address (ConnectInfo)"))
            })?;
        Ok(Self(client_ip(peer.ip(), &parts.headers, &app.http.trusted_proxies)))
    }
}

/// The client's address: the direct peer, unless the peer is a trusted proxy, in which
/// case the right-most `X-Forwarded-For` hop that is not itself a trusted proxy.
/// Hops a client could forge (left of the first untrusted one) are never believed.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    let peer = peer.to_canonical();
    if !is_trusted(&peer) {
        return peer;
    }
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        let Some(ip) = parse_hop(hop) else {
            break; // a malformed hop: believe nothing further left
        };
        client = ip;
        if !is_trusted(&ip) {
            break;
        }
    }
    client
}

/// `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1` or `[2001:db8::1]:443`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    hop.parse::<std::net::SocketAddr>().ok().map(|s| s.ip().to_canonical())
}

/// The value of the cookie `name`, when the request has a plausible one.
pub fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_owned())
        .filter(|v| !v.is_empty() && v.len() <= 256 && v.chars().all(|c| c.is_ascii_graphic()))
}

/// A printable header value of at most `max` bytes.
pub fn header_token(headers: &HeaderMap, name: &str, max: usize) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= max && v.chars().all(|c| c.is_ascii_graphic()))
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn xff(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_str(value).expect("header"));
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn forwarded_for_is_ignored_from_untrusted_peers() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().expect("net")];
        assert_eq!(client_ip(ip("203.0.113.9"), &xff("1.2.3.4"), &trusted), ip("203.0.113.9"));
        assert_eq!(client_ip(ip("203.0.113.9"), &xff("1.2.3.4"), &[]), ip("203.0.113.9"));
    }

    #[test]
    fn the_rightmost_untrusted_hop_is_the_client() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().expect("net")];
        // The client forged "6.6.6.6"; the proxy appended the real address.
        let h = xff("6.6.6.6, 198.51.100.7, 10.0.0.3");
        assert_eq!(client_ip(ip("10.0.0.2"), &h, &trusted), ip("198.51.100.7"));
        assert_eq!(client_ip(ip("10.0.0.2"), &xff("[2001:db8::1]:443"), &trusted), ip("2001:db8::1"));
        assert_eq!(client_ip(ip("10.0.0.2"), &xff("garbage"), &trusted), ip("10.0.0.2"));
        assert_eq!(client_ip(ip("10.0.0.2"), &HeaderMap::new(), &trusted), ip("10.0.0.2"));
    }

    #[test]
    fn ipv4_mapped_addresses_are_plain_ipv4() {
        assert_eq!(client_ip(ip("::ffff:192.0.2.1"), &HeaderMap::new(), &[]), ip("192.0.2.1"));
    }

    #[tokio::test]
    async fn a_raw_body_over_the_limit_is_the_json_413() {
        use tower::ServiceExt;
        let app = axum::Router::new()
            .route("/", axum::routing::post(|RawBody(body): RawBody| async move { body.len().to_string() }))
            .layer(axum::extract::DefaultBodyLimit::max(8));
        let request =
            |body: &'static str| axum::http::Request::post("/").body(axum::body::Body::from(body)).expect("a request");
        let response = app.clone().oneshot(request("0123456789")).await.expect("a response");
        assert_eq!(response.status(), axum::http::StatusCode::PAYLOAD_TOO_LARGE);
        let body = http_body_util::BodyExt::collect(response.into_body()).await.expect("a body").to_bytes();
        let json: Value = serde_json::from_slice(&body).expect("JSON");
        assert_eq!(json["error"]["code"], "payload_too_large");
        let response = app.oneshot(request("01234567")).await.expect("a response");
        assert_eq!(response.status(), axum::http::StatusCode::OK);
    }

    #[test]
    fn cookies_are_found_by_name_and_bounded() {
        let mut h = HeaderMap::new();
        h.insert("cookie", HeaderValue::from_static("a=1; fc_viewer=abc-123; b=2"));
        assert_eq!(cookie_value(&h, "fc_viewer").as_deref(), Some("abc-123"));
        assert_eq!(cookie_value(&h, "missing"), None);
        let long = format!("fc_viewer={}", "x".repeat(300));
        h.insert("cookie", HeaderValue::from_str(&long).expect("header"));
        assert_eq!(cookie_value(&h, "fc_viewer"), None);
    }
}
