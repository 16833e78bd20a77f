//! The server's Omaha response: per `<app>` a status, acks for ping and
//! events, and an `<updatecheck>` that either says `noupdate` or offers a
//! manifest with packages, download URLs and the postinstall action.

use std::borrow::Cow;

use super::dom::{self, push_opt, Element, XmlWriter};
use super::{check_root, parse_bool, parse_u64, ParseError, PROTOCOL_VERSION};

/// A whole `<response>` document.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Response {
    /// `protocol` ("3.0").
    pub protocol: String,
    /// `server`, e.g. "nebraska".
    pub server: Option<String>,
    /// `<daystart>`.
    pub day_start: Option<DayStart>,
    /// One `<app>` per app of the request.
    pub apps: Vec<AppResponse>,
}

/// `<daystart elapsed_seconds elapsed_days>`: the server's clock, kept verbatim.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DayStart {
    /// `elapsed_seconds` since the server's midnight.
    pub elapsed_seconds: Option<String>,
    /// `elapsed_days` since 2007-01-01.
    pub elapsed_days: Option<String>,
}

/// `<app appid status>` of a response.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppResponse {
    /// `appid` (required).
    pub app_id: String,
    /// `status`: "ok" or an error such as `error-unknownApplication`;
    /// absent counts as "ok".
    pub status: Option<String>,
    /// A `<ping status="ok"/>` acknowledged the request's ping.
    pub ping_ack: bool,
    /// Number of `<event status="ok"/>` acknowledgements.
    pub event_acks: usize,
    /// `<updatecheck>`.
    pub update_check: Option<UpdateCheckResponse>,
}

impl AppResponse {
    /// Whether the app status is "ok" (or absent).
    pub fn is_ok(&self) -> bool {
        self.status.as_deref().is_none_or(|s| s == "ok")
    }
}

/// `updatecheck@status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpdateStatus {
    /// `ok`: an update is offered.
    Ok,
    /// `noupdate`: the client is current.
    NoUpdate,
    /// `error-*`, kept verbatim (e.g. `error-internal`).
    Error(String),
}

impl UpdateStatus {
    /// The attribute value.
    pub fn as_str(&self) -> &str {
        match self {
            UpdateStatus::Ok => "ok",
            UpdateStatus::NoUpdate => "noupdate",
            UpdateStatus::Error(s) => s,
        }
    }

    fn parse(value: &str) -> Result<UpdateStatus, ParseError> {
        match value {
            "ok" => Ok(UpdateStatus::Ok),
            "noupdate" => Ok(UpdateStatus::NoUpdate),
            s if s.starts_with("error-") => Ok(UpdateStatus::Error(s.to_owned())),
            s => Err(ParseError::invalid(
                "response/app/updatecheck@status",
                s,
                "ok, noupdate or error-*",
            )),
        }
    }
}

/// `<updatecheck status>` with its URLs and manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateCheckResponse {
    /// `status`.
    pub status: UpdateStatus,
    /// `urls/url@codebase`, in failover order; each ends with `/` and the
    /// package name is appended to it.
    pub urls: Vec<String>,
    /// `<manifest>`; required when `status` is `ok`.
    pub manifest: Option<Manifest>,
}

impl UpdateCheckResponse {
    /// The full download URLs of the first package (codebase + name), in failover order.
    pub fn payload_urls(&self) -> Vec<String> {
        let Some(package) = self.manifest.as_ref().and_then(|m| m.packages.first()) else {
            return Vec::new();
        };
        self.urls
            .iter()
            .map(|base| format!("{base}{}", package.name))
            .collect()
    }
}

/// `<manifest version>` with packages and actions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Manifest {
    /// `version`: the OS version offered.
    pub version: String,
    /// `packages/package`; the first is the payload.
    pub packages: Vec<Package>,
    /// `actions/action`.
    pub actions: Vec<Action>,
}

impl Manifest {
    /// The `event="postinstall"` action, which carries the payload's sha256.
    pub fn postinstall(&self) -> Option<&Action> {
        self.actions.iter().find(|a| a.event == "postinstall")
    }
}

/// `<package name size hash hash_sha256 required>`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Package {
    /// `name`: file name appended to each codebase.
    pub name: String,
    /// `size` in bytes.
    pub size: u64,
    /// `hash`: base64 sha1 of the file.
    pub hash: Option<String>,
    /// `hash_sha256`: hex sha256 of the file.
    pub hash_sha256: Option<String>,
    /// `required`.
    pub required: bool,
    /// `fp`: fingerprint (Chromium extension).
    pub fp: Option<String>,
}

