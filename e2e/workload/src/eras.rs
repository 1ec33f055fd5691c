//! MCP protocol eras: the stateless 2026-07-28 revision (`server/discover`,
//! per-request `_meta`, no sessions, no `ping`) and the legacy revisions
//! (`initialize` handshake, `Mcp-Session-Id` sessions).

use rmcp::model::ProtocolVersion;

/// Which eras the server answers (`MCP_ERAS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Eras {
    /// Both (the default): `server/discover` and stateless requests, and
    /// legacy `initialize` with sessions.
    #[default]
    Both,
    /// 2026-07-28 and later only: `initialize` and `ping` are answered with
    /// JSON-RPC -32601 (method not found), and no session is ever created.
    Current,
    /// The legacy revisions only: `server/discover` is answered with -32601.
    Legacy,
}

impl Eras {
    /// Parse `both`, `2026` or `legacy`.
    pub fn parse(value: &str) -> Option<Self> {
        match value.trim() {
            "" | "both" => Some(Self::Both),
            "2026" | "2026-07-28" => Some(Self::Current),
            "legacy" => Some(Self::Legacy),
            _ => None,
        }
    }

    /// The name logged and accepted by [`Self::parse`].
    pub fn name(self) -> &'static str {
        match self {
            Self::Both => "both",
            Self::Current => "2026",
            Self::Legacy => "legacy",
        }
    }

    /// The protocol versions the server advertises and accepts.
    pub fn supported_versions(self) -> &'static [ProtocolVersion] {
        let known = ProtocolVersion::KNOWN_VERSIONS;
        let legacy = ProtocolVersion::known_up_to(&ProtocolVersion::LATEST_WITH_INITIALIZE);
        match self {
            Self::Both => known,
            Self::Legacy => legacy,
            Self::Current => &known[legacy.len()..],
        }
    }

    /// The server answers the `initialize` handshake (and so `ping`).
    pub fn has_initialize(self) -> bool {
        self != Self::Current
    }

    /// The server answers `server/discover`.
    pub fn has_discover(self) -> bool {
        self != Self::Legacy
    }

    /// Whether a request negotiated at `version` (`None`: no version known)
    /// is one of this server's eras.
    pub fn accepts(self, version: Option<&ProtocolVersion>) -> bool {
        match self {
            Self::Both => true,
            Self::Current => version.is_some_and(|v| !v.has_initialize()),
            Self::Legacy => version.is_none_or(ProtocolVersion::has_initialize),
        }
    }
}

/// The era a client speaks (`--era` of the load client).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientEra {
    /// 2026-07-28: `server/discover`, then stateless requests (the default).
    #[default]
    Current,
    /// `initialize`, then requests on an `Mcp-Session-Id` session.
    Legacy,
}

impl ClientEra {
    /// Parse `2026` (or `2026-07-28`) or `legacy`.
    pub fn parse(value: &str) -> Option<Self> {
        match value.trim() {
            "2026" | "2026-07-28" => Some(Self::Current),
            "legacy" => Some(Self::Legacy),
            _ => None,
        }
    }

    /// The name in reports and the value [`Self::parse`] accepts.
    pub fn name(self) -> &'static str {
        match self {
            Self::Current => "2026-07-28",
            Self::Legacy => "legacy",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_per_era() {
        let v = |e: Eras| {
            e.supported_versions()
                .iter()
                .map(|v| v.as_str().to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(v(Eras::Current), ["2026-07-28"]);
        assert!(v(Eras::Legacy).iter().all(|s| s.as_str() < "2026-07-28"));
        assert!(v(Eras::Legacy).contains(&"2025-11-25".to_string()));
        assert_eq!(
            v(Eras::Both).len(),
            v(Eras::Legacy).len() + v(Eras::Current).len()
        );
        let new = ProtocolVersion::V_2026_07_28;
        let old = ProtocolVersion::V_2025_03_26;
        assert!(Eras::Current.accepts(Some(&new)));
        assert!(!Eras::Current.accepts(Some(&old)));
        assert!(!Eras::Current.accepts(None));
        assert!(Eras::Legacy.accepts(None) && !Eras::Legacy.accepts(Some(&new)));
    }

    #[test]
    fn names_round_trip() {
        for e in [Eras::Both, Eras::Current, Eras::Legacy] {
            assert_eq!(Eras::parse(e.name()), Some(e));
        }
        for e in [ClientEra::Current, ClientEra::Legacy] {
            assert_eq!(ClientEra::parse(e.name()), Some(e));
        }
        assert_eq!(Eras::parse("2025"), None);
        assert_eq!(ClientEra::parse("both"), None);
    }
}
