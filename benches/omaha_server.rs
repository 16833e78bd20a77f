//! update-server throughput on loopback, with an in-process load generator:
//! Omaha update checks per second (many keep-alive connections) and payload
//! bytes per second to one client.
//!
//! `cargo bench --bench omaha_server` measures (targets: ≥ 5,000 checks/s and
//! ≥ 1 GB/s on 2 cores); without `--bench` (as `cargo test --all-targets`
//! runs it) it does a tiny smoke run and exits 0.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ab_updater::omaha::{Request, Response, UpdateStatus};
use ab_updater::server::{Releases, Server, ServerConfig};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

const APP: &str = "{e96281a6-d1af-4bde-9a0a-97b76e56dc57}";

struct Plan {
    check_connections: usize,
    check_duration: Duration,
    payload_bytes: usize,
    downloads: usize,
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let plan = if bench {
        Plan {
            check_connections: 64,
            check_duration: Duration::from_secs(5),
            payload_bytes: 512 << 20,
            downloads: 5,
        }
    } else {
        Plan {
            check_connections: 8,
            check_duration: Duration::from_millis(200),
            payload_bytes: 4 << 20,
            downloads: 1,
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(run(plan, bench));
}

fn write_payload(path: &Path, len: usize) {
    // Incompressible-looking bytes, written for real (not a sparse file).
    let mut file = std::fs::File::create(path).unwrap();
    let block = ab_updater::demo::images::noise(0x9e3779b97f4a7c15, 1 << 20);
    let mut left = len;
    while left > 0 {
        let n = left.min(block.len());
        file.write_all(&block[..n]).unwrap();
        left -= n;
    }
    file.sync_all().unwrap();
}

async fn run(plan: Plan, bench: bool) {
    let dir = tempfile::tempdir().unwrap();
    write_payload(&dir.path().join("big.payload"), plan.payload_bytes);
    let releases_file = dir.path().join("releases.toml");
    std::fs::write(
        &releases_file,
        format!("[[release]]\napp_id = \"{APP}\"\ntrack = \"stable\"\nversion = \"2.0.0\"\npayload = \"big.payload\"\n"),
    )
    .unwrap();
    let config = ServerConfig {
        releases: Releases::load(&releases_file).unwrap(),
        ..ServerConfig::default()
    };
    let (addr, handle) = Server::bind(config, "127.0.0.1:0").await.unwrap();

    let checks = update_checks(&format!("http://{addr}/v1/update/"), &plan).await;
    println!(
        "omaha_server: update checks: {:.0}/s ({} checks over {} keep-alive connections in {:.2} s; target >= 5000/s)",
        checks.0 as f64 / checks.1.as_secs_f64(),
        checks.0,
        plan.check_connections,
        checks.1.as_secs_f64()
    );

    let url = format!("http://{addr}/payloads/big.payload");
    let mut rates = Vec::new();
    for _ in 0..plan.downloads {
        rates.push(download(&url, plan.payload_bytes).await);
    }
    let best = rates.iter().cloned().fold(0.0, f64::max);
    let mean = rates.iter().sum::<f64>() / rates.len() as f64;
    println!(
        "omaha_server: payload to one client: best {:.2} GB/s, mean {:.2} GB/s ({} downloads of {} MiB; target >= 1 GB/s)",
        best / 1e9,
        mean / 1e9,
        plan.downloads,
        plan.payload_bytes >> 20
    );
    if !bench {
        println!("omaha_server: smoke run only; use `cargo bench --bench omaha_server` to measure");
    }
    handle.shutdown().await.unwrap();
}

/// Hammer the Omaha endpoint from `check_connections` tasks, each one
/// keep-alive connection, for `check_duration`; returns (answers, elapsed).
async fn update_checks(url: &str, plan: &Plan) -> (u64, Duration) {
    let mut req = Request::parse(include_bytes!(
        "../fixtures/omaha/request-update-engine.xml"
    ))
    .unwrap();
    req.apps[0].version = "1.0.0".into();
    let body = Bytes::from(req.to_xml());
    let done = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let tasks: Vec<_> = (0..plan.check_connections)
        .map(|_| {
            // One client per task: its pool keeps exactly one connection alive.
            let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
            let (url, body, done, count) =
                (url.to_owned(), body.clone(), done.clone(), count.clone());
            tokio::spawn(async move {
                let mut checked = false;
                while !done.load(Ordering::Relaxed) {
                    let request = hyper::Request::post(&url)
                        .header("content-type", "text/xml")
                        .body(Full::new(body.clone()))
                        .unwrap();
                    let resp = client.request(request).await.expect("update check");
                    assert_eq!(resp.status(), 200);
                    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
                    if !checked {
                        // Every task verifies its first answer in full.
                        let parsed = Response::parse(&bytes).unwrap();
                        assert_eq!(
                            parsed
                                .app(APP)
                                .unwrap()
                                .update_check
                                .as_ref()
                                .unwrap()
                                .status,
                            UpdateStatus::Ok
                        );
                        checked = true;
                    }
                    count.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    tokio::time::sleep(plan.check_duration).await;
    done.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    (count.load(Ordering::Relaxed), start.elapsed())
}

/// Download the whole payload once, counting bytes; returns bytes per second.
async fn download(url: &str, want: usize) -> f64 {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let start = Instant::now();
    let resp = client
        .request(
            hyper::Request::get(url)
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let mut got = 0usize;
    while let Some(frame) = body.frame().await {
        if let Some(data) = frame.unwrap().data_ref() {
            got += data.len();
        }
    }
    assert_eq!(got, want);
    got as f64 / start.elapsed().as_secs_f64()
}
