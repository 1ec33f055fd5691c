//! Credentials never reach logs, status or Events: URL userinfo passwords
//! (`scheme://user:pass@host`) and keyword/value passwords (`password=...`,
//! libpq and ODBC DSNs, URL query parameters) become `***`.
//!
//! When a message is ambiguous, more is hidden rather than less: a URL password
//! may hold `/`, `?`, `#` or `@` (invalid unencoded, but written anyway), so the
//! userinfo runs to the last `@` of the URL, even if that cuts into its path.
use regex::Regex;
use std::sync::LazyLock;

/// What a redacted secret is replaced with.
pub const MASK: &str = "***";

/// A keyword that names a password, then `=` (libpq allows spaces around it).
/// The prefix catches `PGPASSWORD=`, `db_password=` and the like.
static KEYWORD: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"(?i)[a-z0-9_]*(?:password|passwd|pwd)\s*=\s*").ok());

/// Replace every URL userinfo password and every keyword/value password in `s`.
pub fn redact(s: &str) -> String {
    redact_keywords(&redact_urls(s))
}

/// A URL runs to whitespace. Not to a quote or bracket: a password may hold
/// one, and what follows a quoted URL is cut at its last '@' anyway.
fn url_end(c: char) -> bool {
    c.is_whitespace()
}

fn redact_urls(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let url = &tail[..tail.find(url_end).unwrap_or(tail.len())];
        // Userinfo is `user:password@`: a colon before the first '@', in a user
        // name without '/' (else the colon is in the path); the password runs
        // to the last '@', as it may contain any of ':/?#@'.
        let userinfo = url.find('@').and_then(|first_at| {
            let colon = url[..first_at].find(':')?;
            let last_at = url.rfind('@')?;
            (!url[..colon].contains('/')).then_some((colon, last_at))
        });
        match userinfo {
            Some((colon, last_at)) => {
                out.push_str(&url[..=colon]);
                out.push_str(MASK);
                // Scan on from the host: a nested URL (a query parameter) is redacted too.
                rest = &tail[last_at..];
            }
            None => rest = tail,
        }
    }
    out.push_str(rest);
    out
}

fn redact_keywords(s: &str) -> String {
    let Some(keyword) = KEYWORD.as_ref() else {
        return s.to_string();
    };
    let mut out = String::with_capacity(s.len());
    let mut pos = 0;
    while let Some(m) = keyword.find_at(s, pos) {
        out.push_str(&s[pos..m.end()]);
        // In a URL query (`?password=x&sslmode=...`) '&' and '#' end the value.
        let in_query = s[..m.start()].ends_with(['?', '&']);
        let len = value_len(&s[m.end()..], in_query);
        if len > 0 {
            out.push_str(MASK);
        }
        pos = m.end() + len;
    }
    out.push_str(&s[pos..]);
    out
}

/// Length of the value at the start of `v`: a quoted value to its closing
/// quote (a backslash escapes the next character, as in libpq; unclosed: to
/// the end), an unquoted one to whitespace.
fn value_len(v: &str, in_query: bool) -> usize {
    let mut chars = v.char_indices();
    match chars.next() {
        Some((_, q @ ('\'' | '"'))) => {
            while let Some((i, c)) = chars.next() {
                if c == '\\' {
                    chars.next();
                } else if c == q {
                    return i + c.len_utf8();
                }
            }
            v.len()
        }
        _ => v
            .find(|c: char| c.is_whitespace() || (in_query && matches!(c, '&' | '#')))
            .unwrap_or(v.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::redact;
    use proptest::prelude::*;

    #[test]
    fn hides_passwords() {
        let cases = [
            (
                "postgres://app:s3cr3t@db:5432/notes",
                "postgres://app:***@db:5432/notes",
            ),
            (
                "a postgres://u:p@h/x and http://x:y@z",
                "a postgres://u:***@h/x and http://x:***@z",
            ),
            // Passwords holding URL delimiters.
            ("postgres://u:pa/ss@db/app", "postgres://u:***@db/app"),
            ("postgres://u:pa?ss@db/app", "postgres://u:***@db/app"),
            ("postgres://u:pa#ss@db/app", "postgres://u:***@db/app"),
            (
                "postgres://u:p@ss@db:5432/app",
                "postgres://u:***@db:5432/app",
            ),
            ("mysql://u:a:b/c?d#e@f@db", "mysql://u:***@db"),
            ("\"postgres://u:x/y@db\"", "\"postgres://u:***@db\""),
            ("postgres://u:a'b\"c`<d>@db", "postgres://u:***@db"),
            // A nested URL in a query parameter.
            (
                "http://proxy/?to=postgres://u:p/w@db",
                "http://proxy/?to=postgres://u:***@db",
            ),
            // Keyword/value DSNs.
            ("host=x password=secret", "host=x password=***"),
            (
                "host=x password='a b' user=app",
                "host=x password=*** user=app",
            ),
            (r"password='it\'s a b' dbname=n", "password=*** dbname=n"),
            (
                "host=x PASSWORD = s3 port=5",
                "host=x PASSWORD = *** port=5",
            ),
            ("Server=db;Pwd=abc;", "Server=db;Pwd=***"),
            ("env PGPASSWORD=hunter2 psql", "env PGPASSWORD=*** psql"),
            ("password=\"a b\" x", "password=*** x"),
            ("password='unclosed tail", "password=***"),
            (
                "postgres://db/app?user=u&password=p/w&sslmode=require",
                "postgres://db/app?user=u&password=***&sslmode=require",
            ),
            // Nothing to hide.
            ("http://host:8080/mcp", "http://host:8080/mcp"),
            ("postgres://user@db/app", "postgres://user@db/app"),
            (
                "postgres://user@db:5432/app?x=a@b",
                "postgres://user@db:5432/app?x=a@b",
            ),
            ("http://host/a:b@c", "http://host/a:b@c"),
            ("password= next", "password= ***"),
            ("no url", "no url"),
        ];
        for (input, want) in cases {
            assert_eq!(redact(input), want, "input: {input}");
        }
        assert!(!redact("postgresql://u:p%40ss@h").contains("p%40ss"));
    }

    /// A password: any printable ASCII but whitespace.
    fn password() -> impl Strategy<Value = String> {
        "[!-~]{1,24}"
    }

    proptest! {
        #[test]
        fn a_url_password_never_survives(pw in password()) {
            let url = format!("connect to postgres://app:{pw}@db.example:5432/notes failed");
            prop_assert_eq!(
                redact(&url),
                "connect to postgres://app:***@db.example:5432/notes failed"
            );
        }

        #[test]
        fn a_keyword_password_never_survives(pw in password(), quoted in any::<bool>()) {
            // An unquoted libpq value cannot start with a quote.
            let value = if quoted || pw.starts_with(['\'', '"']) {
                format!("'{} x'", pw.replace('\\', r"\\").replace('\'', r"\'"))
            } else {
                pw
            };
            let dsn = format!("host=db password={value} dbname=notes");
            prop_assert_eq!(redact(&dsn), "host=db password=*** dbname=notes");
        }
    }
}
