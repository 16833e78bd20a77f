//! The update server in-process on 127.0.0.1:0, driven by reqwest and raw TCP:
//! every endpoint, every fault, bad input and concurrency.

use std::path::PathBuf;

use ab_updater::omaha::{ParseError, Request, Response, UpdateStatus};
use ab_updater::server::{
    FaultSpec, RecordKind, Releases, Server, ServerConfig, ServerHandle, MAX_REQUEST_BYTES,
};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const APP: &str = "{e96281a6-d1af-4bde-9a0a-97b76e56dc57}";

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

fn payload_bytes(name: &str) -> Vec<u8> {
    std::fs::read(fixtures().join("releases").join(name)).unwrap()
}

async fn start(faults: &[&str]) -> (String, ServerHandle) {
    let config = ServerConfig {
        releases: Releases::load(&fixtures().join("releases/releases.toml")).unwrap(),
        faults: faults
            .iter()
            .map(|f| f.parse::<FaultSpec>().unwrap())
            .collect(),
        events_log: None,
    };
    let (addr, handle) = Server::bind(config, "127.0.0.1:0").await.unwrap();
    (format!("http://{addr}"), handle)
}

/// The update_engine request of the golden fixture, as a client at `version`.
fn check_body(version: &str, delta_okay: bool) -> String {
    let mut req =
        Request::parse(&std::fs::read(fixtures().join("omaha/request-update-engine.xml")).unwrap())
            .unwrap();
    req.apps[0].version = version.to_owned();
    req.apps[0].delta_okay = delta_okay;
    req.to_xml()
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn post(base: &str, path: &str, body: impl Into<reqwest::Body>) -> (u16, Vec<u8>) {
    let resp = client()
        .post(format!("{base}{path}"))
        .header("content-type", "text/xml")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.bytes().await.unwrap().to_vec())
}

async fn check(base: &str, version: &str, delta_okay: bool) -> Response {
    let (status, body) = post(base, "/v1/update/", check_body(version, delta_okay)).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    Response::parse(&body).unwrap()
}

fn status_of(resp: &Response) -> UpdateStatus {
    resp.app(APP)
        .unwrap()
        .update_check
        .as_ref()
        .unwrap()
        .status
        .clone()
}

#[tokio::test]
async fn design_sample_request_gets_a_well_formed_offer() {
    let (base, handle) = start(&[]).await;
    for path in ["/v1/update/", "/v1/update", "/service/update2"] {
        // The golden update_engine request verbatim, only the version lowered.
        let text = std::fs::read_to_string(fixtures().join("omaha/request-update-engine.xml"))
            .unwrap()
            .replace("version=\"3815.2.0\"", "version=\"1.5.0\"");
        let (status, body) = post(&base, path, text).await;
        assert_eq!(status, 200);
        let resp = Response::parse(&body).unwrap();
        let app = resp.app(APP).unwrap();
        assert!(app.is_ok() && app.ping_ack);
        assert_eq!(app.event_acks, 1);
        let uc = app.update_check.as_ref().unwrap();
        assert_eq!(uc.status, UpdateStatus::Ok);
        let host = base.trim_start_matches("http://");
        assert_eq!(
            uc.payload_urls(),
            vec![format!("http://{host}/payloads/v2.payload")]
        );
        let m = uc.manifest.as_ref().unwrap();
        assert_eq!(m.version, "2.0.0");
        let bytes = payload_bytes("v2.payload");
        assert_eq!(m.packages[0].size, bytes.len() as u64);
        assert_eq!(
            m.packages[0].hash_sha256.as_deref(),
            Some(hex::encode(Sha256::digest(&bytes)).as_str())
        );
    }
    handle.shutdown().await.unwrap();
}

