//! Fault injection for `update-server serve --fault SPEC`.
//!
//! Grammar (also in `update-server serve --help` and docs/update-server.md):
//!
//! ```text
//! SPEC   := [TARGET "/"] KIND [":" VALUE] ["@" SCOPE]
//! TARGET := "check" | "download"      which requests the fault applies to
//! SCOPE  := N                         the first N matching requests
//!         | P "%"                     each matching request with probability P percent
//!                                     (no scope: every matching request)
//! BYTES  := N ["K" | "M" | "G"]       binary multiples
//! ```
//!
//! | KIND | default target | effect |
//! |---|---|---|
//! | `http-500[:N]` | check (or download) | answer HTTP 500; `:N` is short for `@N` |
//! | `stall:SECS` | download (or check) | send nothing for SECS, then answer normally |
//! | `redirect-loop` | download (or check) | answer 302 to the same URL |
//! | `drop-at:BYTES` | download | close the connection after BYTES body bytes |
//! | `throttle:BYTES` | download | send at most BYTES body bytes per second |
//! | `corrupt-byte:OFFSET` | download | flip every bit of the byte at file offset OFFSET |
//! | `truncate:BYTES` | download | serve the file as if it ended after BYTES bytes |
//! | `no-range` | download | ignore `Range`, always send the whole file (200) |
//! | `wrong-sha256` | check | offer a wrong sha256 (both `hash_sha256` and `action@sha256`) |
//! | `wrong-size` | check | offer the payload size plus one |
//! | `malformed-xml` | check | answer with a document cut in half |
//! | `huge-response:BYTES` | check | answer with a BYTES-long document |
//! | `noupdate` | check | answer `noupdate` whatever the client runs |
//!
//! Check faults apply to requests containing an `<updatecheck>`; event-only
//! reports are never faulted, so tests can still see what clients reported.
//! Download faults apply to `GET` of a payload (not `HEAD`).

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{anyhow, bail, Context};

/// Which requests a fault applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Omaha POSTs that contain an update check.
    Check,
    /// `GET /payloads/NAME`.
    Download,
}

/// What a fault does.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FaultKind {
    /// Answer HTTP 500.
    Http500,
    /// Send nothing for this long, then answer normally.
    Stall(Duration),
    /// Answer 302 pointing at the same URL.
    RedirectLoop,
    /// Close the connection after this many body bytes.
    DropAt(u64),
    /// At most this many body bytes per second.
    Throttle(u64),
    /// Invert the byte at this file offset.
    CorruptByte(u64),
    /// Serve the file as if it were this long.
    Truncate(u64),
    /// Ignore `Range`.
    NoRange,
    /// Offer a wrong sha256.
    WrongSha256,
    /// Offer a wrong size.
    WrongSize,
    /// Answer with broken XML.
    MalformedXml,
    /// Answer with a document of this many bytes.
    HugeResponse(u64),
    /// Answer `noupdate`.
    NoUpdate,
}

/// How many of the matching requests a fault hits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scope {
    /// Every one.
    Always,
    /// The first N.
    First(u64),
    /// Each with this probability (0..=1).
    Probability(f64),
}

/// One parsed `--fault` argument.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultSpec {
    /// What it does.
    pub kind: FaultKind,
    /// Which requests it applies to.
    pub target: Target,
    /// How many of them.
    pub scope: Scope,
}

/// Parse a byte count with an optional binary K/M/G suffix.
fn parse_bytes(s: &str) -> anyhow::Result<u64> {
    let (digits, mult) = match s.as_bytes().last() {
        Some(b'K' | b'k') => (&s[..s.len() - 1], 1u64 << 10),
        Some(b'M' | b'm') => (&s[..s.len() - 1], 1 << 20),
        Some(b'G' | b'g') => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| anyhow!("{s:?} is not a byte count (digits with an optional K, M or G)"))?;
    n.checked_mul(mult)
        .ok_or_else(|| anyhow!("{s:?} is too large"))
}

impl FromStr for FaultSpec {
    type Err = anyhow::Error;

    fn from_str(spec: &str) -> anyhow::Result<FaultSpec> {
        parse_spec(spec).with_context(|| {
            format!("invalid --fault {spec:?} (syntax: [check/|download/]KIND[:VALUE][@N|@P%], see --help)")
        })
    }
}