/// `<action event ...>`; the postinstall one carries update_engine extensions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Action {
    /// `event`, e.g. "postinstall" or "update".
    pub event: String,
    /// `sha256`: base64 sha256 of the payload file.
    pub sha256: Option<String>,
    /// `ChromeOSVersion` (or `DisplayVersion`).
    pub display_version: Option<String>,
    /// `needsadmin`.
    pub needs_admin: Option<bool>,
    /// `IsDelta` / `IsDeltaPayload`.
    pub is_delta: Option<bool>,
    /// `DisablePayloadBackoff`.
    pub disable_payload_backoff: Option<bool>,
    /// `MaxFailureCountPerUrl`.
    pub max_failure_count_per_url: Option<u64>,
    /// `MetadataSize`, verbatim.
    pub metadata_size: Option<String>,
    /// `MetadataSignatureRsa`, verbatim.
    pub metadata_signature_rsa: Option<String>,
    /// `deadline`, verbatim.
    pub deadline: Option<String>,
}

fn opt(e: &Element, name: &str) -> Option<String> {
    e.attr(name).map(str::to_owned)
}

fn opt_bool(e: &Element, path: &str, names: &[&str]) -> Result<Option<bool>, ParseError> {
    for name in names {
        if let Some(v) = e.attr(name) {
            return parse_bool(&format!("{path}@{name}"), v).map(Some);
        }
    }
    Ok(None)
}

impl Response {
    /// Parse an untrusted response body. Total: returns an error, never panics.
    pub fn parse(bytes: &[u8]) -> Result<Response, ParseError> {
        let root = dom::parse_document(bytes)?;
        check_root(&root, "response")?;
        let apps = root
            .children_named("app")
            .map(parse_app)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Response {
            protocol: root.attr("protocol").unwrap_or_default().to_owned(),
            server: opt(&root, "server"),
            day_start: root.child("daystart").map(|d| DayStart {
                elapsed_seconds: opt(d, "elapsed_seconds"),
                elapsed_days: opt(d, "elapsed_days"),
            }),
            apps,
        })
    }

    /// The app answer for `app_id` (compared case-insensitively, as Omaha ids are GUIDs).
    pub fn app(&self, app_id: &str) -> Option<&AppResponse> {
        self.apps
            .iter()
            .find(|a| a.app_id.eq_ignore_ascii_case(app_id))
    }

    /// The document in the shape Nebraska sends.
    pub fn to_xml(&self) -> String {
        let mut w = XmlWriter::new();
        let protocol = if self.protocol.is_empty() {
            PROTOCOL_VERSION
        } else {
            &self.protocol
        };
        let mut attrs = vec![("protocol", Cow::Borrowed(protocol))];
        push_opt(&mut attrs, "server", &self.server);
        w.start("response", &attrs);
        if let Some(day) = &self.day_start {
            let mut attrs = Vec::new();
            push_opt(&mut attrs, "elapsed_seconds", &day.elapsed_seconds);
            push_opt(&mut attrs, "elapsed_days", &day.elapsed_days);
            w.empty("daystart", &attrs);
        }
        for app in &self.apps {
            write_app(&mut w, app);
        }
        w.end("response");
        w.finish()
    }
}

fn parse_app(app: &Element) -> Result<AppResponse, ParseError> {
    Ok(AppResponse {
        app_id: app.required("response/app", "appid")?.to_owned(),
        status: opt(app, "status"),
        ping_ack: app.child("ping").is_some(),
        event_acks: app.children_named("event").count(),
        update_check: app
            .child("updatecheck")
            .map(parse_update_check)
            .transpose()?,
    })
}

fn parse_update_check(check: &Element) -> Result<UpdateCheckResponse, ParseError> {
    const PATH: &str = "response/app/updatecheck";
    let status = UpdateStatus::parse(check.required(PATH, "status")?)?;
    let mut urls = Vec::new();
    for urls_el in check.children_named("urls") {
        for url in urls_el.children_named("url") {
            let codebase = url.required("response/app/updatecheck/urls/url", "codebase")?;
            if codebase.is_empty() {
                return Err(ParseError::invalid(
                    "response/app/updatecheck/urls/url@codebase",
                    codebase,
                    "a non-empty URL",
                ));
            }
            urls.push(codebase.to_owned());
        }
    }
    let manifest = check.child("manifest").map(parse_manifest).transpose()?;
    if status == UpdateStatus::Ok {
        // update_engine refuses an offer without these; so do we, by name.
        if urls.is_empty() {
            return Err(ParseError::Missing {
                what: "response/app/updatecheck/urls/url (status is ok)".into(),
            });
        }
        let Some(m) = &manifest else {
            return Err(ParseError::Missing {
                what: "response/app/updatecheck/manifest (status is ok)".into(),
            });
        };
        if m.packages.is_empty() {
            return Err(ParseError::Missing {
                what: "response/app/updatecheck/manifest/packages/package (status is ok)".into(),
            });
        }
    }
    Ok(UpdateCheckResponse {
        status,
        urls,
        manifest,
    })
}

