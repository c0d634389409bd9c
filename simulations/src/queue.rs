//! The simulator's agenda: a priority queue of items ordered by (virtual time, insertion
//! sequence), so that two items due at the same millisecond always run in the order they
//! were scheduled and a run is exactly reproducible.
//!
//! Almost every item is due within a few seconds (a message's latency, a tick, a probe),
//! so the agenda is a *timing wheel*: one FIFO bucket per millisecond of the next
//! [`WHEEL_MS`], with a bitmap of the buckets that hold anything, and a binary heap only
//! for the few items due later (checks, faults, long timers). Pushing is O(1) and
//! popping is a bit scan, where a heap of a hundred thousand pending items cost a
//! cache-missing sift on every pop (7% of the scale benchmark).
//!
//! The order is exactly the heap's: a bucket holds one millisecond, in push order
//! (push order is sequence order); a later item waits in the heap until its millisecond
//! enters the wheel, and is moved into its bucket then, before anything can be pushed
//! there directly, so it keeps its place ahead of them.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// Virtual time in milliseconds.
pub type Time = u64;

/// Milliseconds the wheel spans (a power of two).
pub const WHEEL_MS: u64 = 4096;
const WORDS: usize = (WHEEL_MS / 64) as usize;

/// An item beyond the wheel: the heap holds small keys; the items wait in a slab.
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

/// No slot: the end of a bucket's list.
const NIL: u32 = u32::MAX;

/// A pending item and the next one in its bucket.
struct Entry<T> {
    item: Option<T>,
    next: u32,
}

/// A deterministic time-ordered queue.
pub struct Agenda<T> {
    /// The wheel's first millisecond: nothing earlier is pending, and every pending item
    /// due before `cursor + WHEEL_MS` is in its bucket.
    cursor: Time,
    /// Each bucket a list threaded through the slab (first, last), so a pop touches
    /// the item's own entry only.
    buckets: Vec<(u32, u32)>,
    /// Bit `i` set when bucket `i` is not empty.
    occupied: [u64; WORDS],
    in_wheel: usize,
    later: BinaryHeap<Key>,
    entries: Vec<Entry<T>>,
    free: Vec<u32>,
    seq: u64,
}

impl<T> Default for Agenda<T> {
    fn default() -> Self {
        Agenda {
            cursor: 0,
            buckets: vec![(NIL, NIL); WHEEL_MS as usize],
            occupied: [0; WORDS],
            in_wheel: 0,
            later: BinaryHeap::new(),
            entries: Vec::new(),
            free: Vec::new(),
            seq: 0,
        }
    }
}

impl<T> Agenda<T> {
    /// Schedule `item` at `at`, which must not be before the last item popped (an
    /// earlier time is taken as that one).
    pub fn push(&mut self, at: Time, item: T) {
        debug_assert!(at >= self.cursor, "an item scheduled in the past");
        let at = at.max(self.cursor);
        self.seq += 1;
        let entry = Entry {
            item: Some(item),
            next: NIL,
        };
        let slot = match self.free.pop() {
            Some(i) => {
                self.entries[i as usize] = entry;
                i
            }
            None => {
                self.entries.push(entry);
                (self.entries.len() - 1) as u32
            }
        };
        if at < self.cursor + WHEEL_MS {
            self.put_in_bucket(at, slot);
        } else {
            self.later.push(Key {
                at,
                seq: self.seq,
                slot,
            });
        }
    }

    fn put_in_bucket(&mut self, at: Time, slot: u32) {
        let b = (at % WHEEL_MS) as usize;
        self.entries[slot as usize].next = NIL;
        let (first, last) = &mut self.buckets[b];
        if *last == NIL {
            *first = slot;
        } else {
            self.entries[*last as usize].next = slot;
        }
        *last = slot;
        self.occupied[b / 64] |= 1 << (b % 64);
        self.in_wheel += 1;
    }

    /// The first occupied bucket at or after the cursor, as a time.
    fn next_in_wheel(&self) -> Option<Time> {
        if self.in_wheel == 0 {
            return None;
        }
        let start = (self.cursor % WHEEL_MS) as usize;
        // From the cursor's bucket to the end of the wheel, then from its start.
        let (w0, bit0) = (start / 64, start % 64);
        let first = self.occupied[w0] & (!0u64 << bit0);
        let found = if first != 0 {
            Some(w0 * 64 + first.trailing_zeros() as usize)
        } else {
            (w0 + 1..WORDS)
                .chain(0..=w0)
                .find(|&w| self.occupied[w] != 0)
                .map(|w| w * 64 + self.occupied[w].trailing_zeros() as usize)
        };
        let b = found? as u64;
        let offset = (b + WHEEL_MS - start as u64) % WHEEL_MS;
        Some(self.cursor + offset)
    }

    /// Move the wheel's start to `to`, bringing in the later items it now spans.
    fn advance(&mut self, to: Time) {
        debug_assert!(to >= self.cursor);
        self.cursor = to;
        let horizon = to + WHEEL_MS;
        while self.later.peek().is_some_and(|k| k.at < horizon) {
            let k = self.later.pop().expect("peeked");
            self.put_in_bucket(k.at, k.slot);
        }
    }

    /// The earliest item, if it is due at or before `until`.
    pub fn pop_until(&mut self, until: Time) -> Option<(Time, T)> {
        let at = match self.next_in_wheel() {
            Some(t) => t,
            // The wheel is empty: jump to the first later item.
            None => self.later.peek()?.at,
        };
        if at > until {
            return None;
        }
        if at != self.cursor {
            self.advance(at);
        }
        let b = (at % WHEEL_MS) as usize;
        let slot = self.buckets[b].0;
        let entry = &mut self.entries[slot as usize];
        let (item, next) = (entry.item.take(), entry.next);
        self.buckets[b].0 = next;
        if next == NIL {
            self.buckets[b].1 = NIL;
            self.occupied[b / 64] &= !(1 << (b % 64));
        }
        self.in_wheel -= 1;
        self.free.push(slot);
        Some((at, item?))
    }

    pub fn len(&self) -> usize {
        self.in_wheel + self.later.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
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

    /// Against a plain sorted model: random pushes (near, far beyond the wheel, at the
    /// current time) and pops up to random horizons give the same (time, item) order.
    #[test]
    fn same_order_as_a_sorted_model_across_the_wheel_and_beyond() {
        use rand::{RngExt, SeedableRng};
        for seed in 0..20 {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            let mut a = Agenda::default();
            let mut model: Vec<(Time, u64, u64)> = Vec::new();
            let (mut now, mut seq) = (0u64, 0u64);
            for _ in 0..20_000 {
                if rng.random_bool(0.55) {
                    let delay = match rng.random_range(0..10) {
                        0 => 0,
                        1 => rng.random_range(WHEEL_MS - 2..WHEEL_MS + 2),
                        2 => rng.random_range(WHEEL_MS..10 * WHEEL_MS),
                        _ => rng.random_range(0..300),
                    };
                    seq += 1;
                    a.push(now + delay, seq);
                    model.push((now + delay, seq, seq));
                } else {
                    let until = now + rng.random_range(0..3 * WHEEL_MS);
                    let got = a.pop_until(until);
                    model.sort();
                    let want = (model.first().is_some_and(|m| m.0 <= until))
                        .then(|| model.remove(0))
                        .map(|(t, _, x)| (t, x));
                    assert_eq!(got, want, "seed {seed}");
                    if let Some((t, _)) = got {
                        now = t;
                    }
                }
                assert_eq!(a.len(), model.len());
            }
        }
    }
}
