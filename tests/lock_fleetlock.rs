//! FleetLock client against in-test servers behaving like Airlock (N slots,
//! releasing a lock you do not hold is fine) and poseidon/fleetlock (one
//! slot, 423 `lock_held`).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ab_updater::lock::config::FleetLockConfig;
use ab_updater::lock::{Backoff, FleetLockClient, Holding, RebootLock};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::IntoResponse;
use axum::Router;
use serde_json::{json, Value};

#[derive(Debug, Clone)]
struct Seen {
    method: Method,
    path: String,
    protocol_header: Option<String>,
    content_type: Option<String>,
    body: Value,
}

#[derive(Clone, Copy, PartialEq)]
enum Flavor {
    Airlock {
        slots: usize,
    },
    Poseidon,
    /// Fails the first N requests with a non-FleetLock 500, then grants.
    Flaky {
        failures: usize,
    },
}

struct Server {
    flavor: Flavor,
    holders: BTreeSet<String>,
    seen: Vec<Seen>,
}

type Shared = Arc<Mutex<Server>>;

async fn handle(
    State(state): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    let header = |name: &str| headers.get(name).map(|v| v.to_str().unwrap().to_string());
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut s = state.lock().unwrap();
    s.seen.push(Seen {
        method: method.clone(),
        path: uri.path().to_string(),
        protocol_header: header("fleet-lock-protocol"),
        content_type: header("content-type"),
        body: body.clone(),
    });
    let error = |status: StatusCode, kind: &str, value: String| {
        (status, json!({"kind": kind, "value": value}).to_string())
    };
    if header("fleet-lock-protocol").as_deref() != Some("true") {
        return error(
            StatusCode::BAD_REQUEST,
            "missing_header",
            "fleet-lock-protocol".into(),
        );
    }
    let Some(id) = body["client_params"]["id"].as_str().map(str::to_string) else {
        return error(StatusCode::BAD_REQUEST, "bad_body", body.to_string());
    };
    let pre_reboot = uri.path().ends_with("/v1/pre-reboot");
    match s.flavor {
        Flavor::Flaky { failures } => {
            if s.seen.len() <= failures {
                return (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "<html>busy</html>".to_string(),
                );
            }
            (StatusCode::OK, String::new())
        }
        Flavor::Airlock { slots } => {
            if pre_reboot {
                if s.holders.contains(&id) || s.holders.len() < slots {
                    s.holders.insert(id);
                    return (StatusCode::OK, String::new());
                }
                return error(
                    StatusCode::CONFLICT,
                    "failed_lock",
                    "semaphore is full".into(),
                );
            }
            // Airlock: releasing a lock that is not held succeeds.
            s.holders.remove(&id);
            (StatusCode::OK, String::new())
        }
        Flavor::Poseidon => match s.holders.iter().next().cloned() {
            Some(holder) if holder != id => {
                error(StatusCode::LOCKED, "lock_held", format!("held by {holder}"))
            }
            _ => {
                if pre_reboot {
                    s.holders.insert(id);
                } else {
                    s.holders.clear();
                }
                (StatusCode::OK, String::new())
            }
        },
    }
}

async fn start(flavor: Flavor) -> (String, Shared, tokio::task::JoinHandle<()>) {
    let state = Arc::new(Mutex::new(Server {
        flavor,
        holders: BTreeSet::new(),
        seen: Vec::new(),
    }));
    let app = Router::new().fallback(handle).with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/fleet", listener.local_addr().unwrap());
    let task = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, state, task)
}

fn client(base: &str, id: &str) -> FleetLockClient {
    let config = FleetLockConfig {
        base_url: base.parse().unwrap(),
        group: "workers".into(),
    };
    FleetLockClient::new(&config, id)
        .unwrap()
        .with_backoff(Backoff {
            initial: Duration::from_millis(10),
            max: Duration::from_millis(40),
        })
}

