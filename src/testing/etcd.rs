//! Real `etcd` processes for tests and benchmarks: a single node or a small
//! cluster on 127.0.0.1 with free ports and temporary data directories,
//! killed on drop. Needs the `etcd` binary (Debian `etcd-server`, v3.4).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// How long a member may take to report healthy on a busy machine.
const HEALTH_TIMEOUT_SECS: u64 = 30;

/// Start attempts when another process grabbed one of our free ports.
const START_ATTEMPTS: usize = 3;

/// Server TLS files for a member (paths to PEM files).
#[derive(Debug, Clone)]
pub struct ServerTls {
    /// Server certificate (must name 127.0.0.1).
    pub cert_file: PathBuf,
    /// Its private key.
    pub key_file: PathBuf,
    /// CA whose client certificates are accepted; `None` = no client auth.
    pub client_ca_file: Option<PathBuf>,
}

/// How to start a single member.
#[derive(Debug, Clone, Default)]
pub struct EtcdOptions {
    /// Serve clients over TLS.
    pub tls: Option<ServerTls>,
    /// More `etcd` flags, e.g. `--auth-token-ttl=1`.
    pub extra_args: Vec<String>,
}

/// One etcd member process.
pub struct EtcdProcess {
    name: String,
    args: Vec<String>,
    client_url: String,
    metrics_port: u16,
    log_file: PathBuf,
    child: Option<Child>,
    // Dropped after the child is killed (field order).
    _dir: tempfile::TempDir,
}

struct Ports {
    client: u16,
    peer: u16,
    metrics: u16,
}

impl EtcdProcess {
    /// A single-member cluster over plain HTTP.
    pub fn start_single() -> Result<Self> {
        Self::start_single_with(EtcdOptions::default())
    }

    /// A single-member cluster with TLS and/or extra flags.
    pub fn start_single_with(options: EtcdOptions) -> Result<Self> {
        retry_start(|| {
            let ports = free_ports()?;
            let peer = format!("http://127.0.0.1:{}", ports.peer);
            let cluster = format!("solo={peer}");
            let mut member = Self::spawn("solo", &ports, &cluster, &options)?;
            member.wait_healthy()?;
            Ok(member)
        })
    }

    /// A single member on a given client port (for tests that need to know
    /// the endpoint before etcd runs).
    pub fn start_single_on(client_port: u16) -> Result<Self> {
        let mut ports = free_ports()?;
        ports.client = client_port;
        let peer = format!("http://127.0.0.1:{}", ports.peer);
        let cluster = format!("solo={peer}");
        let mut member = Self::spawn("solo", &ports, &cluster, &EtcdOptions::default())?;
        member.wait_healthy()?;
        Ok(member)
    }

    fn spawn(name: &str, ports: &Ports, cluster: &str, options: &EtcdOptions) -> Result<Self> {
        let tls = options.tls.as_ref();
        let dir = tempfile::tempdir().context("creating an etcd data directory")?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        let client_url = format!("{scheme}://127.0.0.1:{}", ports.client);
        let peer_url = format!("http://127.0.0.1:{}", ports.peer);
        let mut args: Vec<String> = vec![
            format!("--name={name}"),
            format!("--data-dir={}", dir.path().join("data").display()),
            format!("--listen-client-urls={client_url}"),
            format!("--advertise-client-urls={client_url}"),
            format!("--listen-peer-urls={peer_url}"),
            format!("--initial-advertise-peer-urls={peer_url}"),
            format!("--listen-metrics-urls=http://127.0.0.1:{}", ports.metrics),
            format!("--initial-cluster={cluster}"),
            "--initial-cluster-state=new".into(),
            // Same token for every member of a cluster, unique per cluster.
            format!("--initial-cluster-token=test-{}", token_port(cluster)),
        ];
        if let Some(tls) = tls {
            args.push(format!("--cert-file={}", tls.cert_file.display()));
            args.push(format!("--key-file={}", tls.key_file.display()));
            if let Some(ca) = &tls.client_ca_file {
                args.push("--client-cert-auth".into());
                args.push(format!("--trusted-ca-file={}", ca.display()));
            }
        }
        args.extend(options.extra_args.iter().cloned());
        let log_file = dir.path().join("etcd.log");
        let mut member = EtcdProcess {
            name: name.to_string(),
            args,
            client_url,
            metrics_port: ports.metrics,
            log_file,
            child: None,
            _dir: dir,
        };
        member.launch()?;
        Ok(member)
    }

