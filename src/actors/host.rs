//! `HostActor`: one per node. Owns the core [`Node`] (membership, directory, host table,
//! quorum, client routing and every replica held here), the address book of peers and
//! their [`PeerActor`]s, and mediates every connection: peer links are handshaken here
//! and client requests from sessions come through here.
//!
//! It adds no protocol decision of its own: every input goes to [`Node::handle`] with
//! the wall-clock time, and the [`Out`] that comes back is carried out: messages to
//! peer actors, timers with `run_later`, events to the [`EventBus`], replies to
//! sessions.

use super::event_bus::{EventBus, Publish};
use super::peer::{AttachInbound, AttachOutbound, PeerActor, SendFrames};
use super::session::ClientReplies;
use super::UNBOUNDED_MAILBOX;
use crate::admin::report::{
    Counters, DirReport, LoggerReport, MemberReport, MigrationReport, ReplicaReport, StatusReport,
};
use crate::core::cell::{Command, Key, Reply};
use crate::core::events::EventKind;
use crate::core::messages::{Msg, ReqId};
use crate::core::node::{Input, Node, NodeState, Out, Timer};
use crate::core::topology::HostState;
use crate::core::types::{colony_of, ColonyId, HostId, Load, Role, Tick};
use crate::node::log_writer::LogWriter;
use crate::node::sensing::Sensor;
use crate::store;
use crate::wire::{self, Addrs, Frame, FrameCodec, Hello, Local, PeerEntry, WireError};
use actix::prelude::*;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

/// How often the node samples its own cpu and memory.
const SENSE_EVERY: Duration = Duration::from_secs(1);
/// Window of the writes/s gauge.
const RATE_WINDOW: Duration = Duration::from_secs(5);
/// Longest pause between two attempts to reach a seed.
const SEED_BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Wall-clock milliseconds since the Unix epoch: cell expiries are absolute times that
/// every replica must read alike.
pub fn now_ms() -> Tick {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as Tick)
        .unwrap_or(0)
}

struct Peer {
    entry: PeerEntry,
    actor: Addr<PeerActor>,
}

/// Who sent a client request: a session or a restore job, registered with
/// [`ClientOpened`]. Requests carry the id, not a `Recipient` each.
pub type ClientId = u64;