fn parse_manifest(m: &Element) -> Result<Manifest, ParseError> {
    const PATH: &str = "response/app/updatecheck/manifest";
    let mut packages = Vec::new();
    for p in m
        .children_named("packages")
        .flat_map(|ps| ps.children_named("package"))
    {
        packages.push(parse_package(p)?);
    }
    let mut actions = Vec::new();
    for a in m
        .children_named("actions")
        .flat_map(|acts| acts.children_named("action"))
    {
        actions.push(parse_action(a)?);
    }
    Ok(Manifest {
        version: m.required(PATH, "version")?.to_owned(),
        packages,
        actions,
    })
}

fn parse_package(p: &Element) -> Result<Package, ParseError> {
    const PATH: &str = "response/app/updatecheck/manifest/packages/package";
    let name = p.required(PATH, "name")?;
    // update_engine appends the name to the codebase; a name with a path in
    // it would let a server steer the download elsewhere, so refuse it.
    if name.is_empty() || name.contains(['/', '\\']) || name == "." || name == ".." {
        return Err(ParseError::invalid(
            format!("{PATH}@name"),
            name,
            "a plain file name",
        ));
    }
    Ok(Package {
        name: name.to_owned(),
        size: parse_u64(&format!("{PATH}@size"), p.required(PATH, "size")?)?,
        hash: opt(p, "hash"),
        hash_sha256: opt(p, "hash_sha256"),
        required: match p.attr("required") {
            Some(v) => parse_bool(&format!("{PATH}@required"), v)?,
            None => false,
        },
        fp: opt(p, "fp"),
    })
}

fn parse_action(a: &Element) -> Result<Action, ParseError> {
    const PATH: &str = "response/app/updatecheck/manifest/actions/action";
    Ok(Action {
        event: a.required(PATH, "event")?.to_owned(),
        sha256: opt(a, "sha256"),
        display_version: opt(a, "ChromeOSVersion").or_else(|| opt(a, "DisplayVersion")),
        needs_admin: opt_bool(a, PATH, &["needsadmin"])?,
        is_delta: opt_bool(a, PATH, &["IsDelta", "IsDeltaPayload"])?,
        disable_payload_backoff: opt_bool(a, PATH, &["DisablePayloadBackoff"])?,
        max_failure_count_per_url: a
            .attr("MaxFailureCountPerUrl")
            .map(|v| parse_u64(&format!("{PATH}@MaxFailureCountPerUrl"), v))
            .transpose()?,
        metadata_size: opt(a, "MetadataSize"),
        metadata_signature_rsa: opt(a, "MetadataSignatureRsa"),
        deadline: opt(a, "deadline"),
    })
}

fn bool_str(b: bool) -> Cow<'static, str> {
    Cow::Borrowed(if b { "true" } else { "false" })
}

fn write_app(w: &mut XmlWriter, app: &AppResponse) {
    let mut attrs = vec![("appid", Cow::Borrowed(app.app_id.as_str()))];
    push_opt(&mut attrs, "status", &app.status);
    w.start("app", &attrs);
    if app.ping_ack {
        w.empty("ping", &[("status", Cow::Borrowed("ok"))]);
    }
    if let Some(check) = &app.update_check {
        write_update_check(w, check);
    }
    for _ in 0..app.event_acks {
        w.empty("event", &[("status", Cow::Borrowed("ok"))]);
    }
    w.end("app");
}

