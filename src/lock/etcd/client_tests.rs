//! Settings checks and error sorting of the gateway connection (no etcd needed).

use super::*;
use url::Url;

fn config(endpoints: &[&str]) -> EtcdConfig {
    EtcdConfig::plain(
        endpoints.iter().map(|u| Url::parse(u).unwrap()).collect(),
        "default",
    )
}

fn config_error(c: &EtcdConfig) -> String {
    match Connection::new(c, Timeouts::default()) {
        Err(LockError::Config(msg)) => msg,
        Err(other) => panic!("expected a config error, got {other}"),
        Ok(_) => panic!("expected a config error"),
    }
}

#[test]
fn plain_endpoints_are_accepted() {
    assert!(Connection::new(
        &config(&["http://127.0.0.1:2379/", "http://h:1"]),
        Timeouts::default()
    )
    .is_ok());
}

#[test]
fn bad_settings_are_refused_before_any_request() {
    assert!(config_error(&config(&[])).contains("empty"));
    assert!(config_error(&config(&["unix:///run/etcd.sock"])).contains("http"));
    assert!(config_error(&config(&["http://a:1", "https://b:1"])).contains("mix"));
    assert!(config_error(&config(&["https://a:1"])).contains("ca_file"));
    let mut c = config(&["http://a:1"]);
    c.ca_file = Some("/ca.pem".into());
    assert!(config_error(&c).contains("https://"));
    let mut c = config(&["https://a:1"]);
    c.cert_file = Some("/cert.pem".into());
    assert!(config_error(&c).contains("together"));
    let mut c = config(&["https://a:1"]);
    c.ca_file = Some("/nonexistent/ca.pem".into());
    assert!(config_error(&c).contains("/nonexistent/ca.pem"));
    let mut c = config(&["http://a:1"]);
    c.username = Some("root".into());
    assert!(config_error(&c).contains("password"));
}

#[test]
fn errors_are_sorted_into_transient_and_permanent() {
    let etcd = |code, http, msg: &str| Failure::Etcd {
        code,
        http,
        message: msg.into(),
    };
    let c = classify(
        "http://e:1",
        &etcd(Some(14), Some(503), "etcdserver: no leader"),
    );
    assert!(c.is_transient() && c.to_string().contains("http://e:1"));
    let expired = etcd(
        Some(code::UNAUTHENTICATED),
        Some(401),
        "etcdserver: invalid auth token",
    );
    assert!(is_expired_token(&expired));
    assert!(classify("e", &expired).is_transient());
    let c = classify(
        "e",
        &etcd(
            Some(code::PERMISSION_DENIED),
            Some(403),
            "etcdserver: permission denied",
        ),
    );
    assert_eq!(c.kind(), "refused");
    let c = classify(
        "e",
        &etcd(
            Some(code::INVALID_ARGUMENT),
            Some(400),
            "etcdserver: user name is empty",
        ),
    );
    assert_eq!(c.kind(), "refused");
    assert!(classify("e", &Failure::Transport("connection refused".into())).is_transient());
    assert!(classify("e", &Failure::BadAnswer("html".into())).is_transient());
}

#[test]
fn answers_that_are_not_the_gateways_json_are_sorted_by_http_status() {
    let not_found = error_answer(404, b"404 page not found\n");
    let c = classify("e", &not_found);
    assert_eq!(c.kind(), "refused");
    assert!(c.to_string().contains("JSON gateway"), "{c}");
    assert!(classify("e", &error_answer(502, b"<html>bad gateway</html>")).is_transient());
    assert!(classify("e", &error_answer(429, b"slow down")).is_transient());
    let json = error_answer(
        401,
        br#"{"error":"etcdserver: invalid auth token","message":"etcdserver: invalid auth token","code":16}"#,
    );
    assert!(is_expired_token(&json));
}

#[test]
fn canceled_watches_keep_the_reasons_code() {
    let denied =
        canceled("rpc error: code = PermissionDenied desc = etcdserver: permission denied");
    assert_eq!(classify("e", &denied).kind(), "refused");
    let expired =
        canceled("rpc error: code = Unauthenticated desc = etcdserver: invalid auth token");
    assert!(is_expired_token(&expired));
    assert!(classify("e", &canceled("something else")).is_transient());
}

#[test]
fn unusable_tls_files_are_config_errors() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let mut c = config(&["https://a:1"]);
    c.ca_file = Some(empty.clone());
    assert!(config_error(&c).contains("no PEM certificate"));
    let ca = dir.path().join("ca.pem");
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["a".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    std::fs::write(&ca, cert.pem()).unwrap();
    c.ca_file = Some(ca.clone());
    assert!(Connection::new(&c, Timeouts::default()).is_ok());
    c.cert_file = Some(ca);
    c.key_file = Some(empty);
    assert!(config_error(&c).contains("client certificate"));
}
