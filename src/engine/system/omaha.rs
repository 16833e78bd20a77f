//! The engine's Omaha v3 client (DESIGN §4): builds the update check and
//! event requests from the machine's identity, posts them, and turns the
//! server's answer into a `CheckAnswer` or a `Failure` with update_engine's
//! error code. Parsing is `crate::omaha`'s total, size-limited parser.

use std::time::Duration;

use base64::Engine as _;
use futures_util::StreamExt;
use url::Url;

use crate::engine::backend::{CheckAnswer, Report};
use crate::engine::failure::{self, Failure};
use crate::engine::state::Offer;
use crate::omaha::{
    event_result, event_type, AppRequest, EventRequest, Os, ParseError, Ping, Request, Response,
    UpdateCheckRequest, UpdateStatus, MAX_DOCUMENT_BYTES,
};

/// Time limit of one Omaha request, connection included.
pub const OMAHA_TIMEOUT_SECS: u64 = 60;
/// Redirects followed at most (a loop ends as an error, not a hang).
pub const MAX_REDIRECTS: usize = 5;
/// What we call ourselves in `version` / `updaterversion`.
pub const UPDATER_NAME: &str = concat!("ab-updater-", env!("CARGO_PKG_VERSION"));

/// Who this machine is to the update server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// Omaha app id of the OS.
    pub app_id: String,
    /// Track (`group`).
    pub track: String,
    /// Board, also the payload `compatible` string.
    pub board: String,
    /// `/etc/machine-id` (or configured).
    pub machine_id: String,
    /// This boot's id (`/proc/sys/kernel/random/boot_id` or the sandbox's).
    pub boot_id: String,
    /// The running OS version.
    pub version: String,
}

impl Identity {
    fn app(&self, version: &str) -> AppRequest {
        AppRequest {
            app_id: self.app_id.clone(),
            version: version.to_string(),
            track: Some(self.track.clone()),
            boot_id: Some(format!("{{{}}}", self.boot_id.trim_matches(['{', '}']))),
            machine_id: Some(self.machine_id.clone()),
            board: Some(self.board.clone()),
            delta_okay: true,
            ..AppRequest::default()
        }
    }

    fn request(&self, install_source: &str, app: AppRequest) -> Request {
        Request {
            protocol: crate::omaha::PROTOCOL_VERSION.to_string(),
            version: Some(UPDATER_NAME.to_string()),
            updater_version: Some(UPDATER_NAME.to_string()),
            install_source: Some(install_source.to_string()),
            is_machine: Some("1".to_string()),
            os: Some(Os {
                version: Some(self.version.clone()),
                platform: Some("CoreOS".to_string()),
                sp: Some(format!("{}_{}", self.version, self.board)),
                arch: None,
            }),
            apps: vec![app],
        }
    }

    /// The update check request (`<ping>` + `<updatecheck>`).
    pub fn check_request(&self, interactive: bool) -> Request {
        let mut app = self.app(&self.version);
        app.ping = Some(Ping { active: true });
        app.update_check = Some(UpdateCheckRequest::default());
        let source = if interactive {
            "ondemandupdate"
        } else {
            "scheduler"
        };
        self.request(source, app)
    }

    /// The event request for `report` about the update to `version`.
    pub fn event_request(&self, version: &str, report: &Report) -> Request {
        let (event_type, event_result, error_code, previous, app_version) = match report {
            Report::DownloadStarted => (
                event_type::DOWNLOAD_STARTED,
                event_result::SUCCESS,
                None,
                None,
                &self.version,
            ),
            Report::DownloadFinished => (
                event_type::DOWNLOAD_FINISHED,
                event_result::SUCCESS,
                None,
                None,
                &self.version,
            ),
            Report::Installed => (
                event_type::UPDATE_COMPLETE,
                event_result::SUCCESS,
                None,
                None,
                &self.version,
            ),
            // After the reboot the running version is the new one.
            Report::Booted { previous_version } => (
                event_type::UPDATE_COMPLETE,
                event_result::SUCCESS_REBOOT,
                None,
                previous_version.clone(),
                &self.version,
            ),
            Report::Error { code } => (
                event_type::UPDATE_COMPLETE,
                event_result::ERROR,
                Some(i64::from(*code)),
                None,
                &self.version,
            ),
        };
        let mut app = self.app(app_version);
        app.events.push(EventRequest {
            event_type,
            event_result,
            error_code,
            previous_version: previous,
            next_version: Some(version.to_string()).filter(|v| !v.is_empty()),
        });
        self.request("scheduler", app)
    }
}

/// The Omaha client.
#[derive(Debug, Clone)]
pub struct OmahaClient {
    http: reqwest::Client,
    url: Url,
    identity: Identity,
}

/// A reqwest client with our timeouts and redirect limit.
pub fn http_client(timeout: Option<Duration>) -> anyhow::Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        .user_agent(UPDATER_NAME)
        .connect_timeout(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::limited(MAX_REDIRECTS));
    if let Some(t) = timeout {
        builder = builder.timeout(t);
    }
    Ok(builder.build()?)
}

impl OmahaClient {
    /// A client of the Omaha server at `url`.
    pub fn new(url: Url, identity: Identity) -> anyhow::Result<Self> {
        Ok(OmahaClient {
            http: http_client(Some(Duration::from_secs(OMAHA_TIMEOUT_SECS)))?,
            url,
            identity,
        })
    }

