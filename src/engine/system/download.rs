//! Download a payload over HTTP(S) straight into the payload applier, which
//! writes the target slot. One pass, bounded memory: the network side hands
//! the received chunks, uncopied, to two blocking workers through short
//! channels: one owns the applier, the other computes the Omaha sha256 of
//! the whole file. Hashing on its own thread keeps the network side (which
//! also shares the machine with whatever serves it) from becoming the
//! bottleneck: the payload is hashed twice (whole file here, per operation
//! in the applier) and both run in parallel.
//!
//! Interruptions: a dropped connection or stall resumes with a `Range`
//! request from the exact byte reached (the applier keeps its state), within
//! each URL's failure budget, then the next URL. After an engine restart the
//! applier starts from the persisted checkpoint: the payload prefix (header,
//! manifest, signatures) is fetched again and re-verified, then the data
//! from the checkpoint's offset. The Omaha sha256 of the whole file can only
//! be checked when every byte went through one run; after a restart the
//! payload's signature, per-operation hashes and the final read-back of the
//! slot still guarantee integrity.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::checkpointer::Checkpointer;
use super::omaha::error_chain;
use super::stall::StallDetector;
use crate::engine::backend::{InstallError, ProgressSink};
use crate::engine::failure::{self, Failure};
use crate::engine::schedule::Failover;
use crate::engine::state::Offer;
use crate::io::Device;
use crate::payload::{Applier, ApplyError, Checkpoint, VerifiedImage};

/// Batches queued between the network and each worker (bounds memory).
const QUEUE_BATCHES: usize = 4;
/// Network chunks are gathered into batches of this size before they go to
/// the workers: fewer thread wake-ups. Both queues share the batches, so at
/// most (2 × 4 + 1) × 512 KiB = 4.5 MiB are in flight.
const BATCH_BYTES: usize = 512 << 10;
/// Report progress after at least this many new bytes...
const PROGRESS_BYTES: u64 = 1 << 20;
/// ... and this long since the last report (and at the end). Each report
/// updates the status file and the event stream: ten a second are plenty
/// for `updatectl watch`, and per MiB on a fast link cost more than the
/// hashing of that MiB (~20 ms per 256 MiB on loopback).
const PROGRESS_INTERVAL: Duration = Duration::from_millis(100);
/// Persist a checkpoint every this many bytes...
pub const CHECKPOINT_BYTES: u64 = 16 << 20;
/// ... or after this long with new bytes, whichever comes first (as
/// update_engine's one-second checkpoint frequency): on a slow link a byte
/// threshold alone would let a power cut throw away minutes of download.
/// Saving runs beside the apply (see [`Checkpointer`]), so frequent
/// checkpoints cost the download nothing and keep the final flush short.
pub const CHECKPOINT_INTERVAL_MS: u64 = 1000;
/// First delay between retries; doubles up to `RETRY_CAP_SECS`.
const RETRY_BASE_MS: u64 = 500;
const RETRY_CAP_SECS: u64 = 30;

/// Download behaviour.
#[derive(Debug, Clone)]
pub struct DownloadSettings {
    /// Consecutive failures allowed per URL before the next one.
    pub url_budget: u32,
    /// Stall window.
    pub stall_window: Duration,
    /// Minimum bytes per stall window.
    pub stall_min_bytes: u64,
    /// Also persist a checkpoint every this many payload bytes (`None`: only
    /// by time).
    pub checkpoint_bytes: Option<u64>,
    /// Persist a checkpoint when this much time passed since the last one
    /// and new bytes arrived.
    pub checkpoint_interval: Duration,
}

impl Default for DownloadSettings {
    fn default() -> Self {
        DownloadSettings {
            url_budget: 3,
            stall_window: Duration::from_secs(super::stall::STALL_WINDOW_SECS),
            stall_min_bytes: super::stall::STALL_MIN_BYTES,
            checkpoint_bytes: Some(CHECKPOINT_BYTES),
            checkpoint_interval: Duration::from_millis(CHECKPOINT_INTERVAL_MS),
        }
    }
}

/// Received chunks, shared (not copied) by the applier and the hasher.
type Batch = Arc<[Bytes]>;

enum Cmd {
    Data(Batch),
    Save,
    Finish,
}

enum WorkerEnd {
    Finished(Result<VerifiedImage, ApplyError>),
    Failed(ApplyError),
    Stopped,
}

