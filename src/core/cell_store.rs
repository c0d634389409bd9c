//! The cells of one replica: in memory, or (on a storage node) on disk behind an
//! in-memory index.
//!
//! An ordinary replica keeps every [`Cell`] in a map. A storage node's replica keeps only
//! an index in memory — key, version, expiry and where the cell was written — and the
//! cells themselves in an append-only [`ValueLog`], bitcask-style: a write appends, a read
//! fetches the record back, and the log is rewritten with only the live records once
//! most of it is garbage. Both behave the same to the colony above (the same ops, the
//! same answers); only where the bytes live differs.
//!
//! The core does no IO itself: the node hands a storage replica its log through a
//! [`ValueStorage`] (files in `src/store/values.rs`; [`MemValueStorage`] in the simulator
//! and in tests). A log that fails (a full or broken disk, a corrupt record) makes the
//! store *failed*: the colony sees it through [`CellStore::take_failure`] and drops the
//! replica, so its primary clones the colony elsewhere. Nothing panics.

use super::cell::{Cell, Key, Op};
use super::types::{ColonyId, Tick, Version};
use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

/// Where one record sits in a [`ValueLog`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ValueLoc {
    pub at: u64,
    pub len: u32,
}

/// A value log failed: the replica that uses it cannot be trusted any more.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ValueLogError(pub String);

/// An append-only log of `(key, cell)` records: where a storage replica's cells live.
pub trait ValueLog: Send {
    /// Appends `cell` under `key`; where it landed.
    fn append(&mut self, key: &[u8], cell: &Cell) -> Result<ValueLoc, ValueLogError>;
    /// The record at `at`, as written.
    fn read(&self, at: ValueLoc) -> Result<(Key, Cell), ValueLogError>;
    /// Forgets every record.
    fn clear(&mut self) -> Result<(), ValueLogError>;
    /// Bytes held: what `append` wrote since the last `clear` or `rewrite`.
    fn bytes(&self) -> u64;
    /// Replaces the log by one holding only the records at `live`, in that order;
    /// returns their new places.
    fn rewrite(&mut self, live: &[ValueLoc]) -> Result<Vec<ValueLoc>, ValueLogError>;
}

/// Opens one [`ValueLog`] per replica a storage node holds.
pub trait ValueStorage: Send {
    fn open(&mut self, colony: ColonyId) -> Result<Box<dyn ValueLog>, ValueLogError>;
}

/// A log is rewritten when it holds more than this many bytes beyond twice its live ones.
pub const REWRITE_SLACK: u64 = 1 << 20;

/// What the index keeps of one cell whose DNA is on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct OnDisk {
    version: Version,
    expires_at: Option<Tick>,
    loc: ValueLoc,
    /// Key and DNA bytes, for [`CellStore::bytes`].
    size: usize,
}

/// A storage replica's cells: the index in memory, the cells in the log.
struct DiskCells {
    index: BTreeMap<Key, OnDisk>,
    log: Box<dyn ValueLog>,
    /// Bytes of the records the index points at.
    live: u64,
}

/// The cells of one replica.
///
/// In memory the cells sit in a `HashMap` with std's per-process random keys (one hash
/// per lookup instead of a dozen key comparisons, and no collisions a client could
/// plan); nothing depends on its order: [`CellStore::to_vec`] sorts by key, so
/// snapshots, merges and everything the simulator replays stay deterministic.
#[derive(Default)]
pub struct CellStore {
    cells: HashMap<Key, Cell>,
    /// Set on a storage replica: `cells` stays empty.
    disk: Option<DiskCells>,
    /// `(expires_at, key)` of every cell with an expiry: the sweep reads only what is due.
    expiry: BTreeSet<(Tick, Key)>,
    bytes: usize,
    /// The first error of the log, until the colony takes it.
    failure: RefCell<Option<ValueLogError>>,
}

