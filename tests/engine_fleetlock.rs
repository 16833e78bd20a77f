//! The engine's reboot coordination through FleetLock, against an in-test
//! server that behaves like poseidon/fleetlock (one slot, 423 `lock_held`):
//! `steady-state` at start, `pre-reboot` retried until granted, the reboot,
//! and `steady-state` once the new boot is marked good.

mod engine_support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ab_updater::cli::update_engine::run_until;
use ab_updater::engine::api::client::Client;
use ab_updater::slot::SlotId;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::Router;
use engine_support::{Sandbox, MACHINE_ID};
use serde_json::{json, Value};
use tokio::sync::oneshot;

#[derive(Default)]
struct Poseidon {
    holder: Option<String>,
    /// (path, id, group) of every well-formed request.
    seen: Vec<(String, String, String)>,
}

type Shared = Arc<Mutex<Poseidon>>;

async fn handle(
    State(state): State<Shared>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let params = &body["client_params"];
    let (Some(id), Some(group)) = (params["id"].as_str(), params["group"].as_str()) else {
        return (
            StatusCode::BAD_REQUEST,
            json!({"kind": "bad_body", "value": ""}).to_string(),
        );
    };
    if headers
        .get("fleet-lock-protocol")
        .and_then(|v| v.to_str().ok())
        != Some("true")
    {
        return (
            StatusCode::BAD_REQUEST,
            json!({"kind": "missing_header", "value": ""}).to_string(),
        );
    }
    let mut s = state.lock().unwrap();
    s.seen
        .push((uri.path().to_string(), id.to_string(), group.to_string()));
    match s.holder.clone() {
        Some(holder) if holder != id => (
            StatusCode::LOCKED,
            json!({"kind": "lock_held", "value": format!("held by {holder}")}).to_string(),
        ),
        _ => {
            if uri.path() == "/v1/pre-reboot" {
                s.holder = Some(id.to_string());
            } else {
                s.holder = None;
            }
            (StatusCode::OK, String::new())
        }
    }
}

async fn serve(state: Shared) -> (String, oneshot::Sender<()>) {
    let app = Router::new().fallback(handle).with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
    });
    (format!("http://{addr}/"), stop)
}

async fn start_engine(
    sb: &Sandbox,
) -> (
    Client,
    oneshot::Sender<()>,
    tokio::task::JoinHandle<anyhow::Result<()>>,
) {
    let mut args = sb.args();
    args.lock_retry_max_ms = 100;
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(run_until(args, async move {
        let _ = stopped.await;
    }));
    let client = Client::new(&sb.socket());
    for _ in 0..500 {
        if client.status().await.is_ok() {
            return (client, stop, task);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("engine did not start");
}

async fn until(client: &Client, phase: &str) {
    for _ in 0..1200 {
        if client.status().await.unwrap().phase == phase {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("never reached {phase}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waits_while_another_node_holds_the_lock_then_reboots_and_releases_after_good() {
    let state = Shared::default();
    state.lock().unwrap().holder = Some("other-node".into());
    let (url, stop_server) = serve(state.clone()).await;
    let sb = Sandbox::new(4, 8, &[]).await;
    let record = sb.dir.path().join("reboots");
    let config = format!(
        "[reboot]\nstrategy = \"fleet-lock\"\ncommand = [\"/bin/sh\", \"-c\", \"echo rebooted >> {}\"]\n[lock.fleet_lock]\nbase_url = \"{url}\"\ngroup = \"workers\"\n",
        record.display()
    );
    sb.write_config("1.0.0", &config);
    let (client, stop, task) = start_engine(&sb).await;
    client.check().await.unwrap();
    until(&client, "waiting-for-lock").await;
    // Refused a few times with 423 lock_held: counted, and no reboot.
    for _ in 0..200 {
        let metrics = client.metrics().await.unwrap();
        if metrics.contains("update_engine_lock_errors_total{kind=\"lock_held\"} 3") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let status = client.status().await.unwrap();
    assert_eq!(status.phase, "waiting-for-lock");
    assert!(status.message.unwrap().contains("lock_held"));
    assert!(!record.exists(), "rebooted without the lock");

    // The other node finishes; ours is granted the slot and reboots.
    state.lock().unwrap().holder = None;
    until(&client, "rebooting").await;
    for _ in 0..200 {
        if record.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(record.exists());
    assert_eq!(state.lock().unwrap().holder.as_deref(), Some(MACHINE_ID));
    let _ = stop.send(());
    task.await.unwrap().unwrap();

    // The new boot: still holding until marked good, then steady-state.
    assert_eq!(sb.boot(), SlotId::B);
    sb.write_config("2.0.0", &config);
    let (client, stop, task) = start_engine(&sb).await;
    until(&client, "good").await;
    for _ in 0..200 {
        if state.lock().unwrap().holder.is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(state.lock().unwrap().holder, None);
    let _ = stop.send(());
    task.await.unwrap().unwrap();
    let _ = stop_server.send(());

    let seen = state.lock().unwrap().seen.clone();
    assert!(seen
        .iter()
        .all(|(_, id, group)| id == MACHINE_ID && group == "workers"));
    let paths: Vec<&str> = seen.iter().map(|(p, _, _)| p.as_str()).collect();
    // steady-state at start (423: not ours), pre-reboot until granted,
    // then steady-state after the good boot.
    assert_eq!(paths.first(), Some(&"/v1/steady-state"), "{paths:?}");
    assert_eq!(paths.last(), Some(&"/v1/steady-state"), "{paths:?}");
    let granted = paths.iter().rposition(|p| *p == "/v1/pre-reboot").unwrap();
    assert!(
        paths[1..granted].iter().all(|p| *p == "/v1/pre-reboot"),
        "{paths:?}"
    );
    assert!(granted >= 3, "{paths:?}");
    assert_eq!(&paths[granted + 1..], ["/v1/steady-state"], "{paths:?}");
}
