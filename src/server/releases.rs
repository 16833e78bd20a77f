//! The releases file of `update-server serve` (DESIGN §8): which version
//! each app id + track should run, its full payload and optional delta
//! payloads keyed by source version. Payload paths are relative to the file;
//! sizes and hashes are computed once at startup.

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{anyhow, bail, Context};
use base64::Engine;
use serde::Deserialize;
use sha1::Sha1;
use sha2::{Digest, Sha256};

use crate::version::OsVersion;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    release: Vec<RawRelease>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRelease {
    app_id: String,
    track: String,
    version: String,
    payload: PathBuf,
    #[serde(default)]
    delta: Vec<RawDelta>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDelta {
    from: String,
    payload: PathBuf,
}

/// A payload file the server offers and hosts under `/payloads/NAME`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayloadFile {
    /// File name: the Omaha package name and the last URL segment.
    pub name: String,
    /// Where the file lives.
    pub path: PathBuf,
    /// Size in bytes.
    pub size: u64,
    /// sha1 of the file (Omaha `package@hash`, base64).
    pub sha1: [u8; 20],
    /// sha256 of the file (`package@hash_sha256` hex, `action@sha256` base64).
    pub sha256: [u8; 32],
}

impl PayloadFile {
    /// Hash and measure the file at `path`.
    pub fn from_path(path: &Path) -> anyhow::Result<PayloadFile> {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| anyhow!("{} has no UTF-8 file name", path.display()))?
            .to_owned();
        let mut file =
            File::open(path).with_context(|| format!("opening payload {}", path.display()))?;
        let mut sha1 = Sha1::new();
        let mut sha256 = Sha256::new();
        let mut size = 0u64;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = file
                .read(&mut buf)
                .with_context(|| format!("reading payload {}", path.display()))?;
            if n == 0 {
                break;
            }
            sha1.update(&buf[..n]);
            sha256.update(&buf[..n]);
            size += n as u64;
        }
        Ok(PayloadFile {
            name,
            path: path.to_owned(),
            size,
            sha1: sha1.finalize().into(),
            sha256: sha256.finalize().into(),
        })
    }

    /// base64 sha1, as Omaha `package@hash`.
    pub fn sha1_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.sha1)
    }

    /// base64 sha256, as Omaha `action@sha256`.
    pub fn sha256_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.sha256)
    }

    /// hex sha256, as Omaha `package@hash_sha256` and the HTTP ETag.
    pub fn sha256_hex(&self) -> String {
        hex::encode(self.sha256)
    }
}

/// A delta payload that updates from one specific version.
#[derive(Debug, Clone)]
pub struct Delta {
    /// The source version the delta applies to.
    pub from: OsVersion,
    /// The delta payload.
    pub payload: Arc<PayloadFile>,
}

/// The current release of one app id + track.
#[derive(Debug, Clone)]
pub struct Release {
    /// Omaha app id, e.g. `{e96281a6-d1af-4bde-9a0a-97b76e56dc57}`.
    pub app_id: String,
    /// Omaha track (group).
    pub track: String,
    /// The version clients should run.
    pub version: OsVersion,
    /// Its full payload.
    pub payload: Arc<PayloadFile>,
    /// Delta payloads, by source version.
    pub deltas: Vec<Delta>,
}

impl Release {
    /// The delta payload for a client running `from`, if one exists.
    pub fn delta_from(&self, from: &OsVersion) -> Option<&Arc<PayloadFile>> {
        self.deltas
            .iter()
            .find(|d| &d.from == from)
            .map(|d| &d.payload)
    }
}

/// All releases of a releases file, and the payload files they name.
#[derive(Debug, Clone, Default)]
pub struct Releases {
    releases: Vec<Release>,
    payloads: HashMap<String, Arc<PayloadFile>>,
}

