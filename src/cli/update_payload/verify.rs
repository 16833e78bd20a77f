//! `update-payload verify P --pubkey PUB [--source IMG]`: the whole apply
//! pipeline into an in-memory sink, nothing written to disk.

use std::fs::File;
use std::path::PathBuf;
use std::time::SystemTime;

use anyhow::Context;
use clap::Args;

use crate::io::Region;
use crate::payload::{apply_from_reader, Applier, ApplyPolicy, TrustedKeys};

/// Arguments of `verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Payload file.
    pub payload: PathBuf,
    /// Trusted public key (NAME.pub); repeat for several (rotation).
    #[arg(long = "pubkey", value_name = "PUB", required = true)]
    pub pubkeys: Vec<PathBuf>,
    /// Source image, for deltas.
    #[arg(long, value_name = "IMG")]
    pub source: Option<PathBuf>,
}

/// Run the whole apply pipeline into a temporary file the size of the
/// target image (deleted on exit), so the target sha256 is checked too.
pub fn run(args: VerifyArgs) -> anyhow::Result<()> {
    let keys = TrustedKeys::from_files(&args.pubkeys)?;
    let (_, manifest, _) = super::inspect::read_prefix(&args.payload)?;
    let scratch = tempfile::tempfile().context("creating a scratch file for the target image")?;
    scratch
        .set_len(manifest.target_size)
        .context("sizing the scratch file")?;
    let source = match &args.source {
        Some(p) => {
            let f = File::open(p).with_context(|| format!("opening source {}", p.display()))?;
            let len = f.metadata()?.len();
            Some(Region::new(f, 0, len)?)
        }
        None => None,
    };
    let policy = ApplyPolicy {
        compatible: manifest.compatible.clone(),
        installed_version: "0".parse()?,
        installed_epoch: 0,
        allow_downgrade: true,
        now: SystemTime::now(),
        min_signatures: 1,
    };
    let target = Region::new(scratch, 0, manifest.target_size)?;
    let applier = Applier::new(target, source, keys, policy, None);
    let mut payload =
        File::open(&args.payload).with_context(|| format!("opening {}", args.payload.display()))?;
    let image = apply_from_reader(applier, &mut payload, None)?;
    let signers: Vec<String> = image.signed_by.iter().map(|k| k.to_string()).collect();
    println!(
        "{}: OK, {:?} payload for version {} (image sha256 {}), signed by {}",
        args.payload.display(),
        image.kind,
        image.version,
        image.sha256,
        signers.join(", ")
    );
    Ok(())
}