/// A fresh [`ClientId`], unique in this process.
pub fn new_client_id() -> ClientId {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

struct Waiting {
    client: ClientId,
    tag: u64,
    write: bool,
}

/// The settings the host actor needs besides the core node.
pub struct HostSetup {
    pub node: Node,
    pub cluster: String,
    pub addrs: Addrs,
    pub local: Arc<Local>,
    pub seeds: Vec<String>,
    pub bus: Addr<EventBus>,
    /// Where the last host writes its colonies when it leaves (`<dir>/restore/`).
    pub data_dir: Option<PathBuf>,
    /// A logging node's writer (the buffer and the thread behind it).
    pub log: Option<LogWriter>,
}

pub struct HostActor {
    node: Node,
    out: Out,
    cluster: String,
    me: PeerEntry,
    local: Arc<Local>,
    seeds: Vec<String>,
    started: bool,
    peers: BTreeMap<HostId, Peer>,
    waiting: HashMap<ReqId, Waiting>,
    next_req: ReqId,
    /// Where the replies of each registered client go.
    clients: HashMap<ClientId, Recipient<ClientReplies>>,
    /// Replies of the current step, gathered per client: one message each.
    reply_batches: HashMap<ClientId, Vec<(u64, Reply)>>,
    /// Messages this host sent itself during the current step.
    to_self: Vec<Msg>,
    bus: Addr<EventBus>,
    counters: Counters,
    recent_writes: VecDeque<(Tick, u64)>,
    sensor: Sensor,
    timers: BinaryHeap<Reverse<(Tick, u64, TimerSlot)>>,
    timer_seq: u64,
    wakeup: Option<(Tick, SpawnHandle)>,
    data_dir: Option<PathBuf>,
    /// Frames per peer waiting for the end of the current burst of messages.
    outbox: BTreeMap<HostId, Vec<Frame>>,
    flush_scheduled: bool,
    log: Option<LogWriter>,
}

/// A core timer in the heap (ordered by deadline and sequence only).
struct TimerSlot(Timer);

impl PartialEq for TimerSlot {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl Eq for TimerSlot {}
impl PartialOrd for TimerSlot {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for TimerSlot {
    fn cmp(&self, _: &Self) -> std::cmp::Ordering {
        std::cmp::Ordering::Equal
    }
}

impl HostActor {
    pub fn new(setup: HostSetup) -> Self {
        let me = PeerEntry {
            host: setup.node.id(),
            incarnation: setup.node.incarnation(),
            addrs: setup.addrs,
        };
        HostActor {
            node: setup.node,
            out: Out::default(),
            cluster: setup.cluster,
            me,
            local: setup.local,
            seeds: setup.seeds,
            started: false,
            peers: BTreeMap::new(),
            waiting: HashMap::new(),
            next_req: 1,
            clients: HashMap::new(),
            reply_batches: HashMap::new(),
            to_self: Vec::new(),
            bus: setup.bus,
            counters: Counters::default(),
            recent_writes: VecDeque::new(),
            sensor: Sensor::new(),
            timers: BinaryHeap::new(),
            timer_seq: 0,
            wakeup: None,
            data_dir: setup.data_dir,
            outbox: BTreeMap::new(),
            flush_scheduled: false,
            log: setup.log,
        }
    }

    /// One step of the core, then carry out what it asked for.
    fn step(&mut self, ctx: &mut Context<Self>, input: Input) {
        self.node.handle(now_ms(), input, &mut self.out);
        self.carry_out(ctx);
    }

    fn carry_out(&mut self, ctx: &mut Context<Self>) {
        let me = self.me.host;
        for (to, msg) in self.out.sends.drain(..) {
            if to == me {
                self.to_self.push(msg);
            } else {
                self.outbox.entry(to).or_default().push(Frame::Msg(msg));
            }
        }
        if !self.to_self.is_empty() {
            let msgs = std::mem::take(&mut self.to_self);
            ctx.notify(FromPeer { from: me, msgs });
        }
        // Frames go out once the messages already queued here are handled: a burst of
        // client requests (pipelining) leaves as one batch per peer, not one per request.
        if !self.outbox.is_empty() && !self.flush_scheduled {
            self.flush_scheduled = true;
            ctx.notify(FlushOutbox);
        }
        if !self.out.timers.is_empty() {
            let now = now_ms();
            for (delay, timer) in self.out.timers.drain(..) {
                self.timer_seq += 1;
                self.timers
                    .push(Reverse((now + delay, self.timer_seq, TimerSlot(timer))));
            }
            self.arm_timer(ctx);
        }
        if !self.out.events.is_empty() {
            for e in &self.out.events {
                self.counters.events += 1;
                match &e.kind {
                    EventKind::ColonyPromoted { .. } => self.counters.promotions += 1,
                    EventKind::ColonyCloned { .. } => self.counters.clones += 1,
                    EventKind::ColonyMigrated { .. } => self.counters.migrations += 1,
                    _ => {}
                }
                tracing::info!(target: "colony::events", "{}", e.to_json());
            }
            self.bus
                .do_send(Publish(std::mem::take(&mut self.out.events)));
        }
        let now = now_ms();
        for (req, reply) in self.out.replies.drain(..) {
            let Some(w) = self.waiting.remove(&req) else {
                continue;
            };
            match &reply {
                Reply::Error(_) => self.counters.client_errors += 1,
                _ if w.write => {
                    self.counters.writes += 1;
                    match self.recent_writes.back_mut() {
                        Some((t, n)) if now.saturating_sub(*t) < 100 => *n += 1,
                        _ => self.recent_writes.push_back((now, 1)),
                    }
                }
                _ => self.counters.reads += 1,
            }
            self.reply_batches
                .entry(w.client)
                .or_default()
                .push((w.tag, reply));
        }
        for (client, replies) in self.reply_batches.drain() {
            if let Some(to) = self.clients.get(&client) {
                to.do_send(ClientReplies(replies));
            }
        }
        if !self.out.persist.is_empty() {
            let colonies = std::mem::take(&mut self.out.persist);
            self.persist(&colonies);
        }
        if !self.out.log.is_empty() {
            self.append_log(ctx);
        }
        if self.node.state() == NodeState::Left {
            tracing::info!(host = me, "left the cluster; exiting");
            if let Some(log) = &mut self.log {
                // Everything received goes to disk and the segment gets its footer.
                log.close();
            }
            // Give the last frames (the `Left` notice) a moment to leave the sockets.
            ctx.run_later(Duration::from_millis(300), |_, _| System::current().stop());
        }
    }

    /// A logging node: hand what the core produced to the writer thread, without
    /// waiting. What the buffer refuses goes back to the core, which fetches it again.
    fn append_log(&mut self, ctx: &mut Context<Self>) {
        let appends = std::mem::take(&mut self.out.log);
        let Some(log) = &mut self.log else {
            return;
        };
        if let Some(refused) = log.offer(appends) {
            tracing::warn!(
                dropped = refused.dropped,
                buffered = refused.buffered_bytes,
                "log buffer full: dropping entries, to be fetched again"
            );
            self.step(
                ctx,
                Input::LogOverflow {
                    reached: refused.reached,
                    dropped: refused.dropped,
                    buffered_bytes: refused.buffered_bytes,
                },
            );
        }
    }

    /// The last host leaves: write what it holds to `<data dir>/restore/`, where the next
    /// start with the same data directory finds it (or `--restore DIR` points to it).
    fn persist(&mut self, colonies: &[ColonyId]) {
        let cells: u64 = colonies
            .iter()
            .filter_map(|c| self.node.replica(*c))
            .map(|r| r.cells.len() as u64)
            .sum();
        let Some(dir) = self.data_dir.clone() else {
            tracing::error!(
                colonies = colonies.len(),
                cells,
                "this was the last host and it has no --data-dir: its cells are lost"
            );
            return;
        };
        let dir = dir.join("restore");
        let path = dir.join(format!(
            "shutdown-{}-{}.colony",
            self.me.host, self.me.incarnation
        ));
        let node = &self.node;
        let result = std::fs::create_dir_all(&dir)
            .map_err(|e| store::StoreError::Io {
                path: dir.clone(),
                op: "creating the restore directory".into(),
                source: e,
            })
            .and_then(|()| {
                store::write_atomically(&path, |w| {
                    let mut dump = store::DumpWriter::new(w, store::FileKind::Dump, now_ms())?;
                    for c in colonies {
                        let Some(r) = node.replica(*c) else { continue };
                        let s = r.summary(node.id());
                        dump.begin_colony(store::ColonyDump {
                            colony: *c,
                            epoch: s.epoch,
                            seq: s.seq,
                            cells: s.cells,
                        })?;
                        for (k, c) in r.cells.iter() {
                            dump.cell(k, &c)?;
                        }
                    }
                    dump.finish()?;
                    Ok(())
                })
            });
        match result {
            Ok(()) => tracing::info!(
                path = %path.display(),
                colonies = colonies.len(),
                cells,
                "last host: every colony written to disk"
            ),
            Err(e) => tracing::error!(error = %e, "could not write the colonies to disk"),
        }
    }

    /// Makes sure one wake-up is scheduled for the earliest pending timer. The core asks
    /// for a timer per request and per colony; actix polls every future an actor has
    /// spawned on each wake-up, so thousands of `run_later`s would make every message
    /// cost thousands of polls. One heap and one wake-up keep it O(log n).
    fn arm_timer(&mut self, ctx: &mut Context<Self>) {
        let Some(Reverse((due, _, _))) = self.timers.peek() else {
            return;
        };
        let due = *due;
        if let Some((at, handle)) = self.wakeup {
            if at <= due {
                return;
            }
            ctx.cancel_future(handle);
        }
        let delay = due.saturating_sub(now_ms());
        let handle = ctx.run_later(Duration::from_millis(delay), |act, ctx| {
            act.wakeup = None;
            act.fire_timers(ctx);
        });
        self.wakeup = Some((due, handle));
    }

    fn fire_timers(&mut self, ctx: &mut Context<Self>) {
        let now = now_ms();
        let mut due = Vec::new();
        while let Some(Reverse((at, _, _))) = self.timers.peek() {
            if *at > now {
                break;
            }
            if let Some(Reverse((_, _, TimerSlot(t)))) = self.timers.pop() {
                due.push(t);
            }
        }
        for t in due {
            self.node.handle(now, Input::Timer(t), &mut self.out);
        }
        self.carry_out(ctx);
        self.arm_timer(ctx);
    }

    /// Records what a peer says about itself and makes sure it has a peer actor.
    fn learn(&mut self, ctx: &mut Context<Self>, entry: PeerEntry) -> Addr<PeerActor> {
        let me = ctx.address();
        match self.peers.get_mut(&entry.host) {
            Some(p) => {
                if p.entry != entry && entry.incarnation >= p.entry.incarnation {
                    p.entry = entry.clone();
                    p.actor.do_send(super::peer::UpdateEntry(entry));
                }
                p.actor.clone()
            }
            None => {
                tracing::debug!(peer = entry.host, addr = %entry.addrs.peer, "new peer");
                let actor = PeerActor::new(entry.clone(), self.local.clone(), me).start();
                // Tell everyone we already know about the newcomer.
                for p in self.peers.values() {
                    p.actor
                        .do_send(SendFrames(vec![Frame::Peers(vec![entry.clone()])]));
                }
                self.peers.insert(
                    entry.host,
                    Peer {
                        entry,
                        actor: actor.clone(),
                    },
                );
                actor
            }
        }
    }

    /// The address book this node shares with a new link: itself and every peer.
    fn address_book(&self) -> Vec<PeerEntry> {
        std::iter::once(self.me.clone())
            .chain(self.peers.values().map(|p| p.entry.clone()))
            .collect()
    }

    fn entry_of(hello: &Hello) -> PeerEntry {
        PeerEntry {
            host: hello.host,
            incarnation: hello.incarnation,
            addrs: hello.addrs.clone(),
        }
    }

    /// Dials every seed until one answers, then starts the node through it.
    fn dial_seeds(&mut self, ctx: &mut Context<Self>) {
        if self.seeds.is_empty() {
            tracing::info!(
                host = self.me.host,
                "no --join given: creating a new cluster"
            );
            self.started = true;
            self.step(ctx, Input::Start { seeds: vec![] });
            return;
        }
        for seed in self.seeds.clone() {
            let local = self.local.clone();
            let host = ctx.address();
            actix::spawn(async move {
                let mut pause = Duration::from_millis(100);
                loop {
                    match dial(&seed, &local).await {
                        Ok((framed, hello)) => {
                            host.do_send(SeedLink { hello, framed });
                            return;
                        }
                        Err(WireError::SelfConnection) => return,
                        Err(e) => {
                            tracing::warn!(seed = %seed, error = %e, "cannot reach seed; retrying");
                        }
                    }
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(SEED_BACKOFF_MAX);
                }
            });
        }
    }

    fn sense(&mut self, ctx: &mut Context<Self>) {
        let load: Load = self.sensor.sample();
        self.step(ctx, Input::Load(load));
        let horizon = now_ms().saturating_sub(RATE_WINDOW.as_millis() as u64);
        while self
            .recent_writes
            .front()
            .is_some_and(|(t, _)| *t < horizon)
        {
            self.recent_writes.pop_front();
        }
    }

    fn status(&self) -> StatusReport {
        let node = &self.node;
        let dir = node.directory();
        let mut members: Vec<MemberReport> = dir
            .hosts
            .iter()
            .map(|rec| {
                let v = &rec.view;
                let id = v.info.id;
                let state = if id == node.id() {
                    match node.state() {
                        NodeState::Active => "alive",
                        NodeState::Leaving => "leaving",
                        NodeState::Left => "left",
                    }
                } else if node.has_left(id) {
                    "left"
                } else if !node.is_alive(id) {
                    "dead"
                } else if v.state == HostState::Leaving {
                    "leaving"
                } else {
                    "alive"
                };
                let addrs = if id == self.me.host {
                    Some(self.me.addrs.clone())
                } else {
                    self.peers.get(&id).map(|p| p.entry.addrs.clone())
                };
                MemberReport {
                    id,
                    state: state.into(),
                    incarnation: rec.incarnation,
                    box_name: v.info.box_name.to_string(),
                    zone: v.info.zone.to_string(),
                    role: format!("{:?}", v.info.role).to_lowercase(),
                    addrs,
                    cpu_used: v.load.cpu,
                    cpu_capacity: v.info.capacity.cpu,
                    memory_used: v.load.memory,
                    memory_capacity: v.info.capacity.memory,
                    replicas: v.replicas,
                    primaries: v.primaries,
                }
            })
            .collect();
        members.sort_by_key(|m| m.id);
        let directory = dir
            .colonies
            .iter()
            .map(|e| DirReport {
                colony: e.colony,
                epoch: e.epoch.to_string(),
                primary: e.primary,
                secondaries: e.secondaries.to_vec(),
            })
            .collect();
        let mut local = Vec::new();
        let mut migrations = Vec::new();
        for r in node.replicas() {
            let s = r.summary(node.id());
            if s.role == Role::Primary {
                for m in s.members.iter().filter(|m| !m.in_sync) {
                    migrations.push(MigrationReport {
                        colony: s.colony,
                        to: m.host,
                    });
                }
            }
            local.push(ReplicaReport {
                colony: s.colony,
                role: s.role.to_string(),
                epoch: s.epoch.to_string(),
                seq: s.seq,
                cells: s.cells,
                in_sync: s.in_sync,
                writable: s.writable,
                lag: s.lag,
                members: s.members.iter().map(|m| (m.host, m.in_sync)).collect(),
            });
        }
        StatusReport {
            host: node.id(),
            incarnation: node.incarnation(),
            cluster: self.cluster.clone(),
            state: match node.state() {
                NodeState::Active => "active",
                NodeState::Leaving => "leaving",
                NodeState::Left => "left",
            }
            .into(),
            quorum: node.has_quorum(),
            colonies: node.config().colonies,
            replicas: node.config().colony.replicas,
            target: node.target_population(),
            members,
            directory,
            local,
            migrations,
            logger: self.log.as_ref().map(|log| LoggerReport {
                dir: log.dir().display().to_string(),
                colonies: node.log_sink().map_or(0, |s| s.positions().len() as u32),
                sink: node.log_sink().map(|s| s.stats).unwrap_or_default(),
                writer: log.stats(),
            }),
        }
    }
}

/// Dials `addr` and runs the handshake.
pub async fn dial(
    addr: &str,
    local: &Local,
) -> Result<(Framed<TcpStream, FrameCodec>, Hello), WireError> {
    let stream = tokio::time::timeout(local.timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| WireError::Timeout)??;
    stream.set_nodelay(true)?;
    wire::dial(stream, local).await
}

impl Actor for HostActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(UNBOUNDED_MAILBOX);
        self.dial_seeds(ctx);
        ctx.run_interval(SENSE_EVERY, |act, ctx| act.sense(ctx));
    }
}

// ----- messages ------------------------------------------------------------------------

/// Core messages from a peer (or from this host to itself), in the order they were
/// sent: every frame an inbound link read in one go. Stepped one by one, carried out
/// once.
#[derive(Message)]
#[rtype(result = "()")]
pub struct FromPeer {
    pub from: HostId,
    pub msgs: Vec<Msg>,
}

impl Handler<FromPeer> for HostActor {
    type Result = ();

    fn handle(&mut self, m: FromPeer, ctx: &mut Context<Self>) {
        if !self.started {
            return;
        }
        self.counters.frames_in += m.msgs.len() as u64;
        let now = now_ms();
        for msg in m.msgs {
            self.node
                .handle(now, Input::Message { from: m.from, msg }, &mut self.out);
        }
        self.carry_out(ctx);
    }
}

/// A peer's address book.
#[derive(Message)]
#[rtype(result = "()")]
pub struct PeerList(pub Vec<PeerEntry>);

impl Handler<PeerList> for HostActor {
    type Result = ();

    fn handle(&mut self, m: PeerList, ctx: &mut Context<Self>) {
        for entry in m.0 {
            if entry.host != self.me.host {
                self.learn(ctx, entry);
            }
        }
    }
}

/// A TCP connection on the peer port, not yet handshaken.
#[derive(Message)]
#[rtype(result = "()")]
pub struct IncomingPeer(pub TcpStream, pub std::net::SocketAddr);

impl Handler<IncomingPeer> for HostActor {
    type Result = ();

    fn handle(&mut self, m: IncomingPeer, ctx: &mut Context<Self>) {
        let local = self.local.clone();
        let (stream, from) = (m.0, m.1);
        let fut = async move {
            let _ = stream.set_nodelay(true);
            wire::accept(stream, &local).await
        };
        ctx.spawn(fut.into_actor(self).map(move |res, act, ctx| match res {
            Ok((framed, hello)) => {
                tracing::debug!(peer = hello.host, %from, "inbound link up");
                let entry = Self::entry_of(&hello);
                let actor = act.learn(ctx, entry);
                let book = act.address_book();
                actor.do_send(SendFrames(vec![Frame::Peers(book)]));
                actor.do_send(AttachInbound(framed));
            }
            Err(e) => {
                act.counters.handshakes_refused += 1;
                tracing::warn!(%from, error = %e, "refused a peer connection");
            }
        }));
    }
}

/// A seed answered the handshake.
#[derive(Message)]
#[rtype(result = "()")]
struct SeedLink {
    hello: Hello,
    framed: Framed<TcpStream, FrameCodec>,
}

impl Handler<SeedLink> for HostActor {
    type Result = ();

    fn handle(&mut self, m: SeedLink, ctx: &mut Context<Self>) {
        let seed = m.hello.host;
        let actor = self.learn(ctx, Self::entry_of(&m.hello));
        actor.do_send(AttachOutbound(m.framed));
        let book = self.address_book();
        actor.do_send(SendFrames(vec![Frame::Peers(book)]));
        if !self.started {
            tracing::info!(host = self.me.host, seed, "joining the cluster");
            self.started = true;
            self.step(ctx, Input::Start { seeds: vec![seed] });
        }
    }
}

/// The client commands a session (or a restore job) read in one burst (pipelining):
/// stepped one by one, carried out once. Each answer goes back to `client` in a
/// [`ClientReplies`] with the command's tag.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ClientRequests {
    pub client: ClientId,
    pub reqs: Vec<(Command, u64)>,
}

