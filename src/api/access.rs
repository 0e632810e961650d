//! Who may call the API: an IP allow list (addresses and CIDR ranges) and bearer tokens.
//! Health checks, metrics and the API documentation need no token; everything else does
//! when tokens are configured. The allow list applies to every path.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use ipnet::IpNet;
use subtle::ConstantTimeEq;

use super::error::ApiError;

/// One entry of `acl.allow`: an address, or a network in CIDR notation.
#[derive(Debug, Clone, PartialEq)]
pub struct IpRule(IpNet);

impl IpRule {
    pub fn parse(text: &str) -> Result<IpRule, String> {
        let text = text.trim();
        let network = match text.parse::<IpNet>() {
            Ok(network) => network,
            Err(_) if !text.contains('/') => text
                .parse::<IpAddr>()
                .map(IpNet::from)
                .map_err(|_| format!("`{text}` is not an IP address or CIDR range like 10.0.0.0/8"))?,
            Err(_) => {
                let max = if text.contains(':') { 128 } else { 32 };
                return Err(format!("`{text}` is not a CIDR range: an address, `/`, and a prefix length 0 to {max}"));
            }
        };
        Ok(IpRule(network))
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        // An IPv4 client on a dual-stack socket arrives as ::ffff:a.b.c.d.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        self.0.contains(&ip)
    }
}

/// The access rules in force.
#[derive(Debug, Default)]
pub struct Access {
    pub tokens: Vec<String>,
    pub allow: Vec<IpRule>,
}

impl Access {
    fn allows_ip(&self, ip: Option<IpAddr>) -> bool {
        self.allow.is_empty() || ip.is_some_and(|ip| self.allow.iter().any(|rule| rule.contains(ip)))
    }

    fn accepts_token(&self, header: Option<&str>) -> bool {
        if self.tokens.is_empty() {
            return true;
        }
        let Some(given) = header.and_then(|h| h.strip_prefix("Bearer ")) else { return false };
        // Constant time in the token's content, so that timing does not tell how much matched.
        self.tokens.iter().any(|token| bool::from(token.as_bytes().ct_eq(given.trim().as_bytes())))
    }
}

/// Paths anyone allowed by the IP list may read without a token. The console's files hold
/// no data: the page asks for a token and sends it with each API call.
pub(super) fn is_public(path: &str) -> bool {
    path == "/healthz"
        || path == "/metrics"
        || path.starts_with("/swagger")
        || path.starts_with("/api-docs")
        || crate::ui::is_console_path(path)
}

/// Middleware: refuses callers outside the allow list (403) or without a valid token (401).
pub async fn check(State(access): State<Arc<Access>>, request: Request, next: Next) -> Response {
    let ip = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|info| info.0.ip());
    if !access.allows_ip(ip) {
        let who = ip.map_or_else(|| "unknown address".to_owned(), |ip| ip.to_string());
        tracing::warn!(client = %who, path = %request.uri().path(), "refused by acl.allow");
        return ApiError::Forbidden(format!("client address {who} is not in acl.allow")).into_response();
    }
    if !is_public(request.uri().path()) {
        let header = request.headers().get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        if !access.accepts_token(header) {
            let message = if header.is_some() {
                "invalid access token"
            } else {
                "missing access token: send `Authorization: Bearer <token>`"
            };
            return ApiError::Unauthorized(message.into()).into_response();
        }
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_rules() {
        fn check(rule: &str, ip: &str, expected: bool) {
            let rule = IpRule::parse(rule).expect("rule parses");
            assert_eq!(rule.contains(ip.parse().expect("ip parses")), expected, "{rule:?} {ip}");
        }
        check("127.0.0.1", "127.0.0.1", true);
        check("127.0.0.1", "127.0.0.2", false);
        check("10.0.0.0/8", "10.200.3.4", true);
        check("10.0.0.0/8", "11.0.0.1", false);
        check("0.0.0.0/0", "8.8.8.8", true);
        check("::1", "::1", true);
        check("127.0.0.0/8", "::ffff:127.0.0.9", true);
        check("fd00::/8", "fd12::1", true);
        check("fd00::/8", "fe80::1", false);
        assert!(IpRule::parse("10.0.0.0/33").is_err());
        assert!(IpRule::parse("localhost").is_err());
        check("10.1.2.3/8", "10.9.9.9", true);
    }

    #[test]
    fn tokens() {
        let access = Access { tokens: vec!["s3cret".into()], allow: vec![] };
        assert!(access.accepts_token(Some("Bearer s3cret")));
        assert!(!access.accepts_token(Some("Bearer s3cre")));
        assert!(!access.accepts_token(Some("s3cret")));
        assert!(!access.accepts_token(None));
        assert!(Access::default().accepts_token(None));
    }
}
