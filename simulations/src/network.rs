//! The simulated network: latency, loss, partitions and slow hosts.
//!
//! Every (from, to) link is FIFO, like a TCP connection: a message is delivered at
//! `max(now + latency, last delivery on that link)`, so it never overtakes an earlier
//! message on the same link. Loss hits membership (SWIM) packets only, unless the
//! scenario asks to lose everything. A partition drops every message that crosses it,
//! checked when the message is sent and again when it would arrive (a cut connection
//! loses what was in flight).

use crate::queue::Time;
use crate::scenario::NetworkSpec;
use colony::core::types::HostId;
use hashbrown::HashMap;
use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, BTreeSet};

/// The least size at which the in-flight links are pruned.
const PRUNE_MIN: usize = 1024;

/// One side of a cut: these hosts cannot talk to the rest, or to the hosts of `only`
/// (or, one-way, cannot send to them).
#[derive(Clone, Debug)]
pub struct Partition {
    /// Zones whose hosts are on the cut side, including hosts that join later.
    pub zones: Vec<String>,
    pub hosts: BTreeSet<HostId>,
    pub oneway: bool,
    /// The other side, when it is not everyone else: a partial partition.
    pub only: BTreeSet<HostId>,
}

impl Partition {
    fn blocks(&self, from: HostId, to: HostId) -> bool {
        let cut = |h: HostId| self.hosts.contains(&h);
        let other = |h: HostId| {
            if self.only.is_empty() {
                !cut(h)
            } else {
                self.only.contains(&h) && !cut(h)
            }
        };
        (cut(from) && other(to)) || (!self.oneway && other(from) && cut(to))
    }
}

/// Message counts.
#[derive(Clone, Debug, Default)]
pub struct NetStats {
    pub sent: u64,
    pub lost: u64,
    pub cut: u64,
    /// Messages sent per kind ([`colony::core::messages::Msg::kind`]).
    pub by_kind: BTreeMap<&'static str, u64>,
}

/// The network between simulated hosts.
pub struct Network {
    spec: NetworkSpec,
    /// The last delivery time of each directed link `(from, to)` that could still hold
    /// a new message back: a link whose last delivery is no later than the earliest a
    /// message sent now can arrive (`now + latency_ms[0]`) constrains nothing, and is
    /// dropped whenever the map has doubled since it was last pruned. It holds the
    /// links used in the last few milliseconds (a few thousand at most), where a dense
    /// matrix of a thousand hosts' links was 8 MB and missed the cache on most sends.
    in_flight: HashMap<(HostId, HostId), Time>,
    /// The size at which `in_flight` is pruned next.
    prune_at: usize,
    /// Messages sent per kind, by the address of the kind's name (a `&'static str`
    /// from [`colony::core::messages::Msg::kind`]): no string compared per message.
    /// Folded into [`NetStats::by_kind`] by [`Network::stats`].
    kinds: Vec<(&'static str, u64)>,
    partitions: Vec<Partition>,
    slow: BTreeMap<HostId, u64>,
    pub stats: NetStats,
}

impl Network {
    pub fn new(spec: NetworkSpec) -> Self {
        Network {
            spec,
            in_flight: HashMap::new(),
            prune_at: PRUNE_MIN,
            kinds: Vec::new(),
            partitions: Vec::new(),
            slow: BTreeMap::new(),
            stats: NetStats::default(),
        }
    }

    /// When a message sent now arrives, or `None` if it is lost or cut.
    pub fn send(
        &mut self,
        now: Time,
        from: HostId,
        to: HostId,
        kind: &'static str,
        rng: &mut ChaCha8Rng,
    ) -> Option<Time> {
        self.stats.sent += 1;
        self.count_kind(kind);
        let membership_packet = kind == "swim";
        if self.blocked(from, to) {
            self.stats.cut += 1;
            return None;
        }
        if self.spec.loss > 0.0
            && (membership_packet || self.spec.loss_all)
            && rng.random_bool(self.spec.loss)
        {
            self.stats.lost += 1;
            return None;
        }
        let [lo, hi] = self.spec.latency_ms;
        let latency = rng.random_range(lo..=hi)
            + self.slow.get(&from).copied().unwrap_or(0)
            + self.slow.get(&to).copied().unwrap_or(0);
        let last = self.in_flight.entry((from, to)).or_insert(0);
        let at = (now + latency).max(*last);
        *last = at;
        if self.in_flight.len() >= self.prune_at {
            // Sends come in time order: nothing sent from now on arrives before this.
            let earliest = now + lo;
            self.in_flight.retain(|_, last| *last > earliest);
            self.prune_at = (2 * self.in_flight.len()).max(PRUNE_MIN);
        }
        Some(at)
    }

    fn count_kind(&mut self, kind: &'static str) {
        // The few kinds that make most messages come first after a while: a short walk
        // comparing addresses.
        let at = self.kinds.iter().position(|(k, _)| std::ptr::eq(*k, kind));
        match at {
            Some(0) => self.kinds[0].1 += 1,
            Some(i) => {
                self.kinds[i].1 += 1;
                if self.kinds[i].1 > self.kinds[i - 1].1 {
                    self.kinds.swap(i, i - 1);
                }
            }
            None => self.kinds.push((kind, 1)),
        }
    }

    /// The counts so far.
    pub fn stats(&self) -> NetStats {
        let mut stats = self.stats.clone();
        for &(kind, n) in &self.kinds {
            *stats.by_kind.entry(kind).or_insert(0) += n;
        }
        stats
    }