impl Handler<ClientRequests> for HostActor {
    type Result = ();

    fn handle(&mut self, m: ClientRequests, ctx: &mut Context<Self>) {
        let now = now_ms();
        for (cmd, tag) in m.reqs {
            let req = self.next_req;
            self.next_req += 1;
            self.waiting.insert(
                req,
                Waiting {
                    client: m.client,
                    tag,
                    write: cmd.is_write(),
                },
            );
            self.node
                .handle(now, Input::Client { req, cmd }, &mut self.out);
        }
        self.carry_out(ctx);
    }
}

/// A client (session or restore job) registers where its replies go, before its
/// first request.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ClientOpened {
    pub client: ClientId,
    pub reply_to: Recipient<ClientReplies>,
    /// A client connection (counted in the `sessions` gauge), not a restore job.
    pub session: bool,
}

impl Handler<ClientOpened> for HostActor {
    type Result = ();

    fn handle(&mut self, m: ClientOpened, _: &mut Context<Self>) {
        self.clients.insert(m.client, m.reply_to);
        if m.session {
            self.counters.sessions += 1;
            self.counters.sessions_opened += 1;
        }
    }
}

/// A client went away; answers still due to it are dropped.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ClientClosed {
    pub client: ClientId,
    pub session: bool,
}

impl Handler<ClientClosed> for HostActor {
    type Result = ();