#[tokio::test]
async fn airlock_grants_n_slots_and_sends_the_protocol_exactly() {
    let (base, state, server) = start(Flavor::Airlock { slots: 2 }).await;
    let (a, b, c) = (
        client(&base, "m-a"),
        client(&base, "m-b"),
        client(&base, "m-c"),
    );
    a.pre_reboot_once().await.unwrap();
    a.pre_reboot_once().await.unwrap(); // idempotent
    b.acquire().await.unwrap();
    let err = c.pre_reboot_once().await.unwrap_err();
    assert_eq!(err.kind(), "failed_lock");
    assert!(err.to_string().contains("409"), "{err}");

    let waiting = tokio::spawn(async move {
        c.acquire().await.unwrap();
        c
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!waiting.is_finished());
    a.release().await.unwrap();
    let c = waiting.await.unwrap();
    assert_eq!(c.holding().await.unwrap(), Holding::Unknown);
    // Releasing a lock we do not hold is fine for Airlock.
    client(&base, "m-z").steady_state_once().await.unwrap();

    let s = state.lock().unwrap();
    assert_eq!(
        s.holders,
        BTreeSet::from(["m-b".to_string(), "m-c".to_string()])
    );
    for seen in &s.seen {
        assert_eq!(seen.method, Method::POST);
        assert!(
            seen.path == "/fleet/v1/pre-reboot" || seen.path == "/fleet/v1/steady-state",
            "{}",
            seen.path
        );
        assert_eq!(seen.protocol_header.as_deref(), Some("true"));
        assert_eq!(seen.content_type.as_deref(), Some("application/json"));
        let id = seen.body["client_params"]["id"].as_str().unwrap();
        assert_eq!(
            seen.body,
            json!({"client_params": {"id": id, "group": "workers"}})
        );
    }
    let releases: Vec<_> = s
        .seen
        .iter()
        .filter(|x| x.path.ends_with("steady-state"))
        .collect();
    assert_eq!(releases.len(), 2);
    drop(s);
    server.abort();
}

#[tokio::test]
async fn poseidon_lock_held_is_retried_until_the_deadline_and_reports_its_kind() {
    let (base, state, server) = start(Flavor::Poseidon).await;
    let (a, b) = (client(&base, "m-a"), client(&base, "m-b"));
    a.acquire().await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_millis(300);
    let err = b.pre_reboot_until(Some(deadline)).await.unwrap_err();
    assert_eq!(err.kind(), "lock_held");
    assert!(err.to_string().contains("held by m-a"), "{err}");
    let tries = state
        .lock()
        .unwrap()
        .seen
        .iter()
        .filter(|s| s.body["client_params"]["id"] == "m-b")
        .count();
    assert!(tries > 1, "b tried only {tries} times");

    a.release().await.unwrap();
    b.acquire().await.unwrap();
    assert_eq!(
        state.lock().unwrap().holders,
        BTreeSet::from(["m-b".to_string()])
    );
    server.abort();
}

#[tokio::test]
async fn non_fleetlock_errors_are_retried_until_200() {
    let (base, state, server) = start(Flavor::Flaky { failures: 3 }).await;
    let a = client(&base, "m-a");
    let err = a.pre_reboot_once().await.unwrap_err();
    assert_eq!(err.kind(), "unknown");
    assert!(err.to_string().contains("500"), "{err}");
    a.acquire().await.unwrap();
    assert_eq!(state.lock().unwrap().seen.len(), 4);
    server.abort();
}

#[tokio::test]
async fn unreachable_server_is_transient_and_bounded_by_the_deadline() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}/", listener.local_addr().unwrap());
    drop(listener);
    let a = client(&base, "m-a");
    let err = a.steady_state_once().await.unwrap_err();
    assert_eq!(err.kind(), "unavailable");
    assert!(err.to_string().contains(&base), "{err}");
    let deadline = tokio::time::Instant::now() + Duration::from_millis(200);
    let err = a.pre_reboot_until(Some(deadline)).await.unwrap_err();
    assert!(err.is_transient());
    assert!(
        tokio::time::timeout(Duration::from_millis(300), a.acquire())
            .await
            .is_err()
    );
}

#[tokio::test]
async fn any_lock_dispatches_to_fleetlock() {
    let (base, state, server) = start(Flavor::Airlock { slots: 1 }).await;
    let lock = ab_updater::lock::AnyLock::FleetLock(Box::new(client(&base, "m-a")));
    lock.acquire().await.unwrap();
    assert_eq!(lock.holding().await.unwrap(), Holding::Unknown);
    lock.release().await.unwrap();
    let paths: Vec<String> = state
        .lock()
        .unwrap()
        .seen
        .iter()
        .map(|s| s.path.clone())
        .collect();
    assert_eq!(paths, ["/fleet/v1/pre-reboot", "/fleet/v1/steady-state"]);
    server.abort();
}
