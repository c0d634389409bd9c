//! Cells: keyed records with DNA, a version and an optional expiry, and the commands a
//! client can run against them.
//!
//! A primary *executes* a [`Command`] against its [`CellStore`]: it gets a [`Reply`]
//! and, for a write, an [`Op`] that states the cell's new state outright. Ops, not
//! commands, are what is replicated: applying the same op twice gives the same state,
//! so a secondary that sees a mutation again after a resync stays correct.

pub use super::cell_store::CellStore;
use super::types::{ColonyId, Tick, Version};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

pub use super::blob::Blob;

/// A cell's key.
pub type Key = Blob;

/// A cell's state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Dna {
    /// A plain value (Redis string).
    Value(Blob),
    /// A map of fields (Redis hash). Shared: a write makes a new map (the op states
    /// the cell's new state outright), so the store, the tail of mutations and the
    /// messages that carry it hold one map, not a copy each (serialised as the map).
    Map(Arc<BTreeMap<Blob, Blob>>),
    /// The cell moved to another colony; this colony only forwards.
    Moved(ColonyId),
}

impl Dna {
    /// Approximate bytes held, for memory accounting.
    pub fn size(&self) -> usize {
        match self {
            Dna::Value(v) => v.len(),
            Dna::Map(m) => m.iter().map(|(k, v)| k.len() + v.len() + 16).sum(),
            Dna::Moved(_) => 4,
        }
    }
}

/// One keyed record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cell {
    pub dna: Dna,
    /// The position of the mutation that last wrote this cell.
    pub version: Version,
    /// Absolute expiry time, if any.
    pub expires_at: Option<Tick>,
}

impl Cell {
    pub fn is_live(&self, now: Tick) -> bool {
        self.expires_at.is_none_or(|t| now < t)
    }
}

/// `SET`'s condition.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum SetCond {
    #[default]
    Always,
    /// NX
    IfAbsent,
    /// XX
    IfPresent,
}

/// What a client asks of one key. Multi-key commands (MGET, DEL a b) are split by the
/// client layer into one command per key, because each key may live in another colony.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    Get {
        key: Key,
    },
    Exists {
        key: Key,
    },
    /// Remaining time to live in ms: -2 absent, -1 no expiry.
    Ttl {
        key: Key,
    },
    Set {
        key: Key,
        value: Blob,
        /// Milliseconds to live.
        ttl_ms: Option<u64>,
        cond: SetCond,
    },
    Del {
        key: Key,
    },
    Expire {
        key: Key,
        ttl_ms: u64,
    },
    IncrBy {
        key: Key,
        delta: i64,
    },
    HSet {
        key: Key,
        fields: Vec<(Blob, Blob)>,
    },
    HGet {
        key: Key,
        field: Blob,
    },
    HMGet {
        key: Key,
        fields: Vec<Blob>,
    },
    HGetAll {
        key: Key,
    },
    HDel {
        key: Key,
        fields: Vec<Blob>,
    },
    HExists {
        key: Key,
        field: Blob,
    },
    HLen {
        key: Key,
    },
    /// Move the cell (with its secondary copies) to another colony.
    MoveCell {
        key: Key,
        to: ColonyId,
    },
    /// Put a cell back as it was saved (shutdown to disk, backup, log): its DNA and
    /// absolute expiry. A cell whose expiry has passed is not restored (`Int(0)`).
    /// Not reachable from RESP: only restores use it.
    Restore {
        key: Key,
        dna: Dna,
        expires_at: Option<Tick>,
    },
}

impl Command {
    pub fn key(&self) -> &Key {
        match self {
            Command::Get { key }
            | Command::Exists { key }
            | Command::Ttl { key }
            | Command::Set { key, .. }
            | Command::Del { key }
            | Command::Expire { key, .. }
            | Command::IncrBy { key, .. }
            | Command::HSet { key, .. }
            | Command::HGet { key, .. }
            | Command::HMGet { key, .. }
            | Command::HGetAll { key }
            | Command::HDel { key, .. }
            | Command::HExists { key, .. }
            | Command::HLen { key }
            | Command::MoveCell { key, .. }
            | Command::Restore { key, .. } => key,
        }
    }

