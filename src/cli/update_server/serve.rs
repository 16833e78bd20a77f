//! `update-server serve --releases FILE --listen ADDR [--fault SPEC]... [--events-log FILE]`.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use crate::server::{FaultSpec, Releases, Server, ServerConfig};

const FAULT_HELP: &str = "\
Inject a fault; repeat to compose several.
Syntax: [TARGET/]KIND[:VALUE][@SCOPE]
  TARGET  check | download   (which requests; each KIND has a default)
  SCOPE   N  = the first N matching requests;  P% = each with probability P percent;
          none = every matching request.   BYTES accept K, M, G suffixes (binary).
Kinds (default target):
  http-500[:N]         (check; or download/)  HTTP 500; :N is short for @N
  stall:SECS           (download; or check/)  send nothing for SECS, then answer
  redirect-loop        (download; or check/)  307 to the same URL
  drop-at:BYTES        (download)  close the connection after BYTES body bytes
  throttle:BYTES       (download)  at most BYTES body bytes per second
  corrupt-byte:OFFSET  (download)  invert the byte at file offset OFFSET
  truncate:BYTES       (download)  serve the file as if it ended after BYTES bytes
  no-range             (download)  ignore Range, always 200 with the whole file
  wrong-sha256         (check)     offer a wrong sha256
  wrong-size           (check)     offer the size plus one
  malformed-xml        (check)     answer with a document cut in half
  huge-response:BYTES  (check)     answer with a BYTES-long document
  noupdate             (check)     answer noupdate
Check faults hit requests with an <updatecheck>; event-only reports are never faulted.
Examples: --fault http-500:2  --fault drop-at:1M@2  --fault throttle:64K@50%";

/// Arguments of `update-server serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Releases file (TOML, DESIGN §8); payload paths are relative to it.
    #[arg(long, value_name = "FILE")]
    pub releases: PathBuf,
    /// Address to listen on, e.g. 127.0.0.1:8080 (port 0 picks a free port).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Inject a fault (see --help for the syntax).
    #[arg(long = "fault", value_name = "SPEC", long_help = FAULT_HELP)]
    pub faults: Vec<FaultSpec>,
    /// Append every client report (ping, update check, event) as a JSON line here.
    #[arg(long, value_name = "FILE")]
    pub events_log: Option<PathBuf>,
}

/// Load the releases, serve until SIGTERM or Ctrl-C, then shut down gracefully.
pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let releases = Releases::load(&args.releases)?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async move {
        let config = ServerConfig {
            releases,
            faults: args.faults,
            events_log: args.events_log,
        };
        // Handlers first: a SIGTERM right after the address is printed must
        // already shut down gracefully.
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
        let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
        let (addr, handle) = Server::bind(config, &args.listen).await?;
        // Scripts that asked for port 0 read the chosen address from stdout.
        println!("listening on http://{addr}/");
        let token = handle.shutdown_token();
        tokio::select! {
            _ = int.recv() => tracing::info!("Ctrl-C: shutting down"),
            _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
            _ = token.cancelled() => {}
        }
        handle.shutdown().await
    })
}