impl CellStore {
    /// An empty store whose cells live in `log` (a storage replica).
    pub fn on_disk(log: Box<dyn ValueLog>) -> CellStore {
        let mut store = CellStore {
            disk: Some(DiskCells {
                index: BTreeMap::new(),
                log,
                live: 0,
            }),
            ..CellStore::default()
        };
        store.clear();
        store
    }

    /// Whether the cells live on disk.
    pub fn is_on_disk(&self) -> bool {
        self.disk.is_some()
    }

    pub fn len(&self) -> usize {
        match &self.disk {
            Some(d) => d.index.len(),
            None => self.cells.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Approximate bytes held by keys and DNA (on disk for a storage replica).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Whether the log failed since the last [`Self::take_failure`].
    pub fn has_failure(&self) -> bool {
        self.failure.borrow().is_some()
    }

    /// The log's first error since the last call, if any.
    pub fn take_failure(&self) -> Option<ValueLogError> {
        self.failure.borrow_mut().take()
    }

    fn fail(&self, e: ValueLogError) {
        let mut f = self.failure.borrow_mut();
        if f.is_none() {
            *f = Some(e);
        }
    }

    fn read(&self, d: &DiskCells, key: &[u8], at: ValueLoc) -> Option<Cell> {
        match d.log.read(at) {
            Ok((k, cell)) if k == key => Some(cell),
            Ok((k, _)) => {
                self.fail(ValueLogError(format!(
                    "record at offset {} holds key {:?}, the index expected {:?}",
                    at.at,
                    String::from_utf8_lossy(&k),
                    String::from_utf8_lossy(key)
                )));
                None
            }
            Err(e) => {
                self.fail(e);
                None
            }
        }
    }

    pub fn get(&self, key: &[u8]) -> Option<Cow<'_, Cell>> {
        match &self.disk {
            Some(d) => {
                let at = d.index.get(key)?.loc;
                self.read(d, key, at).map(Cow::Owned)
            }
            None => self.cells.get(key).map(Cow::Borrowed),
        }
    }

    /// The version and expiry of the cell at `key`, without reading its DNA.
    pub fn meta(&self, key: &[u8]) -> Option<(Version, Option<Tick>)> {
        match &self.disk {
            Some(d) => d.index.get(key).map(|c| (c.version, c.expires_at)),
            None => self.cells.get(key).map(|c| (c.version, c.expires_at)),
        }
    }

    /// The live cell at `key`, if any.
    pub fn live(&self, key: &[u8], now: Tick) -> Option<Cow<'_, Cell>> {
        if self.disk.is_none() {
            return self
                .cells
                .get(key)
                .filter(|c| c.is_live(now))
                .map(Cow::Borrowed);
        }
        let (_, expires_at) = self.meta(key)?;
        if expires_at.is_some_and(|t| now >= t) {
            return None;
        }
        self.get(key)
    }

