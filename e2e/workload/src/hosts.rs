//! DNS-rebinding protection for the MCP endpoint (`MCP_ALLOWED_HOSTS`).
//!
//! A browser tricked into sending requests to a server (a page on
//! `evil.example` whose name re-resolves to the server's address) still sends
//! `Host: evil.example` and `Origin: http://evil.example`; both are refused
//! with 403. rmcp's own check takes a fixed list of names, but inside a
//! cluster the server is reached by addresses nobody lists in advance: the
//! operator's prober and the e2e suite use the pod IP, the ClusterIP, a
//! port-forward on loopback and the Service's DNS names. So the default
//! accepts what no public DNS name can be: any IP literal, `localhost`,
//! single-label names (a Service in the same namespace) and names under
//! `.svc` or `.cluster.local`. `MCP_ALLOWED_HOSTS` adds names (a comma list of
//! `host` or `host:port`); `*` turns the check off.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::uri::Authority;
use axum::http::{header, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Which `Host` and `Origin` values the MCP endpoint accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPolicy {
    /// Every value (`MCP_ALLOWED_HOSTS=*`).
    Off,
    /// The built-in cluster-internal names plus these `host` or `host:port` entries.
    Checked { extra: Vec<String> },
}

impl Default for HostPolicy {
    fn default() -> Self {
        Self::Checked { extra: Vec::new() }
    }
}

/// Host and port of an authority (`example.com:8080`, `[::1]`), lowercased,
/// brackets and a trailing dot removed.
fn split_authority(authority: &str) -> Option<(String, Option<u16>)> {
    let a = Authority::try_from(authority.trim()).ok()?;
    let host = a
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .trim_end_matches('.')
        .to_ascii_lowercase();
    (!host.is_empty()).then_some((host, a.port_u16()))
}

/// Names no public DNS can serve, so no rebinding page can use them.
fn cluster_internal(host: &str) -> bool {
    host.parse::<IpAddr>().is_ok()
        || host == "localhost"
        || host.ends_with(".localhost")
        || !host.contains('.')
        || host.ends_with(".svc")
        || host.ends_with(".cluster.local")
}

impl HostPolicy {
    /// From the `MCP_ALLOWED_HOSTS` value: unset or empty = the built-in
    /// names; `*` = off; otherwise the built-in names plus the list.
    pub fn from_setting(value: Option<&str>) -> Self {
        match value.map(str::trim) {
            Some("*") => Self::Off,
            None | Some("") => Self::default(),
            Some(list) => Self::Checked {
                extra: list
                    .split(',')
                    .map(|s| s.trim().to_ascii_lowercase())
                    .filter(|s| !s.is_empty())
                    .collect(),
            },
        }
    }

    /// Whether a request with this `Host` header (an authority) is served.
    pub fn allows_host(&self, authority: &str) -> bool {
        let Self::Checked { extra } = self else {
            return true;
        };
        let Some((host, port)) = split_authority(authority) else {
            return false;
        };
        cluster_internal(&host)
            || extra.iter().any(|e| match split_authority(e) {
                Some((h, Some(p))) => h == host && Some(p) == port,
                Some((h, None)) => h == host,
                None => false,
            })
    }

    /// Whether a request with this `Origin` header is served: an `http` or
    /// `https` origin whose host is allowed (`null` and other schemes are not).
    pub fn allows_origin(&self, origin: &str) -> bool {
        if *self == Self::Off {
            return true;
        }
        let Ok(uri) = origin.trim().parse::<Uri>() else {
            return false;
        };
        let web = matches!(uri.scheme_str(), Some("http" | "https"));
        web && uri
            .authority()
            .is_some_and(|a| self.allows_host(a.as_str()))
    }

    /// Why a request is refused, or `None` when it is served. A request
    /// without `Host` or `Origin` is not a browser's: nothing to check.
    pub fn refusal(&self, host: Option<&str>, origin: Option<&str>) -> Option<&'static str> {
        if host.is_some_and(|h| !self.allows_host(h)) {
            return Some("Host");
        }
        if origin.is_some_and(|o| !self.allows_origin(o)) {
            return Some("Origin");
        }
        None
    }
}

