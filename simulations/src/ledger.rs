//! The clients' ledger: per key, what the acknowledged writes say the cell must be.
//!
//! The ledger never asks a replica what it thinks. It keeps, per key, the set of states
//! the cell may be in given what the clients were told: after an acknowledged write that
//! is one state (or a few, when an earlier write's outcome was uncertain and the
//! acknowledged one merged into it, like HSET); after a write whose outcome is uncertain
//! (a timeout, a dead host) the state may or may not include it, so the set grows. The
//! checker then demands that the primary's cell matches one of the possible states.
//!
//! Values carry the id of the write that made them (`w<id>` for strings, a field `w`
//! for hashes, the exact count for counters), so a lost write cannot hide behind an
//! equal value.

use colony::core::cell::{Blob, Cell, Dna, Reply};
use colony::core::types::Tick;
use std::collections::BTreeMap;

/// A globally increasing write id.
pub type WriteId = u64;

/// More possible states than this and the key is left unchecked until a write that
/// fully defines it is acknowledged.
const MAX_STATES: usize = 64;

/// What a key holds: keys are typed so that no command ever meets the wrong type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    Str,
    Hash,
    Counter,
}

impl KeyKind {
    pub fn of_index(i: u32) -> KeyKind {
        match i % 3 {
            0 => KeyKind::Str,
            1 => KeyKind::Hash,
            _ => KeyKind::Counter,
        }
    }

    pub fn key_name(i: u32) -> String {
        let prefix = match KeyKind::of_index(i) {
            KeyKind::Str => "s",
            KeyKind::Hash => "h",
            KeyKind::Counter => "c",
        };
        format!("{prefix}:{i}")
    }
}

/// A state a cell may be in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Model {
    Absent,
    /// The value `w<id>`; with `SET PX`, its expiry lies in `[lo, hi]`.
    Str {
        id: WriteId,
        expires: Option<(Tick, Tick)>,
    },
    /// Field name -> write id (the value is the id in decimal).
    Hash(BTreeMap<String, WriteId>),
    Counter(i64),
}

/// A write as the clients issue it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WriteOp {
    Set { id: WriteId, ttl_ms: Option<u64> },
    HSet { id: WriteId },
    Incr,
    Del,
}

impl WriteOp {
    /// Fields an HSET with this id writes.
    pub fn hset_fields(id: WriteId) -> Vec<(String, WriteId)> {
        vec![("w".to_owned(), id), (format!("f{}", id % 4), id)]
    }
}

impl Model {
    /// The state after `op` was applied to `self`. `issued` is when the client sent it,
    /// `acked` when it was acknowledged (unknown for an uncertain write).
    fn apply(&self, op: &WriteOp, issued: Tick, acked: Option<Tick>) -> Model {
        match op {
            WriteOp::Set { id, ttl_ms } => Model::Str {
                id: *id,
                expires: ttl_ms.map(|t| (issued + t, acked.map_or(Tick::MAX, |a| a + t))),
            },
            WriteOp::HSet { id } => {
                let mut m = match self {
                    Model::Hash(m) => m.clone(),
                    _ => BTreeMap::new(),
                };
                m.extend(WriteOp::hset_fields(*id));
                Model::Hash(m)
            }
            WriteOp::Incr => match self {
                Model::Counter(n) => Model::Counter(n + 1),
                _ => Model::Counter(1),
            },
            WriteOp::Del => Model::Absent,
        }
    }

    fn may_be_absent(&self, now: Tick) -> bool {
        match self {
            Model::Absent => true,
            Model::Str {
                expires: Some((lo, _)),
                ..
            } => now >= *lo,
            _ => false,
        }
    }

    fn may_be_live(&self, since: Tick) -> bool {
        match self {
            Model::Absent => false,
            Model::Str {
                expires: Some((_, hi)),
                ..
            } => *hi > since,
            _ => true,
        }
    }

