//! The simulator's agenda: a priority queue of items ordered by (virtual time, insertion
//! sequence), so that two items due at the same millisecond always run in the order they
//! were scheduled and a run is exactly reproducible.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// Virtual time in milliseconds.
pub type Time = u64;

/// The heap holds small keys; the items wait in a slab, so sifting the heap moves 24
/// bytes per entry whatever the item's size.
#[derive(PartialEq, Eq)]
struct Key {
    at: Time,
    seq: u64,
    slot: u32,
}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Key {
    /// Reversed: the heap is a max-heap and the earliest item must come out first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// A deterministic time-ordered queue.
pub struct Agenda<T> {
    heap: BinaryHeap<Key>,
    items: Vec<Option<T>>,
    free: Vec<u32>,
    seq: u64,
}

impl<T> Default for Agenda<T> {
    fn default() -> Self {
        Agenda {
            heap: BinaryHeap::new(),
            items: Vec::new(),
            free: Vec::new(),
            seq: 0,
        }
    }
}

impl<T> Agenda<T> {
    pub fn push(&mut self, at: Time, item: T) {
        self.seq += 1;
        let slot = match self.free.pop() {
            Some(i) => {
                self.items[i as usize] = Some(item);
                i
            }
            None => {
                self.items.push(Some(item));
                (self.items.len() - 1) as u32
            }
        };
        self.heap.push(Key {
            at,
            seq: self.seq,
            slot,
        });
    }

    /// The earliest item, if it is due at or before `until`.
    pub fn pop_until(&mut self, until: Time) -> Option<(Time, T)> {
        if self.heap.peek()?.at > until {
            return None;
        }
        let k = self.heap.pop()?;
        self.free.push(k.slot);
        let item = self.items[k.slot as usize].take()?;
        Some((k.at, item))
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn earliest_first_then_insertion_order() {
        let mut a = Agenda::default();
        a.push(5, "c");
        a.push(1, "a");
        a.push(5, "d");
        a.push(1, "b");
        let mut out = Vec::new();
        while let Some((_, x)) = a.pop_until(10) {
            out.push(x);
        }
        assert_eq!(out, ["a", "b", "c", "d"]);
    }

    #[test]
    fn items_after_the_horizon_stay() {
        let mut a = Agenda::default();
        a.push(20, 1);
        assert!(a.pop_until(10).is_none());
        assert_eq!(a.len(), 1);
    }
}
