//! The Omaha endpoint: `POST /v1/update/` (and `/service/update2`).
//! [`answer`] is the pure decision; [`handle`] adds HTTP, the events log and faults.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response as HttpResponse};
use chrono::Timelike;

use super::faults::{FaultKind, Target};
use super::releases::Releases;
use super::{codebase, common_fault_answer, AppState};
use crate::omaha::{
    Action, AppRequest, AppResponse, DayStart, Manifest, Package, Request, Response,
    UpdateCheckResponse, UpdateStatus,
};
use crate::version::OsVersion;

/// Name in `response@server`.
pub const SERVER_NAME: &str = "update-server";

/// Deliberate lies the check faults ask for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tweaks {
    /// Answer `noupdate` regardless of versions.
    pub noupdate: bool,
    /// Offer a sha256 that does not match the payload.
    pub wrong_sha256: bool,
    /// Offer the payload size plus one.
    pub wrong_size: bool,
}

/// The Omaha answer to `request`: per app, acks for its ping and events and,
/// when it asked, `noupdate` (client current or newer), `ok` with the full
/// payload (or the delta for its version when it said `delta_okay`), or an
/// error status for unknown app ids, tracks and unparsable versions.
pub fn answer(
    request: &Request,
    releases: &Releases,
    codebase: &str,
    elapsed_seconds: u32,
    tweaks: Tweaks,
) -> Response {
    Response {
        protocol: crate::omaha::PROTOCOL_VERSION.to_owned(),
        server: Some(SERVER_NAME.to_owned()),
        day_start: Some(DayStart {
            elapsed_seconds: Some(elapsed_seconds.to_string()),
            elapsed_days: None,
        }),
        apps: request
            .apps
            .iter()
            .map(|app| answer_app(app, releases, codebase, tweaks))
            .collect(),
    }
}

fn error_check(status: &str) -> UpdateCheckResponse {
    UpdateCheckResponse {
        status: UpdateStatus::Error(status.to_owned()),
        urls: Vec::new(),
        manifest: None,
    }
}

fn answer_app(
    app: &AppRequest,
    releases: &Releases,
    codebase: &str,
    tweaks: Tweaks,
) -> AppResponse {
    let mut out = AppResponse {
        app_id: app.app_id.clone(),
        status: Some("ok".to_owned()),
        ping_ack: app.ping.is_some(),
        event_acks: app.events.len(),
        update_check: None,
    };
    // Same statuses as Nebraska, so clients written against it behave alike.
    if releases.for_app(&app.app_id).next().is_none() {
        out.status = Some("error-unknownApplication".to_owned());
        out.update_check = app
            .update_check
            .as_ref()
            .map(|_| error_check("error-internal"));
        return out;
    }
    if app.update_check.is_none() {
        return out;
    }
    let track = app.track.as_deref().unwrap_or_default();
    let Some(release) = releases.find(&app.app_id, track) else {
        out.status = Some("error-unknownApplicationOrGroup".to_owned());
        out.update_check = Some(error_check("error-internal"));
        return out;
    };
    let Ok(client) = app.version.parse::<OsVersion>() else {
        out.status = Some("error-invalidVersion".to_owned());
        out.update_check = Some(error_check("error-internal"));
        return out;
    };
    if tweaks.noupdate || client >= release.version {
        out.update_check = Some(UpdateCheckResponse {
            status: UpdateStatus::NoUpdate,
            urls: Vec::new(),
            manifest: None,
        });
        return out;
    }
    let delta = app
        .delta_okay
        .then(|| release.delta_from(&client))
        .flatten();
    let payload = delta.unwrap_or(&release.payload);
    let mut sha256 = payload.sha256;
    if tweaks.wrong_sha256 {
        sha256[0] ^= 0xff;
    }
    let b64 = |bytes: &[u8]| {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(bytes)
    };
    out.update_check = Some(UpdateCheckResponse {
        status: UpdateStatus::Ok,
        urls: vec![codebase.to_owned()],
        manifest: Some(Manifest {
            version: release.version.to_string(),
            packages: vec![Package {
                name: payload.name.clone(),
                size: payload.size + u64::from(tweaks.wrong_size),
                hash: Some(payload.sha1_base64()),
                hash_sha256: Some(hex::encode(sha256)),
                required: true,
                fp: None,
            }],
            actions: vec![Action {
                event: "postinstall".to_owned(),
                sha256: Some(b64(&sha256)),
                display_version: Some(release.version.to_string()),
                needs_admin: Some(false),
                is_delta: Some(delta.is_some()),
                disable_payload_backoff: Some(true),
                ..Action::default()
            }],
        }),
    });
    out
}