    /// Every cell, in no particular order (read back from disk one by one on a storage
    /// replica).
    pub fn iter(&self) -> Box<dyn Iterator<Item = (&Key, Cow<'_, Cell>)> + '_> {
        match &self.disk {
            Some(d) => Box::new(d.index.iter().filter_map(move |(k, c)| {
                self.read(d, k, c.loc).map(|cell| (k, Cow::Owned(cell)))
            })),
            None => Box::new(self.cells.iter().map(|(k, c)| (k, Cow::Borrowed(c)))),
        }
    }

    /// Every cell, copied and sorted by key (a snapshot to send or write).
    pub fn to_vec(&self) -> Vec<(Key, Cell)> {
        let mut all: Vec<(Key, Cell)> = self
            .iter()
            .map(|(k, c)| (k.clone(), c.into_owned()))
            .collect();
        all.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// Apply a replicated op. Idempotent.
    pub fn apply(&mut self, op: &Op) {
        let (key, new) = match op {
            Op::Put { key, cell } => (key, Some(cell)),
            Op::Remove { key, .. } => (key, None),
        };
        let size = new.map(|c| key.len() + c.dna.size());
        let old = match &mut self.disk {
            None => match new {
                Some(cell) => self.cells.insert(key.clone(), cell.clone()),
                None => self.cells.remove(key),
            }
            .map(|c| (c.expires_at, key.len() + c.dna.size())),
            Some(d) => {
                let placed = match new {
                    Some(cell) => match d.log.append(key, cell) {
                        Ok(loc) => Some((cell, loc)),
                        Err(e) => {
                            let mut f = self.failure.borrow_mut();
                            f.get_or_insert(e);
                            return;
                        }
                    },
                    None => None,
                };
                let old = match placed {
                    Some((cell, loc)) => {
                        d.live += u64::from(loc.len);
                        d.index.insert(
                            key.clone(),
                            OnDisk {
                                version: cell.version,
                                expires_at: cell.expires_at,
                                loc,
                                size: size.unwrap_or(0),
                            },
                        )
                    }
                    None => d.index.remove(key),
                };
                old.map(|o| {
                    d.live -= u64::from(o.loc.len);
                    (o.expires_at, o.size)
                })
            }
        };
        let new_expiry = new.and_then(|c| c.expires_at);
        if let Some((old_expiry, old_size)) = old {
            self.bytes -= old_size;
            if let Some(t) = old_expiry.filter(|t| Some(*t) != new_expiry) {
                self.expiry.remove(&(t, key.clone()));
            }
        }
        if let Some(t) = new_expiry {
            self.expiry.insert((t, key.clone()));
        }
        self.bytes += size.unwrap_or(0);
        self.rewrite_if_mostly_garbage();
    }

    fn rewrite_if_mostly_garbage(&mut self) {
        let Some(d) = &mut self.disk else {
            return;
        };
        if d.log.bytes() <= 2 * d.live + REWRITE_SLACK {
            return;
        }
        let live: Vec<ValueLoc> = d.index.values().map(|c| c.loc).collect();
        match d.log.rewrite(&live) {
            Ok(moved) if moved.len() == live.len() => {
                for (c, loc) in d.index.values_mut().zip(moved) {
                    c.loc = loc;
                }
            }
            Ok(moved) => self.fail(ValueLogError(format!(
                "rewrite returned {} places for {} records",
                moved.len(),
                live.len()
            ))),
            Err(e) => self.fail(e),
        }
    }

    /// Forget every cell.
    pub fn clear(&mut self) {
        self.cells.clear();
        self.expiry.clear();
        self.bytes = 0;
        if let Some(d) = &mut self.disk {
            d.index.clear();
            d.live = 0;
            if let Err(e) = d.log.clear() {
                self.fail(e);
            }
        }
    }

    /// Replace everything (a snapshot arrived).
    pub fn replace(&mut self, cells: impl IntoIterator<Item = (Key, Cell)>) {
        self.clear();
        for (key, cell) in cells {
            self.apply(&Op::Put { key, cell });
        }
    }

    /// Keys whose expiry has passed, at most `limit` of them.
    pub fn expired(&self, now: Tick, limit: usize) -> Vec<Key> {
        self.expiry
            .iter()
            .take_while(|(t, _)| *t <= now)
            .take(limit)
            .map(|(_, k)| k.clone())
            .collect()
    }
}

/// A copy in memory: a storage replica's clone reads every cell back.
impl Clone for CellStore {
    fn clone(&self) -> Self {
        if self.disk.is_none() {
            return CellStore {
                cells: self.cells.clone(),
                disk: None,
                expiry: self.expiry.clone(),
                bytes: self.bytes,
                failure: RefCell::new(self.failure.borrow().clone()),
            };
        }
        let mut copy = CellStore::default();
        copy.replace(self.to_vec());
        copy
    }
}

/// Two stores are equal when they hold the same cells, wherever they keep them.
impl PartialEq for CellStore {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len()
            && self
                .iter()
                .all(|(k, c)| other.get(k).is_some_and(|o| *o == *c))
    }
}

impl Eq for CellStore {}

impl fmt::Debug for CellStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CellStore")
            .field("cells", &self.len())
            .field("bytes", &self.bytes)
            .field("on_disk", &self.is_on_disk())
            .finish()
    }
}