    fn handle(&mut self, m: ClientClosed, _: &mut Context<Self>) {
        self.clients.remove(&m.client);
        if m.session {
            self.counters.sessions = self.counters.sessions.saturating_sub(1);
        }
    }
}

/// Where a key lives (the `COLONY` command).
#[derive(Message)]
#[rtype(result = "KeyLocation")]
pub struct Locate(pub Key);

#[derive(MessageResponse, Clone, Debug)]
pub struct KeyLocation {
    pub colony: ColonyId,
    pub epoch: Option<String>,
    pub primary: Option<HostId>,
    pub primary_client: Option<String>,
    pub secondaries: Vec<HostId>,
}

impl Handler<Locate> for HostActor {
    type Result = KeyLocation;

    fn handle(&mut self, m: Locate, _: &mut Context<Self>) -> KeyLocation {
        let colony = colony_of(&m.0, self.node.config().colonies);
        let entry = self.node.directory().entry(colony);
        let primary = entry.map(|e| e.primary);
        let primary_client = primary.and_then(|p| {
            if p == self.me.host {
                Some(self.me.addrs.client.clone())
            } else {
                self.peers.get(&p).map(|x| x.entry.addrs.client.clone())
            }
        });
        KeyLocation {
            colony,
            epoch: entry.map(|e| e.epoch.to_string()),
            primary,
            primary_client,
            secondaries: entry.map(|e| e.secondaries.to_vec()).unwrap_or_default(),
        }
    }
}