    /// Whether a partition separates `from` from `to` right now.
    pub fn blocked(&self, from: HostId, to: HostId) -> bool {
        self.partitions.iter().any(|p| p.blocks(from, to))
    }

    /// Whether `a` and `b` can talk both ways.
    pub fn connected(&self, a: HostId, b: HostId) -> bool {
        !self.blocked(a, b) && !self.blocked(b, a)
    }

    /// Whether the delivery of an in-flight message must be dropped.
    pub fn drop_on_arrival(&mut self, from: HostId, to: HostId) -> bool {
        let cut = self.blocked(from, to);
        if cut {
            self.stats.cut += 1;
        }
        cut
    }

    pub fn partition(&mut self, p: Partition) {
        self.partitions.push(p);
    }

    pub fn heal(&mut self) {
        self.partitions.clear();
    }

    pub fn partitioned(&self) -> bool {
        !self.partitions.is_empty()
    }

    /// A host joined: it is on the cut side of every partition of its zone.
    pub fn host_added(&mut self, host: HostId, zone: &str) {
        for p in &mut self.partitions {
            if p.zones.iter().any(|z| z == zone) {
                p.hosts.insert(host);
            }
        }
    }

    pub fn set_slow(&mut self, host: HostId, extra_ms: u64) {
        if extra_ms == 0 {
            self.slow.remove(&host);
        } else {
            self.slow.insert(host, extra_ms);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn links_are_fifo() {
        let mut net = Network::new(NetworkSpec {
            latency_ms: [1, 100],
            ..NetworkSpec::default()
        });
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut last = 0;
        for now in 0..1000 {
            let at = net.send(now, 1, 2, "dir", &mut rng).unwrap();
            assert!(at >= last && at > now);
            last = at;
        }
    }

    /// Busy links among a few hosts (a message on each every few milliseconds, so
    /// later ones are held back behind earlier ones) amid thousands of links used
    /// once (so the map is pruned again and again), latencies of 1..40 ms: every
    /// arrival time is that of a dense per-link matrix.
    #[test]
    fn pruned_links_give_the_arrivals_of_a_full_matrix() {
        let spec = NetworkSpec {
            latency_ms: [1, 40],
            ..NetworkSpec::default()
        };
        let mut net = Network::new(spec.clone());
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let mut reference_rng = ChaCha8Rng::seed_from_u64(11);
        let mut dense = vec![vec![0u64; 400]; 400];
        let mut pick = ChaCha8Rng::seed_from_u64(5);
        let (mut prunes, mut held_back) = (0, 0);
        for now in 0..20_000u64 {
            for k in 0..6 {
                let hosts = if k % 2 == 0 { 6 } else { 400 };
                let from = pick.random_range(0..hosts);
                let to = pick.random_range(0..hosts);
                let before = net.in_flight.len();
                let at = net.send(now, from, to, "dir", &mut rng).unwrap();
                prunes += usize::from(net.in_flight.len() < before);
                let [lo, hi] = spec.latency_ms;
                let drawn = now + reference_rng.random_range(lo..=hi);
                let want = drawn.max(dense[from as usize][to as usize]);
                held_back += usize::from(want > drawn);
                dense[from as usize][to as usize] = want;
                assert_eq!(at, want, "{from}->{to} at {now}");
            }
        }
        assert!(
            prunes > 10 && held_back > 1_000,
            "{prunes} prunes, {held_back} held back"
        );
    }

    #[test]
    fn partitions_cut_both_ways_or_one_way() {
        let mut net = Network::new(NetworkSpec::default());
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        net.partition(Partition {
            zones: vec![],
            hosts: [1].into_iter().collect(),
            oneway: true,
            only: BTreeSet::new(),
        });
        assert!(net.send(0, 1, 2, "dir", &mut rng).is_none());
        assert!(net.send(0, 2, 1, "dir", &mut rng).is_some());
        net.heal();
        net.partition(Partition {
            zones: vec!["z0".into()],
            hosts: [1].into_iter().collect(),
            oneway: false,
            only: BTreeSet::new(),
        });
        net.host_added(3, "z0");
        assert!(net.send(0, 2, 1, "dir", &mut rng).is_none());
        assert!(net.send(0, 3, 1, "dir", &mut rng).is_some());
        assert!(net.send(0, 3, 2, "dir", &mut rng).is_none());
    }

    #[test]
    fn a_partial_partition_cuts_only_the_links_it_names() {
        let mut net = Network::new(NetworkSpec::default());
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        net.partition(Partition {
            zones: vec![],
            hosts: [1].into_iter().collect(),
            oneway: false,
            only: [2].into_iter().collect(),
        });
        assert!(!net.connected(1, 2));
        assert!(net.send(0, 1, 2, "dir", &mut rng).is_none());
        assert!(net.send(0, 2, 1, "dir", &mut rng).is_none());
        for (a, b) in [(1, 3), (3, 1), (2, 3), (3, 2)] {
            assert!(net.send(0, a, b, "dir", &mut rng).is_some(), "{a} -> {b}");
        }
    }

    #[test]
    fn loss_hits_membership_packets_only_by_default() {
        let mut net = Network::new(NetworkSpec {
            loss: 1.0,
            ..NetworkSpec::default()
        });
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        assert!(net.send(0, 1, 2, "swim", &mut rng).is_none());
        assert!(net.send(0, 1, 2, "dir", &mut rng).is_some());
    }
}
