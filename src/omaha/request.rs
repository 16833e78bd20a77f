//! The client's Omaha request: `<request>` with `<os>` and one `<app>` per
//! product, each carrying an optional ping, update check and events.

use std::borrow::Cow;

use super::dom::{self, push_opt, Element, XmlWriter};
use super::{check_root, parse_bool, parse_u64, ParseError, PROTOCOL_VERSION};

/// A whole `<request>` document.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request {
    /// `protocol` (always "3.0" when built here).
    pub protocol: String,
    /// `version`: the updater's own version.
    pub version: Option<String>,
    /// `updaterversion` (update_engine duplicates `version` here).
    pub updater_version: Option<String>,
    /// `installsource`: `scheduler` or `ondemandupdate`.
    pub install_source: Option<String>,
    /// `ismachine` ("1" for the OS updater).
    pub is_machine: Option<String>,
    /// The `<os>` element.
    pub os: Option<Os>,
    /// One `<app>` per product; at least one.
    pub apps: Vec<AppRequest>,
}

/// `<os version platform sp arch>`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Os {
    /// `version`.
    pub version: Option<String>,
    /// `platform`, e.g. "CoreOS".
    pub platform: Option<String>,
    /// `sp`: service pack, update_engine sends `VERSION_ARCH`.
    pub sp: Option<String>,
    /// `arch`.
    pub arch: Option<String>,
}

/// `<app ...>` of a request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppRequest {
    /// `appid` (required), e.g. `{e96281a6-d1af-4bde-9a0a-97b76e56dc57}`.
    pub app_id: String,
    /// `version` (required): the running OS version.
    pub version: String,
    /// `track`: the update group/channel.
    pub track: Option<String>,
    /// `bootid`: changes on every boot.
    pub boot_id: Option<String>,
    /// `machineid`.
    pub machine_id: Option<String>,
    /// `machinealias` (Nebraska extension).
    pub machine_alias: Option<String>,
    /// `oem`.
    pub oem: Option<String>,
    /// `oemversion`.
    pub oem_version: Option<String>,
    /// `alephversion`: the version first installed.
    pub aleph_version: Option<String>,
    /// `lang`.
    pub lang: Option<String>,
    /// `board`, e.g. `amd64-usr`.
    pub board: Option<String>,
    /// `hardware_class`.
    pub hardware_class: Option<String>,
    /// `delta_okay`: the client can apply delta payloads.
    pub delta_okay: bool,
    /// `<ping>`.
    pub ping: Option<Ping>,
    /// `<updatecheck>`.
    pub update_check: Option<UpdateCheckRequest>,
    /// `<event>`s in document order.
    pub events: Vec<EventRequest>,
}

/// `<ping active="1">`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ping {
    /// `active="1"`: the machine was active since the last ping.
    pub active: bool,
}

/// `<updatecheck>`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpdateCheckRequest {
    /// `targetversionprefix`: pin updates to versions starting with this.
    pub target_version_prefix: Option<String>,
}

/// `<event eventtype eventresult errorcode previousversion>`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventRequest {
    /// `eventtype` (required): see [`super::event_type`].
    pub event_type: u32,
    /// `eventresult` (required): see [`super::event_result`].
    pub event_result: u32,
    /// `errorcode`; signed because update_engine prints codes with flag
    /// bits (e.g. 1<<31) through `%d`.
    pub error_code: Option<i64>,
    /// `previousversion`: the version before the update (after a reboot).
    pub previous_version: Option<String>,
    /// `nextversion`.
    pub next_version: Option<String>,
}

fn opt(e: &Element, name: &str) -> Option<String> {
    e.attr(name).map(str::to_owned)
}

impl Request {
    /// Parse an untrusted request body. Total: returns an error, never panics.
    pub fn parse(bytes: &[u8]) -> Result<Request, ParseError> {
        let root = dom::parse_document(bytes)?;
        check_root(&root, "request")?;
        let apps = root
            .children_named("app")
            .map(parse_app)
            .collect::<Result<Vec<_>, _>>()?;
        if apps.is_empty() {
            return Err(ParseError::Missing {
                what: "request/app".into(),
            });
        }
        Ok(Request {
            protocol: root.attr("protocol").unwrap_or_default().to_owned(),
            version: opt(&root, "version"),
            updater_version: opt(&root, "updaterversion"),
            install_source: opt(&root, "installsource"),
            is_machine: opt(&root, "ismachine"),
            os: root.child("os").map(|os| Os {
                version: opt(os, "version"),
                platform: opt(os, "platform"),
                sp: opt(os, "sp"),
                arch: opt(os, "arch"),
            }),
            apps,
        })
    }