impl Releases {
    /// Read, validate and hash a releases file.
    pub fn load(path: &Path) -> anyhow::Result<Releases> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading releases file {}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        Releases::from_toml(&text, base)
            .with_context(|| format!("releases file {}", path.display()))
    }

    /// Validate releases written as TOML; payload paths are relative to `base`.
    pub fn from_toml(text: &str, base: &Path) -> anyhow::Result<Releases> {
        let raw: RawFile = toml::from_str(text).context("invalid TOML")?;
        if raw.release.is_empty() {
            bail!(
                "no [[release]] entries: add at least one with app_id, track, version and payload"
            );
        }
        let mut out = Releases::default();
        for (i, r) in raw.release.into_iter().enumerate() {
            let at = format!("release[{i}]");
            if r.app_id.trim().is_empty() {
                bail!("{at}.app_id is empty: set the Omaha app id clients send");
            }
            if r.track.trim().is_empty() {
                bail!("{at}.track is empty: set the track (group) clients send");
            }
            if let Some(j) = out
                .releases
                .iter()
                .position(|o| o.app_id.eq_ignore_ascii_case(&r.app_id) && o.track == r.track)
            {
                bail!(
                    "{at}: app_id {} track {:?} is already defined by release[{j}]; keep one release per app and track",
                    r.app_id,
                    r.track
                );
            }
            let version: OsVersion = r.version.parse().with_context(|| format!("{at}.version"))?;
            let payload = out
                .add_payload(base, &r.payload)
                .with_context(|| format!("{at}.payload"))?;
            let mut deltas: Vec<Delta> = Vec::new();
            for (k, d) in r.delta.into_iter().enumerate() {
                let dat = format!("{at}.delta[{k}]");
                let from: OsVersion = d.from.parse().with_context(|| format!("{dat}.from"))?;
                if from >= version {
                    bail!("{dat}.from = {from} is not older than the release version {version}");
                }
                if deltas.iter().any(|x| x.from == from) {
                    bail!("{dat}.from = {from} appears twice; keep one delta per source version");
                }
                let payload = out
                    .add_payload(base, &d.payload)
                    .with_context(|| format!("{dat}.payload"))?;
                deltas.push(Delta { from, payload });
            }
            out.releases.push(Release {
                app_id: r.app_id,
                track: r.track,
                version,
                payload,
                deltas,
            });
        }
        Ok(out)
    }

    fn add_payload(&mut self, base: &Path, rel: &Path) -> anyhow::Result<Arc<PayloadFile>> {
        let path = base.join(rel);
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if let Some(existing) = self.payloads.get(name) {
            // One URL name per file: a second file with the same name could not be told apart.
            if existing.path == path {
                return Ok(existing.clone());
            }
            bail!(
                "{} has the same file name as {}; payload file names must be unique",
                path.display(),
                existing.path.display()
            );
        }
        let file = Arc::new(PayloadFile::from_path(&path)?);
        self.payloads.insert(file.name.clone(), file.clone());
        Ok(file)
    }

    /// Every release, in file order.
    pub fn releases(&self) -> &[Release] {
        &self.releases
    }

    /// Releases of `app_id` (compared case-insensitively: Omaha app ids are GUIDs).
    pub fn for_app<'a>(&'a self, app_id: &'a str) -> impl Iterator<Item = &'a Release> + 'a {
        self.releases
            .iter()
            .filter(move |r| r.app_id.eq_ignore_ascii_case(app_id))
    }

    /// The release of `app_id` on `track`.
    pub fn find(&self, app_id: &str, track: &str) -> Option<&Release> {
        self.releases
            .iter()
            .find(|r| r.app_id.eq_ignore_ascii_case(app_id) && r.track == track)
    }

    /// The hosted payload called `name`.
    pub fn payload(&self, name: &str) -> Option<&Arc<PayloadFile>> {
        self.payloads.get(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const APP: &str = "{e96281a6-d1af-4bde-9a0a-97b76e56dc57}";

    fn dir_with(files: &[(&str, &[u8])]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, bytes) in files {
            std::fs::write(dir.path().join(name), bytes).unwrap();
        }
        dir
    }

    fn load(dir: &tempfile::TempDir, toml: &str) -> anyhow::Result<Releases> {
        let path = dir.path().join("releases.toml");
        std::fs::write(&path, toml).unwrap();
        Releases::load(&path)
    }

    #[test]
    fn loads_release_with_delta_and_hashes() {
        let dir = dir_with(&[("v2.payload", b"abc"), ("d.payload", b"")]);
        let r = load(
            &dir,
            &format!(
                "[[release]]\napp_id = \"{APP}\"\ntrack = \"stable\"\nversion = \"2.0.0\"\npayload = \"v2.payload\"\n[[release.delta]]\nfrom = \"1.0.0\"\npayload = \"d.payload\"\n"
            ),
        )
        .unwrap();
        let rel = r.find(&APP.to_uppercase(), "stable").unwrap();
        assert_eq!(rel.version.to_string(), "2.0.0");
        let p = &rel.payload;
        assert_eq!(p.size, 3);
        // Known digests of "abc".
        assert_eq!(p.sha1_base64(), "qZk+NkcGgWq6PiVxeFDCbJzQ2J0=");
        assert_eq!(
            p.sha256_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            p.sha256_base64(),
            "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0="
        );
        let from: OsVersion = "1.0.0".parse().unwrap();
        assert_eq!(rel.delta_from(&from).unwrap().name, "d.payload");
        assert!(rel.delta_from(&"1.5.0".parse().unwrap()).is_none());
        assert!(r.payload("v2.payload").is_some());
        assert!(r.payload("releases.toml").is_none());
        assert!(r.find(APP, "beta").is_none());
    }

    fn err_of(dir: &tempfile::TempDir, toml: &str) -> String {
        format!("{:#}", load(dir, toml).unwrap_err())
    }

    #[test]
    fn bad_files_name_file_and_field() {
        let dir = dir_with(&[("v2.payload", b"x")]);
        let rel = |extra: &str| {
            format!("[[release]]\napp_id = \"{APP}\"\ntrack = \"stable\"\nversion = \"2.0.0\"\npayload = \"v2.payload\"\n{extra}")
        };
        let cases = [
            (rel("colour = \"red\"\n"), "unknown field `colour`"),
            (
                "[[release]]\napp_id = \"a\"\ntrack = \"s\"\nversion = \"2.0.0\"\npayload = \"missing.payload\"\n".to_string(),
                "release[0].payload: opening payload",
            ),
            (rel("") + &rel(""), "release[1]: app_id"),
            (rel("[[release.delta]]\nfrom = \"1.0.0\"\npayload = \"gone\"\n"), "release[0].delta[0].payload"),
            (
                rel("[[release.delta]]\nfrom = \"3.0.0\"\npayload = \"v2.payload\"\n"),
                "release[0].delta[0].from = 3.0.0 is not older",
            ),
            (
                rel("[[release.delta]]\nfrom = \"1.0\"\npayload = \"v2.payload\"\n[[release.delta]]\nfrom = \"1.0\"\npayload = \"v2.payload\"\n"),
                "release[0].delta[1].from = 1.0 appears twice",
            ),
            (rel("").replace("2.0.0", "two"), "release[0].version"),
            (rel("").replace(APP, " "), "release[0].app_id is empty"),
            (rel("").replace("\"stable\"", "\"\""), "release[0].track is empty"),
            (String::new(), "no [[release]] entries"),
            ("[[release]]\napp_id = \"a\"\n".to_string(), "missing field"),
            ("not toml".to_string(), "invalid TOML"),
        ];
        for (toml, want) in cases {
            let err = err_of(&dir, &toml);
            assert!(err.contains("releases.toml"), "{err}");
            assert!(err.contains(want), "want {want:?} in {err}");
        }
    }

    #[test]
    fn payload_names_must_be_unique() {
        let dir = dir_with(&[("v2.payload", b"x")]);
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/v2.payload"), b"y").unwrap();
        let toml = "[[release]]\napp_id = \"a\"\ntrack = \"s\"\nversion = \"2\"\npayload = \"v2.payload\"\n[[release]]\napp_id = \"b\"\ntrack = \"s\"\nversion = \"2\"\npayload = \"sub/v2.payload\"\n".to_string();
        assert!(err_of(&dir, &toml).contains("same file name"));
        // The same file named twice is fine and shared.
        let toml = toml.replace("sub/v2.payload", "./v2.payload");
        let r = load(&dir, &toml).unwrap();
        assert_eq!(r.releases().len(), 2);
        assert!(Arc::ptr_eq(
            &r.releases()[0].payload,
            &r.releases()[1].payload
        ));
    }

    #[test]
    fn unreadable_payloads_are_reported() {
        use std::os::unix::ffi::OsStrExt;
        let dir = dir_with(&[]);
        std::fs::create_dir(dir.path().join("adir")).unwrap();
        let toml =
            "[[release]]\napp_id = \"a\"\ntrack = \"s\"\nversion = \"2\"\npayload = \"adir\"\n";
        assert!(err_of(&dir, toml).contains("release[0].payload: reading payload"));
        let odd = dir.path().join(std::ffi::OsStr::from_bytes(b"bad\xffname"));
        std::fs::write(&odd, b"x").unwrap();
        let err = format!("{:#}", PayloadFile::from_path(&odd).unwrap_err());
        assert!(err.contains("has no UTF-8 file name"), "{err}");
    }

    #[test]
    fn missing_file_is_reported() {
        let err = format!(
            "{:#}",
            Releases::load(Path::new("/nonexistent/releases.toml")).unwrap_err()
        );
        assert!(
            err.contains("reading releases file /nonexistent/releases.toml"),
            "{err}"
        );
    }
}
