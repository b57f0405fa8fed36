//! Debian package version ordering, as `dpkg --compare-versions` does it.
//!
//! The ordering itself comes from the `debversion` crate (maintained by a Debian developer,
//! with dpkg's algorithm: epoch, then upstream, then revision; `~` sorts before everything,
//! even the end of the string; letters sort before other characters; digit runs compare as
//! numbers). This module only parses versions once, at policy load, and pins the edge cases
//! that matter to a policy with tests checked against dpkg 1.21.

use std::cmp::Ordering;

/// A parsed Debian version (`[epoch:]upstream[-revision]`), compared with dpkg's ordering.
#[derive(Debug, Clone)]
pub struct DebVersion(debversion::Version);

impl DebVersion {
    /// Parses a version; leading and trailing whitespace is ignored. Versions that violate
    /// Debian policy only by containing `_` are accepted, as dpkg itself accepts them.
    pub fn parse(text: &str) -> Result<DebVersion, String> {
        let text = text.trim();
        let upstream = match text.split_once(':') {
            Some((epoch, rest))
                if !epoch.is_empty() && epoch.bytes().all(|b| b.is_ascii_digit()) =>
            {
                rest
            }
            Some(_) => {
                return Err(format!(
                    "{text:?} is not a Debian version: the epoch before `:` must be a number"
                ));
            }
            None => text,
        };
        if !upstream.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(format!(
                "{text:?} is not a Debian version: the upstream version must start with a digit"
            ));
        }
        if upstream.ends_with('-') {
            return Err(format!(
                "{text:?} is not a Debian version: the revision after `-` is empty"
            ));
        }
        debversion::Version::parse_lenient(text)
            .map(DebVersion)
            .map_err(|_| format!("{text:?} is not a Debian version ([epoch:]upstream[-revision])"))
    }
}

impl PartialEq for DebVersion {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for DebVersion {}

impl PartialOrd for DebVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for DebVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.cmp(&other.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmp(a: &str, b: &str) -> Ordering {
        DebVersion::parse(a)
            .unwrap()
            .cmp(&DebVersion::parse(b).unwrap())
    }

    /// Every pair was checked with `dpkg --compare-versions A lt|eq|gt B`.
    #[test]
    fn matches_dpkg() {
        use Ordering::*;
        let cases = [
            ("1.0~rc1", "1.0", Less),
            ("1.0", "1.0+b1", Less),
            ("1:0.1", "9.9", Greater),
            ("2:1.0", "1:9.0", Greater),
            ("1.0", "1.00", Equal),
            ("0:1.0", "1.0", Equal),
            ("10", "010", Equal),
            ("1.0a", "1.0+", Less),
            ("1.0a", "1.0.", Less),
            ("1.0a", "1.0", Greater),
            ("1.0~", "1.0", Less),
            ("1.0~~", "1.0~", Less),
            ("1.0~~a", "1.0~", Less),
            ("1.0~a", "1.0", Less),
            ("1.0-1", "1.0-2", Less),
            ("1.0-1", "1.0-01", Equal),
            ("1.0", "1.0-0", Equal),
            ("1.0-1", "1.0-1.1", Less),
            ("1.0-1~bpo1", "1.0-1", Less),
            ("1.10", "1.9", Greater),
            ("1.0.0", "1.0", Greater),
            ("3.0.11-1~deb12u2", "3.0.13-1~deb12u1", Less),
            ("3.0.13-1~deb12u1", "3.0.13-1", Less),
            ("1.2.3-4+deb12u1", "1.2.3-4", Greater),
            ("1:9.2p1-2+deb12u2", "1:9.2p1-2+deb12u3", Less),
            ("1:9.2p1-2", "9.3p1-1", Greater),
        ];
        for (a, b, want) in cases {
            assert_eq!(cmp(a, b), want, "{a} vs {b}");
            assert_eq!(cmp(b, a), want.reverse(), "{b} vs {a}");
        }
    }

    #[test]
    fn rejects_what_is_not_a_version() {
        for bad in [
            "", "  ", "abc", "1.0 beta", "1:", "x:1.0", "1:abc", "-1", "1.0-",
        ] {
            assert!(
                DebVersion::parse(bad).is_err(),
                "{bad:?} should be rejected"
            );
        }
        assert!(DebVersion::parse(" 1.0-1 ").is_ok());
    }
}
