//! Test harness: real `colony node` processes on 127.0.0.1, each stopped by the test
//! that started it, by its own process id (on drop, too, so a failing test leaves
//! nothing behind).

#![allow(dead_code)]

use colony::admin::report::StatusReport;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const EXE: &str = env!("CARGO_BIN_EXE_colony");

/// Where [`free_port`] looks for ports: below Linux's ephemeral range (32768-60999).
const PORTS: std::ops::Range<u32> = 20_000..32_000;

/// A free port on loopback (bound then released), below the kernel's ephemeral range:
/// a port taken from that range can become the local port of some outgoing connection
/// before the node binds it, or while a stopped node is down and is about to listen on
/// it again. Each call takes the next port from a start chosen at random per test
/// process, so parallel tests never get the same one.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let span = PORTS.end - PORTS.start;
    if NEXT.load(Ordering::Relaxed) == 0 {
        let start = rand::random::<u32>() % span + 1;
        let _ = NEXT.compare_exchange(0, start, Ordering::Relaxed, Ordering::Relaxed);
    }
    for _ in 0..span {
        let port = (PORTS.start + NEXT.fetch_add(1, Ordering::Relaxed) % span) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in {PORTS:?}");
}

pub struct NodeProc {
    pub id: u32,
    pub peer: String,
    pub client: String,
    pub admin: String,
    pub child: Option<Child>,
    pub log: PathBuf,
    pub extra: Vec<String>,
}

impl NodeProc {
    pub fn pid(&self) -> i32 {
        self.child.as_ref().map(|c| c.id() as i32).unwrap_or(-1)
    }

    pub fn redis(&self) -> redis::Connection {
        let client = redis::Client::open(format!("redis://{}/", self.client)).expect("url");
        client
            .get_connection_with_timeout(Duration::from_secs(5))
            .expect("connect to the client port")
    }

    pub fn status(&self) -> Option<StatusReport> {
        status(&self.admin)
    }

    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), sig);
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Waits for the process to exit by itself; its exit code.
    /// SIGTERM (a graceful leave), then asserts the node exits 0 within `timeout`.
    pub fn leave(&mut self, timeout: Duration) {
        self.signal(nix::sys::signal::Signal::SIGTERM);
        assert_eq!(
            self.wait_exit(timeout),
            Some(0),
            "node {} left; log:\n{}",
            self.id,
            self.log_text()
        );
    }

    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(st)) = c.try_wait() {
                    self.child = None;
                    return st.code();
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        None
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        self.kill();
    }
}

pub struct Cluster {
    pub dir: PathBuf,
    pub nodes: BTreeMap<u32, NodeProc>,
    pub colonies: u32,
    pub replicas: u32,
    pub secret: String,
}

impl Cluster {
    pub fn new(name: &str, colonies: u32, replicas: u32) -> Cluster {
        let dir = std::env::temp_dir().join(format!("colony-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        Cluster {
            dir,
            nodes: BTreeMap::new(),
            colonies,
            replicas,
            secret: "test-secret".into(),
        }
    }

    /// Starts node `id` (joining the lowest-numbered running node, if any).
    pub fn start(&mut self, id: u32, box_name: &str, extra: &[&str]) -> &NodeProc {
        let seed = self
            .nodes
            .values()
            .find(|n| n.child.is_some())
            .map(|n| n.peer.clone());
        let (peer, client, admin) = match self.nodes.get(&id) {
            Some(n) => (n.peer.clone(), n.client.clone(), n.admin.clone()),
            None => (
                format!("127.0.0.1:{}", free_port()),
                format!("127.0.0.1:{}", free_port()),
                format!("127.0.0.1:{}", free_port()),
            ),
        };
        let log = self.dir.join(format!("n{id}-{}.log", rand_tag()));
        let mut cmd = Command::new(EXE);
        cmd.args(["node", "--id", &id.to_string(), "--listen", &peer])
            .args(["--client", &client, "--admin", &admin, "--box", box_name])
            .args(["--colonies", &self.colonies.to_string()])
            .args([
                "--replicas",
                &self.replicas.to_string(),
                "--cluster",
                "test",
            ])
            .args(extra)
            .env("COLONY_SECRET", &self.secret)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"));
        if let Some(seed) = seed {
            cmd.args(["--join", &seed]);
        }
        let child = cmd.spawn().expect("spawn colony node");
        let node = NodeProc {
            id,
            peer,
            client,
            admin,
            child: Some(child),
            log,
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        if let Some(mut old) = self.nodes.insert(id, node) {
            old.kill();
        }
        let n = &self.nodes[&id];
        wait_until(Duration::from_secs(20), || n.status().is_some())
            .unwrap_or_else(|| panic!("node {id} did not come up; log:\n{}", n.log_text()));
        n
    }

    pub fn running(&self) -> impl Iterator<Item = &NodeProc> {
        self.nodes.values().filter(|n| n.child.is_some())
    }

    /// True when every running node sees exactly the running nodes alive, and the
    /// directory of each places every colony on `target` distinct live hosts.
    pub fn settled(&self, target: u32) -> bool {
        self.spread(|hosts, _| hosts.len() as u32 == target)
    }

    /// True when every running node sees exactly the running nodes alive, and the
    /// directory of each places every colony on distinct live hosts that `ok` accepts
    /// (given the hosts and the primary).
    pub fn spread(&self, ok: impl Fn(&[u32], u32) -> bool) -> bool {
        let live: Vec<u32> = self.running().map(|n| n.id).collect();
        self.running().all(|n| {
            let Some(s) = n.status() else { return false };
            let alive: Vec<u32> = s
                .members
                .iter()
                .filter(|m| m.state == "alive")
                .map(|m| m.id)
                .collect();
            alive == live
                && s.directory.len() as u32 == self.colonies
                && s.directory.iter().all(|d| {
                    let mut hosts = vec![d.primary];
                    hosts.extend(&d.secondaries);
                    let n = hosts.len();
                    hosts.sort();
                    hosts.dedup();
                    hosts.len() == n
                        && hosts.iter().all(|h| live.contains(h))
                        && ok(&hosts, d.primary)
                })
        })
    }

    pub fn wait_settled(&self, target: u32, timeout: Duration) {
        if wait_until(timeout, || self.settled(target)).is_none() {
            let dump: Vec<String> = self
                .running()
                .map(|n| {
                    let s = n.status();
                    format!(
                        "node {}: {}",
                        n.id,
                        s.map(|s| serde_json::to_string(&(
                            s.members
                                .iter()
                                .map(|m| (m.id, m.state.clone()))
                                .collect::<Vec<_>>(),
                            s.directory
                                .iter()
                                .filter(|d| d.secondaries.len() as u32 + 1 != target)
                                .map(|d| (d.colony, d.primary, d.secondaries.clone()))
                                .collect::<Vec<_>>()
                        ))
                        .unwrap_or_default())
                            .unwrap_or_else(|| "no status".into())
                    )
                })
                .collect();
            panic!(
                "cluster did not settle at {target} replicas within {timeout:?}:\n{}",
                dump.join("\n")
            );
        }
    }
}

fn rand_tag() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

pub fn status(admin: &str) -> Option<StatusReport> {
    let body = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(3))
        .build()
        .get(&format!("http://{admin}/status"))
        .call()
        .ok()?
        .into_string()
        .ok()?;
    serde_json::from_str(&body).ok()
}

/// Polls `f` until it returns true or `timeout` passes.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if f() {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    None
}