#[tokio::test]
async fn versions_deltas_tracks_and_unknown_apps() {
    let (base, handle) = start(&[]).await;
    assert_eq!(
        status_of(&check(&base, "2.0.0", false).await),
        UpdateStatus::NoUpdate
    );
    assert_eq!(
        status_of(&check(&base, "9.0", false).await),
        UpdateStatus::NoUpdate
    );
    let delta = check(&base, "1.0.0", true).await;
    let uc = delta.app(APP).unwrap().update_check.clone().unwrap();
    assert_eq!(
        uc.manifest.as_ref().unwrap().packages[0].name,
        "v1-to-v2.payload"
    );
    assert_eq!(
        uc.manifest
            .as_ref()
            .unwrap()
            .postinstall()
            .unwrap()
            .is_delta,
        Some(true)
    );
    let full = check(&base, "1.0.0", false).await;
    assert_eq!(
        full.app(APP)
            .unwrap()
            .update_check
            .as_ref()
            .unwrap()
            .manifest
            .as_ref()
            .unwrap()
            .packages[0]
            .name,
        "v2.payload"
    );

    let beta = check_body("1.0.0", false).replace("track=\"stable\"", "track=\"beta\"");
    let resp = Response::parse(&post(&base, "/v1/update/", beta).await.1).unwrap();
    assert_eq!(
        resp.app(APP)
            .unwrap()
            .update_check
            .as_ref()
            .unwrap()
            .manifest
            .as_ref()
            .unwrap()
            .version,
        "2.1.0"
    );

    let unknown = check_body("1.0.0", false).replace(APP, "{11111111-2222-3333-4444-555555555555}");
    let (status, body) = post(&base, "/v1/update/", unknown).await;
    assert_eq!(status, 200);
    let resp = Response::parse(&body).unwrap();
    assert_eq!(
        resp.apps[0].status.as_deref(),
        Some("error-unknownApplication")
    );
    assert_eq!(
        resp.apps[0].update_check.as_ref().unwrap().status,
        UpdateStatus::Error("error-internal".into())
    );
    handle.shutdown().await.unwrap();
}

#[tokio::test]
async fn events_are_recorded_in_order_and_logged_to_file() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("events.jsonl");
    let config = ServerConfig {
        releases: Releases::load(&fixtures().join("releases/releases.toml")).unwrap(),
        faults: Vec::new(),
        events_log: Some(log.clone()),
    };
    let (addr, handle) = Server::bind(config, "127.0.0.1:0").await.unwrap();
    let base = format!("http://{addr}");
    check(&base, "1.0.0", false).await;
    let mut report = Request::parse(check_body("1.0.0", false).as_bytes()).unwrap();
    report.apps[0].ping = None;
    report.apps[0].update_check = None;
    report.apps[0].events = vec![
        ab_updater::omaha::EventRequest {
            event_type: 13,
            event_result: 1,
            ..Default::default()
        },
        ab_updater::omaha::EventRequest {
            event_type: 3,
            event_result: 0,
            error_code: Some(44),
            ..Default::default()
        },
    ];
    let (status, body) = post(&base, "/v1/update/", report.to_xml()).await;
    assert_eq!(status, 200);
    assert_eq!(Response::parse(&body).unwrap().apps[0].event_acks, 2);
    let events = handle.events();
    let summary: Vec<_> = events
        .iter()
        .map(|e| (e.kind, e.event_type, e.event_result, e.error_code))
        .collect();
    assert_eq!(
        summary,
        vec![
            (RecordKind::Ping, None, None, None),
            (RecordKind::UpdateCheck, None, None, None),
            (RecordKind::Event, Some(3), Some(2), None),
            (RecordKind::Event, Some(13), Some(1), None),
            (RecordKind::Event, Some(3), Some(0), Some(44)),
        ]
    );
    assert!(events
        .iter()
        .all(|e| e.machine_id.as_deref() == Some("4b5a1c3f0f0e4a2d9c1e7a6b5d4c3b2a")));
    handle.shutdown().await.unwrap();
    let lines = std::fs::read_to_string(&log).unwrap();
    let from_file: Vec<ab_updater::server::EventRecord> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(from_file, events);
}

