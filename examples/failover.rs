//! Failover time, colony against Redis Cluster, on one machine.
//!
//! ```text
//! cargo run --release --example failover -- [--repeats R]
//! ```
//!
//! For each of R repeats, and for each system, a fresh cluster on loopback under a
//! background write load: SIGKILL the process serving a key as primary, then, from that
//! instant, start a fresh `SET key` every 5 ms (each on its own connection, short
//! timeouts) against a surviving process, and record when the first one answers OK.
//!
//! - colony: 4 `colony node`s (N = 3, default timings), 64 colonies; the victim is the
//!   host holding the most primaries; the key is one whose colony's primary is on it
//!   (`COLONY key`); the writes go to the surviving host that holds no replica of that
//!   colony (so they are forwarded to whoever is promoted).
//! - Redis Cluster: 6 `redis-server`s (3 primaries, 3 replicas), no persistence,
//!   `cluster-node-timeout` matched to colony's failure detection (probe period 300 ms,
//!   probe timeout 200 ms, suspicion 700 ms: about 1.2 s); the writes go to the killed
//!   primary's replica, which answers MOVED / CLUSTERDOWN until it is promoted.
//!
//! Prints every repeat, then p50 and p99 (with fewer than 100 repeats p99 is the max)
//! per system and the colony/redis ratio, the false suspicions colony's nodes reported
//! before the kill, and when the survivors suspected / declared dead the victim and
//! promoted the key's colony (from their `/events` streams).
//!
//! Every process started here is killed by its pid when its cluster is dropped (also on
//! error paths), and gets PR_SET_PDEATHSIG so it dies with this process.

use anyhow::{anyhow, bail, Context, Result};
use clap::Parser;
use colony::admin::report::StatusReport;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[derive(Parser, Debug)]
#[command(about = "Failover time under load: colony against Redis Cluster")]
struct Args {
    /// Kills per system (a fresh cluster each).
    #[arg(long, default_value_t = 5)]
    repeats: usize,
    /// Colonies in the colony cluster.
    #[arg(long, default_value_t = 64)]
    colonies: u32,
    /// Redis `cluster-node-timeout` in ms (colony: 300 + 200 + 700 ms to declare a host dead).
    #[arg(long, default_value_t = 1200)]
    node_timeout: u64,
    /// Background writer threads.
    #[arg(long, default_value_t = 3)]
    writers: usize,
    /// Seconds of background load before the kill.
    #[arg(long, default_value_t = 3)]
    load_secs: u64,
    /// Colony ports: peer BASE+i, client BASE-1000+i, admin BASE+100+i (i = 1..4).
    #[arg(long, default_value_t = 17400)]
    colony_base: u16,
    /// Redis Cluster ports BASE+1..BASE+6 (cluster bus +10000).
    #[arg(long, default_value_t = 16700)]
    redis_base: u16,
    /// Which systems to measure.
    #[arg(long, value_enum, default_value_t = Only::Both)]
    only: Only,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq)]
enum Only {
    Both,
    Colony,
    Redis,
}

// ----- processes ----------------------------------------------------------------------

/// The processes of one cluster: each killed by its own pid (SIGKILL) and reaped on
/// drop, so an error anywhere leaves nothing behind.
struct Procs {
    dir: PathBuf,
    list: BTreeMap<String, Child>,
    keep_dir: bool,
}

impl Procs {
    fn new(tag: &str) -> Result<Procs> {
        let dir =
            std::env::temp_dir().join(format!("colony-failover-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
        Ok(Procs {
            dir,
            list: BTreeMap::new(),
            keep_dir: true,
        })
    }

    fn spawn(&mut self, name: &str, cmd: &mut Command) -> Result<()> {
        let log = std::fs::File::create(self.dir.join(format!("{name}.log")))?;
        cmd.stdout(Stdio::null()).stderr(log).stdin(Stdio::null());
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
                    .map_err(std::io::Error::from)
            });
        }
        let child = cmd.spawn().with_context(|| format!("start {name}"))?;
        self.list.insert(name.to_string(), child);
        Ok(())
    }

    /// SIGKILL one process (by its pid) and reap it.
    fn kill(&mut self, name: &str) -> Result<()> {
        let child = self
            .list
            .get_mut(name)
            .ok_or_else(|| anyhow!("no process {name}"))?;
        child.kill().with_context(|| format!("kill {name}"))?;
        let _ = child.wait();
        self.list.remove(name);
        Ok(())
    }

    /// Fails if a process exited by itself, with the end of its log.
    fn check_alive(&mut self) -> Result<()> {
        for (name, child) in self.list.iter_mut() {
            if let Some(st) = child.try_wait()? {
                let log = std::fs::read_to_string(self.dir.join(format!("{name}.log")))
                    .unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(8).collect();
                bail!(
                    "{name} exited ({st}); its log ends with:\n{}",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
            }
        }
        Ok(())
    }

    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(format!("{name}.log"))).unwrap_or_default()
    }

    fn logs_with(&self, prefix: &str) -> Vec<String> {
        let mut out = Vec::new();
        if let Ok(rd) = std::fs::read_dir(&self.dir) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().to_string();
                if name.starts_with(prefix) && name.ends_with(".log") {
                    out.push(std::fs::read_to_string(e.path()).unwrap_or_default());
                }
            }
        }
        out
    }

    fn done(mut self) {
        self.keep_dir = false;
    }
}

