//! A tiny deterministic harness for the core's own unit tests: a few [`Node`]s, a
//! virtual clock, FIFO links with fixed latency, and a kill switch. The full simulator
//! (`colony-sim`) is the real thing; this one only lets the core test itself.

use super::cell::{Command, Reply};
use super::events::Event;
use super::logsink::LogAppend;
use super::messages::{Msg, ReqId};
use super::node::{Input, Node, NodeConfig, Out};
use super::types::{HostId, HostInfo, HostRole, Resources, Tick};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};

/// A cell as a host wrote it to disk.
pub type SavedCell = (super::cell::Key, super::cell::Cell);

enum Item {
    Input(HostId, u32, Input),
}

pub struct Cluster {
    pub now: Tick,
    pub nodes: BTreeMap<HostId, Node>,
    incarnations: BTreeMap<HostId, u32>,
    queue: BinaryHeap<Reverse<(Tick, u64, usize)>>,
    items: BTreeMap<usize, Item>,
    seq: u64,
    link_free: BTreeMap<(HostId, HostId), Tick>,
    pub latency: Tick,
    pub cut: BTreeSet<(HostId, HostId)>,
    pub events: Vec<Event>,
    pub replies: BTreeMap<ReqId, Reply>,
    next_req: ReqId,
    pub cfg: NodeConfig,
    /// Hosts frozen until the given time (a stopped process: nothing runs, then
    /// everything that was due runs at once).
    pub paused: BTreeMap<HostId, Tick>,
    /// What hosts wrote to disk when they left last: `(colony, cells)`.
    pub disk: Vec<(u32, Vec<SavedCell>)>,
    /// Roles other than `Normal`, by host.
    pub roles: BTreeMap<HostId, HostRole>,
    /// What each logging node appended to its log, in order.
    pub logs: BTreeMap<HostId, Vec<LogAppend>>,
    /// Logging nodes whose write buffer is "full": their appends are refused and
    /// reported back as [`Input::LogOverflow`].
    pub log_full: BTreeSet<HostId>,
}

impl Cluster {
    pub fn new(cfg: NodeConfig) -> Self {
        Cluster {
            now: 0,
            nodes: BTreeMap::new(),
            incarnations: BTreeMap::new(),
            queue: BinaryHeap::new(),
            items: BTreeMap::new(),
            seq: 0,
            link_free: BTreeMap::new(),
            latency: 2,
            cut: BTreeSet::new(),
            events: Vec::new(),
            replies: BTreeMap::new(),
            next_req: 1,
            cfg,
            paused: BTreeMap::new(),
            disk: Vec::new(),
            roles: BTreeMap::new(),
            logs: BTreeMap::new(),
            log_full: BTreeSet::new(),
        }
    }

    pub fn info(id: HostId) -> HostInfo {
        HostInfo {
            id,
            box_name: format!("box{id}").into(),
            zone: format!("zone{}", id % 3).into(),
            capacity: Resources {
                cpu: 8.0,
                memory: 16 << 30,
            },
            role: HostRole::Normal,
        }
    }

    /// Start host `id` (a restart if it ran before), joining through `seeds`.
    pub fn start(&mut self, id: HostId, seeds: Vec<HostId>) {
        let inc = self.incarnations.get(&id).map_or(0, |i| i + 1);
        self.incarnations.insert(id, inc);
        let mut info = Self::info(id);
        info.role = self.roles.get(&id).copied().unwrap_or_default();
        let storage = info.role == HostRole::Storage;
        let mut node = Node::new(info, self.cfg.clone(), inc, 7 + u64::from(id));
        if storage {
            node.set_value_storage(Box::new(super::cell_store::MemValueStorage));
        }
        self.nodes.insert(id, node);
        self.push(0, id, Input::Start { seeds });
    }

    pub fn kill(&mut self, id: HostId) {
        self.nodes.remove(&id);
    }