fn parse_spec(spec: &str) -> anyhow::Result<FaultSpec> {
    let (rest, scope) = match spec.split_once('@') {
        Some((rest, scope)) => (rest, Some(parse_scope(scope)?)),
        None => (spec, None),
    };
    let (target, rest) = match rest.split_once('/') {
        Some(("check", r)) => (Some(Target::Check), r),
        Some(("download", r)) => (Some(Target::Download), r),
        Some((t, _)) => bail!("unknown target {t:?}: use check or download"),
        None => (None, rest),
    };
    let (name, value) = match rest.split_once(':') {
        Some((n, v)) => (n, Some(v)),
        None => (rest, None),
    };
    let need = |what: &str| value.ok_or_else(|| anyhow!("{name} needs a value: {name}:{what}"));
    let none = || match value {
        Some(_) => Err(anyhow!("{name} takes no value")),
        None => Ok(()),
    };
    use FaultKind::*;
    use Target::*;
    // (kind, default target, may it also target the other side?)
    let (kind, default, both) = match name {
        "http-500" => (Http500, Check, true),
        "stall" => {
            let secs: f64 = need("SECS")?.parse().map_err(|_| anyhow!("stall needs seconds"))?;
            if !(secs.is_finite() && (0.0..=86_400.0).contains(&secs)) {
                bail!("stall seconds must be between 0 and 86400");
            }
            (Stall(Duration::from_secs_f64(secs)), Download, true)
        }
        "redirect-loop" => (none().map(|_| RedirectLoop)?, Download, true),
        "drop-at" => (DropAt(parse_bytes(need("BYTES")?)?), Download, false),
        "throttle" => {
            let rate = parse_bytes(need("BYTES_PER_SEC")?)?;
            if rate == 0 {
                bail!("throttle rate must be at least 1 byte per second");
            }
            (Throttle(rate), Download, false)
        }
        "corrupt-byte" => (CorruptByte(parse_bytes(need("OFFSET")?)?), Download, false),
        "truncate" => (Truncate(parse_bytes(need("BYTES")?)?), Download, false),
        "no-range" => (none().map(|_| NoRange)?, Download, false),
        "wrong-sha256" => (none().map(|_| WrongSha256)?, Check, false),
        "wrong-size" => (none().map(|_| WrongSize)?, Check, false),
        "malformed-xml" => (none().map(|_| MalformedXml)?, Check, false),
        "huge-response" => (HugeResponse(parse_bytes(need("BYTES")?)?), Check, false),
        "noupdate" => (none().map(|_| NoUpdate)?, Check, false),
        other => bail!(
            "unknown fault {other:?}: expected one of http-500, stall, redirect-loop, drop-at, throttle, \
             corrupt-byte, truncate, no-range, wrong-sha256, wrong-size, malformed-xml, huge-response, noupdate"
        ),
    };
    let target = match target {
        Some(t) if t != default && !both => bail!("{name} only applies to {default} requests"),
        Some(t) => t,
        None => default,
    };
    let scope = match (kind, value, scope) {
        (Http500, Some(_), Some(_)) => bail!("http-500:N and @N say the same thing; give one"),
        (Http500, Some(v), None) => {
            Scope::First(v.parse().map_err(|_| anyhow!("http-500:N needs a count"))?)
        }
        (_, _, Some(s)) => s,
        (_, _, None) => Scope::Always,
    };
    Ok(FaultSpec {
        kind,
        target,
        scope,
    })
}

fn parse_scope(s: &str) -> anyhow::Result<Scope> {
    if let Some(p) = s.strip_suffix('%') {
        let p: f64 = p
            .parse()
            .map_err(|_| anyhow!("@{s}: expected a percentage like @25%"))?;
        if !(p > 0.0 && p <= 100.0) {
            bail!("@{s}: the percentage must be above 0 and at most 100");
        }
        return Ok(Scope::Probability(p / 100.0));
    }
    s.parse()
        .map(Scope::First)
        .map_err(|_| anyhow!("@{s}: expected a count like @2 or a percentage like @25%"))
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Target::Check => "check",
            Target::Download => "download",
        })
    }
}

/// The configured faults and how often each has fired; shared by all requests.
#[derive(Debug, Default)]
pub struct Faults {
    armed: Vec<(FaultSpec, AtomicU64)>,
}

impl Faults {
    /// Arm these faults; counts start at zero.
    pub fn new(specs: Vec<FaultSpec>) -> Faults {
        Faults {
            armed: specs.into_iter().map(|s| (s, AtomicU64::new(0))).collect(),
        }
    }

