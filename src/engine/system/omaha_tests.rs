use super::*;

const APP: &str = "{e96281a6-d1af-4bde-9a0a-97b76e56dc57}";
/// base64 of 32 bytes 0x11.
const SHA_B64: &str = "ERERERERERERERERERERERERERERERERERERERERERE=";

fn identity() -> Identity {
    Identity {
        app_id: APP.into(),
        track: "stable".into(),
        board: "amd64-usr".into(),
        machine_id: "0123456789abcdef0123456789abcdef".into(),
        boot_id: "5d7f1e2a-0000-4000-8000-000000000001".into(),
        version: "1.0.0".into(),
    }
}

fn try_response(updatecheck: &str) -> Result<Response, ParseError> {
    let xml = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><response protocol="3.0" server="test"><daystart elapsed_seconds="0"/><app appid="{APP}" status="ok">{updatecheck}</app></response>"#
    );
    Response::parse(xml.as_bytes())
}

fn response(updatecheck: &str) -> Response {
    try_response(updatecheck).unwrap()
}

fn ok_check(extra_package: &str, action: &str) -> String {
    format!(
        r#"<updatecheck status="ok"><urls><url codebase="http://127.0.0.1:1/a/"/><url codebase="http://127.0.0.1:2/b/"/></urls><manifest version="2.0.0"><packages><package name="v2.payload" size="1234" required="true"{extra_package}/></packages><actions>{action}</actions></manifest></updatecheck>"#
    )
}

fn postinstall(sha: &str) -> String {
    format!(r#"<action event="postinstall" sha256="{sha}"/>"#)
}

#[test]
fn an_update_becomes_an_offer_with_urls_in_order() {
    let r = response(&ok_check("", &postinstall(SHA_B64)));
    assert_eq!(
        interpret(&r, APP).unwrap(),
        CheckAnswer::Update(Offer {
            version: "2.0.0".into(),
            urls: vec![
                "http://127.0.0.1:1/a/v2.payload".into(),
                "http://127.0.0.1:2/b/v2.payload".into()
            ],
            size: 1234,
            sha256_hex: "11".repeat(32),
        })
    );
    // The app id matches case-insensitively; a hex package hash alone is enough.
    let r = response(&ok_check(
        &format!(r#" hash_sha256="{}""#, "AB".repeat(32)),
        "",
    ));
    let CheckAnswer::Update(offer) = interpret(&r, &APP.to_uppercase()).unwrap() else {
        panic!("expected an update");
    };
    assert_eq!(offer.sha256_hex, "ab".repeat(32));
}

#[test]
fn noupdate_is_no_update() {
    let r = response(r#"<updatecheck status="noupdate"/>"#);
    assert_eq!(interpret(&r, APP).unwrap(), CheckAnswer::NoUpdate);
}

fn refused(r: &Result<Response, ParseError>, app: &str) -> Failure {
    match r {
        Ok(r) => interpret(r, app).unwrap_err(),
        // Some problems are caught by the parser already; same code.
        Err(e) => parse_failure(e.clone()),
    }
}

#[test]
fn bad_answers_are_response_errors_naming_the_problem() {
    let cases: Vec<(Result<Response, ParseError>, &str, &str)> = vec![
        (
            try_response(r#"<updatecheck status="noupdate"/>"#),
            "{00000000-0000-0000-0000-000000000000}",
            "check identity.app_id",
        ),
        (try_response(""), APP, "no <updatecheck>"),
        (
            try_response(r#"<updatecheck status="error-internal"/>"#),
            APP,
            "reports error-internal",
        ),
        (
            try_response(r#"<updatecheck status="ok"/>"#),
            APP,
            "lacks required",
        ),
        (try_response(&ok_check("", "")), APP, "no sha256"),
        (
            try_response(&ok_check("", &postinstall("bm90IDMyIGJ5dGVz"))),
            APP,
            "not base64 of 32 bytes",
        ),
        (
            try_response(&ok_check(r#" hash_sha256="xyz""#, "")),
            APP,
            "not 64 hex digits",
        ),
        (
            try_response(&ok_check(
                &format!(r#" hash_sha256="{}""#, "22".repeat(32)),
                &postinstall(SHA_B64),
            )),
            APP,
            "disagree",
        ),
        (
            try_response(
                r#"<updatecheck status="ok"><manifest version="2.0.0"><packages><package name="p" size="1"/></packages></manifest></updatecheck>"#,
            ),
            APP,
            "lacks required",
        ),
    ];
    for (r, app, needle) in cases {
        let f = refused(&r, app);
        assert_eq!(f.code, failure::OMAHA_RESPONSE_INVALID, "{f}");
        assert!(f.message.contains(needle), "{needle}: {f}");
    }
    let unknown = Response::parse(
        format!(r#"<response protocol="3.0"><app appid="{APP}" status="error-unknownApplication"/></response>"#).as_bytes(),
    )
    .unwrap();
    assert!(refused(&Ok(unknown), APP).message.contains("refused app"));
}

#[test]
fn parse_errors_map_to_codes() {
    let f = parse_failure(Response::parse(b"<response").unwrap_err());
    assert_eq!(f.code, failure::OMAHA_XML_PARSE);
    let f = parse_failure(Response::parse(b"<!DOCTYPE x><response/>").unwrap_err());
    assert_eq!(f.code, failure::OMAHA_XML_PARSE);
}

#[test]
fn check_request_carries_the_identity() {
    let xml = identity().check_request(true).to_xml();
    for needle in [
        r#"protocol="3.0""#,
        r#"installsource="ondemandupdate""#,
        r#"ismachine="1""#,
        &format!(r#"appid="{APP}""#),
        r#"version="1.0.0""#,
        r#"track="stable""#,
        r#"bootid="{5d7f1e2a-0000-4000-8000-000000000001}""#,
        r#"machineid="0123456789abcdef0123456789abcdef""#,
        r#"board="amd64-usr""#,
        "<updatecheck",
        r#"<ping active="1""#,
    ] {
        assert!(xml.contains(needle), "{needle} missing in {xml}");
    }
    let parsed = Request::parse(xml.as_bytes()).unwrap();
    assert_eq!(parsed.apps[0].app_id, APP);
    assert!(identity()
        .check_request(false)
        .to_xml()
        .contains(r#"installsource="scheduler""#));
}

#[test]
fn event_requests_carry_type_result_code_and_previous_version() {
    let ev = |report: Report| {
        let xml = identity().event_request("2.0.0", &report).to_xml();
        let parsed = Request::parse(xml.as_bytes()).unwrap();
        assert!(
            parsed.apps[0].update_check.is_none(),
            "events carry no updatecheck"
        );
        parsed.apps[0].events[0].clone()
    };
    let e = ev(Report::DownloadStarted);
    assert_eq!((e.event_type, e.event_result), (13, 1));
    let e = ev(Report::DownloadFinished);
    assert_eq!((e.event_type, e.event_result), (14, 1));
    let e = ev(Report::Installed);
    assert_eq!((e.event_type, e.event_result), (3, 1));
    let e = ev(Report::Booted {
        previous_version: Some("1.0.0".into()),
    });
    assert_eq!((e.event_type, e.event_result), (3, 2));
    assert_eq!(e.previous_version.as_deref(), Some("1.0.0"));
    let e = ev(Report::Error { code: 44 });
    assert_eq!(
        (e.event_type, e.event_result, e.error_code),
        (3, 0, Some(44))
    );
}
