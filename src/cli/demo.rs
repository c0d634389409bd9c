//! `colony demo`: a local cluster of five `colony node` processes on loopback, with box
//! and zone labels, a stream of session writes, and the live event stream, while the
//! script kills the host with the most primaries (SIGKILL), adds a sixth host, and lets
//! one host leave (SIGTERM). It ends by reading back every acknowledged write.

use super::http;
use super::resp_client::{Client, Value};
use anyhow::{bail, Context, Result};
use colony::admin::report::StatusReport;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(clap::Args, Clone, Debug)]
pub struct DemoArgs {
    /// Peer ports are BASE+i, client ports BASE-1000+i, admin ports BASE+100+i.
    #[arg(long, default_value_t = 7400)]
    pub base_port: u16,
    /// Colonies in the demo cluster (few, so the event stream stays readable).
    #[arg(long, default_value_t = 64)]
    pub colonies: u32,
    /// Print events as JSON lines.
    #[arg(long)]
    pub json: bool,
}

struct Host {
    id: u32,
    child: Child,
    client: String,
    admin: String,
}

struct Cluster {
    exe: PathBuf,
    logs: PathBuf,
    args: DemoArgs,
    hosts: BTreeMap<u32, Host>,
}

impl Cluster {
    fn start_host(&mut self, id: u32, box_name: &str, zone: &str) -> Result<()> {
        let b = self.args.base_port;
        let peer = format!("127.0.0.1:{}", b + id as u16);
        let client = format!("127.0.0.1:{}", b - 1000 + id as u16);
        let admin = format!("127.0.0.1:{}", b + 100 + id as u16);
        let log = std::fs::File::create(self.logs.join(format!("n{id}.log")))?;
        let mut cmd = Command::new(&self.exe);
        cmd.args(["node", "--id", &id.to_string(), "--listen", &peer])
            .args(["--client", &client, "--admin", &admin])
            .args(["--box", box_name, "--zone", zone])
            .args([
                "--colonies",
                &self.args.colonies.to_string(),
                "--replicas",
                "3",
            ])
            .args(["--cluster", "demo"])
            .env("COLONY_SECRET", "demo-secret")
            .stdout(Stdio::null())
            .stderr(log);
        if let Some(seed) = self.hosts.keys().next() {
            cmd.args(["--join", &format!("127.0.0.1:{}", b + *seed as u16)]);
        }
        let child = cmd.spawn().context("cannot start colony node")?;
        self.hosts.insert(
            id,
            Host {
                id,
                child,
                client,
                admin,
            },
        );
        Ok(())
    }

    /// Fails if a node process has exited (a port in use, say), with its last log lines.
    fn check_alive(&mut self) -> Result<()> {
        for h in self.hosts.values_mut() {
            if let Some(status) = h.child.try_wait()? {
                let log = std::fs::read_to_string(self.logs.join(format!("n{}.log", h.id)))
                    .unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(5).collect();
                bail!(
                    "node {} exited ({status}); its log ends with:\n{}\n(is another colony using ports near {}? try --base-port)",
                    h.id,
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
                    self.args.base_port
                );
            }
        }
        Ok(())
    }

    fn any_status(&self) -> Option<StatusReport> {
        self.hosts
            .values()
            .find_map(|h| http::status(&h.admin).ok())
    }

    fn clients(&self) -> Vec<String> {
        self.hosts.values().map(|h| h.client.clone()).collect()
    }