    fn launch(&mut self) -> Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_file)
            .context("creating the etcd log file")?;
        let child = Command::new("etcd")
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting etcd (install the Debian package etcd-server)")?;
        self.child = Some(child);
        Ok(())
    }

    fn wait_healthy(&mut self) -> Result<()> {
        let metrics_port = self.metrics_port;
        let deadline = Instant::now() + Duration::from_secs(HEALTH_TIMEOUT_SECS);
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Some(status) = child.try_wait()? {
                    bail!(
                        "etcd {} exited with {status}: {}",
                        self.name,
                        self.log_tail()
                    );
                }
            }
            if health_ok(metrics_port) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "etcd {} not healthy after {HEALTH_TIMEOUT_SECS} s: {}",
                    self.name,
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The client URL (`http://127.0.0.1:PORT` or `https://…`).
    pub fn endpoint(&self) -> &str {
        &self.client_url
    }

    /// The member name (`solo`, `m0`, `m1`, …).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Kill the process now (SIGKILL, no clean shutdown).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Start a killed single member again on the same ports and data
    /// (what it stored survives, as after a crash and reboot).
    pub fn restart(&mut self) -> Result<()> {
        self.kill();
        self.launch()?;
        self.wait_healthy()
    }

    /// The last lines of the member's log, for error messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log_file).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(10)..].join("\n")
    }

    /// Path of the member's log file.
    pub fn log_file(&self) -> &Path {
        &self.log_file
    }
}

impl Drop for EtcdProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A cluster of etcd members on 127.0.0.1.
pub struct EtcdCluster {
    members: Vec<EtcdProcess>,
}

impl EtcdCluster {
    /// Start `size` members over plain HTTP and wait until all are healthy
    /// (which, for etcd, includes having elected a leader).
    pub fn start(size: usize) -> Result<Self> {
        retry_start(|| {
            let ports: Vec<Ports> = (0..size).map(|_| free_ports()).collect::<Result<_>>()?;
            let cluster = ports
                .iter()
                .enumerate()
                .map(|(i, p)| format!("m{i}=http://127.0.0.1:{}", p.peer))
                .collect::<Vec<_>>()
                .join(",");
            let mut members = Vec::new();
            for (i, p) in ports.iter().enumerate() {
                let options = EtcdOptions::default();
                members.push(EtcdProcess::spawn(&format!("m{i}"), p, &cluster, &options)?);
            }
            for member in members.iter_mut() {
                member.wait_healthy()?;
            }
            Ok(EtcdCluster { members })
        })
    }

    /// Client URLs of all members, in member order.
    pub fn endpoints(&self) -> Vec<String> {
        self.members
            .iter()
            .map(|m| m.endpoint().to_string())
            .collect()
    }

    /// Member `index`.
    pub fn member(&self, index: usize) -> &EtcdProcess {
        &self.members[index]
    }

    /// Kill member `index` (SIGKILL).
    pub fn kill(&mut self, index: usize) {
        self.members[index].kill();
    }
}

fn retry_start<T>(mut start: impl FnMut() -> Result<T>) -> Result<T> {
    let mut last = None;
    for _ in 0..START_ATTEMPTS {
        match start() {
            Ok(value) => return Ok(value),
            // Most likely a port taken between probing and binding.
            Err(err) => last = Some(err),
        }
    }
    Err(last.unwrap_or_else(|| anyhow::anyhow!("etcd did not start")))
}

/// Three ports the kernel reports free right now (a small race remains;
/// `retry_start` covers it).
fn free_ports() -> Result<Ports> {
    let listeners: Vec<TcpListener> = (0..3)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<_>>()
        .context("finding free ports")?;
    let port = |i: usize| -> Result<u16> { Ok(listeners[i].local_addr()?.port()) };
    Ok(Ports {
        client: port(0)?,
        peer: port(1)?,
        metrics: port(2)?,
    })
}

/// The first peer port named in an `--initial-cluster` value.
fn token_port(cluster: &str) -> &str {
    cluster
        .split(',')
        .next()
        .and_then(|member| member.rsplit(':').next())
        .unwrap_or("0")
}

/// Free port on 127.0.0.1 (for a client URL of an etcd that is not running yet).
pub fn free_port() -> Result<u16> {
    Ok(free_ports()?.client)
}

/// `GET /health` on the plain-HTTP metrics listener (works for TLS members too).
fn health_ok(metrics_port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", metrics_port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream
        .write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut reply = String::new();
    let _ = stream.read_to_string(&mut reply);
    reply.contains("\"health\":\"true\"")
}