/// The blocking side: owns the applier; saves a checkpoint when asked (in
/// the background when the slot allows, see [`Checkpointer`]) and, last of
/// all, when the network side goes away (shutdown).
fn spawn_worker<W, S>(
    mut applier: Applier<W, S>,
    checkpoint_path: PathBuf,
) -> (mpsc::Sender<Cmd>, tokio::task::JoinHandle<WorkerEnd>)
where
    W: Device + Send + 'static,
    S: std::io::Read + std::io::Seek + Send + 'static,
{
    let (tx, mut rx) = mpsc::channel::<Cmd>(QUEUE_BATCHES);
    let task = tokio::task::spawn_blocking(move || {
        // Dropped (which waits for its thread) on every way out of here.
        let mut checkpointer = Checkpointer::new(applier.second_handle(), checkpoint_path);
        while let Some(cmd) = rx.blocking_recv() {
            match cmd {
                Cmd::Data(batch) => {
                    for bytes in batch.iter() {
                        if let Err(e) = applier.write(bytes) {
                            return WorkerEnd::Failed(e);
                        }
                    }
                }
                Cmd::Save => checkpointer.request(&mut applier),
                Cmd::Finish => {
                    let readback = checkpointer.finish();
                    return WorkerEnd::Finished(applier.finish_with(readback));
                }
            }
        }
        checkpointer.save_final(&mut applier);
        WorkerEnd::Stopped
    });
    (tx, task)
}

/// The whole-file sha256 (the Omaha `hash_sha256`) on its own blocking
/// thread; its result is ready once the sender is dropped.
fn spawn_hasher() -> (mpsc::Sender<Batch>, tokio::task::JoinHandle<[u8; 32]>) {
    let (tx, mut rx) = mpsc::channel::<Batch>(QUEUE_BATCHES);
    let task = tokio::task::spawn_blocking(move || {
        let mut hasher = Sha256::new();
        while let Some(batch) = rx.blocking_recv() {
            for bytes in batch.iter() {
                hasher.update(bytes);
            }
        }
        hasher.finalize().into()
    });
    (tx, task)
}

fn apply_failure(e: &ApplyError) -> Failure {
    Failure::new(e.omaha_code(), format!("applying the payload: {e}"))
}

/// Why one HTTP attempt ended early.
enum Attempt {
    /// Worth retrying (network, stall, HTTP error): the message says why.
    Retry(String),
    /// Give up at once.
    Fatal(InstallError),
}

/// The network side of one install.
pub struct Download<'a> {
    /// HTTP client (no total timeout: payloads are large; stalls are detected).
    pub http: &'a reqwest::Client,
    /// What to fetch.
    pub offer: &'a Offer,
    /// Behaviour.
    pub settings: &'a DownloadSettings,
    /// Progress reports.
    pub progress: &'a ProgressSink,
    /// Shutdown.
    pub cancel: &'a CancellationToken,
}

struct Feed {
    tx: mpsc::Sender<Cmd>,
    /// To the whole-file hasher; `None` after a resume (not every byte
    /// passes through this run).
    hash_tx: Option<mpsc::Sender<Batch>>,
    /// Received chunks not yet handed to the workers...
    pending: Vec<Bytes>,
    /// ... and their total length.
    pending_len: usize,
    /// Next payload offset to fetch.
    pos: u64,
    /// Bytes received over the network, including any the server resent.
    network_bytes: u64,
    /// `network_bytes` at the last progress report.
    reported_network: u64,
    last_progress: u64,
    last_progress_at: tokio::time::Instant,
    last_checkpoint: u64,
    last_checkpoint_at: tokio::time::Instant,
}