    /// The document as update_engine writes it (attribute order included).
    pub fn to_xml(&self) -> String {
        let mut w = XmlWriter::new();
        let protocol = if self.protocol.is_empty() {
            PROTOCOL_VERSION
        } else {
            &self.protocol
        };
        let mut attrs = vec![("protocol", Cow::Borrowed(protocol))];
        push_opt(&mut attrs, "version", &self.version);
        push_opt(&mut attrs, "updaterversion", &self.updater_version);
        push_opt(&mut attrs, "installsource", &self.install_source);
        push_opt(&mut attrs, "ismachine", &self.is_machine);
        w.start("request", &attrs);
        if let Some(os) = &self.os {
            let mut attrs = Vec::new();
            push_opt(&mut attrs, "version", &os.version);
            push_opt(&mut attrs, "platform", &os.platform);
            push_opt(&mut attrs, "sp", &os.sp);
            push_opt(&mut attrs, "arch", &os.arch);
            w.empty("os", &attrs);
        }
        for app in &self.apps {
            write_app(&mut w, app);
        }
        w.end("request");
        w.finish()
    }
}

fn parse_app(app: &Element) -> Result<AppRequest, ParseError> {
    const PATH: &str = "request/app";
    let events = app
        .children_named("event")
        .map(parse_event)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(AppRequest {
        app_id: app.required(PATH, "appid")?.to_owned(),
        version: app.required(PATH, "version")?.to_owned(),
        track: opt(app, "track"),
        boot_id: opt(app, "bootid"),
        machine_id: opt(app, "machineid"),
        machine_alias: opt(app, "machinealias"),
        oem: opt(app, "oem"),
        oem_version: opt(app, "oemversion"),
        aleph_version: opt(app, "alephversion"),
        lang: opt(app, "lang"),
        board: opt(app, "board"),
        hardware_class: opt(app, "hardware_class"),
        delta_okay: match app.attr("delta_okay") {
            Some(v) => parse_bool("request/app@delta_okay", v)?,
            None => false,
        },
        ping: app.child("ping").map(|p| Ping {
            active: p.attr("active").is_some_and(|a| a.trim() == "1"),
        }),
        update_check: app.child("updatecheck").map(|u| UpdateCheckRequest {
            target_version_prefix: opt(u, "targetversionprefix"),
        }),
        events,
    })
}

fn parse_event(event: &Element) -> Result<EventRequest, ParseError> {
    const PATH: &str = "request/app/event";
    let number = |name: &str| -> Result<u32, ParseError> {
        let what = format!("{PATH}@{name}");
        let value = event.required(PATH, name)?;
        let n = parse_u64(&what, value)?;
        u32::try_from(n).map_err(|_| ParseError::invalid(what, value, "a number below 2^32"))
    };
    let error_code = match event.attr("errorcode") {
        Some(v) => Some(v.trim().parse::<i64>().map_err(|_| {
            ParseError::invalid(format!("{PATH}@errorcode"), v, "a decimal number")
        })?),
        None => None,
    };
    Ok(EventRequest {
        event_type: number("eventtype")?,
        event_result: number("eventresult")?,
        error_code,
        previous_version: opt(event, "previousversion"),
        next_version: opt(event, "nextversion"),
    })
}

