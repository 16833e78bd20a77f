//! `Range: bytes=...` for payload downloads (RFC 9110 §14), as a pure function.
//!
//! One range is served as 206. A header with several ranges is answered with
//! the whole file (200), which RFC 9110 allows ("a server MAY ignore the
//! Range header field"); so is a header that does not parse or names another
//! unit. A well-formed range that starts past the end is 416.

/// What to send for a request's `Range` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeAnswer {
    /// 200 with the whole file.
    Full,
    /// 206 with bytes `start..=end`.
    Partial {
        /// First byte.
        start: u64,
        /// Last byte (inclusive).
        end: u64,
    },
    /// 416: no byte of the range exists.
    Unsatisfiable,
}

/// Decide how to answer `header` for a file of `len` bytes.
pub fn answer(header: Option<&str>, len: u64) -> RangeAnswer {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return RangeAnswer::Full;
    };
    if spec.contains(',') {
        return RangeAnswer::Full;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeAnswer::Full;
    };
    let num = |s: &str| -> Option<u64> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    match (first.trim(), last.trim()) {
        ("", suffix) => match num(suffix) {
            None => RangeAnswer::Full,
            Some(0) => RangeAnswer::Unsatisfiable,
            Some(_) if len == 0 => RangeAnswer::Unsatisfiable,
            Some(n) => RangeAnswer::Partial {
                start: len.saturating_sub(n),
                end: len - 1,
            },
        },
        (start, "") => match num(start) {
            None => RangeAnswer::Full,
            Some(s) if s >= len => RangeAnswer::Unsatisfiable,
            Some(s) => RangeAnswer::Partial {
                start: s,
                end: len - 1,
            },
        },
        (start, end) => match (num(start), num(end)) {
            (Some(s), Some(e)) if s <= e => {
                if s >= len {
                    RangeAnswer::Unsatisfiable
                } else {
                    RangeAnswer::Partial {
                        start: s,
                        end: e.min(len - 1),
                    }
                }
            }
            _ => RangeAnswer::Full,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use RangeAnswer::*;

    #[test]
    fn table() {
        let p = |start, end| Partial { start, end };
        for (header, len, want) in [
            (None, 10, Full),
            (Some("bytes=0-0"), 10, p(0, 0)),
            (Some("bytes=2-5"), 10, p(2, 5)),
            (Some("bytes=2-100"), 10, p(2, 9)),
            (Some("bytes=7-"), 10, p(7, 9)),
            (Some("bytes=-3"), 10, p(7, 9)),
            (Some("bytes=-30"), 10, p(0, 9)),
            (Some("bytes=10-"), 10, Unsatisfiable),
            (Some("bytes=10-20"), 10, Unsatisfiable),
            (Some("bytes=-0"), 10, Unsatisfiable),
            (Some("bytes=-5"), 0, Unsatisfiable),
            (Some("bytes=0-"), 0, Unsatisfiable),
            (Some("bytes=5-2"), 10, Full),
            (Some("bytes=0-1,4-5"), 10, Full),
            (Some("items=0-1"), 10, Full),
            (Some("bytes=x-1"), 10, Full),
            (Some("bytes=+1-2"), 10, Full),
            (Some("bytes=1"), 10, Full),
            (Some("bytes=-"), 10, Full),
            (Some(" bytes= 3 - 4 "), 10, p(3, 4)),
            (Some("bytes=99999999999999999999999-"), 10, Full),
        ] {
            assert_eq!(answer(header, len), want, "{header:?} of {len}");
        }
    }

    proptest! {
        #[test]
        fn partial_ranges_lie_inside_the_file(header in "bytes=[0-9]{0,4}-[0-9]{0,4}", len in 0u64..5000) {
            if let Partial { start, end } = answer(Some(&header), len) {
                prop_assert!(start <= end && end < len);
            }
        }
    }
}