impl Download<'_> {
    /// Stream the payload into `applier`, resuming per `checkpoint`, and
    /// verify it. The worker saves checkpoints in `checkpoint_path`.
    pub async fn run<W, S>(
        &self,
        applier: Applier<W, S>,
        checkpoint: Option<Checkpoint>,
        checkpoint_path: PathBuf,
    ) -> Result<VerifiedImage, InstallError>
    where
        W: Device + Send + 'static,
        S: std::io::Read + std::io::Seek + Send + 'static,
    {
        // Declared first, so it runs last, on every way out.
        let _release = ReleaseFreedMemory;
        let size = self.offer.size;
        let (tx, worker) = spawn_worker(applier, checkpoint_path);
        let (hash_tx, hasher) = match checkpoint {
            None => {
                let (hash_tx, hasher) = spawn_hasher();
                (Some(hash_tx), Some(hasher))
            }
            Some(_) => (None, None),
        };
        // Segments of the payload to fetch, in order.
        let segments = match &checkpoint {
            Some(cp) if cp.prefix_len <= cp.offset && cp.offset <= size => {
                info!(
                    offset = cp.offset,
                    "resuming the download from the checkpoint"
                );
                vec![(0, cp.prefix_len), (cp.offset, size)]
            }
            _ => vec![(0, size)],
        };
        let mut feed = Feed {
            tx,
            hash_tx,
            pending: Vec::new(),
            pending_len: 0,
            pos: 0,
            network_bytes: 0,
            reported_network: 0,
            last_progress: 0,
            last_progress_at: tokio::time::Instant::now(),
            last_checkpoint: 0,
            last_checkpoint_at: tokio::time::Instant::now(),
        };
        let result = self.fetch_all(&segments, &mut feed).await;
        let Feed { tx, hash_tx, .. } = feed;
        // The hasher ends once it has every byte.
        drop(hash_tx);
        match result {
            Ok(()) => {}
            Err(e) => {
                drop(tx);
                return Err(match worker.await {
                    Ok(WorkerEnd::Failed(apply)) => InstallError::Failed(apply_failure(&apply)),
                    _ => e,
                });
            }
        }
        self.progress.downloaded().await;
        // Finish first: an operation that failed its hash (the more precise
        // error) must win over the whole-file hash below.
        let _ = tx.send(Cmd::Finish).await;
        drop(tx);
        let image = match worker.await {
            Ok(WorkerEnd::Finished(Ok(image))) => image,
            Ok(WorkerEnd::Finished(Err(e))) | Ok(WorkerEnd::Failed(e)) => {
                return Err(InstallError::Failed(apply_failure(&e)))
            }
            Ok(WorkerEnd::Stopped) | Err(_) => {
                return Err(InstallError::Failed(Failure::new(
                    failure::ERROR,
                    "the payload applier stopped unexpectedly",
                )))
            }
        };
        if let Some(hasher) = hasher {
            let Ok(digest) = hasher.await else {
                return Err(InstallError::Failed(Failure::new(
                    failure::ERROR,
                    "the payload hasher stopped unexpectedly",
                )));
            };
            let actual = hex::encode(digest);
            if actual != self.offer.sha256_hex {
                return Err(InstallError::Failed(Failure::new(
                    failure::PAYLOAD_HASH_MISMATCH,
                    format!(
                        "the payload's sha256 is {actual} but the update server announced {}",
                        self.offer.sha256_hex
                    ),
                )));
            }
        }
        Ok(image)
    }

    async fn fetch_all(
        &self,
        segments: &[(u64, u64)],
        feed: &mut Feed,
    ) -> Result<(), InstallError> {
        let mut failover = Failover::new(self.offer.urls.clone(), self.settings.url_budget);
        let mut failures = 0u32;
        for &(start, end) in segments {
            feed.pos = start;
            while feed.pos < end {
                let Some(url) = failover.current().map(str::to_string) else {
                    return Err(InstallError::Failed(Failure::new(
                        failure::DOWNLOAD_TRANSFER,
                        "every payload URL failed too often; the next check retries",
                    )));
                };
                let before = feed.pos;
                let result = self.fetch(&url, end, feed).await;
                // Whatever arrived is good: it goes to the applier before
                // a retry continues after it.
                let result = match (result, flush(feed).await) {
                    (Err(Attempt::Fatal(e)), _) => Err(Attempt::Fatal(e)),
                    (_, Err(e)) => Err(e),
                    (r, Ok(())) => r,
                };
                match result {
                    Ok(()) => {}
                    Err(Attempt::Fatal(e)) => return Err(e),
                    Err(Attempt::Retry(why)) => {
                        if feed.pos > before {
                            failover.record_progress();
                            failures = 0;
                        }
                        warn!(url = %url, offset = feed.pos, error = %why, "payload download interrupted; retrying");
                        failover.record_failure();
                        failures += 1;
                        let delay = Duration::from_millis(
                            RETRY_BASE_MS << failures.min(8).saturating_sub(1),
                        )
                        .min(Duration::from_secs(RETRY_CAP_SECS));
                        tokio::select! {
                            () = self.cancel.cancelled() => return Err(InstallError::Cancelled),
                            () = tokio::time::sleep(delay) => {}
                        }
                        if failover.current().is_none() {
                            return Err(InstallError::Failed(Failure::new(
                                failure::DOWNLOAD_TRANSFER,
                                format!("downloading the payload failed on every URL; last error: {why}"),
                            )));
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// One HTTP request for `[feed.pos, end)` of the payload.
    async fn fetch(&self, url: &str, end: u64, feed: &mut Feed) -> Result<(), Attempt> {
        let size = self.offer.size;
        let start = feed.pos;
        let mut request = self.http.get(url);
        let ranged = start > 0 || end < size;
        if ranged {
            request = request.header(reqwest::header::RANGE, format!("bytes={start}-{}", end - 1));
        }
        // A server that never answers is a stall too.
        let window = self.settings.stall_window;
        let response = tokio::select! {
            () = self.cancel.cancelled() => return Err(Attempt::Fatal(InstallError::Cancelled)),
            r = tokio::time::timeout(window, request.send()) => match r {
                Err(_) => return Err(Attempt::Retry(format!(
                    "no answer from {url} within {} s", window.as_secs()
                ))),
                Ok(r) => r.map_err(|e| Attempt::Retry(error_chain(&e)))?,
            },
        };
        let status = response.status();
        // Bytes of the body to skip: a server that ignores Range sends it all.
        let mut skip = 0u64;
        match status.as_u16() {
            206 => {
                let range = response
                    .headers()
                    .get(reqwest::header::CONTENT_RANGE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(parse_content_range);
                match range {
                    Some((first, total)) if first == start && total.is_none_or(|t| t == size) => {}
                    Some((_, Some(total))) if total != size => {
                        return Err(Attempt::Fatal(size_mismatch(total, size)));
                    }
                    _ => {
                        return Err(Attempt::Retry(format!(
                            "HTTP 206 with an unexpected Content-Range from {url}"
                        )))
                    }
                }
            }
            200 => {
                if let Some(len) = response.content_length() {
                    if len != size {
                        return Err(Attempt::Fatal(size_mismatch(len, size)));
                    }
                }
                skip = start;
            }
            _ => return Err(Attempt::Retry(format!("HTTP {status} from {url}"))),
        }
        let mut stream = response.bytes_stream();
        let mut stall = StallDetector::new(
            self.settings.stall_window,
            self.settings.stall_min_bytes,
            Instant::now(),
        );
        while feed.pos < end {
            let next = tokio::select! {
                () = self.cancel.cancelled() => return Err(Attempt::Fatal(InstallError::Cancelled)),
                next = tokio::time::timeout_at(stall.deadline(), stream.next()) => next,
            };
            let mut chunk = match next {
                Err(_) => {
                    stall.feed(Instant::now(), 0).map_err(Attempt::Retry)?;
                    continue;
                }
                Ok(None) => {
                    return Err(Attempt::Retry(format!(
                        "connection closed at byte {} of {size}",
                        feed.pos
                    )))
                }
                Ok(Some(Err(e))) => return Err(Attempt::Retry(error_chain(&e))),
                Ok(Some(Ok(chunk))) => chunk,
            };
            stall
                .feed(Instant::now(), chunk.len() as u64)
                .map_err(Attempt::Retry)?;
            feed.network_bytes += chunk.len() as u64;
            if skip > 0 {
                let n = skip.min(chunk.len() as u64);
                skip -= n;
                chunk = chunk.slice(n as usize..);
            }
            let room = end - feed.pos;
            if chunk.len() as u64 > room {
                if end == size && !ranged {
                    return Err(Attempt::Fatal(InstallError::Failed(Failure::new(
                        failure::PAYLOAD_SIZE_MISMATCH,
                        format!("the payload is longer than the {size} bytes the update server announced"),
                    ))));
                }
                chunk = chunk.slice(..room as usize);
            }
            if chunk.is_empty() {
                continue;
            }
            self.push(feed, chunk).await?;
        }
        Ok(())
    }

    async fn push(&self, feed: &mut Feed, chunk: Bytes) -> Result<(), Attempt> {
        let n = chunk.len() as u64;
        feed.pending_len += chunk.len();
        feed.pending.push(chunk);
        feed.pos += n;
        if feed.pending_len >= BATCH_BYTES {
            flush(feed).await?;
        }
        let unsaved = feed.pos - feed.last_checkpoint;
        if self.settings.checkpoint_bytes.is_some_and(|b| unsaved >= b)
            || (unsaved > 0
                && feed.last_checkpoint_at.elapsed() >= self.settings.checkpoint_interval)
        {
            flush(feed).await?;
            feed.last_checkpoint = feed.pos;
            feed.last_checkpoint_at = tokio::time::Instant::now();
            let _ = feed.tx.send(Cmd::Save).await;
        }
        if (feed.pos - feed.last_progress >= PROGRESS_BYTES
            && feed.last_progress_at.elapsed() >= PROGRESS_INTERVAL)
            || feed.pos == self.offer.size
        {
            feed.last_progress = feed.pos;
            feed.last_progress_at = tokio::time::Instant::now();
            let delta = feed.network_bytes - feed.reported_network;
            feed.reported_network = feed.network_bytes;
            self.progress.bytes(feed.pos, delta).await;
        }
        Ok(())
    }
}

/// Hand the gathered chunks to the applier and the hasher.
async fn flush(feed: &mut Feed) -> Result<(), Attempt> {
    if feed.pending.is_empty() {
        return Ok(());
    }
    let batch: Batch = std::mem::take(&mut feed.pending).into();
    feed.pending_len = 0;
    if let Some(hash_tx) = &feed.hash_tx {
        // The hasher only stops when its sender is dropped.
        let _ = hash_tx.send(batch.clone()).await;
    }
    if feed.tx.send(Cmd::Data(batch)).await.is_err() {
        // The worker stopped on an apply error; the caller collects it.
        return Err(Attempt::Fatal(InstallError::Failed(Failure::new(
            failure::ERROR,
            "the payload applier stopped",
        ))));
    }
    Ok(())
}

/// When dropped, gives the free heap pages the download left behind back to
/// the system: an idle daemon (waiting for its reboot window, say) should
/// not keep them.
struct ReleaseFreedMemory;

impl Drop for ReleaseFreedMemory {
    fn drop(&mut self) {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        // SAFETY: malloc_trim only returns free memory to the system.
        unsafe {
            libc::malloc_trim(0);
        }
    }
}

fn size_mismatch(announced_by_http: u64, size: u64) -> InstallError {
    InstallError::Failed(Failure::new(
        failure::PAYLOAD_SIZE_MISMATCH,
        format!("the payload is {announced_by_http} bytes but the update server announced {size}"),
    ))
}

/// `bytes FIRST-LAST/TOTAL` → (FIRST, TOTAL or None for `*`).
pub fn parse_content_range(value: &str) -> Option<(u64, Option<u64>)> {
    let rest = value.trim().strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (first, last) = range.split_once('-')?;
    let first: u64 = first.trim().parse().ok()?;
    let last: u64 = last.trim().parse().ok()?;
    if last < first {
        return None;
    }
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse().ok()?),
    };
    Some((first, total))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payload::{build_payload, keys::load_signing_key, BuildOptions};
    use crate::server::{PayloadFile, Releases, Server, ServerConfig};
    use rand::SeedableRng;
    use std::io::{Cursor, Read, Seek, SeekFrom, Write};

    /// A slot whose writes fail with `errno` after `room` bytes were
    /// written: ENOSPC for a full disk, EIO/ENODEV for one that went away.
    struct FailingDisk {
        data: Cursor<Vec<u8>>,
        room: u64,
        errno: i32,
    }

    impl Read for FailingDisk {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            self.data.read(buf)
        }
    }

    impl Write for FailingDisk {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if self.room < buf.len() as u64 {
                return Err(std::io::Error::from_raw_os_error(self.errno));
            }
            self.room -= buf.len() as u64;
            self.data.write(buf)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Seek for FailingDisk {
        fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
            self.data.seek(pos)
        }
    }

    impl Device for FailingDisk {
        fn sync(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_disk_that_fills_up_mid_write_is_a_write_error() {
        let f = install_onto_failing_disk(libc::ENOSPC).await;
        assert_eq!(f.code, failure::WRITE_ERROR, "{f}");
    }

    #[tokio::test]
    async fn a_disk_that_disappears_mid_write_is_a_write_error() {
        for errno in [libc::EIO, libc::ENODEV] {
            let f = install_onto_failing_disk(errno).await;
            assert_eq!(f.code, failure::WRITE_ERROR, "errno {errno}: {f}");
            let os_text = std::io::Error::from_raw_os_error(errno).to_string();
            assert!(f.message.contains(&os_text), "errno {errno}: {f}");
        }
    }

    /// Download a 3 MiB image's payload into a slot that fails after 1 MiB.
    async fn install_onto_failing_disk(errno: i32) -> Failure {
        let (result, _) = install_onto(1 << 20, errno).await;
        let err = result.unwrap_err();
        let InstallError::Failed(f) = err else {
            panic!("expected a failure, got {err:?}");
        };
        f
    }

    #[tokio::test]
    async fn progress_is_reported_at_most_every_100_ms_and_at_the_end() {
        let started = tokio::time::Instant::now();
        let (result, reports) = install_onto(u64::MAX, 0).await;
        let elapsed = started.elapsed();
        let image = result.unwrap();
        assert_eq!(image.size, 3 << 20);
        let (&last, rest) = reports.split_last().expect("at least the final report");
        assert!(
            last > 3 << 20,
            "the last report is the whole payload: {reports:?}"
        );
        assert_eq!(reports.iter().filter(|&&r| r == last).count(), 1);
        // Every report before the last one is at least 1 MiB after the
        // previous and came after 100 ms: no more than the time allows.
        let allowed = (elapsed.as_millis() / 100) as usize;
        assert!(rest.len() <= allowed, "{reports:?} in {elapsed:?}");
        assert!(reports
            .windows(2)
            .all(|w| w[1] >= w[0] + (1 << 20) || w[1] == last));
    }

    /// Download a 3 MiB image's payload into a slot that fails with `errno`
    /// after `room` bytes; the result and the offsets progress reported.
    async fn install_onto(
        room: u64,
        errno: i32,
    ) -> (Result<VerifiedImage, InstallError>, Vec<u64>) {
        let dir = tempfile::tempdir().unwrap();
        // Incompressible: the payload is a little over 3 MiB.
        let mut image = vec![0u8; 3 << 20];
        rand::RngCore::fill_bytes(&mut rand::rngs::StdRng::seed_from_u64(5), &mut image);
        std::fs::write(dir.path().join("v2.img"), &image).unwrap();
        let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let key = load_signing_key(&repo.join("fixtures/keys/insecure-test.key")).unwrap();
        let opts = BuildOptions {
            version: "2.0.0".into(),
            compatible: "amd64-usr".into(),
            epoch: 0,
            expires: None,
            op_size: crate::payload::DEFAULT_OP_SIZE,
            source_version: None,
        };
        let payload = dir.path().join("v2.payload");
        build_payload(&dir.path().join("v2.img"), None, &[key], &opts, &payload).unwrap();
        let file = PayloadFile::from_path(&payload).unwrap();
        let releases = Releases::from_toml(
            "[[release]]\napp_id = \"{e96281a6-d1af-4bde-9a0a-97b76e56dc57}\"\ntrack = \"stable\"\nversion = \"2.0.0\"\npayload = \"v2.payload\"\n",
            dir.path(),
        )
        .unwrap();
        let config = ServerConfig {
            releases,
            ..ServerConfig::default()
        };
        let (addr, server) = Server::bind(config, "127.0.0.1:0").await.unwrap();
        let offer = Offer {
            version: "2.0.0".into(),
            urls: vec![format!("http://{addr}/payloads/v2.payload")],
            size: file.size,
            sha256_hex: file.sha256_hex(),
        };
        let (keys, policy) = crate::testing::insecure_test_trust();
        let slot = FailingDisk {
            data: Cursor::new(vec![0; 4 << 20]),
            room,
            errno,
        };
        let applier: Applier<FailingDisk, Cursor<Vec<u8>>> =
            Applier::new(slot, None, keys, policy, None);
        let (tx, mut rx) = mpsc::channel(16);
        let reports = tokio::spawn(async move {
            let mut reports = Vec::new();
            while let Some(msg) = rx.recv().await {
                if let crate::engine::actor::Msg::Progress { bytes, .. } = msg {
                    reports.push(bytes);
                }
            }
            reports
        });
        let progress = ProgressSink { tx };
        let cancel = CancellationToken::new();
        let settings = DownloadSettings::default();
        let http = super::super::omaha::http_client(None).unwrap();
        let download = Download {
            http: &http,
            offer: &offer,
            settings: &settings,
            progress: &progress,
            cancel: &cancel,
        };
        let result = download
            .run(applier, None, dir.path().join("checkpoint.json"))
            .await;
        server.shutdown().await.unwrap();
        drop(progress);
        (result, reports.await.unwrap())
    }

    #[test]
    fn content_range_parsing() {
        assert_eq!(
            parse_content_range("bytes 10-19/100"),
            Some((10, Some(100)))
        );
        assert_eq!(parse_content_range("bytes 0-0/*"), Some((0, None)));
        assert_eq!(parse_content_range("bytes 5-4/100"), None);
        assert_eq!(parse_content_range("items 0-1/2"), None);
        assert_eq!(parse_content_range("bytes x-1/2"), None);
        assert_eq!(parse_content_range("bytes 0-1/x"), None);
    }
}