/// Middleware: 403 for a foreign `Host` or `Origin` (see the module doc).
pub async fn refuse_foreign(
    State(policy): State<Arc<HostPolicy>>,
    req: Request,
    next: Next,
) -> Response {
    // Owned, so no borrow of the (not Sync) request lives across the await.
    let refused = {
        let text = |name| {
            req.headers()
                .get(name)
                .map(|v| v.to_str().unwrap_or("\u{fffd}"))
        };
        let host = text(header::HOST).or_else(|| req.uri().authority().map(Authority::as_str));
        policy
            .refusal(host, text(header::ORIGIN))
            .map(|which| (which, host.unwrap_or_default().to_string()))
    };
    if let Some((which, host)) = refused {
        tracing::warn!(
            event = "foreign_host_refused",
            header = which,
            host = %host,
            "refused a request with a foreign {which} header (DNS-rebinding protection; MCP_ALLOWED_HOSTS adds names)"
        );
        let body = format!(
            "Forbidden: {which} header is not allowed (DNS-rebinding protection; the server's MCP_ALLOWED_HOSTS adds names)\n"
        );
        return (StatusCode::FORBIDDEN, body).into_response();
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_accepts_cluster_addresses_and_refuses_public_names() {
        let p = HostPolicy::default();
        for ok in [
            "10.244.1.7:8080",
            "127.0.0.1:3000",
            "[::1]:8080",
            "[fd00::12]",
            "localhost:8080",
            "notes",
            "notes:8080",
            "notes.mcp-e2e.svc:8080",
            "notes.mcp-e2e.svc.cluster.local",
            "NOTES.MCP-E2E.SVC.",
        ] {
            assert!(p.allows_host(ok), "{ok}");
        }
        for bad in [
            "evil.example.com",
            "evil.example.com:8080",
            "notes.mcp-e2e",
            "svc.evil.com",
            "127.0.0.1.nip.io",
            "",
            "a b",
        ] {
            assert!(!p.allows_host(bad), "{bad}");
        }
    }

    #[test]
    fn configured_names_with_and_without_port() {
        let p = HostPolicy::from_setting(Some(" mcp.example.com, api.example.com:443 "));
        assert!(p.allows_host("mcp.example.com"));
        assert!(p.allows_host("MCP.example.com:8080"));
        assert!(p.allows_host("api.example.com:443"));
        assert!(!p.allows_host("api.example.com:8443"));
        assert!(!p.allows_host("evil.example.com"));
        // The built-in names stay.
        assert!(p.allows_host("10.0.0.1:8080"));
        assert_eq!(HostPolicy::from_setting(Some("*")), HostPolicy::Off);
        assert_eq!(HostPolicy::from_setting(Some("")), HostPolicy::default());
        assert!(HostPolicy::Off.allows_host("evil.example.com"));
        assert!(HostPolicy::Off.allows_origin("null"));
    }

    #[test]
    fn origins() {
        let p = HostPolicy::default();
        assert!(p.allows_origin("http://127.0.0.1:8080"));
        assert!(p.allows_origin("https://notes.ns.svc"));
        assert!(!p.allows_origin("http://evil.example.com"));
        assert!(!p.allows_origin("null"));
        assert!(!p.allows_origin("file://localhost"));
        assert_eq!(
            p.refusal(Some("127.0.0.1:8080"), Some("http://evil.example.com")),
            Some("Origin")
        );
        assert_eq!(
            p.refusal(Some("evil.example.com"), Some("http://evil.example.com")),
            Some("Host")
        );
        assert_eq!(p.refusal(Some("10.1.2.3:8080"), None), None);
        assert_eq!(p.refusal(None, None), None);
    }
}