    /// Whether the cell a primary holds (at `now`) is this state.
    pub fn matches(&self, cell: Option<&Cell>, now: Tick) -> bool {
        let live = cell.filter(|c| c.is_live(now));
        let Some(c) = live else {
            return self.may_be_absent(now);
        };
        match (self, &c.dna) {
            (Model::Str { id, expires }, Dna::Value(v)) => {
                let expiry_ok = match (expires, c.expires_at) {
                    (None, None) => true,
                    (Some((lo, hi)), Some(t)) => *lo <= t && t <= *hi,
                    _ => false,
                };
                expiry_ok && v.as_slice() == format!("w{id}").as_bytes()
            }
            (Model::Hash(m), Dna::Map(actual)) => {
                actual.len() == m.len()
                    && m.iter().all(|(f, id)| {
                        actual.get(f.as_bytes()).map(|v| v.as_slice())
                            == Some(id.to_string().as_bytes())
                    })
            }
            (Model::Counter(n), Dna::Value(v)) => v.as_slice() == n.to_string().as_bytes(),
            _ => false,
        }
    }

    /// Whether a read's reply is consistent with this state.
    fn matches_read(&self, reply: &Reply, now: Tick) -> bool {
        match (self, reply) {
            (_, Reply::Nil) => self.may_be_absent(now),
            (Model::Absent, Reply::Array(a)) => a.is_empty(),
            (Model::Str { id, .. }, Reply::Bulk(v)) => v.as_slice() == format!("w{id}").as_bytes(),
            (Model::Counter(n), Reply::Bulk(v)) => v.as_slice() == n.to_string().as_bytes(),
            (Model::Hash(m), Reply::Array(a)) => {
                let flat: Vec<Option<Blob>> = m
                    .iter()
                    .flat_map(|(f, id)| [Some(Blob::from(f.as_str())), Some(id.to_string().into())])
                    .collect();
                *a == flat
            }
            _ => false,
        }
    }

    /// The state a cell actually is in (to re-base a key after a reported loss).
    pub fn of_cell(cell: Option<&Cell>, now: Tick) -> Option<Model> {
        let Some(c) = cell.filter(|c| c.is_live(now)) else {
            return Some(Model::Absent);
        };
        match &c.dna {
            Dna::Value(v) => {
                let s = std::str::from_utf8(v).ok()?;
                if let Some(id) = s.strip_prefix('w') {
                    Some(Model::Str {
                        id: id.parse().ok()?,
                        expires: c.expires_at.map(|t| (t, t)),
                    })
                } else {
                    s.parse().ok().map(Model::Counter)
                }
            }
            Dna::Map(m) => {
                let mut out = BTreeMap::new();
                for (f, v) in m.iter() {
                    let f = std::str::from_utf8(f).ok()?.to_string();
                    let id = std::str::from_utf8(v).ok()?.parse().ok()?;
                    out.insert(f, id);
                }
                Some(Model::Hash(out))
            }
            Dna::Moved(_) => None,
        }
    }
}

/// A write that was sent and not answered yet.
#[derive(Clone, Debug)]
pub struct InFlight {
    pub op: WriteOp,
    pub issued: Tick,
}

/// Everything the clients know about one key.
#[derive(Clone, Debug)]
pub struct KeyLedger {
    pub kind: KeyKind,
    pub name: String,
    /// The states the cell may be in (the write in flight aside).
    pub states: Vec<Model>,
    /// When the oldest acknowledged write the expected state still depends on was
    /// acknowledged (an HSET carries the fields of the HSETs before it): a loss is
    /// *reported* if `data_lost` or `merge_conflict` came at or after this.
    pub anchor: Option<Tick>,
    /// Too many possibilities to check; cleared by the next defining ack.
    pub unchecked: bool,
    pub inflight: Option<InFlight>,
}

/// What an acknowledgement revealed: the reply cannot follow from any state the
/// acknowledged writes allow, so an acknowledged write was lost.
#[derive(Clone, Debug)]
pub struct Contradiction {
    pub detail: String,
}