fn write_update_check(w: &mut XmlWriter, check: &UpdateCheckResponse) {
    let status = [("status", Cow::Borrowed(check.status.as_str()))];
    if check.urls.is_empty() && check.manifest.is_none() {
        w.empty("updatecheck", &status);
        return;
    }
    w.start("updatecheck", &status);
    if !check.urls.is_empty() {
        w.start("urls", &[]);
        for url in &check.urls {
            w.empty("url", &[("codebase", Cow::Borrowed(url.as_str()))]);
        }
        w.end("urls");
    }
    if let Some(m) = &check.manifest {
        w.start(
            "manifest",
            &[("version", Cow::Borrowed(m.version.as_str()))],
        );
        w.start("packages", &[]);
        for p in &m.packages {
            let mut attrs = vec![("name", Cow::Borrowed(p.name.as_str()))];
            push_opt(&mut attrs, "hash", &p.hash);
            push_opt(&mut attrs, "hash_sha256", &p.hash_sha256);
            attrs.push(("size", Cow::Owned(p.size.to_string())));
            attrs.push(("required", bool_str(p.required)));
            push_opt(&mut attrs, "fp", &p.fp);
            w.empty("package", &attrs);
        }
        w.end("packages");
        w.start("actions", &[]);
        for a in &m.actions {
            let mut attrs = vec![("event", Cow::Borrowed(a.event.as_str()))];
            push_opt(&mut attrs, "ChromeOSVersion", &a.display_version);
            push_opt(&mut attrs, "sha256", &a.sha256);
            if let Some(b) = a.needs_admin {
                attrs.push(("needsadmin", bool_str(b)));
            }
            if let Some(b) = a.is_delta {
                attrs.push(("IsDeltaPayload", bool_str(b)));
            }
            if let Some(b) = a.disable_payload_backoff {
                attrs.push(("DisablePayloadBackoff", bool_str(b)));
            }
            if let Some(n) = a.max_failure_count_per_url {
                attrs.push(("MaxFailureCountPerUrl", Cow::Owned(n.to_string())));
            }
            push_opt(&mut attrs, "MetadataSize", &a.metadata_size);
            push_opt(
                &mut attrs,
                "MetadataSignatureRsa",
                &a.metadata_signature_rsa,
            );
            push_opt(&mut attrs, "deadline", &a.deadline);
            w.empty("action", &attrs);
        }
        w.end("actions");
        w.end("manifest");
    }
    w.end("updatecheck");
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOLDEN: &[u8] = include_bytes!("../../fixtures/omaha/response-nebraska.xml");

    #[test]
    fn parses_nebraska_response() {
        let resp = Response::parse(GOLDEN).unwrap();
        assert_eq!(resp.server.as_deref(), Some("nebraska"));
        let app = resp.app("{E96281A6-D1AF-4BDE-9A0A-97B76E56DC57}").unwrap();
        assert!(app.is_ok());
        let check = app.update_check.as_ref().unwrap();
        assert_eq!(check.status, UpdateStatus::Ok);
        assert_eq!(
            check.payload_urls(),
            vec!["https://update.release.flatcar-linux.net/amd64-usr/3815.2.0/flatcar_production_update.gz"]
        );
        let m = check.manifest.as_ref().unwrap();
        assert_eq!(m.version, "3815.2.0");
        assert_eq!(m.packages[0].size, 360141900);
        assert_eq!(
            m.packages[0].hash.as_deref(),
            Some("e2jgE9Ky/yeJ1q+GsDh/Hlb37cw=")
        );
        assert!(m.packages[0].required);
        let post = m.postinstall().unwrap();
        assert_eq!(
            post.sha256.as_deref(),
            Some("/kxm4FqtXuc0/qYLo9U2yccqNmEXMsWEdtKJ7nXtPaM=")
        );
        assert_eq!(post.is_delta, Some(false));
        assert_eq!(post.disable_payload_backoff, Some(true));
        assert_eq!(post.display_version.as_deref(), Some("3815.2.0"));
    }

    #[test]
    fn round_trips_through_xml() {
        let resp = Response::parse(GOLDEN).unwrap();
        assert_eq!(Response::parse(resp.to_xml().as_bytes()).unwrap(), resp);
    }

    #[test]
    fn noupdate_and_errors_need_no_manifest() {
        let doc = br#"<response protocol="3.0"><app appid="a" status="error-unknownApplication"><updatecheck status="error-internal"/></app><app appid="b"><ping status="ok"/><updatecheck status="noupdate"/><event status="ok"/><event status="ok"/></app></response>"#;
        let resp = Response::parse(doc).unwrap();
        assert!(!resp.apps[0].is_ok());
        assert_eq!(
            resp.apps[0].update_check.as_ref().unwrap().status,
            UpdateStatus::Error("error-internal".into())
        );
        assert!(resp.apps[1].is_ok());
        assert!(resp.apps[1].ping_ack);
        assert_eq!(resp.apps[1].event_acks, 2);
        assert_eq!(
            resp.apps[1].update_check.as_ref().unwrap().status,
            UpdateStatus::NoUpdate
        );
        assert!(resp.apps[1]
            .update_check
            .as_ref()
            .unwrap()
            .payload_urls()
            .is_empty());
        assert_eq!(Response::parse(resp.to_xml().as_bytes()).unwrap(), resp);
    }

    #[test]
    fn ok_without_required_parts_is_refused_by_name() {
        let ok = |inner: &str| {
            format!(
                r#"<response protocol="3.0"><app appid="a"><updatecheck status="ok">{inner}</updatecheck></app></response>"#
            )
        };
        let manifest =
            r#"<manifest version="2"><packages><package name="p" size="1"/></packages></manifest>"#;
        let urls = r#"<urls><url codebase="http://h/"/></urls>"#;
        let cases = [
            (
                ok(manifest),
                "response/app/updatecheck/urls/url (status is ok)",
            ),
            (ok(urls), "response/app/updatecheck/manifest (status is ok)"),
            (
                ok(&format!(r#"{urls}<manifest version="2"/>"#)),
                "response/app/updatecheck/manifest/packages/package (status is ok)",
            ),
            (
                ok(&format!(
                    r#"{urls}<manifest><packages><package name="p" size="1"/></packages></manifest>"#
                )),
                "response/app/updatecheck/manifest@version",
            ),
            (
                ok(&format!(
                    r#"{urls}<manifest version="2"><packages><package size="1"/></packages></manifest>"#
                )),
                "response/app/updatecheck/manifest/packages/package@name",
            ),
            (
                ok(&format!(
                    r#"{urls}<manifest version="2"><packages><package name="p"/></packages></manifest>"#
                )),
                "response/app/updatecheck/manifest/packages/package@size",
            ),
            (
                ok(&format!(r#"<urls><url/></urls>{manifest}"#)),
                "response/app/updatecheck/urls/url@codebase",
            ),
            (
                ok(&format!(
                    r#"{urls}<manifest version="2"><packages><package name="p" size="1"/></packages><actions><action/></actions></manifest>"#
                )),
                "response/app/updatecheck/manifest/actions/action@event",
            ),
            (
                r#"<response protocol="3.0"><app appid="a"><updatecheck/></app></response>"#
                    .to_string(),
                "response/app/updatecheck@status",
            ),
            (
                r#"<response protocol="3.0"><app/></response>"#.to_string(),
                "response/app@appid",
            ),
        ];
        for (doc, what) in cases {
            assert_eq!(
                Response::parse(doc.as_bytes()).unwrap_err(),
                ParseError::Missing { what: what.into() },
                "{doc}"
            );
        }
    }

    #[test]
    fn invalid_values_are_refused_by_name() {
        let with_package = |pkg: &str| {
            format!(
                r#"<response protocol="3.0"><app appid="a"><updatecheck status="ok"><urls><url codebase="http://h/"/></urls><manifest version="2"><packages>{pkg}</packages><actions><action event="postinstall" IsDelta="perhaps"/></actions></manifest></updatecheck></app></response>"#
            )
        };
        let cases = [
            (with_package(r#"<package name="p" size="-1"/>"#), "response/app/updatecheck/manifest/packages/package@size"),
            (with_package(r#"<package name="../etc/passwd" size="1"/>"#), "response/app/updatecheck/manifest/packages/package@name"),
            (with_package(r#"<package name="p" size="1" required="yes"/>"#), "response/app/updatecheck/manifest/packages/package@required"),
            (with_package(r#"<package name="p" size="1"/>"#), "response/app/updatecheck/manifest/actions/action@IsDelta"),
            (
                r#"<response protocol="3.0"><app appid="a"><updatecheck status="maybe"/></app></response>"#.to_string(),
                "response/app/updatecheck@status",
            ),
            (
                r#"<response protocol="3.0"><app appid="a"><updatecheck status="ok"><urls><url codebase=""/></urls></updatecheck></app></response>"#.to_string(),
                "response/app/updatecheck/urls/url@codebase",
            ),
        ];
        for (doc, what) in cases {
            match Response::parse(doc.as_bytes()).unwrap_err() {
                ParseError::Invalid { what: w, .. } => assert_eq!(w, what, "{doc}"),
                other => panic!("{what}: {other:?}"),
            }
        }
    }
}
