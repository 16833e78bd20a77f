//! `update-payload keygen --out NAME`.

use std::path::PathBuf;

use clap::Args;

use crate::payload::keys;

/// Arguments of `keygen`.
#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Writes NAME.key (private, mode 0600) and NAME.pub (public).
    #[arg(long, value_name = "NAME")]
    pub out: PathBuf,
}

/// Generate the key pair and print its key id.
pub fn run(args: KeygenArgs) -> anyhow::Result<()> {
    let id = keys::generate_keypair(&args.out)?;
    let (private, public) = keys::key_paths(&args.out);
    println!(
        "key id {id}: private key {}, public key {}",
        private.display(),
        public.display()
    );
    Ok(())
}