    /// Decide which faults hit this request (consuming their counts).
    pub fn fire(&self, target: Target) -> Vec<FaultKind> {
        let mut hits = Vec::new();
        for (spec, seen) in &self.armed {
            if spec.target != target {
                continue;
            }
            let hit = match spec.scope {
                Scope::Always => true,
                // fetch_add makes "the first N" exact under any concurrency.
                Scope::First(n) => seen.fetch_add(1, Ordering::Relaxed) < n,
                Scope::Probability(p) => rand::random::<f64>() < p,
            };
            if hit {
                hits.push(spec.kind);
            }
        }
        hits
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use FaultKind::*;

    fn spec(s: &str) -> FaultSpec {
        s.parse().unwrap()
    }

    #[test]
    fn parses_every_kind() {
        assert_eq!(
            spec("http-500:2"),
            FaultSpec {
                kind: Http500,
                target: Target::Check,
                scope: Scope::First(2)
            }
        );
        assert_eq!(spec("download/http-500@3").target, Target::Download);
        assert_eq!(spec("http-500").scope, Scope::Always);
        assert_eq!(
            spec("drop-at:1M@2"),
            FaultSpec {
                kind: DropAt(1 << 20),
                target: Target::Download,
                scope: Scope::First(2)
            }
        );
        assert_eq!(spec("throttle:64K").kind, Throttle(65536));
        assert_eq!(spec("stall:1.5").kind, Stall(Duration::from_millis(1500)));
        assert_eq!(spec("check/stall:2").target, Target::Check);
        assert_eq!(spec("corrupt-byte:4096").kind, CorruptByte(4096));
        assert_eq!(spec("truncate:1G").kind, Truncate(1 << 30));
        assert_eq!(spec("no-range").kind, NoRange);
        assert_eq!(spec("wrong-sha256@50%").scope, Scope::Probability(0.5));
        assert_eq!(spec("wrong-size").kind, WrongSize);
        assert_eq!(spec("malformed-xml@1").kind, MalformedXml);
        assert_eq!(spec("huge-response:2M").kind, HugeResponse(2 << 20));
        assert_eq!(spec("redirect-loop").target, Target::Download);
        assert_eq!(spec("check/redirect-loop").target, Target::Check);
        assert_eq!(spec("noupdate").kind, NoUpdate);
    }

    #[test]
    fn rejects_bad_specs_with_reasons() {
        for (bad, why) in [
            ("explode", "unknown fault"),
            ("drop-at", "needs a value"),
            ("drop-at:lots", "not a byte count"),
            ("drop-at:99999999999999G", "too large"),
            ("noupdate:1", "takes no value"),
            ("http-500:x", "needs a count"),
            ("http-500:1@2", "say the same thing"),
            ("drop-at:1@0%", "above 0"),
            ("drop-at:1@x", "expected a count"),
            ("drop-at:1@1x%", "percentage"),
            ("check/drop-at:1", "only applies to download"),
            ("download/noupdate", "only applies to check"),
            ("upload/noupdate", "unknown target"),
            ("throttle:0", "at least 1 byte"),
            ("stall:-1", "between 0 and 86400"),
            ("stall:soon", "needs seconds"),
        ] {
            let err = format!("{:#}", bad.parse::<FaultSpec>().unwrap_err());
            assert!(err.contains(why), "{bad}: {err}");
            assert!(err.contains("invalid --fault"), "{err}");
        }
    }

    #[test]
    fn counts_and_targets_are_respected() {
        let faults = Faults::new(vec![
            spec("http-500:2"),
            spec("drop-at:10"),
            spec("noupdate@100%"),
        ]);
        assert_eq!(faults.fire(Target::Check), vec![Http500, NoUpdate]);
        assert_eq!(faults.fire(Target::Check), vec![Http500, NoUpdate]);
        assert_eq!(faults.fire(Target::Check), vec![NoUpdate]);
        assert_eq!(faults.fire(Target::Download), vec![DropAt(10)]);
        assert_eq!(faults.fire(Target::Download), vec![DropAt(10)]);
    }

    #[test]
    fn first_n_is_exact_under_concurrency() {
        let faults = std::sync::Arc::new(Faults::new(vec![spec("http-500:50")]));
        let hits: usize = (0..8)
            .map(|_| {
                let f = faults.clone();
                std::thread::spawn(move || {
                    (0..100)
                        .filter(|_| !f.fire(Target::Check).is_empty())
                        .count()
                })
            })
            .map(|t| t.join().unwrap())
            .sum();
        assert_eq!(hits, 50);
    }
}