/// A [`ValueLog`] in memory: the records as msgpack in one buffer. The simulator gives
/// it to its storage hosts, so the storage path runs in every simulated run.
#[derive(Default)]
pub struct MemValueLog {
    buf: Vec<u8>,
}

impl ValueLog for MemValueLog {
    fn append(&mut self, key: &[u8], cell: &Cell) -> Result<ValueLoc, ValueLogError> {
        let at = self.buf.len() as u64;
        rmp_serde::encode::write(&mut self.buf, &(serde_bytes::Bytes::new(key), cell))
            .map_err(|e| ValueLogError(format!("encode: {e}")))?;
        let len = u32::try_from(self.buf.len() as u64 - at)
            .map_err(|_| ValueLogError("record larger than 4 GiB".into()))?;
        Ok(ValueLoc { at, len })
    }

    fn read(&self, at: ValueLoc) -> Result<(Key, Cell), ValueLogError> {
        let start = usize::try_from(at.at).unwrap_or(usize::MAX);
        let bytes = start
            .checked_add(at.len as usize)
            .and_then(|end| self.buf.get(start..end))
            .ok_or_else(|| ValueLogError(format!("no record at offset {}", at.at)))?;
        let (key, cell): (Key, Cell) =
            rmp_serde::from_slice(bytes).map_err(|e| ValueLogError(format!("decode: {e}")))?;
        Ok((key, cell))
    }

    fn clear(&mut self) -> Result<(), ValueLogError> {
        self.buf.clear();
        Ok(())
    }

    fn bytes(&self) -> u64 {
        self.buf.len() as u64
    }

    fn rewrite(&mut self, live: &[ValueLoc]) -> Result<Vec<ValueLoc>, ValueLogError> {
        let mut next = MemValueLog::default();
        let mut moved = Vec::with_capacity(live.len());
        for &at in live {
            let (key, cell) = self.read(at)?;
            moved.push(next.append(&key, &cell)?);
        }
        *self = next;
        Ok(moved)
    }
}

/// Hands out a [`MemValueLog`] per replica.
#[derive(Clone, Copy, Debug, Default)]
pub struct MemValueStorage;

impl ValueStorage for MemValueStorage {
    fn open(&mut self, _colony: ColonyId) -> Result<Box<dyn ValueLog>, ValueLogError> {
        Ok(Box::new(MemValueLog::default()))
    }
}

#[cfg(test)]
mod tests {
    use super::super::cell::{Dna, RemoveWhy};
    use super::*;
    use proptest::prelude::*;

    fn put(key: &str, value: &str, seq: u64, expires_at: Option<Tick>) -> Op {
        Op::Put {
            key: key.into(),
            cell: Cell {
                dna: Dna::Value(value.into()),
                version: Version {
                    epoch: Default::default(),
                    seq,
                },
                expires_at,
            },
        }
    }

    fn remove(key: &str) -> Op {
        Op::Remove {
            key: key.into(),
            why: RemoveWhy::Deleted,
        }
    }

    /// A log that fails every call after `ok` appends.
    struct Failing {
        inner: MemValueLog,
        ok: usize,
    }

    impl ValueLog for Failing {
        fn append(&mut self, key: &[u8], cell: &Cell) -> Result<ValueLoc, ValueLogError> {
            if self.ok == 0 {
                return Err(ValueLogError("disk full".into()));
            }
            self.ok -= 1;
            self.inner.append(key, cell)
        }
        fn read(&self, at: ValueLoc) -> Result<(Key, Cell), ValueLogError> {
            self.inner.read(at)
        }
        fn clear(&mut self) -> Result<(), ValueLogError> {
            self.inner.clear()
        }
        fn bytes(&self) -> u64 {
            self.inner.bytes()
        }
        fn rewrite(&mut self, live: &[ValueLoc]) -> Result<Vec<ValueLoc>, ValueLogError> {
            self.inner.rewrite(live)
        }
    }

