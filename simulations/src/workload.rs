//! The clients: cell births, mutations, deaths and reads at a steady rate, each sent to a
//! random live host, with the outcome of every write entered in the [`Ledger`].
//!
//! At most one operation per key is in flight, so each key's history is a sequence. A
//! write is *acknowledged* (its effect must survive), *refused* (it did not happen:
//! no quorum, no primary, busy) or *uncertain* (timeout, or the host the client talked
//! to died): the ledger then allows both outcomes. A key whose write was uncertain is
//! left alone for a short quarantine so that a straggling copy cannot land after the
//! next write.

use crate::ledger::{Contradiction, KeyKind, KeyLedger, WriteId, WriteOp};
use crate::queue::Time;
use crate::scenario::WorkloadSpec;
use colony::core::cell::{Blob, Command, CommandError, Key, Reply, SetCond};
use colony::core::messages::ReqId;
use colony::core::types::HostId;
use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;

/// Every key the clients use, with its history.
pub struct Ledger {
    pub keys: Vec<KeyLedger>,
}

impl Ledger {
    fn new(keys: u32) -> Self {
        Ledger {
            keys: (0..keys).map(KeyLedger::new).collect(),
        }
    }
}

/// What the clients saw.
#[derive(Clone, Copy, Debug, Default)]
pub struct ClientStats {
    pub issued: u64,
    pub writes_acked: u64,
    pub writes_refused: u64,
    pub writes_uncertain: u64,
    pub reads: u64,
    /// Reads answered with a state no acknowledged history allows (a deposed primary
    /// that has not heard yet may serve them; not an invariant).
    pub stale_reads: u64,
    /// Replies of a kind that should never happen with typed keys (wrong type, ...).
    pub odd_replies: u64,
    /// Operations that found no host to talk to (the whole cluster down, or restoring
    /// and not accepting clients yet): refused, never acknowledged.
    pub no_host: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum OpKind {
    Set,
    SetPx,
    HSet,
    Incr,
    Del,
    Get,
}

struct Pending {
    key: u32,
    host: HostId,
    issued: Time,
    write: bool,
}

/// What became of a reply, for the caller to judge.
pub enum Outcome {
    Nothing,
    /// An acknowledgement that contradicts the ledger: an acknowledged write is gone.
    Contradiction {
        key: u32,
        since: Time,
        c: Contradiction,
    },
}

/// The clients.
pub struct Workload {
    spec: WorkloadSpec,
    pub ledger: Ledger,
    pending: BTreeMap<ReqId, Pending>,
    busy_until: Vec<Time>,
    /// Keys with a read in flight (writes in flight are in the ledger).
    reading: Vec<bool>,
    next_req: ReqId,
    next_write: WriteId,
    pub stats: ClientStats,
}

impl Workload {
    pub fn new(spec: WorkloadSpec) -> Self {
        let keys = spec.keys.max(3);
        Workload {
            ledger: Ledger::new(keys),
            busy_until: vec![0; keys as usize],
            reading: vec![false; keys as usize],
            pending: BTreeMap::new(),
            next_req: 1,
            next_write: 1,
            stats: ClientStats::default(),
            spec,
        }
    }

    pub fn spec(&self) -> &WorkloadSpec {
        &self.spec
    }

    /// Delay until the next operation (exponential inter-arrival times).
    pub fn next_delay(&self, rng: &mut ChaCha8Rng) -> Time {
        if self.spec.rate <= 0.0 {
            return Time::MAX / 4;
        }
        let u: f64 = rng.random_range(f64::EPSILON..1.0);
        ((-u.ln() / self.spec.rate) * 1000.0).round().max(1.0) as Time
    }

    fn pick_kind(&self, rng: &mut ChaCha8Rng) -> Option<OpKind> {
        let m = &self.spec.mix;
        let table = [
            (OpKind::Set, m.set),
            (OpKind::SetPx, m.set_px),
            (OpKind::HSet, m.hset),
            (OpKind::Incr, m.incr),
            (OpKind::Del, m.del),
            (OpKind::Get, m.get),
        ];
        let total: u32 = table.iter().map(|(_, w)| w).sum();
        if total == 0 {
            return None;
        }
        let mut x = rng.random_range(0..total);
        for (k, w) in table {
            if x < w {
                return Some(k);
            }
            x -= w;
        }
        None
    }

    fn pick_key(&self, kind: OpKind, now: Time, rng: &mut ChaCha8Rng) -> Option<u32> {
        let n = self.ledger.keys.len() as u32;
        let want = match kind {
            OpKind::Set | OpKind::SetPx => Some(KeyKind::Str),
            OpKind::HSet => Some(KeyKind::Hash),
            OpKind::Incr => Some(KeyKind::Counter),
            OpKind::Del | OpKind::Get => None,
        };
        for _ in 0..8 {
            let mut i = rng.random_range(0..n);
            if let Some(k) = want {
                // Move to the nearest index of the wanted kind.
                while KeyKind::of_index(i) != k {
                    i = (i + 1) % n;
                }
            }
            let free = self.ledger.keys[i as usize].inflight.is_none()
                && !self.reading[i as usize]
                && self.busy_until[i as usize] <= now;
            if free {
                return Some(i);
            }
        }
        None
    }