    /// Whether the command may change state (and so needs a writable primary).
    pub fn is_write(&self) -> bool {
        matches!(
            self,
            Command::Set { .. }
                | Command::Del { .. }
                | Command::Expire { .. }
                | Command::IncrBy { .. }
                | Command::HSet { .. }
                | Command::HDel { .. }
                | Command::MoveCell { .. }
                | Command::Restore { .. }
        )
    }
}

/// Why a command failed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum CommandError {
    #[error("WRONGTYPE Operation against a key holding the wrong kind of value")]
    WrongType,
    #[error("ERR value is not an integer or out of range")]
    NotInteger,
    #[error("ERR increment or decrement would overflow")]
    Overflow,
    #[error("CLUSTERDOWN this side of the cluster has no quorum; writes are refused")]
    NoQuorum,
    #[error("TRYAGAIN colony {0} has no primary right now")]
    NoPrimary(ColonyId),
    #[error("TRYAGAIN the request timed out before the colony answered")]
    Timeout,
    #[error("TRYAGAIN colony {0} is moving; retry")]
    Busy(ColonyId),
    #[error("ERR the target colony {0} does not exist")]
    NoSuchColony(ColonyId),
}

/// The answer to a command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    Ok,
    Nil,
    Int(i64),
    Bulk(Blob),
    Array(Vec<Option<Blob>>),
    Error(CommandError),
}

/// The replicated state change a write produced.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// The cell is now exactly this.
    Put { key: Key, cell: Cell },
    /// The cell is gone.
    Remove { key: Key, why: RemoveWhy },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RemoveWhy {
    Deleted,
    Expired,
}

impl Op {
    pub fn key(&self) -> &Key {
        match self {
            Op::Put { key, .. } | Op::Remove { key, .. } => key,
        }
    }
}

fn parse_int(v: &[u8]) -> Result<i64, CommandError> {
    std::str::from_utf8(v)
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or(CommandError::NotInteger)
}