#[tokio::test]
async fn bad_request_bodies_are_refused() {
    let (base, handle) = start(&[]).await;
    let dtd = r#"<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]><request protocol="3.0"><app appid="&b;" version="1"/></request>"#;
    let entity = r#"<request protocol="3.0"><app appid="&xxe;" version="1"/></request>"#;
    for (body, want) in [
        ("not xml at all <", "not well-formed"),
        ("", "root element"),
        (dtd, "DOCTYPE"),
        (entity, "not well-formed"),
        (
            r#"<request protocol="3.0"><app version="1"/></request>"#,
            "request/app@appid",
        ),
    ] {
        let (status, reply) = post(&base, "/v1/update/", body.to_owned()).await;
        let reply = String::from_utf8_lossy(&reply);
        assert_eq!(status, 400, "{body}: {reply}");
        assert!(reply.contains(want), "{body}: {reply}");
    }
    let huge = vec![b' '; MAX_REQUEST_BYTES + 1];
    let (status, _) = post(&base, "/v1/update/", huge).await;
    assert_eq!(status, 413);
    // Nothing was recorded for refused requests.
    assert!(handle.events().is_empty());
    let resp = client()
        .get(format!("{base}/v1/update/"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 405);
    handle.shutdown().await.unwrap();
}

async fn get(base: &str, name: &str, range: Option<&str>) -> reqwest::Response {
    let mut req = client().get(format!("{base}/payloads/{name}"));
    if let Some(r) = range {
        req = req.header("range", r);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn payloads_are_served_with_ranges_etag_and_length() {
    let (base, handle) = start(&[]).await;
    let bytes = payload_bytes("v2.payload");
    let etag = format!("\"{}\"", hex::encode(Sha256::digest(&bytes)));

    let full = get(&base, "v2.payload", None).await;
    assert_eq!(full.status().as_u16(), 200);
    assert_eq!(
        full.headers()["content-length"],
        bytes.len().to_string().as_str()
    );
    assert_eq!(full.headers()["etag"], etag.as_str());
    assert_eq!(full.headers()["accept-ranges"], "bytes");
    assert_eq!(full.bytes().await.unwrap().as_ref(), bytes.as_slice());

    let head = client()
        .head(format!("{base}/payloads/v2.payload"))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status().as_u16(), 200);
    assert_eq!(
        head.headers()["content-length"],
        bytes.len().to_string().as_str()
    );
    assert_eq!(head.headers()["etag"], etag.as_str());

    // Resume-style: sequential ranges reassemble the file.
    let mut joined = Vec::new();
    let mut at = 0usize;
    while at < bytes.len() {
        let end = (at + 30_000).min(bytes.len()) - 1;
        let part = get(&base, "v2.payload", Some(&format!("bytes={at}-{end}"))).await;
        assert_eq!(part.status().as_u16(), 206);
        assert_eq!(
            part.headers()["content-range"],
            format!("bytes {at}-{end}/{}", bytes.len()).as_str()
        );
        assert_eq!(
            part.headers()["content-length"],
            (end - at + 1).to_string().as_str()
        );
        joined.extend_from_slice(&part.bytes().await.unwrap());
        at = end + 1;
    }
    assert_eq!(joined, bytes);

    let tail = get(&base, "v2.payload", Some("bytes=-100")).await;
    assert_eq!(tail.status().as_u16(), 206);
    assert_eq!(
        tail.bytes().await.unwrap().as_ref(),
        &bytes[bytes.len() - 100..]
    );

    let past = get(&base, "v2.payload", Some("bytes=70000-")).await;
    assert_eq!(past.status().as_u16(), 416);
    assert_eq!(past.headers()["content-range"], "bytes */70000");

    // Several ranges: the whole file, as RFC 9110 allows.
    let multi = get(&base, "v2.payload", Some("bytes=0-1,5-6")).await;
    assert_eq!(multi.status().as_u16(), 200);
    assert_eq!(multi.bytes().await.unwrap().len(), bytes.len());

    assert_eq!(
        get(&base, "nope.payload", None).await.status().as_u16(),
        404
    );
    assert_eq!(
        get(&base, "releases.toml", None).await.status().as_u16(),
        404
    );
    assert_eq!(
        get(&base, "..%2Freleases.toml", None)
            .await
            .status()
            .as_u16(),
        400
    );
    assert_eq!(get(&base, "..", None).await.status().as_u16(), 404);
    handle.shutdown().await.unwrap();
}

/// Send raw HTTP/1.1 bytes (no client-side path normalisation) and return the status line.
async fn raw_status(base: &str, request_line: &str) -> String {
    let addr = base.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("{request_line}\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    String::from_utf8_lossy(&out)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn path_traversal_never_leaves_the_payload_set() {
    let (base, handle) = start(&[]).await;
    for line in [
        "GET /payloads/../releases.toml HTTP/1.1",
        "GET /payloads/../../../../etc/passwd HTTP/1.1",
        "GET /payloads/%2e%2e/releases.toml HTTP/1.1",
        "GET /payloads/..%2freleases.toml HTTP/1.1",
        "GET /payloads/..%5creleases.toml HTTP/1.1",
        "GET /releases.toml HTTP/1.1",
    ] {
        let status = raw_status(&base, line).await;
        assert!(
            status.contains(" 400 ") || status.contains(" 404 "),
            "{line}: {status}"
        );
    }
    assert!(raw_status(&base, "GET /payloads/v2.payload HTTP/1.1")
        .await
        .contains(" 200 "));
    handle.shutdown().await.unwrap();
}

#[tokio::test]
async fn two_hundred_concurrent_clients_get_correct_answers() {
    let (base, handle) = start(&[]).await;
    let client = client();
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let (base, client) = (base.clone(), client.clone());
            tokio::spawn(async move {
                // Alternate current and outdated clients; every answer must match its asker.
                let (version, want_update) = if i % 2 == 0 {
                    ("1.0.0", true)
                } else {
                    ("2.0.0", false)
                };
                let mut req = Request::parse(check_body(version, false).as_bytes()).unwrap();
                req.apps[0].machine_id = Some(format!("machine-{i}"));
                let body = client
                    .post(format!("{base}/v1/update/"))
                    .body(req.to_xml())
                    .send()
                    .await
                    .unwrap()
                    .bytes()
                    .await
                    .unwrap();
                let resp = Response::parse(&body).unwrap();
                let status = resp
                    .app(APP)
                    .unwrap()
                    .update_check
                    .as_ref()
                    .unwrap()
                    .status
                    .clone();
                assert_eq!(status == UpdateStatus::Ok, want_update, "client {i}");
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let checks = handle
        .events()
        .into_iter()
        .filter(|e| e.kind == RecordKind::UpdateCheck)
        .count();
    assert_eq!(checks, 200);
    handle.shutdown().await.unwrap();
}

#[tokio::test]
async fn concurrent_downloads_of_the_same_file_are_identical() {
    let (base, handle) = start(&[]).await;
    let want = Sha256::digest(payload_bytes("v2.payload"));
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let base = base.clone();
            tokio::spawn(async move {
                Sha256::digest(get(&base, "v2.payload", None).await.bytes().await.unwrap())
            })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), want);
    }
    handle.shutdown().await.unwrap();
}

#[tokio::test]
async fn check_faults() {
    let bytes = payload_bytes("v2.payload");
    // http-500:2 hits only the first two update checks; event-only reports pass.
    let (base, handle) = start(&["http-500:2"]).await;
    assert_eq!(
        post(&base, "/v1/update/", check_body("1.0.0", false))
            .await
            .0,
        500
    );
    let mut report = Request::parse(check_body("1.0.0", false).as_bytes()).unwrap();
    report.apps[0].update_check = None;
    assert_eq!(post(&base, "/v1/update/", report.to_xml()).await.0, 200);
    assert_eq!(
        post(&base, "/v1/update/", check_body("1.0.0", false))
            .await
            .0,
        500
    );
    assert_eq!(
        status_of(&check(&base, "1.0.0", false).await),
        UpdateStatus::Ok
    );
    handle.shutdown().await.unwrap();

    let (base, handle) = start(&["wrong-sha256", "wrong-size@1"]).await;
    let resp = check(&base, "1.0.0", false).await;
    let m = resp
        .app(APP)
        .unwrap()
        .update_check
        .clone()
        .unwrap()
        .manifest
        .unwrap();
    assert_eq!(m.packages[0].size, bytes.len() as u64 + 1);
    assert_ne!(
        m.packages[0].hash_sha256.as_deref(),
        Some(hex::encode(Sha256::digest(&bytes)).as_str())
    );
    let m2 = check(&base, "1.0.0", false)
        .await
        .app(APP)
        .unwrap()
        .update_check
        .clone()
        .unwrap()
        .manifest
        .unwrap();
    assert_eq!(m2.packages[0].size, bytes.len() as u64);
    handle.shutdown().await.unwrap();

    let (base, handle) = start(&["noupdate@100%"]).await;
    assert_eq!(
        status_of(&check(&base, "1.0.0", false).await),
        UpdateStatus::NoUpdate
    );
    handle.shutdown().await.unwrap();

    let (base, handle) = start(&["malformed-xml@1", "huge-response:2M@1"]).await;
    // Both fire on the first check: the huge response wins (it replaces the body).
    let (status, body) = post(&base, "/v1/update/", check_body("1.0.0", false)).await;
    assert_eq!(status, 200);
    assert_eq!(body.len(), 2 << 20);
    assert!(matches!(
        Response::parse(&body),
        Err(ParseError::TooLarge { .. })
    ));
    handle.shutdown().await.unwrap();

    let (base, handle) = start(&["malformed-xml"]).await;
    let (status, body) = post(&base, "/v1/update/", check_body("1.0.0", false)).await;
    assert_eq!(status, 200);
    assert!(
        matches!(Response::parse(&body), Err(ParseError::Xml { .. })),
        "{}",
        String::from_utf8_lossy(&body)
    );
    handle.shutdown().await.unwrap();

    let (base, handle) = start(&["check/redirect-loop", "check/stall:0.05@1"]).await;
    let resp = client()
        .post(format!("{base}/v1/update/"))
        .body(check_body("1.0.0", false))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 307);
    assert_eq!(resp.headers()["location"], "/v1/update/");
    // A following client gives up on the loop.
    let err = reqwest::Client::new()
        .post(format!("{base}/v1/update/"))
        .body(check_body("1.0.0", false))
        .send()
        .await;
    assert!(err.unwrap_err().is_redirect());
    handle.shutdown().await.unwrap();
}

#[tokio::test]
async fn download_faults() {
    let bytes = payload_bytes("v2.payload");

    // drop-at: the first download dies after 1000 bytes, the second is whole.
    let (base, handle) = start(&["drop-at:1000@1"]).await;
    let resp = get(&base, "v2.payload", None).await;
    assert_eq!(
        resp.headers()["content-length"],
        bytes.len().to_string().as_str()
    );
    assert!(resp.bytes().await.is_err());
    assert_eq!(
        get(&base, "v2.payload", None)
            .await
            .bytes()
            .await
            .unwrap()
            .as_ref(),
        bytes.as_slice()
    );
    handle.shutdown().await.unwrap();

    let (base, handle) = start(&["corrupt-byte:40000", "throttle:1M"]).await;
    let got = get(&base, "v2.payload", Some("bytes=39990-40009"))
        .await
        .bytes()
        .await
        .unwrap();
    let mut want = bytes[39990..40010].to_vec();
    want[10] ^= 0xff;
    assert_eq!(got.as_ref(), want.as_slice());
    let whole = get(&base, "v2.payload", None).await.bytes().await.unwrap();
    let diffs: Vec<_> = (0..bytes.len()).filter(|&i| whole[i] != bytes[i]).collect();
    assert_eq!(diffs, vec![40000]);
    handle.shutdown().await.unwrap();

    let (base, handle) = start(&["truncate:1234", "no-range@1"]).await;
    let resp = get(&base, "v2.payload", Some("bytes=0-9")).await;
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.headers()["accept-ranges"], "none");
    assert_eq!(resp.bytes().await.unwrap().as_ref(), &bytes[..1234]);
    let resp = get(&base, "v2.payload", Some("bytes=1230-")).await;
    assert_eq!(resp.status().as_u16(), 206);
    assert_eq!(resp.headers()["content-range"], "bytes 1230-1233/1234");
    handle.shutdown().await.unwrap();

    // Counts are per fault: the first request consumes one of each.
    let (base, handle) = start(&["download/http-500:1", "redirect-loop@2", "stall:0.05@1"]).await;
    assert_eq!(get(&base, "v2.payload", None).await.status().as_u16(), 500);
    let resp = get(&base, "v2.payload", None).await;
    assert_eq!(resp.status().as_u16(), 307);
    assert_eq!(resp.headers()["location"], "/payloads/v2.payload");
    assert_eq!(
        get(&base, "v2.payload", None)
            .await
            .bytes()
            .await
            .unwrap()
            .as_ref(),
        bytes.as_slice()
    );
    // HEAD never consumes or suffers download faults.
    handle.shutdown().await.unwrap();
    let (base, handle) = start(&["download/http-500"]).await;
    let head = client()
        .head(format!("{base}/payloads/v2.payload"))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status().as_u16(), 200);
    handle.shutdown().await.unwrap();
}