    fn push(&mut self, delay: Tick, host: HostId, input: Input) {
        let inc = self.incarnations.get(&host).copied().unwrap_or(0);
        let at = self.now + delay;
        self.seq += 1;
        let k = self.seq as usize;
        self.items.insert(k, Item::Input(host, inc, input));
        self.queue.push(Reverse((at, self.seq, k)));
    }

    fn send(&mut self, from: HostId, to: HostId, msg: Msg) {
        if self.cut.contains(&(from, to)) {
            return;
        }
        let free = self.link_free.get(&(from, to)).copied().unwrap_or(0);
        let at = (self.now + self.latency).max(free);
        self.link_free.insert((from, to), at);
        self.push(at - self.now, to, Input::Message { from, msg });
    }

    /// Submit a client command on `host`; returns its request id.
    pub fn client(&mut self, host: HostId, cmd: Command) -> ReqId {
        let req = self.next_req;
        self.next_req += 1;
        self.push(0, host, Input::Client { req, cmd });
        req
    }

    /// Report `load` as `host`'s measured load.
    pub fn load(&mut self, host: HostId, load: super::types::Load) {
        self.push(0, host, Input::Load(load));
    }

    pub fn leave(&mut self, host: HostId) {
        self.push(0, host, Input::Leave);
    }

    /// Run until virtual time `until`.
    pub fn run_until(&mut self, until: Tick) {
        let mut out = Out::default();
        while let Some(Reverse((at, _, k))) = self.queue.peek().copied() {
            if at > until {
                break;
            }
            self.queue.pop();
            self.now = at;
            let Item::Input(host, _, _) = &self.items[&k];
            if let Some(&until) = self.paused.get(host) {
                if at < until {
                    self.seq += 1;
                    self.queue.push(Reverse((until, self.seq, k)));
                    continue;
                }
            }
            let Item::Input(host, inc, input) = self.items.remove(&k).expect("queued");
            if self.incarnations.get(&host) != Some(&inc) {
                continue;
            }
            let Some(node) = self.nodes.get_mut(&host) else {
                continue;
            };
            out.clear();
            node.handle(at, input, &mut out);
            let Out {
                sends,
                timers,
                events,
                replies,
                persist,
                log,
            } = std::mem::take(&mut out);
            let mut overflow = None;
            if self.log_full.contains(&host) && !log.is_empty() {
                let dropped = log.len() as u64;
                // The log reaches what was written before: rewind to it.
                let written = self.logs.get(&host);
                let reached = log
                    .iter()
                    .map(|a| a.colony())
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .map(|c| {
                        let at = written.and_then(|w| {
                            w.iter()
                                .rev()
                                .find(|a| a.colony() == c)
                                .and_then(|a| a.reaches())
                        });
                        (c, at)
                    })
                    .collect();
                overflow = Some(Input::LogOverflow {
                    reached,
                    dropped,
                    buffered_bytes: 0,
                });
            } else if !log.is_empty() {
                self.logs.entry(host).or_default().extend(log);
            }
            for c in persist {
                if let Some(r) = node.replica(c) {
                    let cells = r.cells.to_vec();
                    self.disk.push((c, cells));
                }
            }
            if let Some(input) = overflow {
                self.push(0, host, input);
            }
            self.events.extend(events);
            self.replies.extend(replies);
            for (delay, t) in timers {
                self.push(delay, host, Input::Timer(t));
            }
            for (to, msg) in sends {
                self.send(host, to, msg);
            }
        }
        self.now = until;
    }

    pub fn run_for(&mut self, ms: Tick) {
        self.run_until(self.now + ms);
    }

    /// Hosts holding a primary replica of `colony`.
    pub fn primaries(&self, colony: u32) -> Vec<HostId> {
        self.nodes
            .iter()
            .filter(|(_, n)| {
                n.replica(colony)
                    .is_some_and(|r| r.role == super::types::Role::Primary)
            })
            .map(|(h, _)| *h)
            .collect()
    }

    pub fn count_events(&self, name: &str) -> usize {
        self.events.iter().filter(|e| e.kind.name() == name).count()
    }
}

pub use super::logsink::replay as replay_log;
