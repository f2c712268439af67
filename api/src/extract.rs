//! Extractors whose rejections are [`ApiError`]s, so a bad request gets the same JSON
//! error shape as everything else; and the client's address.

use std::net::IpAddr;

use axum::extract::FromRequest;
use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use ipnet::IpNet;

use crate::error::ApiError;

#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct Json<T>(pub T);

#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct Query<T>(pub T);

#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct Path<T>(pub T);

pub struct Multipart(pub axum::extract::Multipart);

impl<S: Send + Sync> FromRequest<S> for Multipart {
    type Rejection = ApiError;

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(axum::extract::Multipart::from_request(request, state).await?))
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
