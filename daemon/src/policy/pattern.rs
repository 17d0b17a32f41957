//! Domain patterns in policies: an exact name (`api.casambi.com`) or a
//! wildcard for every name below a domain (`*.mpsmonitor.com`: one or more
//! labels, never the apex itself — what vendor guides mean by it). Matching
//! is case-insensitive and ignores a trailing dot.

use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Pattern {
    Exact(String),
    /// The domain below which names match, without the leading `*.`.
    Below(String),
}

/// Lower-cases and strips one trailing dot: the form names are compared in.
pub fn normalize(name: &str) -> String {
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}

/// Labels of letters, digits, '-' and '_' (service labels such as
/// `_ntp._udp`), 1 to 63 bytes, at most 253 bytes in all.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

impl Pattern {
    /// Parses a pattern; the error says what is wrong in words for admins.
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = normalize(text.trim());
        if t == "*" {
            return Err("`*` would allow every name".into());
        }
        if let Some(rest) = t.strip_prefix("*.") {
            if !valid_name(rest) {
                return Err(format!("`{text}` is not a valid domain pattern"));
            }
            if !rest.contains('.') {
                return Err(format!(
                    "`{text}` would allow every name under a top-level domain"
                ));
            }
            return Ok(Pattern::Below(rest.to_string()));
        }
        if t.contains('*') {
            return Err(format!(
                "`{text}`: `*` may only stand alone as the leftmost label (`*.example.com`)"
            ));
        }
        if !valid_name(&t) || !t.contains('.') {
            return Err(format!("`{text}` is not a domain name"));
        }
        Ok(Pattern::Exact(t))
    }

    /// `name` must already be normalized.
    pub fn matches(&self, name: &str) -> bool {
        match self {
            Pattern::Exact(e) => name == e,
            Pattern::Below(d) => {
                name.len() > d.len() + 1
                    && name.ends_with(d.as_str())
                    && name.as_bytes()[name.len() - d.len() - 1] == b'.'
            }
        }
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pattern::Exact(e) => f.write_str(e),
            Pattern::Below(d) => write!(f, "*.{d}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_matches_below_not_apex() {
        let p = Pattern::parse("*.MPSmonitor.com.").unwrap();
        assert!(p.matches("a.mpsmonitor.com"));
        assert!(p.matches("a.b.mpsmonitor.com"));
        assert!(!p.matches("mpsmonitor.com"));
        assert!(!p.matches("evilmpsmonitor.com"));
        assert!(!p.matches("a.mpsmonitor.com.evil.example"));
        let e = Pattern::parse("API.casambi.com").unwrap();
        assert!(e.matches(&normalize("api.Casambi.com.")));
        assert!(!e.matches("x.api.casambi.com"));
    }

    #[test]
    fn refuses_over_broad_and_malformed() {
        for bad in [
            "*", "*.com", "*.", "a.*.com", "*foo.com", "com", "a..b", "-a.com", "",
        ] {
            assert!(Pattern::parse(bad).is_err(), "{bad} accepted");
        }
        assert!(Pattern::parse("_ntp._udp.example.com").is_ok());
    }
}