fn push_unique(states: &mut Vec<Model>, m: Model) {
    if !states.contains(&m) {
        states.push(m);
    }
}

impl KeyLedger {
    pub fn new(index: u32) -> Self {
        KeyLedger {
            kind: KeyKind::of_index(index),
            name: KeyKind::key_name(index),
            states: vec![Model::Absent],
            anchor: None,
            unchecked: false,
            inflight: None,
        }
    }

    pub fn issue(&mut self, op: WriteOp, now: Tick) {
        self.inflight = Some(InFlight { op, issued: now });
    }

    /// The write in flight was refused: it did not happen.
    pub fn failed(&mut self) {
        self.inflight = None;
    }

    /// The write in flight may or may not have happened.
    pub fn uncertain(&mut self) {
        let Some(w) = self.inflight.take() else {
            return;
        };
        let grown: Vec<Model> = self
            .states
            .iter()
            .map(|s| s.apply(&w.op, w.issued, None))
            .collect();
        for m in grown {
            push_unique(&mut self.states, m);
        }
        if self.states.len() > MAX_STATES {
            self.unchecked = true;
            self.states.truncate(MAX_STATES);
        }
    }

    /// The write in flight was acknowledged with `reply`. Returns a contradiction when
    /// the reply shows that an earlier acknowledged state is gone.
    pub fn acked(&mut self, reply: &Reply, now: Tick) -> Result<(), Contradiction> {
        let Some(w) = self.inflight.take() else {
            return Ok(());
        };
        let prior = std::mem::take(&mut self.states);
        let consistent: Vec<&Model> = match (&w.op, reply) {
            (WriteOp::Incr, Reply::Int(n)) => prior
                .iter()
                .filter(|s| match s {
                    Model::Counter(c) => c + 1 == *n,
                    Model::Absent => *n == 1,
                    _ => false,
                })
                .collect(),
            (WriteOp::Del, Reply::Int(1)) => {
                prior.iter().filter(|s| s.may_be_live(w.issued)).collect()
            }
            (WriteOp::Del, Reply::Int(0)) => {
                prior.iter().filter(|s| s.may_be_absent(now)).collect()
            }
            _ => prior.iter().collect(),
        };
        let result = if consistent.is_empty() && !self.unchecked {
            Err(Contradiction {
                detail: format!(
                    "{:?} was acknowledged with {:?}, which no allowed state explains (allowed: {:?})",
                    w.op, reply, prior
                ),
            })
        } else {
            Ok(())
        };
        let base: Vec<&Model> = if consistent.is_empty() {
            prior.iter().collect()
        } else {
            consistent
        };
        let carries = matches!(w.op, WriteOp::HSet { .. })
            && base.iter().any(|s| matches!(s, Model::Hash(_)));
        if !carries || self.anchor.is_none() {
            self.anchor = Some(now);
        }
        self.unchecked = false;
        match (&w.op, reply) {
            (WriteOp::Incr, Reply::Int(n)) => self.states = vec![Model::Counter(*n)],
            (WriteOp::HSet { .. }, _) if result.is_err() => {
                self.unchecked = true;
                self.states = vec![Model::Absent];
            }
            _ => {
                for s in base {
                    push_unique(&mut self.states, s.apply(&w.op, w.issued, Some(now)));
                }
            }
        }
        result
    }

    /// Whether a read's reply is consistent with some allowed state (reads may be
    /// served by a deposed primary that has not heard yet, so this is a statistic).
    pub fn read_consistent(&self, reply: &Reply, now: Tick) -> bool {
        self.unchecked || self.states.iter().any(|s| s.matches_read(reply, now))
    }

    /// Whether the primary's cell is one the clients' history allows (the write in
    /// flight counts as possibly applied).
    pub fn allows(&self, cell: Option<&Cell>, now: Tick) -> bool {
        if self.unchecked {
            return true;
        }
        if self.states.iter().any(|s| s.matches(cell, now)) {
            return true;
        }
        self.inflight.as_ref().is_some_and(|w| {
            self.states
                .iter()
                .any(|s| s.apply(&w.op, w.issued, None).matches(cell, now))
        })
    }