/// The `/status` document.
#[derive(Message)]
#[rtype(result = "StatusReply")]
pub struct GetStatus;

#[derive(MessageResponse)]
pub struct StatusReply(pub StatusReport);

impl Handler<GetStatus> for HostActor {
    type Result = StatusReply;

    fn handle(&mut self, _: GetStatus, _: &mut Context<Self>) -> StatusReply {
        StatusReply(self.status())
    }
}

/// The counters for `/metrics` and `INFO`.
#[derive(Message)]
#[rtype(result = "CountersReply")]
pub struct GetCounters;

#[derive(MessageResponse)]
pub struct CountersReply(pub Counters);

impl Handler<GetCounters> for HostActor {
    type Result = CountersReply;

    fn handle(&mut self, _: GetCounters, _: &mut Context<Self>) -> CountersReply {
        let mut c = self.counters.clone();
        let horizon = now_ms().saturating_sub(RATE_WINDOW.as_millis() as u64);
        let recent: u64 = self
            .recent_writes
            .iter()
            .filter(|(t, _)| *t >= horizon)
            .map(|(_, n)| n)
            .sum();
        c.writes_per_sec = recent as f64 / RATE_WINDOW.as_secs_f64();
        c.replicas_catching_up = self
            .node
            .replicas()
            .filter(|r| !r.summary(self.node.id()).in_sync)
            .count() as u64;
        CountersReply(c)
    }
}