    #[test]
    fn a_disk_store_answers_like_a_memory_store() {
        let mut mem = CellStore::default();
        let mut disk = CellStore::on_disk(Box::new(MemValueLog::default()));
        assert!(disk.is_on_disk());
        for op in [
            put("a", "1", 1, None),
            put("b", "2", 2, Some(50)),
            put("a", "3", 3, Some(70)),
            remove("b"),
            put("c", "4", 5, Some(10)),
        ] {
            mem.apply(&op);
            disk.apply(&op);
        }
        assert_eq!(mem, disk);
        assert_eq!(disk.len(), 2);
        assert_eq!(disk.bytes(), mem.bytes());
        assert_eq!(disk.get(b"a").unwrap().dna, Dna::Value(b"3".into()));
        assert_eq!(
            disk.meta(b"a"),
            Some((
                Version {
                    epoch: Default::default(),
                    seq: 3
                },
                Some(70)
            ))
        );
        assert!(disk.live(b"c", 10).is_none());
        assert!(disk.live(b"c", 9).is_some());
        assert_eq!(disk.expired(100, 10), mem.expired(100, 10));
        assert_eq!(disk.clone().to_vec(), mem.to_vec());
        assert!(!disk.clone().is_on_disk(), "a clone is a copy in memory");
        disk.replace(vec![(b"z".into(), mem.get(b"a").unwrap().into_owned())]);
        assert_eq!(disk.len(), 1);
        assert_eq!(disk.expired(100, 10), vec![Key::from(b"z")]);
        assert!(disk.take_failure().is_none());
    }

    #[test]
    fn a_log_mostly_garbage_is_rewritten_and_still_reads() {
        let mut disk = CellStore::on_disk(Box::new(MemValueLog::default()));
        let value = "x".repeat(1000);
        for seq in 1..=5_000u64 {
            disk.apply(&put(&format!("k{}", seq % 10), &value, seq, None));
        }
        let d = disk.disk.as_ref().unwrap();
        assert!(
            d.log.bytes() <= 2 * d.live + REWRITE_SLACK,
            "log {} bytes for {} live",
            d.log.bytes(),
            d.live
        );
        for i in 0..10u64 {
            let cell = disk.get(format!("k{i}").as_bytes()).unwrap();
            assert_eq!(cell.version.seq, 4_990 + if i == 0 { 10 } else { i });
        }
        assert!(disk.take_failure().is_none());
    }

    #[test]
    fn a_failing_log_is_reported_not_panicked() {
        let mut disk = CellStore::on_disk(Box::new(Failing {
            inner: MemValueLog::default(),
            ok: 1,
        }));
        disk.apply(&put("a", "1", 1, None));
        assert!(disk.take_failure().is_none());
        disk.apply(&put("b", "2", 2, None));
        assert_eq!(disk.take_failure(), Some(ValueLogError("disk full".into())));
        assert!(disk.take_failure().is_none(), "taken once");
        assert_eq!(disk.len(), 1, "the failed write is not indexed");
        assert!(disk.get(b"a").is_some());
    }

    proptest! {
        #[test]
        fn any_ops_leave_disk_and_memory_stores_equal(
            ops in proptest::collection::vec((0u8..8, any::<bool>(), 0usize..300, proptest::option::of(0u64..100)), 0..300)
        ) {
            let mut mem = CellStore::default();
            let mut disk = CellStore::on_disk(Box::new(MemValueLog::default()));
            for (i, (k, del, len, exp)) in ops.into_iter().enumerate() {
                let key = format!("k{k}");
                let op = if del { remove(&key) } else { put(&key, &"v".repeat(len), i as u64 + 1, exp) };
                mem.apply(&op);
                disk.apply(&op);
            }
            prop_assert_eq!(&mem, &disk);
            prop_assert_eq!(mem.bytes(), disk.bytes());
            prop_assert_eq!(mem.expired(50, 100), disk.expired(50, 100));
            prop_assert!(disk.take_failure().is_none());
        }
    }
}
