//! Credential redaction for log lines, error messages and anything else that
//! might carry a database URL.
//!
//! Two layers: [`redact_credentials`] rewrites the password in every
//! `scheme://user:password@host` URL and every libpq `password=...` pair it
//! finds; [`Redactor`] additionally scrubs known secret strings (the password
//! parsed from `DATABASE_URL`, raw and percent-decoded), and is installed as the
//! log writer so no line can leave the process with the secret in it.

use std::io::Write;
use std::sync::Arc;

/// The replacement text for any redacted secret.
pub const MASK: &str = "***";

/// Replace the password of every URL with userinfo (`scheme://user:pw@host`)
/// and the value of every `password=` key/value pair with `***`.
pub fn redact_credentials(input: &str) -> String {
    redact_kv_passwords(&redact_url_passwords(input))
}

fn is_authority_end(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            '/' | '?' | '#' | '"' | '\'' | '>' | '<' | ',' | ';' | ')'
        )
}

fn redact_url_passwords(input: &str) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(pos) = rest.find("://") {
        let (head, tail) = rest.split_at(pos + 3);
        out.push_str(head);
        // The authority runs up to the first delimiter; userinfo ends at its last '@'.
        let end = tail.find(is_authority_end).unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rfind('@') {
            Some(at) => {
                let userinfo = &authority[..at];
                match userinfo.find(':') {
                    Some(colon) => {
                        out.push_str(&userinfo[..colon]);
                        out.push(':');
                        out.push_str(MASK);
                    }
                    None => out.push_str(userinfo),
                }
                out.push_str(&authority[at..]);
            }
            None => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

fn redact_kv_passwords(input: &str) -> String {
    const KEY: &str = "password=";
    let lower = input.to_ascii_lowercase();
    let mut out = String::with_capacity(input.len());
    let mut idx = 0;
    while let Some(found) = lower[idx..].find(KEY) {
        let value_start = idx + found + KEY.len();
        out.push_str(&input[idx..value_start]);
        let value = &input[value_start..];
        let consumed = if let Some(stripped) = value.strip_prefix('\'') {
            // Quoted libpq value: up to the closing unescaped quote.
            let mut len = 1;
            let mut chars = stripped.char_indices();
            let mut closed = false;
            while let Some((i, c)) = chars.next() {
                if c == '\\' {
                    chars.next();
                    continue;
                }
                if c == '\'' {
                    len = i + 2;
                    closed = true;
                    break;
                }
            }
            if !closed {
                len = value.len();
            }
            len
        } else {
            value
                .find(|c: char| c.is_whitespace() || matches!(c, '&' | '"' | ',' | ';'))
                .unwrap_or(value.len())
        };
        if consumed > 0 {
            out.push_str(MASK);
        }
        idx = value_start + consumed;
    }
    out.push_str(&input[idx..]);
    out
}

/// Percent-decode a string (best effort; invalid escapes are kept verbatim).
pub fn percent_decode(input: &str) -> String {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(v) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Scrubs URL credentials and a set of known secrets from text.
#[derive(Clone, Debug, Default)]
pub struct Redactor {
    secrets: Arc<Vec<String>>,
}

impl Redactor {
    /// A redactor that also removes each of `secrets` (and its percent-decoded
    /// form) wherever it appears. Secrets shorter than 4 characters are only
    /// removed through the URL/key-value rules, so that logs stay readable.
    pub fn new(secrets: impl IntoIterator<Item = String>) -> Self {
        let mut all = Vec::new();
        for s in secrets {
            let decoded = percent_decode(&s);
            for candidate in [s, decoded] {
                if candidate.len() >= 4 && !all.contains(&candidate) {
                    all.push(candidate);
                }
            }
        }
        // Longest first so that a secret containing another is removed whole.
        all.sort_by_key(|s| std::cmp::Reverse(s.len()));
        Self {
            secrets: Arc::new(all),
        }
    }

    /// Redact `input`.
    pub fn redact(&self, input: &str) -> String {
        let mut out = redact_credentials(input);
        for s in self.secrets.iter() {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), MASK);
            }
        }
        out
    }
}

/// A `MakeWriter` for tracing-subscriber that redacts every line it writes.
#[derive(Clone)]
pub struct RedactingMakeWriter {
    redactor: Redactor,
}

impl RedactingMakeWriter {
    /// Write redacted lines to stdout.
    pub fn new(redactor: Redactor) -> Self {
        Self { redactor }
    }
}

/// The writer handed out per log event.
pub struct RedactingWriter {
    redactor: Redactor,
}

impl Write for RedactingWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        let clean = self.redactor.redact(&text);
        let mut out = std::io::stdout().lock();
        out.write_all(clean.as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stdout().flush()
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for RedactingMakeWriter {
    type Writer = RedactingWriter;

    fn make_writer(&'a self) -> Self::Writer {
        RedactingWriter {
            redactor: self.redactor.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_password_is_masked_and_user_kept() {
        assert_eq!(
            redact_credentials("connect postgres://app:hunter22@db:5432/notes failed"),
            "connect postgres://app:***@db:5432/notes failed"
        );
    }

    #[test]
    fn url_without_password_is_unchanged() {
        let s = "postgres://app@db/notes and http://example.com/x";
        assert_eq!(redact_credentials(s), s);
    }

    #[test]
    fn password_with_at_sign_uses_last_at() {
        assert_eq!(
            redact_credentials("postgresql://u:p@ss@host/db"),
            "postgresql://u:***@host/db"
        );
    }

    #[test]
    fn multiple_urls_in_one_line() {
        assert_eq!(
            redact_credentials("a=postgres://x:1@h b=\"redis://:2@r:6379\""),
            "a=postgres://x:***@h b=\"redis://:***@r:6379\""
        );
    }

    #[test]
    fn key_value_passwords_are_masked() {
        assert_eq!(
            redact_credentials("host=db user=app password=hunter22 dbname=x"),
            "host=db user=app password=*** dbname=x"
        );
        assert_eq!(
            redact_credentials(r"host=db PASSWORD='a\'b c' port=1"),
            "host=db PASSWORD=*** port=1"
        );
        assert_eq!(
            redact_credentials("?sslmode=require&password=abc&x=1"),
            "?sslmode=require&password=***&x=1"
        );
    }

    #[test]
    fn redactor_removes_known_secret_anywhere() {
        let r = Redactor::new(["s3cr%40t".to_string()]);
        assert_eq!(r.redact("token s3cr@t and s3cr%40t"), "token *** and ***");
    }

    #[test]
    fn short_secrets_are_not_replaced_globally() {
        let r = Redactor::new(["ab".to_string()]);
        assert_eq!(r.redact("abc postgres://u:ab@h"), "abc postgres://u:***@h");
    }

    #[test]
    fn percent_decode_handles_bad_escapes() {
        assert_eq!(percent_decode("a%41%zz%"), "aA%zz%");
    }
}