impl CellStore {
    /// Run a command as the primary at `version` (the position the write would take).
    /// Returns the reply and, for a write that changes state, the op to replicate.
    /// The store itself is not changed: the caller applies the op.
    pub fn execute(&self, cmd: &Command, now: Tick, version: Version) -> (Reply, Option<Op>) {
        let key = cmd.key().clone();
        let found = self.live(&key, now);
        let live = found.as_deref();
        let put = |dna: Dna, expires_at: Option<Tick>| Op::Put {
            key: key.clone(),
            cell: Cell {
                dna,
                version,
                expires_at,
            },
        };
        // A read looks at the map where it is; a write changes a copy (the op states
        // the cell's new state outright).
        fn map_ref(c: Option<&Cell>) -> Result<Option<&Arc<BTreeMap<Blob, Blob>>>, CommandError> {
            match c.map(|c| &c.dna) {
                None => Ok(None),
                Some(Dna::Map(m)) => Ok(Some(m)),
                Some(_) => Err(CommandError::WrongType),
            }
        }
        let map_of =
            |c: Option<&Cell>| map_ref(c).map(|m| m.map(|m| (**m).clone()).unwrap_or_default());
        let err = |e| (Reply::Error(e), None);
        match cmd {
            Command::Get { .. } => match live.map(|c| &c.dna) {
                None => (Reply::Nil, None),
                Some(Dna::Value(v)) => (Reply::Bulk(v.clone()), None),
                Some(_) => err(CommandError::WrongType),
            },
            Command::Exists { .. } => (Reply::Int(i64::from(live.is_some())), None),
            Command::Ttl { .. } => match live {
                None => (Reply::Int(-2), None),
                Some(Cell {
                    expires_at: None, ..
                }) => (Reply::Int(-1), None),
                Some(Cell {
                    expires_at: Some(t),
                    ..
                }) => (Reply::Int((t - now) as i64), None),
            },
            Command::Set {
                value,
                ttl_ms,
                cond,
                ..
            } => {
                let ok = match cond {
                    SetCond::Always => true,
                    SetCond::IfAbsent => live.is_none(),
                    SetCond::IfPresent => live.is_some(),
                };
                if !ok {
                    return (Reply::Nil, None);
                }
                let expires_at = ttl_ms.map(|ms| now + ms);
                (Reply::Ok, Some(put(Dna::Value(value.clone()), expires_at)))
            }
            // A delete is a write even when nothing was there: its tombstone is what
            // lets a merge after a split see that this side deleted a cell the other
            // side created meanwhile (a conflict), instead of taking the cell over
            // silently and undoing an acknowledged delete.
            Command::Del { .. } => (
                Reply::Int(i64::from(live.is_some())),
                Some(Op::Remove {
                    key,
                    why: RemoveWhy::Deleted,
                }),
            ),
            Command::Expire { ttl_ms, .. } => match live {
                None => (Reply::Int(0), None),
                Some(c) => (Reply::Int(1), Some(put(c.dna.clone(), Some(now + ttl_ms)))),
            },
            Command::IncrBy { delta, .. } => {
                let (cur, exp) = match live {
                    None => (0, None),
                    Some(Cell {
                        dna: Dna::Value(v),
                        expires_at,
                        ..
                    }) => match parse_int(v) {
                        Ok(n) => (n, *expires_at),
                        Err(e) => return err(e),
                    },
                    Some(_) => return err(CommandError::WrongType),
                };
                match cur.checked_add(*delta) {
                    None => err(CommandError::Overflow),
                    Some(n) => (
                        Reply::Int(n),
                        Some(put(Dna::Value(n.to_string().into()), exp)),
                    ),
                }
            }
            Command::HSet { fields, .. } => {
                let mut m = match map_of(live) {
                    Ok(m) => m,
                    Err(e) => return err(e),
                };
                let mut added = 0;
                for (f, v) in fields {
                    if m.insert(f.clone(), v.clone()).is_none() {
                        added += 1;
                    }
                }
                let exp = live.and_then(|c| c.expires_at);
                (Reply::Int(added), Some(put(Dna::Map(Arc::new(m)), exp)))
            }
            Command::HDel { fields, .. } => {
                let mut m = match map_of(live) {
                    Ok(m) => m,
                    Err(e) => return err(e),
                };
                let removed = fields.iter().filter(|f| m.remove(*f).is_some()).count() as i64;
                if removed == 0 {
                    return (Reply::Int(0), None);
                }
                let op = if m.is_empty() {
                    Op::Remove {
                        key,
                        why: RemoveWhy::Deleted,
                    }
                } else {
                    put(Dna::Map(Arc::new(m)), live.and_then(|c| c.expires_at))
                };
                (Reply::Int(removed), Some(op))
            }
            Command::HGet { field, .. } => match map_ref(live) {
                Ok(m) => (
                    m.and_then(|m| m.get(field))
                        .cloned()
                        .map_or(Reply::Nil, Reply::Bulk),
                    None,
                ),
                Err(e) => err(e),
            },
            Command::HMGet { fields, .. } => match map_ref(live) {
                Ok(m) => (
                    Reply::Array(
                        fields
                            .iter()
                            .map(|f| m.and_then(|m| m.get(f)).cloned())
                            .collect(),
                    ),
                    None,
                ),
                Err(e) => err(e),
            },
            Command::HGetAll { .. } => match map_ref(live) {
                Ok(m) => (
                    Reply::Array(
                        m.into_iter()
                            .flat_map(|m| m.iter())
                            .flat_map(|(k, v)| [Some(k.clone()), Some(v.clone())])
                            .collect(),
                    ),
                    None,
                ),
                Err(e) => err(e),
            },
            Command::HExists { field, .. } => match map_ref(live) {
                Ok(m) => (
                    Reply::Int(i64::from(m.is_some_and(|m| m.contains_key(field)))),
                    None,
                ),
                Err(e) => err(e),
            },
            Command::HLen { .. } => match map_ref(live) {
                Ok(m) => (Reply::Int(m.map_or(0, |m| m.len()) as i64), None),
                Err(e) => err(e),
            },
            // Cell migration is driven by the colony machine, not by the store.
            Command::MoveCell { .. } => (Reply::Nil, None),
            Command::Restore {
                dna, expires_at, ..
            } => {
                if expires_at.is_some_and(|t| t <= now) {
                    (Reply::Int(0), None)
                } else {
                    (Reply::Int(1), Some(put(dna.clone(), *expires_at)))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_values_travel_as_msgpack_bin_not_integer_arrays() {
        let op = Op::Put {
            key: b"k\x80".into(),
            cell: Cell {
                dna: Dna::Value(vec![0x80; 10].into()),
                version: Version::default(),
                expires_at: None,
            },
        };
        let bytes = rmp_serde::to_vec(&op).unwrap();
        let bin = |b: &[u8]| bytes.windows(b.len()).any(|w| w == b);
        assert!(bin(&[0xc4, 2, b'k', 0x80]), "key as bin8: {bytes:x?}");
        assert!(bin(&[0xc4, 10, 0x80, 0x80]), "value as bin8: {bytes:x?}");
        let back: Op = rmp_serde::from_slice(&bytes).unwrap();
        assert_eq!(back, op);
    }
    use crate::core::types::Epoch;

    fn v(seq: u64) -> Version {
        Version {
            epoch: Epoch::genesis(1),
            seq,
        }
    }

    fn run(s: &mut CellStore, cmd: Command, now: Tick, seq: u64) -> Reply {
        let (r, op) = s.execute(&cmd, now, v(seq));
        if let Some(op) = op {
            s.apply(&op);
        }
        r
    }

    #[test]
    fn restore_puts_the_saved_cell_back_unless_it_expired() {
        let mut s = CellStore::default();
        let restore = |key: &str, dna: Dna, expires_at| Command::Restore {
            key: key.into(),
            dna,
            expires_at,
        };
        let now = 1_000;
        let r = run(
            &mut s,
            restore("gone", Dna::Value(b"x".into()), Some(900)),
            now,
            1,
        );
        assert_eq!(r, Reply::Int(0));
        let map: BTreeMap<Blob, Blob> = [(b"f".into(), b"1".into())].into();
        let r = run(
            &mut s,
            restore("h", Dna::Map(Arc::new(map)), Some(5_000)),
            now,
            2,
        );
        assert_eq!(r, Reply::Int(1));
        let r = run(&mut s, restore("k", Dna::Value(b"v".into()), None), now, 3);
        assert_eq!(r, Reply::Int(1));
        let get = |key: &str| Command::Get { key: key.into() };
        assert_eq!(run(&mut s, get("gone"), now, 4), Reply::Nil);
        assert_eq!(run(&mut s, get("k"), now, 4), Reply::Bulk(b"v".into()));
        let ttl = Command::Ttl { key: "h".into() };
        assert_eq!(run(&mut s, ttl, now, 4), Reply::Int(4_000));
        let hget = Command::HGet {
            key: "h".into(),
            field: b"f".into(),
        };
        assert_eq!(run(&mut s, hget, now, 4), Reply::Bulk(b"1".into()));
    }

    #[test]
    fn set_get_nx_xx_and_ttl() {
        let mut s = CellStore::default();
        let k = b"k".to_vec();
        let set = |value: &str, ttl_ms, cond| Command::Set {
            key: b"k".into(),
            value: value.into(),
            ttl_ms,
            cond,
        };
        assert_eq!(
            run(&mut s, set("a", None, SetCond::IfPresent), 0, 1),
            Reply::Nil
        );
        assert_eq!(
            run(&mut s, set("a", None, SetCond::IfAbsent), 0, 2),
            Reply::Ok
        );
        assert_eq!(
            run(&mut s, set("b", None, SetCond::IfAbsent), 0, 3),
            Reply::Nil
        );
        assert_eq!(
            run(&mut s, set("c", Some(100), SetCond::IfPresent), 10, 4),
            Reply::Ok
        );
        assert_eq!(
            run(
                &mut s,
                Command::Get {
                    key: k.clone().into()
                },
                50,
                0
            ),
            Reply::Bulk(b"c".into())
        );
        assert_eq!(
            run(
                &mut s,
                Command::Ttl {
                    key: k.clone().into()
                },
                50,
                0
            ),
            Reply::Int(60)
        );
        assert_eq!(
            run(
                &mut s,
                Command::Get {
                    key: k.clone().into()
                },
                110,
                0
            ),
            Reply::Nil
        );
        assert_eq!(s.expired(110, 10), vec![k.clone()]);
        assert_eq!(s.get(&k).unwrap().version, v(4));
    }

    #[test]
    fn incr_and_wrong_type() {
        let mut s = CellStore::default();
        let incr = |d| Command::IncrBy {
            key: b"n".into(),
            delta: d,
        };
        assert_eq!(run(&mut s, incr(5), 0, 1), Reply::Int(5));
        assert_eq!(run(&mut s, incr(-7), 0, 2), Reply::Int(-2));
        assert_eq!(run(&mut s, incr(i64::MAX), 0, 3), Reply::Int(i64::MAX - 2));
        assert_eq!(
            run(&mut s, incr(10), 0, 4),
            Reply::Error(CommandError::Overflow)
        );
        let hset = Command::HSet {
            key: b"n".into(),
            fields: vec![(b"f".into(), b"v".into())],
        };
        assert_eq!(
            run(&mut s, hset, 0, 5),
            Reply::Error(CommandError::WrongType)
        );
    }

    #[test]
    fn hashes() {
        let mut s = CellStore::default();
        let key = b"h".to_vec();
        let hset = Command::HSet {
            key: key.clone().into(),
            fields: vec![(b"a".into(), b"1".into()), (b"b".into(), b"2".into())],
        };
        assert_eq!(run(&mut s, hset, 0, 1), Reply::Int(2));
        assert_eq!(
            run(
                &mut s,
                Command::HLen {
                    key: key.clone().into()
                },
                0,
                0
            ),
            Reply::Int(2)
        );
        assert_eq!(
            run(
                &mut s,
                Command::HMGet {
                    key: key.clone().into(),
                    fields: vec![b"a".into(), b"zz".into()]
                },
                0,
                0
            ),
            Reply::Array(vec![Some(b"1".into()), None])
        );
        let hdel = |f: &[u8]| Command::HDel {
            key: b"h".into(),
            fields: vec![f.into()],
        };
        assert_eq!(run(&mut s, hdel(b"a"), 0, 2), Reply::Int(1));
        assert_eq!(run(&mut s, hdel(b"b"), 0, 3), Reply::Int(1));
        assert!(s.is_empty(), "a hash with no fields is deleted");
        assert_eq!(s.bytes(), 0);
    }

    #[test]
    fn the_expiry_index_follows_overwrites_and_deletes() {
        let mut s = CellStore::default();
        let set = |ttl_ms| Command::Set {
            key: b"k".into(),
            value: b"v".into(),
            ttl_ms,
            cond: SetCond::Always,
        };
        run(&mut s, set(Some(100)), 0, 1);
        run(&mut s, set(Some(500)), 10, 2);
        assert!(s.expired(200, 10).is_empty(), "the old expiry is gone");
        assert_eq!(s.expired(510, 10), vec![b"k".to_vec()]);
        run(&mut s, set(None), 20, 3);
        assert!(s.expired(10_000, 10).is_empty(), "persisted by a plain SET");
        run(&mut s, set(Some(5)), 30, 4);
        run(&mut s, Command::Del { key: b"k".into() }, 31, 5);
        assert!(s.expired(10_000, 10).is_empty(), "deleted");
    }

    #[test]
    fn apply_is_idempotent_and_accounts_bytes() {
        let mut s = CellStore::default();
        let op = Op::Put {
            key: b"key".into(),
            cell: Cell {
                dna: Dna::Value(b"value".into()),
                version: v(1),
                expires_at: None,
            },
        };
        s.apply(&op);
        s.apply(&op);
        assert_eq!(s.len(), 1);
        assert_eq!(s.bytes(), 8);
    }
}