#[tokio::test]
async fn shutdown_ends_stalled_and_slow_responses() {
    let (base, handle) = start(&["throttle:1", "check/stall:3600"]).await;
    // The slow download has started (headers arrived) before shutdown.
    let slow = get(&base, "v2.payload", None).await;
    assert_eq!(slow.status().as_u16(), 200);
    let stalled = tokio::spawn({
        let base = base.clone();
        async move {
            client()
                .post(format!("{base}/v1/update/"))
                .body(check_body("1.0.0", false))
                .send()
                .await
        }
    });
    // The check is recorded before its stall starts.
    while handle.events().is_empty() {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    handle.shutdown().await.unwrap();
    assert!(slow.bytes().await.is_err());
    let stalled = stalled.await.unwrap();
    assert!(stalled.is_err() || stalled.unwrap().status().as_u16() == 503);
}

#[tokio::test]
async fn payload_vanishing_after_startup_is_a_server_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("gone.payload"), b"soon gone").unwrap();
    let toml = format!("[[release]]\napp_id = \"{APP}\"\ntrack = \"stable\"\nversion = \"2\"\npayload = \"gone.payload\"\n");
    let config = ServerConfig {
        releases: Releases::from_toml(&toml, dir.path()).unwrap(),
        ..ServerConfig::default()
    };
    let (addr, handle) = Server::bind(config, "127.0.0.1:0").await.unwrap();
    std::fs::remove_file(dir.path().join("gone.payload")).unwrap();
    let resp = get(&format!("http://{addr}"), "gone.payload", None).await;
    assert_eq!(resp.status().as_u16(), 500);
    handle.shutdown().await.unwrap();
}
