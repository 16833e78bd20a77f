//! `update-payload inspect P [--json]`.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;

use crate::payload::format::{Header, Manifest, HEADER_LEN};
use crate::payload::sign;

/// Arguments of `inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Payload file.
    pub payload: PathBuf,
    /// Print the header, manifest and signer key ids as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Read header, manifest and signature block (bounds-checked, not trusted).
pub fn read_prefix(path: &Path) -> anyhow::Result<(Header, Manifest, Vec<String>)> {
    let mut f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut hb = [0u8; HEADER_LEN];
    f.read_exact(&mut hb)
        .with_context(|| format!("reading the header of {}", path.display()))?;
    let header = Header::parse(&hb)?;
    let mut rest = Vec::new();
    f.take(header.manifest_len + header.signature_len)
        .read_to_end(&mut rest)
        .with_context(|| format!("reading the manifest of {}", path.display()))?;
    let mut bytes = hb.to_vec();
    bytes.extend_from_slice(&rest);
    let (header, manifest) = crate::payload::parse_header_and_manifest(&bytes)?;
    let sig_start = (HEADER_LEN as u64 + header.manifest_len) as usize;
    let signers = sign::parse_block(bytes.get(sig_start..).unwrap_or_default())?
        .into_iter()
        .map(|(id, _)| id.to_string())
        .collect();
    Ok((header, manifest, signers))
}

/// Print the payload's description.
pub fn run(args: InspectArgs) -> anyhow::Result<()> {
    let (header, m, signers) = read_prefix(&args.payload)?;
    if args.json {
        let out = serde_json::json!({
            "format_version": header.version,
            "manifest_len": header.manifest_len,
            "signature_len": header.signature_len,
            "signed_by": signers,
            "manifest": m,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    let mut counts: BTreeMap<String, (usize, u64)> = BTreeMap::new();
    for op in &m.operations {
        let c = counts.entry(format!("{:?}", op.op)).or_default();
        c.0 += 1;
        c.1 += op.data_len;
    }
    println!("format version: {}", header.version);
    println!("kind:           {:?}", m.kind);
    println!("version:        {}", m.version);
    println!("compatible:     {}", m.compatible);
    println!("epoch:          {}", m.epoch);
    println!(
        "expires:        {}",
        m.expires.as_deref().unwrap_or("never")
    );
    println!(
        "target:         {} bytes, sha256 {}",
        m.target_size, m.target_sha256
    );
    if let Some(s) = &m.source {
        println!(
            "source:         {} bytes, sha256 {}, version {}",
            s.size,
            s.sha256,
            s.version.as_deref().unwrap_or("unknown")
        );
    }
    println!("signed by:      {}", signers.join(", "));
    println!("data:           {} bytes", m.data_len);
    for (kind, (n, bytes)) in counts {
        println!("  {kind:<12} {n:>6} ops {bytes:>12} data bytes");
    }
    Ok(())
}
