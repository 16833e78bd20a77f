//! `update-payload build`.

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;

use crate::payload::build::{build_payload, key_files, BuildOptions, DEFAULT_OP_SIZE};

/// Arguments of `build`.
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The new image (its size must be a multiple of 4096).
    #[arg(long, value_name = "IMG")]
    pub target: PathBuf,
    /// The image installed now: builds a delta against it.
    #[arg(long, value_name = "IMG")]
    pub source: Option<PathBuf>,
    /// OS version of the target image.
    #[arg(long, value_name = "V")]
    pub version: String,
    /// OS version of the source image (recorded in a delta's manifest).
    #[arg(long, value_name = "V", requires = "source")]
    pub source_version: Option<String>,
    /// Private key (NAME.key); repeat to sign with several keys.
    #[arg(long = "key", value_name = "K", required = true)]
    pub keys: Vec<PathBuf>,
    /// Board/product string the payload is for.
    #[arg(long, value_name = "S", default_value = "amd64-usr")]
    pub compatible: String,
    /// Largest destination of one operation in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_OP_SIZE)]
    pub op_size: u64,
    /// Refuse to install after this RFC 3339 time.
    #[arg(long, value_name = "RFC3339")]
    pub expires: Option<String>,
    /// Security epoch.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub epoch: u64,
    /// Output payload file.
    #[arg(long, value_name = "P")]
    pub out: PathBuf,
}

/// Build the payload and print a one-line summary.
pub fn run(args: BuildArgs) -> anyhow::Result<()> {
    let keys = key_files(&args.keys)?;
    let opts = BuildOptions {
        version: args.version,
        compatible: args.compatible,
        epoch: args.epoch,
        expires: args.expires,
        op_size: args.op_size,
        source_version: args.source_version,
    };
    let started = Instant::now();
    let summary = build_payload(
        &args.target,
        args.source.as_deref(),
        &keys,
        &opts,
        &args.out,
    )?;
    println!(
        "{}: {:?} payload for {} ({} operations, {} bytes) in {:.1}s",
        args.out.display(),
        summary.manifest.kind,
        summary.manifest.version,
        summary.manifest.operations.len(),
        summary.payload_len,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