    /// After a reported loss: what the primary holds is the new truth.
    pub fn rebase(&mut self, cell: Option<&Cell>, now: Tick) {
        self.anchor = Some(now);
        match Model::of_cell(cell, now) {
            Some(m) => {
                self.states = vec![m];
                self.unchecked = false;
            }
            None => self.unchecked = true,
        }
    }

    /// Fabricate an acknowledged write that never reached the cluster (used to prove the
    /// checker catches a lost write).
    pub fn fabricate_ack(&mut self, id: WriteId, now: Tick) {
        self.states = vec![Model::Str { id, expires: None }];
        self.unchecked = false;
        self.anchor = Some(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use colony::core::types::Version;

    fn cell(v: &str, expires_at: Option<Tick>) -> Cell {
        Cell {
            dna: Dna::Value(v.into()),
            version: Version::default(),
            expires_at,
        }
    }

    #[test]
    fn acked_set_must_be_there() {
        let mut k = KeyLedger::new(0);
        k.issue(
            WriteOp::Set {
                id: 7,
                ttl_ms: None,
            },
            10,
        );
        k.acked(&Reply::Ok, 20).unwrap();
        assert!(k.allows(Some(&cell("w7", None)), 30));
        assert!(!k.allows(Some(&cell("w6", None)), 30));
        assert!(!k.allows(None, 30));
    }

    #[test]
    fn uncertain_write_may_or_may_not_be_there() {
        let mut k = KeyLedger::new(0);
        k.issue(
            WriteOp::Set {
                id: 1,
                ttl_ms: None,
            },
            0,
        );
        k.acked(&Reply::Ok, 5).unwrap();
        k.issue(
            WriteOp::Set {
                id: 2,
                ttl_ms: None,
            },
            10,
        );
        k.uncertain();
        assert!(k.allows(Some(&cell("w1", None)), 30));
        assert!(k.allows(Some(&cell("w2", None)), 30));
        assert!(!k.allows(None, 30));
    }

    #[test]
    fn ttl_window_and_expiry() {
        let mut k = KeyLedger::new(0);
        k.issue(
            WriteOp::Set {
                id: 3,
                ttl_ms: Some(100),
            },
            0,
        );
        k.acked(&Reply::Ok, 10).unwrap();
        assert!(k.allows(Some(&cell("w3", Some(105))), 50));
        assert!(!k.allows(Some(&cell("w3", Some(200))), 50));
        assert!(!k.allows(None, 50), "cannot have expired yet");
        assert!(k.allows(None, 105), "may have expired");
    }

    #[test]
    fn incr_reply_reveals_a_lost_increment() {
        let mut k = KeyLedger::new(2);
        for n in 1..=3 {
            k.issue(WriteOp::Incr, 0);
            k.acked(&Reply::Int(n), 1).unwrap();
        }
        k.issue(WriteOp::Incr, 2);
        assert!(
            k.acked(&Reply::Int(2), 3).is_err(),
            "3 was acknowledged; 2 means one was lost"
        );
        assert_eq!(k.states, vec![Model::Counter(2)]);
    }

    #[test]
    fn hset_merges_fields() {
        let mut k = KeyLedger::new(1);
        k.issue(WriteOp::HSet { id: 1 }, 0);
        k.acked(&Reply::Int(2), 1).unwrap();
        k.issue(WriteOp::HSet { id: 2 }, 2);
        k.acked(&Reply::Int(1), 3).unwrap();
        let mut m = BTreeMap::new();
        for (f, v) in [("w", b"2".as_slice()), ("f1", b"1"), ("f2", b"2")] {
            m.insert(f.into(), v.to_vec().into());
        }
        let c = Cell {
            dna: Dna::Map(m.into()),
            version: Version::default(),
            expires_at: None,
        };
        assert!(k.allows(Some(&c), 4));
    }
}