    /// The identity sent with every request.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// Post `request`; the body of a 200 answer, size-limited.
    async fn post(&self, request: &Request) -> Result<Vec<u8>, Failure> {
        let response = self
            .http
            .post(self.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "text/xml")
            .body(request.to_xml())
            .send()
            .await
            .map_err(|e| {
                Failure::new(
                    failure::OMAHA_REQUEST_ERROR,
                    format!(
                        "posting to the update server {}: {}",
                        self.url,
                        error_chain(&e)
                    ),
                )
            })?;
        let status = response.status();
        if !status.is_success() {
            return Err(Failure::http(
                status.as_u16(),
                format!("the update server {} answered HTTP {status}", self.url),
            ));
        }
        let mut body = Vec::new();
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| {
                Failure::new(
                    failure::OMAHA_REQUEST_ERROR,
                    format!("reading the update server's answer: {}", error_chain(&e)),
                )
            })?;
            if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
                return Err(Failure::new(
                    failure::OMAHA_XML_PARSE,
                    format!("the update server's answer exceeds {MAX_DOCUMENT_BYTES} bytes"),
                ));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    /// One update check.
    pub async fn check(&self, interactive: bool) -> Result<CheckAnswer, Failure> {
        let body = self.post(&self.identity.check_request(interactive)).await?;
        let response = Response::parse(&body).map_err(parse_failure)?;
        interpret(&response, &self.identity.app_id)
    }

    /// Send one event.
    pub async fn event(&self, version: &str, report: &Report) -> Result<(), Failure> {
        let body = self
            .post(&self.identity.event_request(version, report))
            .await?;
        Response::parse(&body).map_err(parse_failure)?;
        Ok(())
    }
}

/// `e` with its sources, on one line (reqwest hides the cause otherwise).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fn parse_failure(e: ParseError) -> Failure {
    let code = match e {
        ParseError::Missing { .. } | ParseError::Invalid { .. } => failure::OMAHA_RESPONSE_INVALID,
        _ => failure::OMAHA_XML_PARSE,
    };
    Failure::new(code, format!("unusable answer from the update server: {e}"))
}

fn invalid(message: String) -> Failure {
    Failure::new(failure::OMAHA_RESPONSE_INVALID, message)
}

/// Turn a parsed response into what the engine needs. Pure.
pub fn interpret(response: &Response, app_id: &str) -> Result<CheckAnswer, Failure> {
    let Some(app) = response.app(app_id) else {
        return Err(invalid(format!(
            "the update server's answer has no <app appid=\"{app_id}\">; check identity.app_id"
        )));
    };
    if !app.is_ok() {
        return Err(invalid(format!(
            "the update server refused app {app_id} (status {:?}); check identity.app_id and identity.group",
            app.status.as_deref().unwrap_or("")
        )));
    }
    let Some(check) = &app.update_check else {
        return Err(invalid(
            "the update server's answer has no <updatecheck>".into(),
        ));
    };
    match &check.status {
        UpdateStatus::NoUpdate => return Ok(CheckAnswer::NoUpdate),
        UpdateStatus::Error(s) => {
            return Err(invalid(format!("the update server reports {s}")));
        }
        UpdateStatus::Ok => {}
    }
    let Some(manifest) = &check.manifest else {
        return Err(invalid("updatecheck status=ok without a <manifest>".into()));
    };
    let Some(package) = manifest.packages.first() else {
        return Err(invalid("the manifest names no <package>".into()));
    };
    let urls = check.payload_urls();
    if urls.is_empty() {
        return Err(invalid("updatecheck status=ok without <urls>".into()));
    }
    for url in &urls {
        Url::parse(url).map_err(|e| invalid(format!("payload URL {url:?} is invalid: {e}")))?;
    }
    let from_action = match manifest.postinstall().and_then(|a| a.sha256.as_deref()) {
        Some(b64) => Some(
            base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .ok()
                .filter(|d| d.len() == 32)
                .map(hex::encode)
                .ok_or_else(|| {
                    invalid(format!(
                        "postinstall sha256 {b64:?} is not base64 of 32 bytes"
                    ))
                })?,
        ),
        None => None,
    };
    let from_package = match package.hash_sha256.as_deref() {
        Some(h) => {
            let h = h.trim().to_ascii_lowercase();
            if h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(invalid(format!(
                    "package hash_sha256 {h:?} is not 64 hex digits"
                )));
            }
            Some(h)
        }
        None => None,
    };
    let sha256_hex = match (from_action, from_package) {
        (Some(a), Some(p)) if a != p => {
            return Err(invalid(
                "the response's two sha256 values of the payload disagree".into(),
            ))
        }
        (Some(a), _) => a,
        (None, Some(p)) => p,
        (None, None) => {
            return Err(invalid(
                "the response carries no sha256 of the payload".into(),
            ))
        }
    };
    if package.size == 0 {
        return Err(invalid("the package size is 0".into()));
    }
    Ok(CheckAnswer::Update(Offer {
        version: manifest.version.clone(),
        urls,
        size: package.size,
        sha256_hex,
    }))
}

#[cfg(test)]
#[path = "omaha_tests.rs"]
mod tests;