/// Leave gracefully (SIGTERM, `colony leave`, `POST /leave`): hand every replica off,
/// then stop the process with exit code 0.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Leave;

impl Handler<Leave> for HostActor {
    type Result = ();

    fn handle(&mut self, _: Leave, ctx: &mut Context<Self>) {
        if self.node.state() == NodeState::Active {
            tracing::info!(
                host = self.me.host,
                "leaving gracefully: handing off replicas"
            );
            if !self.started {
                System::current().stop();
                return;
            }
            self.step(ctx, Input::Leave);
        }
    }
}

/// Frames a peer actor dropped because its link stayed down.
#[derive(Message)]
#[rtype(result = "()")]
pub struct FramesDropped(pub u64);

impl Handler<FramesDropped> for HostActor {
    type Result = ();

    fn handle(&mut self, m: FramesDropped, _: &mut Context<Self>) {
        self.counters.frames_dropped += m.0;
    }
}

/// The full state of one local replica, for `/debug/colony/{id}` (Rust debug format:
/// for people chasing a bug, not for scripts).
#[derive(Message)]
#[rtype(result = "DebugReply")]
pub struct DebugColony(pub ColonyId);

#[derive(MessageResponse)]
pub struct DebugReply(pub Option<String>);

impl Handler<DebugColony> for HostActor {
    type Result = DebugReply;

