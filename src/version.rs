//! OS version numbers as Flatcar/CoreOS use them (`3815.2.0`, `1.0.0`,
//! optionally with a `+build` or `-pre` suffix), ordered numerically.
//!
//! Ordering rule (documented decision): the dotted numeric part is compared
//! component by component as integers, missing components count as 0
//! (`1.2` == `1.2.0`); a pre-release suffix (`-rc1`) sorts before the same
//! numbers without one; a build suffix (`+abc`) is ignored for ordering.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

/// A parsed OS version.
#[derive(Debug, Clone, Eq)]
pub struct OsVersion {
    text: String,
    numbers: Vec<u64>,
    pre: Option<String>,
}

/// Longest version string accepted; anything longer is not a version.
const MAX_VERSION_LEN: usize = 64;

impl OsVersion {
    /// The version as it was written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl FromStr for OsVersion {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> anyhow::Result<OsVersion> {
        let bad =
            || anyhow::anyhow!("invalid version {s:?}: expected dotted numbers like 3815.2.0");
        if s.is_empty() || s.len() > MAX_VERSION_LEN {
            return Err(bad());
        }
        let without_build = s.split('+').next().unwrap_or("");
        let (core, pre) = match without_build.split_once('-') {
            Some((core, pre)) if !pre.is_empty() => (core, Some(pre.to_string())),
            Some(_) => return Err(bad()),
            None => (without_build, None),
        };
        let numbers = core
            .split('.')
            .map(|part| {
                if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(bad());
                }
                part.parse::<u64>().map_err(|_| bad())
            })
            .collect::<anyhow::Result<Vec<u64>>>()?;
        Ok(OsVersion {
            text: s.to_string(),
            numbers,
            pre,
        })
    }
}

impl Ord for OsVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        let len = self.numbers.len().max(other.numbers.len());
        for i in 0..len {
            let a = self.numbers.get(i).copied().unwrap_or(0);
            let b = other.numbers.get(i).copied().unwrap_or(0);
            match a.cmp(&b) {
                Ordering::Equal => {}
                unequal => return unequal,
            }
        }
        match (&self.pre, &other.pre) {
            (None, None) => Ordering::Equal,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some(a), Some(b)) => a.cmp(b),
        }
    }
}

impl PartialOrd for OsVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for OsVersion {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl fmt::Display for OsVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> OsVersion {
        s.parse().unwrap()
    }

    #[test]
    fn orders_numerically_not_lexically() {
        assert!(v("10.0.0") > v("9.9.9"));
        assert!(v("3815.2.1") > v("3815.2.0"));
        assert!(v("1.2") == v("1.2.0"));
        assert!(v("2.0.0-rc1") < v("2.0.0"));
        assert!(v("2.0.0-rc1") > v("1.9.9"));
        assert!(v("2.0.0+abc") == v("2.0.0"));
        assert_eq!(v("2.0.0+abc").as_str(), "2.0.0+abc");
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "",
            "a.b",
            "1..2",
            "1.2.",
            "-1",
            "1.2-",
            &"9".repeat(65),
            "1.99999999999999999999999",
        ] {
            let err = bad.parse::<OsVersion>().unwrap_err().to_string();
            assert!(err.contains("invalid version"), "{bad}: {err}");
        }
    }
}