    /// The next operation: which host the client talks to, its request id, and the
    /// command. `None` when every key tried was busy or no host is up (then the
    /// operation is refused: counted in `no_host`, and a write in `writes_refused`; the
    /// ledger does not change, as the write never happened).
    pub fn next_op(
        &mut self,
        now: Time,
        hosts: &[HostId],
        rng: &mut ChaCha8Rng,
    ) -> Option<(HostId, ReqId, Command)> {
        let kind = self.pick_kind(rng)?;
        let i = self.pick_key(kind, now, rng)?;
        if hosts.is_empty() {
            self.stats.issued += 1;
            self.stats.no_host += 1;
            if kind == OpKind::Get {
                self.stats.reads += 1;
            } else {
                self.stats.writes_refused += 1;
            }
            return None;
        }
        let host = hosts[rng.random_range(0..hosts.len())];
        let key = Key::from(self.ledger.keys[i as usize].name.as_str());
        let key_kind = self.ledger.keys[i as usize].kind;
        let (cmd, write) = match kind {
            OpKind::Set | OpKind::SetPx => {
                let id = self.take_id();
                let ttl_ms = (kind == OpKind::SetPx)
                    .then(|| rng.random_range(self.spec.ttl_ms[0]..=self.spec.ttl_ms[1]));
                (
                    Command::Set {
                        key,
                        value: format!("w{id}").into(),
                        ttl_ms,
                        cond: SetCond::Always,
                    },
                    Some(WriteOp::Set { id, ttl_ms }),
                )
            }
            OpKind::HSet => {
                let id = self.take_id();
                let fields = WriteOp::hset_fields(id)
                    .into_iter()
                    .map(|(f, v)| (Blob::from(f), Blob::from(v.to_string())))
                    .collect();
                (Command::HSet { key, fields }, Some(WriteOp::HSet { id }))
            }
            OpKind::Incr => (Command::IncrBy { key, delta: 1 }, Some(WriteOp::Incr)),
            OpKind::Del => (Command::Del { key }, Some(WriteOp::Del)),
            OpKind::Get => match key_kind {
                KeyKind::Hash => (Command::HGetAll { key }, None),
                _ => (Command::Get { key }, None),
            },
        };
        let req = self.next_req;
        self.next_req += 1;
        self.stats.issued += 1;
        match &write {
            Some(op) => self.ledger.keys[i as usize].issue(op.clone(), now),
            None => self.reading[i as usize] = true,
        }
        self.pending.insert(
            req,
            Pending {
                key: i,
                host,
                issued: now,
                write: write.is_some(),
            },
        );
        Some((host, req, cmd))
    }

    fn take_id(&mut self) -> WriteId {
        let id = self.next_write;
        self.next_write += 1;
        id
    }

    /// A reply from `host` to request `req`.
    pub fn on_reply(&mut self, now: Time, host: HostId, req: ReqId, reply: &Reply) -> Outcome {
        match self.pending.get(&req) {
            Some(p) if p.host == host => {}
            _ => return Outcome::Nothing,
        }
        let p = self.pending.remove(&req).expect("checked");
        let k = &mut self.ledger.keys[p.key as usize];
        if !p.write {
            self.reading[p.key as usize] = false;
            self.stats.reads += 1;
            match reply {
                Reply::Error(_) => {}
                r if !k.read_consistent(r, now) => self.stats.stale_reads += 1,
                _ => {}
            }
            return Outcome::Nothing;
        }
        match reply {
            Reply::Error(CommandError::Timeout) => {
                self.stats.writes_uncertain += 1;
                k.uncertain();
                self.busy_until[p.key as usize] = now + self.spec.quarantine_ms;
                Outcome::Nothing
            }
            Reply::Error(
                CommandError::NoQuorum
                | CommandError::NoPrimary(_)
                | CommandError::Busy(_)
                | CommandError::NoSuchColony(_),
            ) => {
                self.stats.writes_refused += 1;
                k.failed();
                Outcome::Nothing
            }
            Reply::Error(_) => {
                self.stats.odd_replies += 1;
                k.failed();
                Outcome::Nothing
            }
            _ => {
                self.stats.writes_acked += 1;
                let since = k.anchor.unwrap_or(0);
                match k.acked(reply, now) {
                    Ok(()) => Outcome::Nothing,
                    Err(c) => Outcome::Contradiction {
                        key: p.key,
                        since,
                        c,
                    },
                }
            }
        }
    }

    /// The host went away with requests of ours: their outcome is unknown.
    pub fn host_gone(&mut self, host: HostId, now: Time) {
        let gone: Vec<ReqId> = self
            .pending
            .iter()
            .filter(|(_, p)| p.host == host)
            .map(|(r, _)| *r)
            .collect();
        for req in gone {
            self.give_up(req, now);
        }
    }

    /// Requests unanswered for longer than `timeout`: the client gives up on them.
    pub fn expire(&mut self, now: Time, timeout: Time) -> usize {
        let old: Vec<ReqId> = self
            .pending
            .iter()
            .filter(|(_, p)| now.saturating_sub(p.issued) > timeout)
            .map(|(r, _)| *r)
            .collect();
        for req in &old {
            self.give_up(*req, now);
        }
        old.len()
    }

    fn give_up(&mut self, req: ReqId, now: Time) {
        let Some(p) = self.pending.remove(&req) else {
            return;
        };
        self.reading[p.key as usize] = false;
        if p.write {
            self.stats.writes_uncertain += 1;
            self.ledger.keys[p.key as usize].uncertain();
            self.busy_until[p.key as usize] = now + self.spec.quarantine_ms;
        }
    }

    pub fn in_flight(&self) -> usize {
        self.pending.len()
    }
}