/// `POST /v1/update/`: parse, record, apply check faults, answer.
pub(super) async fn handle(
    State(state): State<Arc<AppState>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> HttpResponse {
    let request = match Request::parse(&body) {
        Ok(r) => r,
        Err(err) => {
            tracing::info!(error = %err, "refusing malformed Omaha request");
            return (
                StatusCode::BAD_REQUEST,
                format!("malformed Omaha request: {err}\n"),
            )
                .into_response();
        }
    };
    let now = chrono::Utc::now();
    state
        .events
        .append(super::events::records_of(&request, &now.to_rfc3339()));
    let faults = if request.apps.iter().any(|a| a.update_check.is_some()) {
        state.faults.fire(Target::Check)
    } else {
        Vec::new()
    };
    let mut tweaks = Tweaks::default();
    let mut broken_xml = false;
    let mut huge = None;
    if let Some(answer) = common_fault_answer(&state, &faults, &uri).await {
        return answer;
    }
    for fault in &faults {
        match *fault {
            FaultKind::NoUpdate => tweaks.noupdate = true,
            FaultKind::WrongSha256 => tweaks.wrong_sha256 = true,
            FaultKind::WrongSize => tweaks.wrong_size = true,
            FaultKind::MalformedXml => broken_xml = true,
            FaultKind::HugeResponse(n) => huge = Some(n),
            _ => {}
        }
    }
    if let Some(len) = huge {
        return huge_response(len);
    }
    let base = codebase(&state, &headers);
    let xml = answer(
        &request,
        &state.releases,
        &base,
        now.num_seconds_from_midnight(),
        tweaks,
    )
    .to_xml();
    let body = if broken_xml {
        // Cut mid-document and add a stray '<': not well-formed by any reading.
        let mut cut = xml.into_bytes();
        cut.truncate(cut.len() / 2);
        cut.extend_from_slice(b"<<");
        cut
    } else {
        xml.into_bytes()
    };
    ([(header::CONTENT_TYPE, "text/xml; charset=utf-8")], body).into_response()
}

static PADDING: [u8; 64 * 1024] = [b' '; 64 * 1024];

/// A `len`-byte document (an open `<response>` followed by a comment of
/// spaces), streamed so the server never holds it in memory.
fn huge_response(len: u64) -> HttpResponse {
    let prefix: &'static [u8] =
        b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<response protocol=\"3.0\"><!--";
    let first = Bytes::from_static(&prefix[..prefix.len().min(len as usize)]);
    let rest = len - first.len() as u64;
    let chunks = futures_util::stream::unfold((Some(first), rest), |(first, left)| async move {
        if let Some(f) = first {
            return Some((Ok::<_, std::io::Error>(f), (None, left)));
        }
        if left == 0 {
            return None;
        }
        let n = left.min(PADDING.len() as u64) as usize;
        Some((
            Ok(Bytes::from_static(&PADDING[..n])),
            (None, left - n as u64),
        ))
    });
    (
        [
            (header::CONTENT_TYPE, "text/xml; charset=utf-8".to_owned()),
            (header::CONTENT_LENGTH, len.to_string()),
        ],
        Body::from_stream(chunks),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    const APP: &str = "{e96281a6-d1af-4bde-9a0a-97b76e56dc57}";

    fn releases() -> (tempfile::TempDir, Releases) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("full.payload"), b"full").unwrap();
        std::fs::write(dir.path().join("delta.payload"), b"dd").unwrap();
        let toml = format!(
            "[[release]]\napp_id = \"{APP}\"\ntrack = \"stable\"\nversion = \"3815.2.0\"\npayload = \"full.payload\"\n[[release.delta]]\nfrom = \"3760.1.0\"\npayload = \"delta.payload\"\n"
        );
        let r = Releases::from_toml(&toml, dir.path()).unwrap();
        (dir, r)
    }

    fn request(version: &str, delta_okay: bool) -> Request {
        let mut req = Request::parse(include_bytes!(
            "../../fixtures/omaha/request-update-engine.xml"
        ))
        .unwrap();
        req.apps[0].version = version.to_owned();
        req.apps[0].delta_okay = delta_okay;
        req
    }

    fn check(resp: &Response) -> &UpdateCheckResponse {
        resp.apps[0].update_check.as_ref().unwrap()
    }

    #[test]
    fn current_or_newer_clients_get_noupdate() {
        let (_d, r) = releases();
        for v in ["3815.2.0", "3815.2.1", "4000"] {
            let resp = answer(
                &request(v, false),
                &r,
                "http://h/payloads/",
                0,
                Tweaks::default(),
            );
            assert_eq!(check(&resp).status, UpdateStatus::NoUpdate, "{v}");
            assert!(resp.apps[0].ping_ack);
            assert_eq!(resp.apps[0].event_acks, 1);
        }
    }

    #[test]
    fn older_clients_get_the_full_payload_or_their_delta() {
        let (_d, r) = releases();
        let full = r.payload("full.payload").unwrap();
        let resp = answer(
            &request("1.0.0", true),
            &r,
            "http://h/payloads/",
            5,
            Tweaks::default(),
        );
        let c = check(&resp);
        assert_eq!(c.status, UpdateStatus::Ok);
        assert_eq!(c.payload_urls(), vec!["http://h/payloads/full.payload"]);
        let m = c.manifest.as_ref().unwrap();
        assert_eq!(m.version, "3815.2.0");
        assert_eq!(m.packages[0].size, 4);
        assert_eq!(
            m.packages[0].hash.as_deref(),
            Some(full.sha1_base64().as_str())
        );
        assert_eq!(
            m.packages[0].hash_sha256.as_deref(),
            Some(full.sha256_hex().as_str())
        );
        assert_eq!(
            m.postinstall().unwrap().sha256.as_deref(),
            Some(full.sha256_base64().as_str())
        );
        assert_eq!(m.postinstall().unwrap().is_delta, Some(false));
        assert_eq!(
            resp.day_start.as_ref().unwrap().elapsed_seconds.as_deref(),
            Some("5")
        );

        let delta = answer(
            &request("3760.1.0", true),
            &r,
            "http://h/payloads/",
            0,
            Tweaks::default(),
        );
        let m = check(&delta).manifest.clone().unwrap();
        assert_eq!(m.packages[0].name, "delta.payload");
        assert_eq!(m.postinstall().unwrap().is_delta, Some(true));

        let no_delta = answer(
            &request("3760.1.0", false),
            &r,
            "http://h/payloads/",
            0,
            Tweaks::default(),
        );
        assert_eq!(
            check(&no_delta).manifest.as_ref().unwrap().packages[0].name,
            "full.payload"
        );
        // The answer survives its own parser.
        assert_eq!(Response::parse(delta.to_xml().as_bytes()).unwrap(), delta);
    }

    #[test]
    fn tweaks_lie_as_asked() {
        let (_d, r) = releases();
        let full = r.payload("full.payload").unwrap();
        let t = Tweaks {
            wrong_sha256: true,
            wrong_size: true,
            noupdate: false,
        };
        let resp = answer(&request("1.0.0", false), &r, "http://h/payloads/", 0, t);
        let m = check(&resp).manifest.clone().unwrap();
        assert_eq!(m.packages[0].size, full.size + 1);
        assert_ne!(
            m.packages[0].hash_sha256.as_deref(),
            Some(full.sha256_hex().as_str())
        );
        assert_ne!(
            m.postinstall().unwrap().sha256.as_deref(),
            Some(full.sha256_base64().as_str())
        );
        let t = Tweaks {
            noupdate: true,
            ..Tweaks::default()
        };
        let resp = answer(&request("1.0.0", false), &r, "http://h/payloads/", 0, t);
        assert_eq!(check(&resp).status, UpdateStatus::NoUpdate);
    }

    #[test]
    fn unknown_apps_tracks_and_versions_get_error_statuses() {
        let (_d, r) = releases();
        let mut req = request("1.0.0", false);
        req.apps[0].app_id = "{00000000-0000-0000-0000-000000000000}".into();
        let resp = answer(&req, &r, "http://h/", 0, Tweaks::default());
        assert_eq!(
            resp.apps[0].status.as_deref(),
            Some("error-unknownApplication")
        );
        assert_eq!(
            check(&resp).status,
            UpdateStatus::Error("error-internal".into())
        );

        let mut req = request("1.0.0", false);
        req.apps[0].track = Some("beta".into());
        let resp = answer(&req, &r, "http://h/", 0, Tweaks::default());
        assert_eq!(
            resp.apps[0].status.as_deref(),
            Some("error-unknownApplicationOrGroup")
        );

        let resp = answer(
            &request("banana", false),
            &r,
            "http://h/",
            0,
            Tweaks::default(),
        );
        assert_eq!(resp.apps[0].status.as_deref(), Some("error-invalidVersion"));
        assert_eq!(
            check(&resp).status,
            UpdateStatus::Error("error-internal".into())
        );

        // Event-only reports get acks and no update check.
        let mut req = request("1.0.0", false);
        req.apps[0].update_check = None;
        let resp = answer(&req, &r, "http://h/", 0, Tweaks::default());
        assert!(resp.apps[0].update_check.is_none());
        assert_eq!(resp.apps[0].event_acks, 1);
    }
}