    fn handle(&mut self, m: DebugColony, _: &mut Context<Self>) -> DebugReply {
        DebugReply(self.node.replica(m.0).map(|r| format!("{r:#?}")))
    }
}

/// A consistent snapshot of every primary held here (for `colony backup`): each
/// colony's cells at one instant, with the epoch and seq they correspond to.
#[derive(Message)]
#[rtype(result = "SnapshotReply")]
pub struct SnapshotPrimaries;

#[derive(MessageResponse)]
pub struct SnapshotReply(pub Vec<(store::ColonyDump, Vec<(Key, crate::core::cell::Cell)>)>);

impl Handler<SnapshotPrimaries> for HostActor {
    type Result = SnapshotReply;

    fn handle(&mut self, _: SnapshotPrimaries, ctx: &mut Context<Self>) -> SnapshotReply {
        let me = self.node.id();
        let mut out = Vec::new();
        let mut cells = 0u64;
        for r in self.node.replicas() {
            let s = r.summary(me);
            if s.role != Role::Primary || !s.writable {
                continue;
            }
            let list: Vec<(Key, crate::core::cell::Cell)> = r.cells.to_vec();
            cells += list.len() as u64;
            out.push((
                store::ColonyDump {
                    colony: s.colony,
                    epoch: s.epoch,
                    seq: s.seq,
                    cells: list.len() as u64,
                },
                list,
            ));
        }
        let colonies = out.len() as u32;
        ctx.notify(Report(EventKind::BackupDone { colonies, cells }));
        SnapshotReply(out)
    }
}

