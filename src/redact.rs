//! Credentials never reach logs, status or Events: `scheme://user:pass@host` loses its password.

/// Replace the password of every URL userinfo in `s` with `***`.
pub fn redact(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        // The authority ends at the first '/', whitespace or quote.
        let end = tail
            .find(|c: char| c == '/' || c.is_whitespace() || c == '"' || c == '\'')
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match (authority.rfind('@'), authority.find(':')) {
            (Some(at), Some(colon)) if colon < at => {
                out.push_str(&authority[..colon]);
                out.push_str(":***");
                out.push_str(&authority[at..]);
            }
            _ => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn hides_passwords() {
        assert_eq!(
            redact("postgres://app:s3cr3t@db:5432/notes"),
            "postgres://app:***@db:5432/notes"
        );
        assert_eq!(
            redact("a postgres://u:p@h/x and http://x:y@z"),
            "a postgres://u:***@h/x and http://x:***@z"
        );
        assert_eq!(redact("http://host:8080/mcp"), "http://host:8080/mcp");
        assert_eq!(redact("no url"), "no url");
        assert!(!redact("postgresql://u:p%40ss@h").contains("p%40ss"));
    }
}
