//! The etcd reboot lock over TLS (CA only, mutual TLS) and with etcd auth.

mod lock_support;

use std::path::{Path, PathBuf};

use ab_updater::lock::config::EtcdConfig;
use ab_updater::lock::etcd::Attempt;
use ab_updater::testing::etcd::{EtcdOptions, EtcdProcess, ServerTls};
use rcgen::{BasicConstraints, Certificate, CertificateParams, DnType, IsCa, KeyPair};

struct Ca {
    cert: Certificate,
    key: KeyPair,
}

fn make_ca(name: &str) -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    Ca {
        cert: params.self_signed(&key).unwrap(),
        key,
    }
}

/// Write a certificate for `names` signed by `ca`; returns (cert, key) paths.
fn issue(ca: &Ca, dir: &Path, stem: &str, names: &[&str]) -> (PathBuf, PathBuf) {
    let key = KeyPair::generate().unwrap();
    let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    let mut params = CertificateParams::new(names).unwrap();
    params.distinguished_name.push(DnType::CommonName, stem);
    let cert = params.signed_by(&key, &ca.cert, &ca.key).unwrap();
    let cert_path = dir.join(format!("{stem}.pem"));
    let key_path = dir.join(format!("{stem}-key.pem"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    (cert_path, key_path)
}

fn write_ca(ca: &Ca, dir: &Path, stem: &str) -> PathBuf {
    let path = dir.join(format!("{stem}.pem"));
    std::fs::write(&path, ca.cert.pem()).unwrap();
    path
}

fn tls_config(endpoint: &str, ca_file: PathBuf) -> EtcdConfig {
    let mut cfg = lock_support::config(&[endpoint.to_string()], "default");
    cfg.ca_file = Some(ca_file);
    cfg
}

#[tokio::test]
async fn tls_with_ca_only_works_and_a_wrong_ca_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ca = make_ca("test etcd CA");
    let (cert_file, key_file) = issue(&ca, dir.path(), "server", &["127.0.0.1", "localhost"]);
    let etcd = EtcdProcess::start_single_with(EtcdOptions {
        extra_args: vec![],
        tls: Some(ServerTls {
            cert_file,
            key_file,
            client_ca_file: None,
        }),
    })
    .unwrap();
    assert!(etcd.endpoint().starts_with("https://"));

    let cfg = tls_config(etcd.endpoint(), write_ca(&ca, dir.path(), "ca"));
    let node = lock_support::lock(&cfg, "node-a");
    assert_eq!(node.try_acquire().await.unwrap(), Attempt::Taken);
    assert!(node.release_once().await.unwrap());

    let other = make_ca("some other CA");
    let cfg = tls_config(etcd.endpoint(), write_ca(&other, dir.path(), "wrong-ca"));
    let err = lock_support::lock(&cfg, "node-a")
        .status()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), "unavailable", "{err}");
    assert!(err.to_string().contains("certificate"), "{err}");
    assert!(err.to_string().contains(etcd.endpoint()), "{err}");
}

#[tokio::test]
async fn mutual_tls_needs_a_client_certificate_from_the_trusted_ca() {
    let dir = tempfile::tempdir().unwrap();
    let ca = make_ca("test etcd CA");
    let ca_file = write_ca(&ca, dir.path(), "ca");
    let (cert_file, key_file) = issue(&ca, dir.path(), "server", &["127.0.0.1"]);
    let etcd = EtcdProcess::start_single_with(EtcdOptions {
        extra_args: vec![],
        tls: Some(ServerTls {
            cert_file,
            key_file,
            client_ca_file: Some(ca_file.clone()),
        }),
    })
    .unwrap();

    let (client_cert, client_key) = issue(&ca, dir.path(), "client", &["node-a"]);
    let mut cfg = tls_config(etcd.endpoint(), ca_file.clone());
    cfg.cert_file = Some(client_cert);
    cfg.key_file = Some(client_key);
    let node = lock_support::lock(&cfg, "node-a");
    assert_eq!(node.try_acquire().await.unwrap(), Attempt::Taken);

    // Without a client certificate the server hangs up during the handshake.
    let no_cert = tls_config(etcd.endpoint(), ca_file.clone());
    assert!(lock_support::lock(&no_cert, "node-b")
        .status()
        .await
        .is_err());

    // A client certificate from another CA is refused too.
    let rogue = make_ca("rogue CA");
    let (rogue_cert, rogue_key) = issue(&rogue, dir.path(), "rogue", &["node-b"]);
    let mut cfg = tls_config(etcd.endpoint(), ca_file);
    cfg.cert_file = Some(rogue_cert);
    cfg.key_file = Some(rogue_key);
    assert!(lock_support::lock(&cfg, "node-b").status().await.is_err());
}

#[tokio::test]
async fn username_and_password() {
    // Tokens expire after 1 s idle, to take the re-authentication path.
    let etcd = EtcdProcess::start_single_with(EtcdOptions {
        tls: None,
        extra_args: vec!["--auth-token-ttl=1".into()],
    })
    .unwrap();
    let admin = lock_support::raw(etcd.endpoint()).await;
    admin.user_add("root", "s3cret").await.unwrap();
    admin.user_grant_role("root", "root").await.unwrap();
    admin.auth_enable().await.unwrap();

    let mut cfg = lock_support::config(&[etcd.endpoint().into()], "default");
    cfg.username = Some("root".into());
    cfg.password = Some("s3cret".into());
    let node = lock_support::lock(&cfg, "node-a");
    assert_eq!(node.try_acquire().await.unwrap(), Attempt::Taken);
    // The token expired meanwhile: the next single call re-authenticates.
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    assert!(node.release_once().await.unwrap());

    cfg.password = Some("wrong".into());
    let err = lock_support::lock(&cfg, "node-a")
        .status()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), "refused", "{err}");
    assert!(!err.is_transient());

    let anonymous = lock_support::config(&[etcd.endpoint().into()], "default");
    let err = lock_support::lock(&anonymous, "node-b")
        .status()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), "refused", "{err}");
}