/// An event the shell reports about work it did (backup, restore).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Report(pub EventKind);

impl Handler<Report> for HostActor {
    type Result = ();

    fn handle(&mut self, m: Report, _: &mut Context<Self>) {
        let event = crate::core::events::Event {
            t: now_ms(),
            host: self.node.id(),
            kind: m.0,
        };
        tracing::info!(target: "colony::events", "{}", event.to_json());
        self.counters.events += 1;
        self.bus.do_send(Publish(vec![event]));
    }
}

/// Whether this node knows a live primary for every colony (restores wait for it).
#[derive(Message)]
#[rtype(result = "bool")]
pub struct DirectoryReady;

impl Handler<DirectoryReady> for HostActor {
    type Result = bool;

    fn handle(&mut self, _: DirectoryReady, _: &mut Context<Self>) -> bool {
        let node = &self.node;
        self.started
            && (0..node.config().colonies).all(|c| {
                node.directory()
                    .primary_of(c)
                    .is_some_and(|p| node.is_alive(p))
            })
    }
}

/// Send what the last burst of steps produced (see `carry_out`).
#[derive(Message)]
#[rtype(result = "()")]
struct FlushOutbox;

impl Handler<FlushOutbox> for HostActor {
    type Result = ();

    fn handle(&mut self, _: FlushOutbox, _: &mut Context<Self>) {
        self.flush_scheduled = false;
        for (to, frames) in std::mem::take(&mut self.outbox) {
            match self.peers.get(&to) {
                Some(p) => {
                    self.counters.frames_out += frames.len() as u64;
                    p.actor.do_send(SendFrames(frames));
                }
                None => self.counters.unroutable += frames.len() as u64,
            }
        }
    }
}