fn write_app(w: &mut XmlWriter, app: &AppRequest) {
    let mut attrs = vec![
        ("appid", Cow::Borrowed(app.app_id.as_str())),
        ("version", Cow::Borrowed(app.version.as_str())),
    ];
    push_opt(&mut attrs, "track", &app.track);
    push_opt(&mut attrs, "bootid", &app.boot_id);
    push_opt(&mut attrs, "oem", &app.oem);
    push_opt(&mut attrs, "oemversion", &app.oem_version);
    push_opt(&mut attrs, "alephversion", &app.aleph_version);
    push_opt(&mut attrs, "machineid", &app.machine_id);
    push_opt(&mut attrs, "machinealias", &app.machine_alias);
    push_opt(&mut attrs, "lang", &app.lang);
    push_opt(&mut attrs, "board", &app.board);
    push_opt(&mut attrs, "hardware_class", &app.hardware_class);
    attrs.push((
        "delta_okay",
        Cow::Borrowed(if app.delta_okay { "true" } else { "false" }),
    ));
    w.start("app", &attrs);
    if let Some(ping) = &app.ping {
        let active = if ping.active { "1" } else { "0" };
        w.empty("ping", &[("active", Cow::Borrowed(active))]);
    }
    if let Some(check) = &app.update_check {
        let mut attrs = Vec::new();
        push_opt(
            &mut attrs,
            "targetversionprefix",
            &check.target_version_prefix,
        );
        w.empty("updatecheck", &attrs);
    }
    for event in &app.events {
        let mut attrs = vec![
            ("eventtype", Cow::Owned(event.event_type.to_string())),
            ("eventresult", Cow::Owned(event.event_result.to_string())),
        ];
        if let Some(code) = event.error_code {
            attrs.push(("errorcode", Cow::Owned(code.to_string())));
        }
        push_opt(&mut attrs, "previousversion", &event.previous_version);
        push_opt(&mut attrs, "nextversion", &event.next_version);
        w.empty("event", &attrs);
    }
    w.end("app");
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOLDEN: &[u8] = include_bytes!("../../fixtures/omaha/request-update-engine.xml");

    #[test]
    fn parses_update_engine_request() {
        let req = Request::parse(GOLDEN).unwrap();
        assert_eq!(req.protocol, "3.0");
        assert_eq!(req.install_source.as_deref(), Some("scheduler"));
        assert_eq!(req.is_machine.as_deref(), Some("1"));
        let os = req.os.as_ref().unwrap();
        assert_eq!(os.platform.as_deref(), Some("CoreOS"));
        assert_eq!(req.apps.len(), 1);
        let app = &req.apps[0];
        assert_eq!(app.app_id, "{e96281a6-d1af-4bde-9a0a-97b76e56dc57}");
        assert_eq!(app.version, "3815.2.0");
        assert_eq!(app.track.as_deref(), Some("stable"));
        assert_eq!(
            app.machine_id.as_deref(),
            Some("4b5a1c3f0f0e4a2d9c1e7a6b5d4c3b2a")
        );
        assert_eq!(app.board.as_deref(), Some("amd64-usr"));
        assert!(!app.delta_okay);
        assert_eq!(app.ping, Some(Ping { active: true }));
        assert!(app.update_check.is_some());
        assert_eq!(app.events.len(), 1);
        assert_eq!(app.events[0].event_type, 3);
        assert_eq!(app.events[0].event_result, 2);
        assert_eq!(app.events[0].previous_version.as_deref(), Some("3760.1.0"));
    }

    #[test]
    fn round_trips_through_xml() {
        let req = Request::parse(GOLDEN).unwrap();
        let again = Request::parse(req.to_xml().as_bytes()).unwrap();
        assert_eq!(req, again);
    }

    #[test]
    fn event_error_codes_may_be_negative() {
        let mut req = Request::parse(GOLDEN).unwrap();
        req.apps[0].events = vec![EventRequest {
            event_type: 3,
            event_result: 0,
            error_code: Some(-2147483604),
            ..EventRequest::default()
        }];
        let again = Request::parse(req.to_xml().as_bytes()).unwrap();
        assert_eq!(again.apps[0].events[0].error_code, Some(-2147483604));
    }

    #[test]
    fn unknown_elements_and_attributes_are_ignored() {
        let doc = br#"<request protocol="3.0" future="x"><hw ram="1"/><app appid="a" version="1.0" color="red"><updatecheck/><extra><deep/></extra></app></request>"#;
        let req = Request::parse(doc).unwrap();
        assert_eq!(req.apps[0].app_id, "a");
        assert!(req.os.is_none());
    }

    #[test]
    fn missing_required_items_are_named() {
        let cases: [(&[u8], &str); 6] = [
            (br#"<request><app appid="a" version="1"/></request>"#, "request@protocol"),
            (br#"<request protocol="3.0"/>"#, "request/app"),
            (br#"<request protocol="3.0"><app version="1"/></request>"#, "request/app@appid"),
            (br#"<request protocol="3.0"><app appid="a"/></request>"#, "request/app@version"),
            (
                br#"<request protocol="3.0"><app appid="a" version="1"><event eventresult="1"/></app></request>"#,
                "request/app/event@eventtype",
            ),
            (
                br#"<request protocol="3.0"><app appid="a" version="1"><event eventtype="3"/></app></request>"#,
                "request/app/event@eventresult",
            ),
        ];
        for (doc, what) in cases {
            let err = Request::parse(doc).unwrap_err();
            assert_eq!(err, ParseError::Missing { what: what.into() });
            assert!(err.to_string().contains(what));
        }
    }

    #[test]
    fn invalid_values_are_named() {
        let cases: [(&[u8], &str); 6] = [
            (br#"<response protocol="3.0"/>"#, "root element"),
            (br#"<request protocol="2.0"><app appid="a" version="1"/></request>"#, "request@protocol"),
            (
                br#"<request protocol="3.0"><app appid="a" version="1" delta_okay="maybe"/></request>"#,
                "request/app@delta_okay",
            ),
            (
                br#"<request protocol="3.0"><app appid="a" version="1"><event eventtype="x" eventresult="1"/></app></request>"#,
                "request/app/event@eventtype",
            ),
            (
                br#"<request protocol="3.0"><app appid="a" version="1"><event eventtype="99999999999" eventresult="1"/></app></request>"#,
                "request/app/event@eventtype",
            ),
            (
                br#"<request protocol="3.0"><app appid="a" version="1"><event eventtype="3" eventresult="0" errorcode="e"/></app></request>"#,
                "request/app/event@errorcode",
            ),
        ];
        for (doc, what) in cases {
            match Request::parse(doc).unwrap_err() {
                ParseError::Invalid { what: w, .. } => assert_eq!(w, what),
                other => panic!("{what}: {other:?}"),
            }
        }
    }
}