/// Collects a node's event stream (from the start of what it keeps) in the background.
pub fn collect_events(admin: &str) -> Arc<Mutex<Vec<serde_json::Value>>> {
    let events: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
    let sink = events.clone();
    let url = format!("http://{admin}/events?from=start");
    std::thread::spawn(move || {
        let Ok(resp) = ureq::get(&url).call() else {
            return;
        };
        for line in BufReader::new(resp.into_reader()).lines() {
            let Ok(line) = line else { return };
            if let Some(data) = line.strip_prefix("data: ") {
                if let Ok(v) = serde_json::from_str(data) {
                    sink.lock().unwrap().push(v);
                }
            }
        }
    });
    events
}

/// Number of events of `kind` (optionally with `reason`) in a collected stream.
pub fn count(
    events: &Arc<Mutex<Vec<serde_json::Value>>>,
    kind: &str,
    reason: Option<&str>,
) -> usize {
    events
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == kind)
        .filter(|e| reason.is_none_or(|r| e["reason"] == r))
        .count()
}

/// Reads cells `c:0..c:n` through `node` (every tenth is a hash with field `dna`, the
/// rest plain strings), pipelined, and asserts each equals `want(i)`.
pub fn check_cells(node: &NodeProc, n: usize, want: impl Fn(usize) -> Option<String>) {
    let mut conn = node.redis();
    for chunk in (0..n).collect::<Vec<_>>().chunks(1_000) {
        let mut pipe = redis::pipe();
        for i in chunk {
            if i % 10 == 0 {
                pipe.hget(format!("c:{i}"), "dna");
            } else {
                pipe.get(format!("c:{i}"));
            }
        }
        let got: Vec<Option<String>> = pipe.query(&mut conn).expect("read back");
        for (i, v) in chunk.iter().zip(got) {
            assert_eq!(v, want(*i), "cell c:{i} via node {}", node.id);
        }
    }
}

/// Writes cells `c:0..c:n` through `node`, pipelined: every tenth a hash (field `dna`),
/// every tenth plus one with a 1.5 s TTL (it must never come back), the rest strings
/// `<tag>-<i>`.
pub fn load_cells(node: &NodeProc, n: usize, tag: &str) {
    let mut conn = node.redis();
    for chunk in (0..n).collect::<Vec<_>>().chunks(1_000) {
        let mut pipe = redis::pipe();
        for i in chunk {
            if i % 10 == 0 {
                pipe.hset(format!("c:{i}"), "dna", format!("{tag}-{i}"))
                    .ignore();
            } else if i % 10 == 1 {
                // Expires during the test: must not come back.
                pipe.cmd("SET")
                    .arg(format!("c:{i}"))
                    .arg("short")
                    .arg("PX")
                    .arg(1_500)
                    .ignore();
            } else {
                pipe.set(format!("c:{i}"), format!("{tag}-{i}")).ignore();
            }
        }
        let () = pipe.query(&mut conn).expect("load");
    }
}

/// Asserts what [`load_cells`] wrote reads back through `node`, the expired cells gone.
pub fn check_loaded(node: &NodeProc, n: usize, tag: &str) {
    check_cells(node, n, |i| (i % 10 != 1).then(|| format!("{tag}-{i}")));
}