    /// Waits until every live host reports itself and the directory has every colony at
    /// the target population.
    fn wait_settled(&mut self, what: &str, timeout: Duration) -> Result<()> {
        let start = Instant::now();
        loop {
            self.check_alive()?;
            if let Some(s) = self.any_status() {
                let alive = s.members.iter().filter(|m| m.state == "alive").count();
                let full = s.directory.len() as u32 == s.colonies
                    && s.directory
                        .iter()
                        .all(|d| d.secondaries.len() as u32 + 1 >= s.target.min(alive as u32));
                if alive == self.hosts.len() && full {
                    say(&format!(
                        "{what}: {} hosts alive, every colony at {} replicas ({:.1} s)",
                        alive,
                        s.target,
                        start.elapsed().as_secs_f64()
                    ));
                    return Ok(());
                }
            }
            if start.elapsed() > timeout {
                bail!(
                    "{what}: not settled after {timeout:?} (logs in {})",
                    self.logs.display()
                );
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    fn stop_all(&mut self) {
        for h in self.hosts.values_mut() {
            let _ = h.child.kill();
            let _ = h.child.wait();
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop_all();
    }
}

fn say(s: &str) {
    println!("\x1b[1m==> {s}\x1b[0m");
}

/// The session writer: SET session:<n> with a TTL against any node, reconnecting to
/// another node when one goes away; remembers every acknowledged write.
fn writer(
    clients: Arc<Mutex<Vec<String>>>,
    acked: Arc<Mutex<BTreeMap<String, String>>>,
    errors: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) {
    let mut n = 0u64;
    let mut conn: Option<Client> = None;
    while !stop.load(Ordering::Relaxed) {
        if conn.is_none() {
            let addrs = clients.lock().map(|c| c.clone()).unwrap_or_default();
            let pick = &addrs[(n as usize) % addrs.len().max(1)];
            conn = Client::connect(pick).ok();
            if conn.is_none() {
                errors.fetch_add(1, Ordering::Relaxed);
                n += 1;
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        }
        let key = format!("session:{n}");
        let value = format!("{{\"user\":{},\"cart\":[{}]}}", n % 977, n % 13);
        let c = conn.as_mut().expect("connected above");
        match c.call(&[b"SET", key.as_bytes(), value.as_bytes(), b"EX", b"600"]) {
            Ok(Value::Ok(_)) => {
                if let Ok(mut a) = acked.lock() {
                    a.insert(key, value);
                }
                n += 1;
            }
            Ok(_) => {
                errors.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(_) => {
                errors.fetch_add(1, Ordering::Relaxed);
                conn = None;
                n += 1;
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

pub fn run(args: DemoArgs) -> Result<()> {
    let exe = std::env::current_exe()?;
    let logs = std::env::temp_dir().join(format!("colony-demo-{}", std::process::id()));
    std::fs::create_dir_all(&logs)?;
    let mut cluster = Cluster {
        exe,
        logs: logs.clone(),
        args: args.clone(),
        hosts: BTreeMap::new(),
    };
    let t0 = Instant::now();
    say(&format!(
        "starting 5 nodes on 127.0.0.1 (boxes a,a,b,c,c; zones 1,1,1,2,2), {} colonies, N=3; logs in {}",
        args.colonies,
        logs.display()
    ));
    let layout = [
        (1, "box-a", "zone-1"),
        (2, "box-a", "zone-1"),
        (3, "box-b", "zone-1"),
        (4, "box-c", "zone-2"),
        (5, "box-c", "zone-2"),
    ];
    for (id, b, z) in layout {
        cluster.start_host(id, b, z)?;
        if id == 1 {
            std::thread::sleep(Duration::from_millis(300));
        }
    }
    // Events from every node, live.
    let (tx, rx) = mpsc::channel::<String>();
    let seed = cluster.hosts[&1].admin.clone();
    std::thread::sleep(Duration::from_millis(300));
    std::thread::spawn(move || super::watch::follow_cluster(seed, true, tx));
    let json = args.json;
    let counts: Arc<Mutex<BTreeMap<String, u64>>> = Arc::default();
    let counts2 = counts.clone();
    std::thread::spawn(move || {
        for line in rx {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                if let Some(kind) = v.get("event").and_then(|e| e.as_str()) {
                    if let Ok(mut c) = counts2.lock() {
                        *c.entry(kind.to_string()).or_default() += 1;
                    }
                }
            }
            if json {
                println!("{line}");
            } else {
                println!("   {}", super::watch::readable(&line));
            }
        }
    });
    cluster.wait_settled("cluster formed", Duration::from_secs(45))?;

    let clients = Arc::new(Mutex::new(cluster.clients()));
    let acked: Arc<Mutex<BTreeMap<String, String>>> = Arc::default();
    let errors = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    say("writing sessions (SET session:<n> ... EX 600) through every node");
    let w = {
        let (c, a, e, s) = (clients.clone(), acked.clone(), errors.clone(), stop.clone());
        std::thread::spawn(move || writer(c, a, e, s))
    };
    std::thread::sleep(Duration::from_secs(4));

    let status = cluster.any_status().context("no node answers")?;
    let victim = status
        .members
        .iter()
        .filter(|m| m.state == "alive")
        .max_by_key(|m| (m.primaries, m.id))
        .map(|m| m.id)
        .context("no live member")?;
    let primaries = status
        .members
        .iter()
        .find(|m| m.id == victim)
        .map(|m| m.primaries)
        .unwrap_or(0);
    say(&format!("SIGKILL host {victim} (it holds {primaries} primaries): its secondaries elsewhere get promoted"));
    let killed_at = Instant::now();
    if let Some(mut h) = cluster.hosts.remove(&victim) {
        let _ = h.child.kill();
        let _ = h.child.wait();
        debug_assert_eq!(h.id, victim);
    }
    *clients.lock().map_err(|_| anyhow::anyhow!("poisoned"))? = cluster.clients();
    cluster.wait_settled("recovered from the kill", Duration::from_secs(45))?;
    say(&format!(
        "back to N=3 everywhere {:.1} s after the kill",
        killed_at.elapsed().as_secs_f64()
    ));

    say("adding host 6 (box-d, zone-2): colonies drift to its spare capacity");
    cluster.start_host(6, "box-d", "zone-2")?;
    *clients.lock().map_err(|_| anyhow::anyhow!("poisoned"))? = cluster.clients();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(20) {
        let held = http::status(&cluster.hosts[&6].admin)
            .map(|s| s.local.len())
            .unwrap_or(0);
        if held >= (args.colonies as usize * 3) / 6 {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let held = http::status(&cluster.hosts[&6].admin)
        .map(|s| s.local.len())
        .unwrap_or(0);
    say(&format!("host 6 now holds {held} replicas"));
    std::thread::sleep(Duration::from_secs(3));

    let leaver = *cluster
        .hosts
        .keys()
        .find(|id| **id != 6 && **id != 1)
        .context("no host to leave")?;
    say(&format!("host {leaver} leaves gracefully (SIGTERM): it hands off first, so no promotion by failover"));
    if let Some(mut h) = cluster.hosts.remove(&leaver) {
        *clients.lock().map_err(|_| anyhow::anyhow!("poisoned"))? = cluster.clients();
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(h.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let start = Instant::now();
        let code = loop {
            if let Some(st) = h.child.try_wait()? {
                break st.code();
            }
            if start.elapsed() > Duration::from_secs(60) {
                let _ = h.child.kill();
                break None;
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        say(&format!(
            "host {leaver} exited with {code:?} after {:.1} s",
            start.elapsed().as_secs_f64()
        ));
    }
    cluster.wait_settled("settled after the leave", Duration::from_secs(45))?;

    stop.store(true, Ordering::Relaxed);
    let _ = w.join();
    let acked = acked
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .clone();
    say(&format!("reading back {} acknowledged writes", acked.len()));
    let addr = cluster.clients()[0].clone();
    let mut c = Client::connect(&addr)?;
    let mut missing = 0;
    for (k, v) in &acked {
        match c.call(&[b"GET", k.as_bytes()])? {
            Value::Bulk(Some(got)) if got == v.as_bytes() => {}
            _ => missing += 1,
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    let counts = counts
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .clone();
    say(&format!(
        "done in {:.0} s: {} writes acknowledged, {} missing, {} client errors retried; events: {}",
        t0.elapsed().as_secs_f64(),
        acked.len(),
        missing,
        errors.load(Ordering::Relaxed),
        counts
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    ));
    cluster.stop_all();
    if missing > 0 {
        bail!("{missing} acknowledged writes were lost");
    }
    Ok(())
}
