//! A replica's tail of recent mutations: what lets a secondary that missed a few
//! messages, a logging node that fell behind, or a healed split-brain primary catch up
//! or reconcile from history instead of a whole-colony snapshot.
//!
//! The tail is bounded twice, by entries and by bytes (keys and values plus a fixed
//! overhead per entry): a colony of large values keeps fewer entries. It never drops a
//! mutation newer than the `keep_after` mark the colony passes in (what is not yet
//! acknowledged, or not yet streamed to the logging nodes), so those can always be
//! re-sent from here. Like Redis's replication backlog, it is a window for short
//! hiccups: a tail of megabytes per colony would cost memory at thousands of colonies,
//! and every write would touch memory that went cold long ago when the oldest entry is
//! dropped (measured: a 4,096-entry tail cost the node about a sixth of its CPU time
//! under a write load; see `ColonyConfig::log_tail_bytes`).

use super::cell::Op;
use super::messages::Mutation;
use super::types::Seq;
use std::collections::VecDeque;

/// Bytes an entry is charged besides its key and value: the `Mutation` itself and the
/// allocations' headers.
pub const ENTRY_OVERHEAD: usize = 64;

/// The bytes an entry is charged.
pub fn entry_bytes(m: &Mutation) -> usize {
    let value = match &m.op {
        Op::Put { cell, .. } => cell.dna.size(),
        Op::Remove { .. } => 0,
    };
    m.op.key().len() + value + ENTRY_OVERHEAD
}

/// Recent mutations in seq order, with their charged bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MutationTail {
    entries: VecDeque<Mutation>,
    bytes: usize,
}

impl MutationTail {
    /// Appends `m` (its seq follows the last entry's), then [trims](Self::trim).
    pub fn push(&mut self, m: Mutation, max_entries: usize, max_bytes: usize, keep_after: Seq) {
        self.bytes += entry_bytes(&m);
        self.entries.push_back(m);
        self.trim(max_entries, max_bytes, keep_after);
    }

    /// Drops the oldest entries while the tail holds more than `max_entries` or
    /// `max_bytes`, except entries with a seq above `keep_after`.
    pub fn trim(&mut self, max_entries: usize, max_bytes: usize, keep_after: Seq) {
        while self.entries.len() > max_entries || self.bytes > max_bytes {
            match self.entries.front() {
                Some(first) if first.version.seq <= keep_after => {
                    self.bytes -= entry_bytes(first);
                    self.entries.pop_front();
                }
                _ => break,
            }
        }
    }

    /// Forgets every entry.
    pub fn clear(&mut self) {
        self.entries.clear();
        self.bytes = 0;
    }

    /// The oldest entry.
    pub fn front(&self) -> Option<&Mutation> {
        self.entries.front()
    }

    /// Whether the tail holds every mutation after `seq` up to its end (trivially so
    /// when it is empty and nothing came after).
    pub fn reaches_back_to(&self, seq: Seq) -> bool {
        self.entries
            .front()
            .is_some_and(|m| m.version.seq <= seq + 1)
    }

    /// Entries in seq order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &Mutation> {
        self.entries.iter()
    }

    /// The entries with `after < seq`, in seq order (a binary search, then the range).
    pub fn after(&self, after: Seq) -> impl Iterator<Item = &Mutation> {
        let start = self.entries.partition_point(|m| m.version.seq <= after);
        self.entries.range(start..)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The bytes the entries are charged.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::cell::{Cell, Dna, RemoveWhy};
    use crate::core::types::{Epoch, Version};

    fn put(seq: Seq, value_len: usize) -> Mutation {
        Mutation {
            version: Version {
                epoch: Epoch::genesis(1),
                seq,
            },
            op: Op::Put {
                key: b"k".into(),
                cell: Cell {
                    dna: Dna::Value(vec![7; value_len].into()),
                    version: Version {
                        epoch: Epoch::genesis(1),
                        seq,
                    },
                    expires_at: None,
                },
            },
        }
    }

    fn seqs(t: &MutationTail) -> Vec<Seq> {
        t.iter().map(|m| m.version.seq).collect()
    }

    #[test]
    fn bounded_by_entries() {
        let mut t = MutationTail::default();
        for s in 1..=10 {
            t.push(put(s, 1), 4, usize::MAX, Seq::MAX);
        }
        assert_eq!(seqs(&t), vec![7, 8, 9, 10]);
        assert_eq!(t.bytes(), 4 * (1 + 1 + ENTRY_OVERHEAD));
    }

    #[test]
    fn bounded_by_bytes_so_large_values_keep_fewer_entries() {
        let mut t = MutationTail::default();
        let one = 1 + 1000 + ENTRY_OVERHEAD;
        for s in 1..=10 {
            t.push(put(s, 1000), 100, 3 * one, Seq::MAX);
        }
        assert_eq!(seqs(&t), vec![8, 9, 10]);
        assert_eq!(t.bytes(), 3 * one);
    }

    #[test]
    fn never_drops_what_is_newer_than_the_mark() {
        let mut t = MutationTail::default();
        for s in 1..=10 {
            t.push(put(s, 1), 2, usize::MAX, 5);
        }
        // 1..=5 may go; 6..=10 are kept although the bound is 2 entries.
        assert_eq!(seqs(&t), vec![6, 7, 8, 9, 10]);
        // Once the mark moves, a trim or the next push goes back to the bound.
        t.trim(2, usize::MAX, 7);
        assert_eq!(seqs(&t), vec![8, 9, 10]);
        t.push(put(11, 1), 2, usize::MAX, 11);
        assert_eq!(seqs(&t), vec![10, 11]);
    }

    #[test]
    fn after_and_reaches_back_to() {
        let mut t = MutationTail::default();
        for s in 5..=9 {
            t.push(put(s, 1), 100, usize::MAX, Seq::MAX);
        }
        let got: Vec<Seq> = t.after(6).map(|m| m.version.seq).collect();
        assert_eq!(got, vec![7, 8, 9]);
        assert!(t.reaches_back_to(4));
        assert!(t.reaches_back_to(7));
        assert!(!t.reaches_back_to(3));
        let removed = Mutation {
            version: Version {
                epoch: Epoch::genesis(1),
                seq: 10,
            },
            op: Op::Remove {
                key: b"k".into(),
                why: RemoveWhy::Deleted,
            },
        };
        let before = t.bytes();
        t.push(removed, 100, usize::MAX, Seq::MAX);
        assert_eq!(t.bytes(), before + 1 + ENTRY_OVERHEAD);
        t.clear();
        assert!(t.is_empty());
        assert_eq!(t.bytes(), 0);
    }
}