impl Drop for Procs {
    fn drop(&mut self) {
        for child in self.list.values_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if self.keep_dir {
            eprintln!("  (logs kept in {})", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn port_free(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn wait_until(timeout: Duration, mut f: impl FnMut() -> Result<bool>) -> Result<bool> {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if f()? {
            return Ok(true);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(false)
}

// ----- redis client helpers -----------------------------------------------------------

fn connect(addr: &str, timeout: Duration) -> redis::RedisResult<redis::Connection> {
    let client = redis::Client::open(format!("redis://{addr}/"))?;
    let con = client.get_connection_with_timeout(timeout)?;
    con.set_read_timeout(Some(timeout))?;
    con.set_write_timeout(Some(timeout))?;
    Ok(con)
}

/// A short name for why a request failed.
fn classify(e: &redis::RedisError) -> String {
    if e.is_timeout() {
        "timeout".into()
    } else if e.is_connection_refusal() {
        "refused".into()
    } else if let Some(code) = e.code() {
        code.to_string()
    } else if e.is_io_error() || e.is_connection_dropped() {
        "io".into()
    } else {
        e.category().to_string()
    }
}

fn is_link_error(e: &redis::RedisError) -> bool {
    e.code().is_none()
}

/// A small xorshift generator (keys for the load; no need for quality).
struct Rng(u64);
impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Background writers: each thread SETs random keys, one at a time, to `targets(i)`,
/// moving to another target when its link fails.
struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    err: Arc<Mutex<BTreeMap<String, usize>>>,
    threads: Vec<JoinHandle<()>>,
}

impl Load {
    /// `pick(thread, attempt, rng)` gives the address and key of the next write.
    fn start(
        writers: usize,
        pick: impl Fn(usize, usize, &mut Rng) -> (String, String) + Send + Sync + 'static,
    ) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        let err: Arc<Mutex<BTreeMap<String, usize>>> = Arc::default();
        let pick = Arc::new(pick);
        let threads = (0..writers)
            .map(|i| {
                let (stop, ok, err, pick) = (stop.clone(), ok.clone(), err.clone(), pick.clone());
                std::thread::spawn(move || {
                    let mut rng = Rng::new(unix_ms() + i as u64 * 7919);
                    let mut target = i;
                    let mut con: Option<(String, redis::Connection)> = None;
                    while !stop.load(Ordering::Relaxed) {
                        let (addr, key) = pick(i, target, &mut rng);
                        if con.as_ref().is_none_or(|(a, _)| *a != addr) {
                            match connect(&addr, Duration::from_millis(2000)) {
                                Ok(c) => con = Some((addr.clone(), c)),
                                Err(e) => {
                                    *err.lock().unwrap().entry(classify(&e)).or_default() += 1;
                                    target += 1;
                                    std::thread::sleep(Duration::from_millis(20));
                                    continue;
                                }
                            }
                        }
                        let (_, c) = con.as_mut().expect("connected");
                        match redis::cmd("SET").arg(&key).arg("load").query::<()>(c) {
                            Ok(()) => {
                                ok.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(e) => {
                                *err.lock().unwrap().entry(classify(&e)).or_default() += 1;
                                if is_link_error(&e) {
                                    con = None;
                                    target += 1;
                                }
                            }
                        }
                    }
                })
            })
            .collect();
        Load {
            stop,
            ok,
            err,
            threads,
        }
    }

    /// Stops the writers: writes acknowledged, and failures by kind.
    fn stop(mut self) -> (u64, BTreeMap<String, usize>) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        (
            self.ok.load(Ordering::Relaxed),
            self.err.lock().unwrap().clone(),
        )
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// From `t0` (the kill), a fresh `SET key` every 5 ms against `addr`, each on its own
/// connection (connect timeout 200 ms, reply timeout 1 s), until one answers OK: the
/// time from `t0` to that answer, and how the failed attempts failed.
fn first_ok(
    addr: &str,
    key: &str,
    t0: Instant,
    give_up: Duration,
) -> Result<(Duration, BTreeMap<String, usize>)> {
    let (tx, rx) = mpsc::channel::<(Instant, Result<(), String>)>();
    let mut handles = Vec::new();
    let mut failures: BTreeMap<String, usize> = BTreeMap::new();
    let mut best: Option<Instant> = None;
    let mut next = t0;
    let mut ok_seen_at: Option<Instant> = None;
    loop {
        let now = Instant::now();
        if best.is_none() && now >= next {
            let (tx, addr, key) = (tx.clone(), addr.to_string(), key.to_string());
            handles.push(std::thread::spawn(move || {
                let r = connect(&addr, Duration::from_millis(200))
                    .and_then(|mut c| {
                        c.set_read_timeout(Some(Duration::from_secs(1)))?;
                        redis::cmd("SET")
                            .arg(&key)
                            .arg("after-failover")
                            .query::<()>(&mut c)
                    })
                    .map_err(|e| classify(&e));
                let _ = tx.send((Instant::now(), r));
            }));
            next += Duration::from_millis(5);
        }
        while let Ok((at, r)) = rx.try_recv() {
            match r {
                Ok(()) => {
                    best = Some(best.map_or(at, |b| b.min(at)));
                    ok_seen_at.get_or_insert(now);
                }
                Err(kind) => *failures.entry(kind).or_default() += 1,
            }
        }
        // Once an OK arrived, give attempts finishing at the same moment 20 ms to report.
        if ok_seen_at.is_some_and(|s| s.elapsed() > Duration::from_millis(20)) {
            break;
        }
        if best.is_none() && t0.elapsed() > give_up {
            bail!("no write to {key} succeeded within {give_up:?}: {failures:?}");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    drop(tx);
    for h in handles {
        let _ = h.join();
    }
    while let Ok((_, Err(kind))) = rx.try_recv() {
        *failures.entry(kind).or_default() += 1;
    }
    Ok((best.expect("an OK").duration_since(t0), failures))
}

/// What one ordinary client sees: from `t0`, `SET key` on one connection (opened before
/// the kill; reply timeout 10 s), again 5 ms after every error, reconnecting after a link
/// error, until OK. The time to that OK, and how the attempts failed.
fn sequential_ok(
    con: redis::Connection,
    addr: String,
    key: String,
    t0: Instant,
    give_up: Duration,
) -> (Option<Duration>, BTreeMap<String, usize>) {
    let mut failures: BTreeMap<String, usize> = BTreeMap::new();
    let mut con = con
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()
        .map(|_| con);
    while t0.elapsed() < give_up {
        let mut c = match con.take() {
            Some(c) => c,
            None => match connect(&addr, Duration::from_secs(10)) {
                Ok(c) => c,
                Err(e) => {
                    *failures.entry(classify(&e)).or_default() += 1;
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                }
            },
        };
        match redis::cmd("SET")
            .arg(&key)
            .arg("sequential")
            .query::<()>(&mut c)
        {
            Ok(()) => return (Some(t0.elapsed()), failures),
            Err(e) => {
                *failures.entry(classify(&e)).or_default() += 1;
                if !is_link_error(&e) {
                    con = Some(c);
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
    (None, failures)
}

fn show_secs(d: Option<Duration>) -> String {
    d.map_or("no OK".into(), |d| {
        format!("first OK after {:.3} s", d.as_secs_f64())
    })
}

fn fmt_failures(f: &BTreeMap<String, usize>) -> String {
    if f.is_empty() {
        return "none".into();
    }
    f.iter()
        .map(|(k, v)| format!("{v} {k}"))
        .collect::<Vec<_>>()
        .join(", ")
}

// ----- colony -------------------------------------------------------------------------

const COLONY_NODES: u32 = 4;

struct ColonyNode {
    peer: String,
    client: String,
    admin: String,
}

fn colony_status(admin: &str) -> Option<StatusReport> {
    let body = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(2))
        .build()
        .get(&format!("http://{admin}/status"))
        .call()
        .ok()?
        .into_string()
        .ok()?;
    serde_json::from_str(&body).ok()
}

type Events = Arc<Mutex<Vec<serde_json::Value>>>;

/// A node's event stream from the start of what it keeps, collected in the background
/// (the thread ends when the node's process does).
fn collect_events(admin: &str) -> Events {
    let events: Events = Arc::default();
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

/// Every running node sees the 4 hosts alive and places every colony on 3 distinct ones.
fn colony_settled(nodes: &BTreeMap<u32, ColonyNode>, colonies: u32) -> bool {
    nodes.values().all(|n| {
        let Some(s) = colony_status(&n.admin) else {
            return false;
        };
        let alive = s.members.iter().filter(|m| m.state == "alive").count() as u32;
        alive == COLONY_NODES
            && s.directory.len() as u32 == colonies
            && s.directory.iter().all(|d| {
                let mut hosts = vec![d.primary];
                hosts.extend(&d.secondaries);
                hosts.sort();
                hosts.dedup();
                hosts.len() == 3 && d.secondaries.len() == 2
            })
    })
}

/// `COLONY key`: (colony, primary, secondaries).
fn colony_locate(con: &mut redis::Connection, key: &str) -> Result<(i64, i64, Vec<i64>)> {
    let v: redis::Value = redis::cmd("COLONY").arg(key).query(con)?;
    let redis::Value::Array(items) = v else {
        bail!("COLONY {key}: not an array: {v:?}");
    };
    let mut colony = None;
    let mut primary = None;
    let mut secondaries = Vec::new();
    for pair in items.chunks(2) {
        let [redis::Value::BulkString(name), value] = pair else {
            continue;
        };
        match (name.as_slice(), value) {
            (b"colony", redis::Value::Int(c)) => colony = Some(*c),
            (b"primary", redis::Value::Int(p)) => primary = Some(*p),
            (b"secondaries", redis::Value::Array(s)) => {
                secondaries = s
                    .iter()
                    .filter_map(|x| match x {
                        redis::Value::Int(i) => Some(*i),
                        _ => None,
                    })
                    .collect()
            }
            _ => {}
        }
    }
    Ok((
        colony.ok_or_else(|| anyhow!("COLONY {key}: no colony"))?,
        primary.ok_or_else(|| anyhow!("COLONY {key}: no primary"))?,
        secondaries,
    ))
}

/// `$COLONY_EXE`, else the `colony` binary next to this example's directory
/// (`target/release/examples/failover` -> `target/release/colony`).
fn colony_exe() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("COLONY_EXE") {
        return Ok(PathBuf::from(p));
    }
    let me = std::env::current_exe()?;
    let exe = me
        .parent()
        .and_then(|d| d.parent())
        .map(|d| d.join("colony"))
        .ok_or_else(|| anyhow!("cannot place the colony binary"))?;
    if !exe.exists() {
        bail!("{} missing: cargo build --release", exe.display());
    }
    Ok(exe)
}

struct ColonyRun {
    elapsed: Duration,
    seq_elapsed: Option<Duration>,
    suspected_before: usize,
    suspected_after_others: usize,
    suspect_ms: Option<i64>,
    dead_ms: Option<i64>,
    promoted_ms: Option<i64>,
    promoted_reason: String,
    warn_lines: usize,
}

fn colony_once(args: &Args, rep: usize) -> Result<ColonyRun> {
    let exe = colony_exe()?;
    let b = args.colony_base;
    let mut nodes = BTreeMap::new();
    for i in 1..=COLONY_NODES as u16 {
        for p in [b + i, b - 1000 + i, b + 100 + i] {
            if !port_free(p) {
                bail!("port {p} is in use (--colony-base moves the colony ports)");
            }
        }
        nodes.insert(
            u32::from(i),
            ColonyNode {
                peer: format!("127.0.0.1:{}", b + i),
                client: format!("127.0.0.1:{}", b - 1000 + i),
                admin: format!("127.0.0.1:{}", b + 100 + i),
            },
        );
    }
    let mut procs = Procs::new(&format!("colony{rep}"))?;
    for (id, n) in &nodes {
        let mut cmd = Command::new(&exe);
        cmd.args(["node", "--id", &id.to_string(), "--listen", &n.peer])
            .args(["--client", &n.client, "--admin", &n.admin])
            .args(["--box", &format!("failover-box-{id}")])
            .args(["--colonies", &args.colonies.to_string(), "--replicas", "3"])
            .args(["--cluster", "failover-bench"])
            .env("COLONY_SECRET", "failover-bench-secret")
            .env("RUST_LOG", "info");
        if *id != 1 {
            cmd.args(["--join", &nodes[&1].peer]);
        }
        procs.spawn(&format!("colony-{id}"), &mut cmd)?;
        let admin = n.admin.clone();
        let up = wait_until(Duration::from_secs(20), || {
            procs.check_alive()?;
            Ok(colony_status(&admin).is_some())
        })?;
        if !up {
            bail!("colony node {id} did not answer /status");
        }
    }
    let settled = wait_until(Duration::from_secs(120), || {
        procs.check_alive()?;
        Ok(colony_settled(&nodes, args.colonies))
    })?;
    if !settled {
        bail!("the colony cluster did not settle (4 hosts, every colony on 3) in 120 s");
    }
    let events: BTreeMap<u32, Events> = nodes
        .iter()
        .map(|(id, n)| (*id, collect_events(&n.admin)))
        .collect();

    let clients: Vec<String> = nodes.values().map(|n| n.client.clone()).collect();
    let load = Load::start(args.writers, move |_, target, rng| {
        (
            clients[target % clients.len()].clone(),
            format!("load:{}", rng.next() % 100_000),
        )
    });
    std::thread::sleep(Duration::from_secs(args.load_secs));
    procs.check_alive()?;

    // The victim: the host holding the most primaries.
    let s = colony_status(&nodes[&1].admin).ok_or_else(|| anyhow!("no status"))?;
    let mut held: BTreeMap<u32, usize> = BTreeMap::new();
    for d in &s.directory {
        *held.entry(d.primary).or_default() += 1;
    }
    let (&victim, &count) = held
        .iter()
        .max_by_key(|(id, n)| (**n, std::cmp::Reverse(**id)))
        .ok_or_else(|| anyhow!("empty directory"))?;
    let helper = nodes
        .keys()
        .find(|id| **id != victim)
        .copied()
        .expect("a survivor");
    let mut con = connect(&nodes[&helper].client, Duration::from_secs(2))?;
    let mut found = None;
    for i in 0..10_000 {
        let key = format!("failover:{rep}:{i}");
        let (colony, primary, secondaries) = colony_locate(&mut con, &key)?;
        if primary == i64::from(victim) {
            found = Some((key, colony, secondaries));
            break;
        }
    }
    let (key, colony, secondaries) =
        found.ok_or_else(|| anyhow!("no key of host {victim}'s colonies"))?;
    // Write through the survivor that holds nothing of that colony (any node accepts
    // any key and forwards to the primary): the slowest path to learn of the promotion.
    let writer = nodes
        .keys()
        .copied()
        .find(|id| *id != victim && !secondaries.contains(&i64::from(*id)))
        .unwrap_or(helper);

    let count_kind = |kind: &str, pred: &dyn Fn(&serde_json::Value) -> bool| -> usize {
        events
            .values()
            .map(|e| {
                e.lock()
                    .unwrap()
                    .iter()
                    .filter(|v| v["event"] == kind && pred(v))
                    .count()
            })
            .sum()
    };
    let suspected_before = count_kind("host_suspected", &|_| true);

    let seq_con = connect(&nodes[&writer].client, Duration::from_secs(2))?;
    let kill_ms = unix_ms() as i64;
    let t0 = Instant::now();
    procs.kill(&format!("colony-{victim}"))?;
    let seq = {
        let (addr, key) = (nodes[&writer].client.clone(), key.clone());
        std::thread::spawn(move || sequential_ok(seq_con, addr, key, t0, Duration::from_secs(30)))
    };
    let (elapsed, failures) = first_ok(&nodes[&writer].client, &key, t0, Duration::from_secs(30))?;
    let (seq_elapsed, seq_failures) = seq
        .join()
        .map_err(|_| anyhow!("sequential client panicked"))?;
    std::thread::sleep(Duration::from_millis(500));
    let (ok, load_errors) = load.stop();

    // When the survivors suspected / declared dead the victim and promoted the colony.
    let first_t = |pred: &dyn Fn(&serde_json::Value) -> bool| -> Option<(i64, String)> {
        events
            .iter()
            .filter(|(id, _)| **id != victim)
            .flat_map(|(_, e)| e.lock().unwrap().clone())
            .filter(|v| pred(v))
            .filter_map(|v| {
                Some((
                    v["t"].as_i64()?,
                    v["reason"].as_str().unwrap_or("").to_string(),
                ))
            })
            .filter(|(t, _)| *t >= kill_ms)
            .min_by_key(|(t, _)| *t)
    };
    let v64 = i64::from(victim);
    let suspect = first_t(&|v| v["event"] == "host_suspected" && v["member"] == v64);
    let dead = first_t(&|v| v["event"] == "host_dead" && v["member"] == v64);
    let promoted = first_t(&|v| v["event"] == "colony_promoted" && v["colony"] == colony);
    let suspected_after_others = events
        .iter()
        .filter(|(id, _)| **id != victim)
        .map(|(_, e)| {
            e.lock()
                .unwrap()
                .iter()
                .filter(|v| {
                    v["event"] == "host_suspected"
                        && v["member"] != v64
                        && v["t"].as_i64().is_some_and(|t| t >= kill_ms)
                })
                .count()
        })
        .sum();
    let warn_lines = procs
        .logs_with("colony-")
        .iter()
        .flat_map(|l| l.lines().map(str::to_string).collect::<Vec<_>>())
        .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
        .count();
    let rel = |x: &Option<(i64, String)>| x.as_ref().map(|(t, _)| t - kill_ms);
    let show = |x: Option<i64>| x.map_or("-".into(), |ms| format!("{:.2} s", ms as f64 / 1e3));
    println!(
        "colony #{rep}: killed host {victim} ({count} of {} primaries); key {key} (colony {colony}) written via host {writer}: first OK after {:.3} s; one sequential client: {} ({})",
        args.colonies,
        elapsed.as_secs_f64(),
        show_secs(seq_elapsed),
        fmt_failures(&seq_failures)
    );
    println!(
        "    survivors' events after the kill: suspected {}, dead {}, colony {colony} promoted {} ({}); failed attempts: {}; load {ok} ok / failed: {}; false suspicions before the kill: {suspected_before}; WARN/ERROR log lines: {warn_lines}",
        show(rel(&suspect)),
        show(rel(&dead)),
        show(rel(&promoted)),
        promoted.as_ref().map_or("", |(_, r)| r.as_str()),
        fmt_failures(&failures),
        fmt_failures(&load_errors),
    );
    procs.done();
    Ok(ColonyRun {
        elapsed,
        seq_elapsed,
        suspected_before,
        suspected_after_others,
        suspect_ms: rel(&suspect),
        dead_ms: rel(&dead),
        promoted_ms: rel(&promoted),
        promoted_reason: promoted.map(|(_, r)| r).unwrap_or_default(),
        warn_lines,
    })
}

// ----- Redis Cluster ------------------------------------------------------------------

/// CRC16 (XMODEM), as Redis Cluster hashes keys to slots.
fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for b in data {
        crc ^= u16::from(*b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

fn key_slot(key: &str) -> u16 {
    crc16(key.as_bytes()) % 16384
}

struct RedisNode {
    id: String,
    port: u16,
    flags: String,
    master: Option<String>,
    slots: Vec<(u16, u16)>,
}

fn cluster_nodes(port: u16) -> Result<Vec<RedisNode>> {
    let mut con = connect(&format!("127.0.0.1:{port}"), Duration::from_secs(2))?;
    let text: String = redis::cmd("CLUSTER").arg("NODES").query(&mut con)?;
    let mut out = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 8 {
            continue;
        }
        let port = f[1]
            .split('@')
            .next()
            .and_then(|a| a.rsplit(':').next())
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| anyhow!("bad CLUSTER NODES line {line}"))?;
        let slots = f[8..]
            .iter()
            .filter(|s| !s.starts_with('['))
            .filter_map(|s| match s.split_once('-') {
                Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
                None => s.parse().ok().map(|x| (x, x)),
            })
            .collect();
        out.push(RedisNode {
            id: f[0].to_string(),
            port,
            flags: f[2].to_string(),
            master: (f[3] != "-").then(|| f[3].to_string()),
            slots,
        });
    }
    Ok(out)
}

fn redis_info(port: u16, section: &str) -> Option<String> {
    let mut con = connect(&format!("127.0.0.1:{port}"), Duration::from_secs(1)).ok()?;
    let name = if section == "cluster" {
        "CLUSTER"
    } else {
        "INFO"
    };
    let mut cmd = redis::cmd(name);
    if section == "cluster" {
        cmd.arg("INFO");
    } else {
        cmd.arg(section);
    }
    cmd.query(&mut con).ok()
}

struct RedisRun {
    elapsed: Duration,
    seq_elapsed: Option<Duration>,
    election_delay_ms: Option<u64>,
    fail_ms: Option<i64>,
    won_ms: Option<i64>,
}

/// Milliseconds from `kill_ms` to the first line of a redis-server log (written with
/// TZ=UTC: `pid:role dd Mon yyyy HH:MM:SS.mmm level message`) that matches `pred` and
/// was written after the kill (the log holds only the time of day).
fn redis_log_after(log: &str, kill_ms: i64, pred: impl Fn(&str) -> bool) -> Option<i64> {
    const DAY: i64 = 86_400_000;
    let kill_tod = kill_ms.rem_euclid(DAY);
    log.lines().filter(|l| pred(l)).find_map(|l| {
        let hms = l.split_whitespace().nth(4)?;
        let (hms, ms) = hms.split_once('.')?;
        let mut it = hms.split(':').map(|x| x.parse::<i64>().ok());
        let (h, m, s) = (it.next()??, it.next()??, it.next()??);
        let tod = ((h * 60 + m) * 60 + s) * 1000 + ms.parse::<i64>().ok()?;
        let rel = (tod - kill_tod).rem_euclid(DAY);
        (rel < 600_000).then_some(rel)
    })
}

fn redis_once(args: &Args, rep: usize) -> Result<RedisRun> {
    let ports: Vec<u16> = (1..=6).map(|i| args.redis_base + i).collect();
    for p in &ports {
        if !port_free(*p) || !port_free(*p + 10000) {
            bail!(
                "port {p} or {} is in use (--redis-base moves them)",
                p + 10000
            );
        }
    }
    let mut procs = Procs::new(&format!("redis{rep}"))?;
    let dir = procs.dir.clone();
    for p in &ports {
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &p.to_string(), "--bind", "127.0.0.1"])
            .args(["--cluster-enabled", "yes"])
            .args(["--cluster-node-timeout", &args.node_timeout.to_string()])
            .arg("--cluster-config-file")
            .arg(dir.join(format!("nodes-{p}.conf")))
            .arg("--dir")
            .arg(&dir)
            .args(["--save", "", "--appendonly", "no"])
            .arg("--logfile")
            .arg(dir.join(format!("redis-{p}-server.log")))
            // Log timestamps in UTC, to line them up with the kill.
            .env("TZ", "UTC");
        procs.spawn(&format!("redis-{p}"), &mut cmd)?;
    }
    for p in &ports {
        let up = wait_until(Duration::from_secs(10), || {
            procs.check_alive()?;
            Ok(redis_info(*p, "server").is_some())
        })?;
        if !up {
            bail!("redis-server on {p} did not answer");
        }
    }
    let mut create = Command::new("redis-cli");
    create.args(["--cluster", "create"]);
    for p in &ports {
        create.arg(format!("127.0.0.1:{p}"));
    }
    create.args(["--cluster-replicas", "1", "--cluster-yes"]);
    let out = create
        .stdin(Stdio::null())
        .output()
        .context("redis-cli --cluster create")?;
    if !out.status.success() {
        bail!(
            "redis-cli --cluster create failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let ready = wait_until(Duration::from_secs(60), || {
        procs.check_alive()?;
        let all_ok = ports
            .iter()
            .all(|p| redis_info(*p, "cluster").is_some_and(|t| t.contains("cluster_state:ok")));
        if !all_ok {
            return Ok(false);
        }
        // Every node sees 3 primaries holding slots and 3 replicas of them, none
        // failing or still in handshake, and every replica's link is up.
        for p in &ports {
            let nodes = cluster_nodes(*p)?;
            let primaries = nodes
                .iter()
                .filter(|n| n.master.is_none() && !n.slots.is_empty())
                .count();
            let replicas: Vec<&RedisNode> = nodes.iter().filter(|n| n.master.is_some()).collect();
            let clean = nodes.iter().all(|n| {
                !["fail", "handshake", "noaddr"]
                    .iter()
                    .any(|f| n.flags.split(',').any(|x| x.starts_with(f)))
            });
            if nodes.len() != 6 || primaries != 3 || replicas.len() != 3 || !clean {
                return Ok(false);
            }
            if !replicas.iter().all(|n| {
                redis_info(n.port, "replication")
                    .is_some_and(|t| t.contains("master_link_status:up"))
            }) {
                return Ok(false);
            }
        }
        Ok(true)
    })?;
    if !ready {
        bail!("Redis Cluster did not reach cluster_state:ok with synced replicas in 60 s");
    }
    let nodes = cluster_nodes(ports[0])?;
    let primaries: Vec<&RedisNode> = nodes.iter().filter(|n| n.master.is_none()).collect();
    if primaries.len() != 3 {
        bail!("expected 3 primaries, found {}", primaries.len());
    }

    // The key, its slot (CLUSTER KEYSLOT), the primary serving it, and its replica.
    let key = format!("failover:{rep}");
    let mut con = connect(&format!("127.0.0.1:{}", ports[0]), Duration::from_secs(2))?;
    let slot: u16 = redis::cmd("CLUSTER")
        .arg("KEYSLOT")
        .arg(&key)
        .query(&mut con)?;
    if slot != key_slot(&key) {
        bail!("CRC16 disagrees with CLUSTER KEYSLOT for {key}");
    }
    let serves = |n: &RedisNode, slot: u16| n.slots.iter().any(|(a, b)| *a <= slot && slot <= *b);
    let victim = primaries
        .iter()
        .find(|n| serves(n, slot))
        .ok_or_else(|| anyhow!("no primary serves slot {slot}"))?;
    let replica = nodes
        .iter()
        .find(|n| n.master.as_deref() == Some(victim.id.as_str()))
        .ok_or_else(|| anyhow!("primary {} has no replica", victim.port))?;
    let (victim_port, replica_port) = (victim.port, replica.port);

    // Load: each writer SETs random keys of its primary's slots, directly on it.
    let owners: Vec<(u16, Vec<(u16, u16)>)> = primaries
        .iter()
        .map(|n| (n.port, n.slots.clone()))
        .collect();
    let load = Load::start(args.writers, move |i, target, rng| {
        let (port, slots) = &owners[(i + target) % owners.len()];
        loop {
            let key = format!("load:{}", rng.next() % 100_000);
            let s = key_slot(&key);
            if slots.iter().any(|(a, b)| *a <= s && s <= *b) {
                return (format!("127.0.0.1:{port}"), key);
            }
        }
    });
    std::thread::sleep(Duration::from_secs(args.load_secs));
    procs.check_alive()?;

    let victim_id = victim.id.clone();
    let replica_addr = format!("127.0.0.1:{replica_port}");
    let seq_con = connect(&replica_addr, Duration::from_secs(2))?;
    let kill_ms = unix_ms() as i64;
    let t0 = Instant::now();
    procs.kill(&format!("redis-{victim_port}"))?;
    let seq = {
        let (addr, key) = (replica_addr.clone(), key.clone());
        std::thread::spawn(move || sequential_ok(seq_con, addr, key, t0, Duration::from_secs(60)))
    };
    let (elapsed, failures) = first_ok(&replica_addr, &key, t0, Duration::from_secs(60))?;
    let (seq_elapsed, seq_failures) = seq
        .join()
        .map_err(|_| anyhow!("sequential client panicked"))?;
    let (ok, load_errors) = load.stop();
    // The replica's log: "Start of election delayed for N milliseconds (rank #0, ...)",
    // when it learned the primary had failed and when it won the election.
    let log = procs.log(&format!("redis-{replica_port}-server"));
    let election_delay_ms = log
        .lines()
        .filter_map(|l| l.split("Start of election delayed for ").nth(1))
        .filter_map(|r| r.split_whitespace().next()?.parse().ok())
        .next_back();
    let fail_ms = redis_log_after(&log, kill_ms, |l| {
        (l.contains("as failing") || l.contains("FAIL message received"))
            && l.contains(victim_id.as_str())
    });
    let won_ms = redis_log_after(&log, kill_ms, |l| l.contains("Failover election won"));
    let show = |x: Option<i64>| x.map_or("-".into(), |ms| format!("{:.2} s", ms as f64 / 1e3));
    println!(
        "redis  #{rep}: killed primary :{victim_port} (slot {slot} of key {key}), written via its replica :{replica_port}: first OK after {:.3} s; one sequential client: {} ({})",
        elapsed.as_secs_f64(),
        show_secs(seq_elapsed),
        fmt_failures(&seq_failures)
    );
    println!(
        "    replica's log after the kill: primary failing {}, election delayed {}, election won {}; failed attempts: {}; load {ok} ok / failed: {}",
        show(fail_ms),
        election_delay_ms.map_or("-".into(), |d| format!("{d} ms")),
        show(won_ms),
        fmt_failures(&failures),
        fmt_failures(&load_errors)
    );
    procs.done();
    Ok(RedisRun {
        elapsed,
        seq_elapsed,
        election_delay_ms,
        fail_ms,
        won_ms,
    })
}

// ----- summary ------------------------------------------------------------------------

/// Nearest-rank percentile (p = 50 is the lower median for an even count).
fn percentile(xs: &[f64], p: f64) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * v.len() as f64).ceil().max(1.0) as usize;
    v[rank.min(v.len()) - 1]
}

fn median_ms(xs: impl Iterator<Item = Option<i64>>) -> String {
    let v: Vec<f64> = xs.flatten().map(|x| x as f64 / 1e3).collect();
    if v.is_empty() {
        "-".into()
    } else {
        format!("{:.2} s", percentile(&v, 50.0))
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.repeats == 0 {
        bail!("--repeats must be at least 1");
    }
    println!(
        "failover: {} repeats; load: {} writer threads, {} s before the kill; a fresh SET every 5 ms from the kill on",
        args.repeats, args.writers, args.load_secs
    );
    println!(
        "colony: 4 nodes, N = 3, {} colonies, default timings (dead after ~300 + 200 + 700 ms)",
        args.colonies
    );
    println!(
        "redis:  6 redis-server (3 primaries + 3 replicas), cluster-node-timeout {} ms (matched to colony's ~1.2 s detection), no persistence",
        args.node_timeout
    );
    let mut colony_runs = Vec::new();
    let mut redis_runs = Vec::new();
    for rep in 1..=args.repeats {
        if args.only != Only::Redis {
            colony_runs.push(colony_once(&args, rep)?);
        }
        if args.only != Only::Colony {
            redis_runs.push(redis_once(&args, rep)?);
        }
    }

    let secs = |v: &[Duration]| v.iter().map(|d| d.as_secs_f64()).collect::<Vec<_>>();
    let c: Vec<f64> = secs(&colony_runs.iter().map(|r| r.elapsed).collect::<Vec<_>>());
    let r: Vec<f64> = secs(&redis_runs.iter().map(|r| r.elapsed).collect::<Vec<_>>());
    let p99_label = if args.repeats < 100 {
        "p99 (= max)"
    } else {
        "p99"
    };
    println!();
    println!(
        "kill -> first OK write on a key of the killed primary, a fresh SET every 5 ms ({} repeats)",
        args.repeats
    );
    println!("{:<36} {:>9} {:>12}", "system", "p50 s", p99_label);
    if !c.is_empty() {
        println!(
            "{:<36} {:>9.3} {:>12.3}",
            "colony (4 nodes, N=3)",
            percentile(&c, 50.0),
            percentile(&c, 99.0)
        );
    }
    if !r.is_empty() {
        println!(
            "{:<36} {:>9.3} {:>12.3}",
            format!("redis cluster (node-timeout {} ms)", args.node_timeout),
            percentile(&r, 50.0),
            percentile(&r, 99.0)
        );
    }
    if !c.is_empty() && !r.is_empty() {
        println!(
            "{:<36} {:>9.2} {:>12.2}",
            "colony/redis",
            percentile(&c, 50.0) / percentile(&r, 50.0),
            percentile(&c, 99.0) / percentile(&r, 99.0)
        );
    }
    // The same for one ordinary client (one connection, retry after each error); a run
    // where it never got an OK counts as its give-up time.
    let cs: Vec<f64> = colony_runs
        .iter()
        .map(|r| r.seq_elapsed.map_or(30.0, |d| d.as_secs_f64()))
        .collect();
    let rs: Vec<f64> = redis_runs
        .iter()
        .map(|r| r.seq_elapsed.map_or(60.0, |d| d.as_secs_f64()))
        .collect();
    println!();
    println!("the same for one sequential client (one connection, SET again after each error)");
    println!("{:<36} {:>9} {:>12}", "system", "p50 s", p99_label);
    if !cs.is_empty() {
        println!(
            "{:<36} {:>9.3} {:>12.3}",
            "colony (4 nodes, N=3)",
            percentile(&cs, 50.0),
            percentile(&cs, 99.0)
        );
    }
    if !rs.is_empty() {
        println!(
            "{:<36} {:>9.3} {:>12.3}",
            format!("redis cluster (node-timeout {} ms)", args.node_timeout),
            percentile(&rs, 50.0),
            percentile(&rs, 99.0)
        );
    }
    if !cs.is_empty() && !rs.is_empty() {
        println!(
            "{:<36} {:>9.2} {:>12.2}",
            "colony/redis",
            percentile(&cs, 50.0) / percentile(&rs, 50.0),
            percentile(&cs, 99.0) / percentile(&rs, 99.0)
        );
    }
    if !colony_runs.is_empty() {
        println!();
        println!(
            "colony, medians after the kill: first survivor suspected the victim {}, declared it dead {}, promoted the key's colony {} (reasons: {})",
            median_ms(colony_runs.iter().map(|r| r.suspect_ms)),
            median_ms(colony_runs.iter().map(|r| r.dead_ms)),
            median_ms(colony_runs.iter().map(|r| r.promoted_ms)),
            colony_runs
                .iter()
                .map(|r| r.promoted_reason.as_str())
                .collect::<Vec<_>>()
                .join(",")
        );
        println!(
            "colony false suspicions (host_suspected on any node before the kill, all repeats): {}; survivors suspected after the kill: {}; WARN/ERROR log lines: {}",
            colony_runs.iter().map(|r| r.suspected_before).sum::<usize>(),
            colony_runs.iter().map(|r| r.suspected_after_others).sum::<usize>(),
            colony_runs.iter().map(|r| r.warn_lines).sum::<usize>()
        );
    }
    if !redis_runs.is_empty() {
        println!(
            "redis, medians after the kill (replica's log): primary marked failing {}, election won {}; election delay (500 ms + random 0-500 ms + rank x 1 s) {}",
            median_ms(redis_runs.iter().map(|r| r.fail_ms)),
            median_ms(redis_runs.iter().map(|r| r.won_ms)),
            median_ms(redis_runs.iter().map(|r| r.election_delay_ms.map(|x| x as i64)))
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc16_matches_redis() {
        // The Redis Cluster spec's test vector, and a known slot.
        assert_eq!(crc16(b"123456789"), 0x31C3);
        assert_eq!(key_slot("foo"), 12182);
    }

    #[test]
    fn nearest_rank() {
        assert_eq!(percentile(&[3.0, 1.0, 2.0], 50.0), 2.0);
        assert_eq!(percentile(&[3.0, 1.0, 2.0, 5.0, 4.0], 99.0), 5.0);
    }
}
