//! Cluster membership: which hosts are up, suspected, dead, restarted, and whether we
//! ourselves have been declared dead (the undead).
//!
//! A deterministic, sans-IO wrapper around the [`foca`] crate (SWIM with suspicion,
//! incarnations, periodic gossip and announces). Packets, timers and notices go out through
//! a [`MembershipOut`]; nothing here reads a clock, and all randomness comes from a
//! [`ChaCha8Rng`] seeded by the caller, so one seed gives one history.
//!
//! # Identities and incarnations
//!
//! A member is a [`HostIdentity`]: the host id plus an *identity incarnation* chosen by
//! the caller. (Foca keeps its own small refutation counter on top of it; that one is
//! internal.) When two identities share a host id, the higher incarnation wins.
//!
//! What the caller must do with incarnations:
//!
//! - **Start every process with an incarnation higher than any it used before.** The node
//!   passes a boot nonce (boot time in seconds, or better a counter persisted next to the
//!   data dir and bumped at every start); the simulator passes its restart counter. Then a
//!   process that comes back *before* the cluster noticed it was gone is seen as a new
//!   identity replacing a live one, and every member reports [`Notice::Restarted`].
//! - If a process comes back with an identity the cluster has already declared down (for
//!   example the same incarnation after a crash that was noticed), the members it talks to
//!   tell it so and it gets [`Notice::Defunct`]. The caller then calls
//!   [`Membership::renew`], which takes incarnation + 1 and rejoins.
//!
//! # Notices
//!
//! - [`Notice::Up`], [`Notice::Down`] come from foca's member notifications.
//! - [`Notice::Suspected`] is reported when this member's table shows the host as
//!   suspect, whether our own probe failed or we heard the suspicion through gossip. It is
//!   reported once per suspicion (a refuted and re-raised suspicion is reported again).
//! - [`Notice::Restarted`] is a foca rename while the old identity was still active.
//! - [`Notice::Defunct`]: our current identity was declared down. After a partition each
//!   side has declared the other dead; the side that sees a strict majority of the members
//!   it knows refuses the other side's verdict, so normally only the minority side gets
//!   `Defunct`. With an even split (or when both sides believe they are the majority)
//!   hosts on both sides may get it, so dropping replicas on `Defunct` should still be
//!   weighed against the caller's own quorum view. The identity must be renewed either way.
//!
//! # What this adds to plain foca
//!
//! - [`foca::Identity::renew`] returns `None`: foca never rejoins on its own; it reports
//!   `Defunct` and waits for [`Membership::renew`], so the caller can deal with its
//!   replicas before the new identity is announced.
//! - Suspicion timers whose suspicion was refuted are dropped before foca sees them: foca
//!   2.0.0 would still send the (refuted) suspect a "you are down" and make it defunct.
//! - Before a suspect is declared down it is pinged once more with its own suspicion
//!   piggybacked (memberlist's "buddy system"): a live suspect that never heard of the
//!   suspicion (because it, or we, were cut off while it spread) refutes in time.
//!   Detection therefore takes `suspect_to_down_ms + 2 × probe_rtt_ms` after the failed
//!   probe.
//! - "You are down" from a member we ourselves hold as down or suspect is ignored while we
//!   see a majority (see above).
//! - [`Membership::renew`] forgets the down verdicts of the old identity (those made
//!   while cut off are wrong and would be passed on).
//! - While we have no active member, the seeds are announced to again every probe period.
//! - Packets are checked whole before foca sees them, and must come from the host they
//!   name and be addressed to us.
//! - Foca's periodic gossip timer is held back while foca has nothing to spread, and
//!   scheduled again for the instant of its period it would have fired at once it has
//!   (`Membership::settle_gossip`; the owner passes the step's time with
//!   [`Membership::set_now`]): a quiet cluster does not wake every host each gossip
//!   period for nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::num::{NonZeroU8, NonZeroUsize};
use std::time::Duration;

use foca::{
    Codec, Foca, Header, Member, Message, NoCustomBroadcast, Notification, OwnedNotification,
    PeriodicParams, PostcardCodec, Runtime, State, Timer,
};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::types::{HostId, IdMap};

/// Smallest packet size accepted in a [`MembershipConfig`]; smaller values are raised to it.
pub const MIN_PACKET_SIZE: usize = 256;

/// Foca's `max_transmissions` before [`Membership::set_cluster_size_hint`] is called:
/// enough for clusters of up to a few hundred hosts.
const DEFAULT_MAX_TRANSMISSIONS: u8 = 10;

/// Members asked to ping a member that did not answer our direct probe.
const INDIRECT_PROBES: usize = 3;

/// How many "you are down" messages from one member we hold as down are ignored while we
/// see a majority (see `Membership::dismiss_verdict_of`).
const DISMISS_LIMIT: u32 = 3;

/// How many random members get a periodic announce, and how many down members.
const ANNOUNCE_MEMBERS: usize = 1;
const ANNOUNCE_DOWN_MEMBERS: usize = 2;

/// One incarnation of one host: the identity foca gossips about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct HostIdentity {
    pub host: HostId,
    /// Chosen by the caller at start (see the module docs), bumped by
    /// [`Membership::renew`]. Higher wins.
    pub incarnation: u32,
    /// The incarnation at which this host's state began (its start, or a rejoin with
    /// its replicas dropped). A renewal that keeps the state ([`Membership::refute`])
    /// keeps it, so the others see the same host going on rather than a restart.
    pub since: u32,
}

impl HostIdentity {
    pub const fn new(host: HostId, incarnation: u32) -> Self {
        HostIdentity {
            host,
            incarnation,
            since: incarnation,
        }
    }

    /// The identity this host takes after being declared down: incarnation + 1.
    pub const fn renewed(self) -> Self {
        HostIdentity::new(self.host, self.incarnation.saturating_add(1))
    }

    /// Incarnation + 1 for the same state (a refuted death verdict).
    pub const fn refreshed(self) -> Self {
        HostIdentity {
            incarnation: self.incarnation.saturating_add(1),
            ..self
        }
    }
}

impl fmt::Display for HostIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.host, self.incarnation)
    }
}

impl foca::Identity for HostIdentity {
    type Addr = HostId;

    /// No automatic rejoin: foca reports `Defunct` and the caller calls
    /// [`Membership::renew`] (which uses [`HostIdentity::renewed`]).
    fn renew(&self) -> Option<Self> {
        None
    }

    fn addr(&self) -> HostId {
        self.host
    }

    /// Small host ids index an array in foca's member table (see vendor/foca).
    fn addr_slot(addr: &HostId) -> Option<usize> {
        (*addr < 1 << 16).then_some(*addr as usize)
    }

    fn win_addr_conflict(&self, adversary: &Self) -> bool {
        self.incarnation > adversary.incarnation
    }
}

/// Timings of the failure detector and of dissemination. All durations in milliseconds.
///
/// Out-of-range values are clamped rather than refused: `probe_rtt_ms >= 1`,
/// `probe_period_ms > probe_rtt_ms`, `suspect_to_down_ms >= 1`,
/// `max_packet_size >= MIN_PACKET_SIZE`. A zero `gossip_period_ms` or `gossip_fanout`
/// disables periodic gossip; a zero `announce_period_ms` disables periodic announces.
/// Every member of a cluster should use the same `max_packet_size` (larger packets are
/// refused).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MembershipConfig {
    /// How often we probe one member (round robin over a shuffled list).
    pub probe_period_ms: u64,
    /// How long we wait for a direct ack before asking others to ping it indirectly.
    pub probe_rtt_ms: u64,
    /// How long a suspect has to refute the suspicion before it is asked directly, and
    /// declared down `2 × probe_rtt_ms` later if it still does not refute.
    pub suspect_to_down_ms: u64,
    /// Period of gossip of pending updates; 0 disables periodic gossip (updates still
    /// ride on probes).
    pub gossip_period_ms: u64,
    /// Members gossiped to per gossip period.
    pub gossip_fanout: usize,
    /// Period of announces (member discovery) to one random active member, and to two
    /// members we consider down so that partitions heal. 0 disables both. (A member with
    /// no active member retries its seeds every `probe_period_ms` regardless.)
    pub announce_period_ms: u64,
    /// Largest packet produced and accepted.
    pub max_packet_size: usize,
}

impl Default for MembershipConfig {
    fn default() -> Self {
        MembershipConfig {
            probe_period_ms: 1000,
            probe_rtt_ms: 500,
            suspect_to_down_ms: 3000,
            gossip_period_ms: 200,
            gossip_fanout: 3,
            announce_period_ms: 10_000,
            max_packet_size: 1400,
        }
    }
}

impl MembershipConfig {
    /// Timings for a cluster of about `n` hosts. The probe period stays 1 s (each host
    /// probes one member per period whatever the size); the suspicion timeout grows with
    /// log10(n) so a refutation has time to spread; gossip gets rarer and narrower and
    /// announces rarer as the cluster grows.
    ///
    /// | n         | suspect→down | gossip        | announce |
    /// |-----------|--------------|---------------|----------|
    /// | < 64      | 3 s          | 200 ms × 3    | 10 s     |
    /// | 64..512   | 3 s × ⌊log10 n⌋ | 300 ms × 3 | 15 s     |
    /// | ≥ 512     | 3 s × ⌊log10 n⌋ | 1 s × 2    | 30 s × (⌈log2 n⌉ − 4) |
    ///
    /// (At 512 hosts and more, updates still reach every member in a few seconds
    /// riding on probes and acks; a gossip timer every 500 ms on each of a thousand
    /// hosts was a quarter of their timer work.)
    ///
    /// A periodic announce is answered with a feed of about 230 members, each decoded
    /// and checked against the member table: at a thousand hosts announcing every 30 s
    /// those feeds were 13 million member updates in 25 minutes, twice all the other
    /// SWIM traffic together, to repair views that gossip already keeps whole. From 512
    /// hosts the period grows like memberlist's full-state push-pull (Consul, Serf:
    /// 30 s × (⌈log2 n − log2 32⌉ + 1)): 150 s at 512 hosts, 180 s at 1,000.
    ///
    /// From 64 hosts packets may hold [`MEMBER_BYTES_MAX`] bytes per member plus a
    /// header (4,056 bytes at 200 hosts, 19,256 at 1,000; never below the default
    /// 1,400), so that the feed answering a joiner's announce lists every member:
    /// packets travel over the hosts' TCP links, not UDP datagrams, and with 1,400
    /// bytes a joiner learnt about 230 members from its join and the rest one probe or
    /// periodic announce at a time (a thousand-host simulation still had hosts unaware
    /// of some members minutes after formation, refusing writes for the colonies those
    /// led).
    pub fn for_cluster_size(n: u32) -> Self {
        let base = MembershipConfig::default();
        let digits = u64::from(n.max(1).ilog10()).max(1);
        let suspect_to_down_ms = base.suspect_to_down_ms * digits;
        let max_packet_size = full_feed_packet_size(n).max(base.max_packet_size);
        if n < 64 {
            base
        } else if n < 512 {
            MembershipConfig {
                suspect_to_down_ms,
                gossip_period_ms: 300,
                gossip_fanout: 3,
                announce_period_ms: 15_000,
                max_packet_size,
                ..base
            }
        } else {
            MembershipConfig {
                suspect_to_down_ms,
                gossip_period_ms: 1000,
                gossip_fanout: 2,
                announce_period_ms: 30_000 * (u64::from(ceil_log2(n)) - 4),
                max_packet_size,
                ..base
            }
        }
    }

    fn packet_size(&self) -> usize {
        self.max_packet_size.max(MIN_PACKET_SIZE)
    }

    fn to_foca(&self, max_transmissions: NonZeroU8) -> foca::Config {
        let probe_rtt_ms = self.probe_rtt_ms.max(1);
        let probe_period_ms = self.probe_period_ms.max(probe_rtt_ms.saturating_add(1));
        let periodic = |period_ms: u64, members: usize| {
            let members = NonZeroUsize::new(members)?;
            (period_ms > 0).then(|| PeriodicParams {
                frequency: Duration::from_millis(period_ms),
                num_members: members,
            })
        };
        foca::Config {
            probe_period: Duration::from_millis(probe_period_ms),
            probe_rtt: Duration::from_millis(probe_rtt_ms),
            num_indirect_probes: NonZeroUsize::MIN.saturating_add(INDIRECT_PROBES - 1),
            max_transmissions,
            suspect_to_down_after: Duration::from_millis(self.suspect_to_down_ms.max(1)),
            // Never forget a down identity: a process that comes back with it, however
            // late, is always told it is defunct. Memory stays bounded by the number of
            // hosts because foca keeps one entry per host id.
            remove_down_after: None,
            max_packet_size: NonZeroUsize::MIN.saturating_add(self.packet_size() - 1),
            notify_down_members: true,
            periodic_announce: periodic(self.announce_period_ms, ANNOUNCE_MEMBERS),
            periodic_announce_to_down_members: periodic(
                self.announce_period_ms,
                ANNOUNCE_DOWN_MEMBERS,
            ),
            periodic_gossip: periodic(self.gossip_period_ms, self.gossip_fanout),
        }
    }
}

/// The most bytes one member takes in a packet, whatever its values: its identity's
/// three `u32` (at most 5 bytes each as postcard varints; a real node's incarnations
/// are timestamps and take all 5), foca's `u16` incarnation (at most 3) and its state
/// (1).
pub const MEMBER_BYTES_MAX: usize = 3 * 5 + 3 + 1;

/// Room for a packet's header: two identities, foca's incarnation, the message and the
/// count of updates (under 60 bytes).
pub const HEADER_BYTES_MAX: usize = 256;

/// A packet that holds a feed of every member of a cluster of `n`, at most 256 KiB
/// (13,000 members).
fn full_feed_packet_size(n: u32) -> usize {
    (n as usize)
        .saturating_mul(MEMBER_BYTES_MAX)
        .saturating_add(HEADER_BYTES_MAX)
        .min(256 * 1024)
}

/// ⌈log2 n⌉ (0 for n ≤ 1).
fn ceil_log2(n: u32) -> u32 {
    if n <= 1 {
        0
    } else {
        u32::BITS - (n - 1).leading_zeros()
    }
}

/// Foca's `max_transmissions` for a cluster of `n` hosts: 6 + 2·⌊log10(n + 1)⌋
/// (6 below 9 hosts, 10 for hundreds, 12 for thousands). Integer-only, so identical on
/// every platform.
fn max_transmissions_for(n: u32) -> NonZeroU8 {
    let extra = 2 * n.saturating_add(1).ilog10(); // at most 18
    NonZeroU8::MIN.saturating_add(5 + u8::try_from(extra).unwrap_or(u8::MAX - 6))
}

/// A timer the membership asked for. Opaque: schedule it after the given delay and hand
/// it back to [`Membership::handle_timer`]. Stale timers are harmless.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MembershipTimer(TimerKind);

#[derive(Clone, Debug, PartialEq, Eq)]
enum TimerKind {
    Foca(Timer<HostIdentity>),
    /// Ours: a suspicion timer we held back while the suspect was asked to confirm.
    Confirm(Timer<HostIdentity>),
    /// Ours: while not connected, announce to the seeds again.
    Rejoin,
}

/// What the membership tells its owner.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Notice {
    /// A member became active (first time, or again after it was down, possibly under a
    /// new incarnation).
    Up(HostId),
    /// The member is suspected (our probe failed, or we heard of another member's
    /// suspicion). It is still counted as alive until `Down`.
    Suspected(HostId),
    /// The member was declared dead, or left.
    Down(HostId),
    /// A newer incarnation replaced an identity we thought alive: the old process is gone
    /// with its state. Treat as `Down` then `Up`.
    Restarted(HostId),
    /// We were declared down. Deal with local replicas (see the module docs), then call
    /// [`Membership::renew`].
    Defunct,
}

/// Output buffer of every membership call. Drain it after each call: send the packets,
/// schedule the timers (delays in ms from now), act on the notices.
#[derive(Debug, Default)]
pub struct MembershipOut {
    pub sends: Vec<(HostId, Vec<u8>)>,
    pub timers: Vec<(u64, MembershipTimer)>,
    pub notices: Vec<Notice>,
}

impl MembershipOut {
    pub fn is_empty(&self) -> bool {
        self.sends.is_empty() && self.timers.is_empty() && self.notices.is_empty()
    }
}

/// A packet that was refused. The membership state is unchanged by a refused packet
/// unless the variant says otherwise.
#[derive(Debug, thiserror::Error)]
pub enum MembershipError {
    #[error("membership packet from host {from} is {len} bytes, over the {max}-byte limit")]
    TooBig {
        from: HostId,
        len: usize,
        max: usize,
    },
    #[error("malformed membership packet from host {from}: {source}")]
    Malformed { from: HostId, source: foca::Error },
    #[error("membership packet from host {from} claims to come from host {claimed}")]
    WrongSender { from: HostId, claimed: HostId },
    #[error("membership packet from host {from} is addressed to host {to}")]
    Misaddressed { from: HostId, to: HostId },
    /// Decoded but refused by foca (e.g. it claims to be from ourselves). Foca may have
    /// applied part of it.
    #[error("membership packet from host {from} refused: {source}")]
    Refused { from: HostId, source: foca::Error },
}

/// What we know of one other host, kept in step with foca's notifications.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Peer {
    id: HostIdentity,
    active: bool,
    /// Foca's refutation counter of the suspicion we last reported, if not refuted since.
    suspected_at: Option<foca::Incarnation>,
}

type FocaInstance = Foca<HostIdentity, PostcardCodec, ChaCha8Rng, NoCustomBroadcast>;

/// The foca runtime: collects packets, timers and raw notifications.
struct Sink<'a> {
    me: HostId,
    out: &'a mut MembershipOut,
    /// Periodic gossip timers, held for [`Membership::settle_gossip`].
    gossip: &'a mut Vec<(u64, Timer<HostIdentity>)>,
    raw: &'a mut Vec<OwnedNotification<HostIdentity>>,
    /// Members foca suspected itself (a probe of ours failed): it asked for the timer
    /// that declares the suspect down.
    suspected: &'a mut Vec<HostId>,
}

impl Runtime<HostIdentity> for Sink<'_> {
    fn notify(&mut self, notification: Notification<'_, HostIdentity>) {
        self.raw.push(notification.to_owned());
    }

    fn send_to(&mut self, to: HostIdentity, data: &[u8]) {
        // Foca may pick one of our own former identities (a down member) as a target.
        if to.host != self.me {
            self.out.sends.push((to.host, data.to_vec()));
        }
    }

    fn submit_after(&mut self, event: Timer<HostIdentity>, after: Duration) {
        if let Timer::ChangeSuspectToDown { member_id, .. } = &event {
            self.suspected.push(member_id.host);
        }
        if let Timer::PeriodicGossip(_) = &event {
            self.gossip.push((duration_ms(after), event));
            return;
        }
        self.out
            .timers
            .push((duration_ms(after), MembershipTimer(TimerKind::Foca(event))));
    }
}

/// Milliseconds, rounded up.
fn duration_ms(d: Duration) -> u64 {
    let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    if d.subsec_nanos().is_multiple_of(1_000_000) {
        ms
    } else {
        ms.saturating_add(1)
    }
}

/// Checks a whole packet before foca sees it, so that garbage never touches the state,
/// and returns its header. Adds to `touched` the hosts whose suspicion it may change
/// (foca has no notification for that): those its piggybacked updates suspect, and
/// the sender or an update about a host `watched` says we reported as suspect. Same
/// framing as foca 2's `handle_data`: header, then optionally a big-endian u16 count
/// and that many members, and nothing after (we use no custom broadcasts).
fn inspect_packet(
    data: &[u8],
    watched: impl Fn(HostId) -> bool,
    touched: &mut Vec<HostId>,
) -> Result<Header<HostIdentity>, foca::Error> {
    let mut codec = PostcardCodec;
    let mut rest = data;
    let header: Header<HostIdentity> = codec
        .decode_header(&mut rest)
        .map_err(|e| foca::Error::Decode(Box::new(e)))?;
    if header.message == Message::Broadcast {
        return Err(foca::Error::MalformedPacket);
    }
    // The sender's own incarnation in the header may refute a suspicion of it.
    if watched(header.src.host) {
        touched.push(header.src.host);
    }
    match rest {
        [] => {}
        [hi, lo, tail @ ..] => {
            let count = u16::from_be_bytes([*hi, *lo]);
            rest = tail;
            for _ in 0..count {
                let member = Codec::<HostIdentity>::decode_member(&mut codec, &mut rest)
                    .map_err(|e| foca::Error::Decode(Box::new(e)))?;
                let host = member.id().host;
                if member.state() == State::Suspect || watched(host) {
                    touched.push(host);
                }
            }
            if !rest.is_empty() {
                return Err(foca::Error::MalformedPacket);
            }
        }
        [_] => return Err(foca::Error::MalformedPacket),
    }
    Ok(header)
}

/// One host's view of the cluster: a foca instance plus the bookkeeping that turns its
/// notifications into [`Notice`]s.
pub struct Membership {
    foca: FocaInstance,
    cfg: MembershipConfig,
    peers: IdMap<Peer>,
    /// The active peers, ascending: kept in step with `Peer::active`, so that the
    /// live members are a slice, not a walk over every peer.
    live: Vec<HostId>,
    seeds: BTreeSet<HostId>,
    /// Foca is connected (has active members and runs its probe cycle).
    connected: bool,
    defunct: bool,
    left: bool,
    rejoin_armed: bool,
    /// Identities we hold as down whose "you are down" we ignored, and how many times.
    dismissed: BTreeMap<HostIdentity, u32>,
    /// Errors foca reported on timers or our own calls (sentinels that should not
    /// happen; foca recovers by itself).
    internal_errors: u64,
    /// Scratch buffer for foca's notifications during one call.
    raw: Vec<OwnedNotification<HostIdentity>>,
    /// The peers whose suspicion we reported (`Peer::suspected_at` set).
    suspects: BTreeSet<HostId>,
    /// Hosts whose suspicion may have changed in the current call (see
    /// [`Self::report_suspicions`]).
    touched: Vec<HostId>,
    /// The time of the current step (ms), as [`Self::set_now`] was last told.
    now: u64,
    /// Foca's periodic gossip timers asked for in the current call: `(after, timer)`.
    gossip_asked: Vec<(u64, Timer<HostIdentity>)>,
    /// Gossip timers held back while foca has nothing to gossip: `(due, period,
    /// timer)`. See [`Self::settle_gossip`].
    parked_gossip: Vec<(u64, u64, Timer<HostIdentity>)>,
}

impl fmt::Debug for Membership {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Membership")
            .field("identity", self.foca.identity())
            .field("connected", &self.connected)
            .field("defunct", &self.defunct)
            .field("left", &self.left)
            .field("live", &self.live_members())
            .finish_non_exhaustive()
    }
}

impl Membership {
    /// A member with identity `me`. `seed` drives every random choice (probe order,
    /// gossip targets); give each host its own (e.g. mixed from a cluster seed and the
    /// host id).
    pub fn new(me: HostIdentity, cfg: &MembershipConfig, seed: u64) -> Self {
        let config = cfg.to_foca(NonZeroU8::MIN.saturating_add(DEFAULT_MAX_TRANSMISSIONS - 1));
        Membership {
            foca: Foca::new(me, config, ChaCha8Rng::seed_from_u64(seed), PostcardCodec),
            cfg: cfg.clone(),
            peers: IdMap::default(),
            live: Vec::new(),
            seeds: BTreeSet::new(),
            connected: false,
            defunct: false,
            left: false,
            rejoin_armed: false,
            dismissed: BTreeMap::new(),
            internal_errors: 0,
            raw: Vec::new(),
            suspects: BTreeSet::new(),
            touched: Vec::new(),
            now: 0,
            gossip_asked: Vec::new(),
            parked_gossip: Vec::new(),
        }
    }

    /// The time of the step about to run (ms, the owner's clock). Only the phase of
    /// held-back gossip timers depends on it ([`Self::settle_gossip`]).
    pub fn set_now(&mut self, now: u64) {
        self.now = now;
    }

    /// How many gossip timers are held back (for tests and stats).
    pub fn parked_gossip(&self) -> usize {
        self.parked_gossip.len()
    }

    pub fn identity(&self) -> HostIdentity {
        *self.foca.identity()
    }

    pub fn config(&self) -> &MembershipConfig {
        &self.cfg
    }

    /// Announce ourselves to a known member. Call once per seed at start; the seed is
    /// remembered and announced to again while we have no active member (seed not up
    /// yet, or we were cut off). Our own host id is ignored.
    pub fn join(&mut self, seed: HostId, out: &mut MembershipOut) {
        if seed == self.identity().host {
            return;
        }
        self.seeds.insert(seed);
        self.announce(seed, out);
        self.arm_rejoin(out);
    }

    /// Foca starts its probe, gossip and announce timers by itself once it has a member;
    /// this only arms our retry of the seeds. Call once after `new()`.
    pub fn start(&mut self, out: &mut MembershipOut) {
        self.arm_rejoin(out);
    }

    /// A packet from host `from` (the transport-level sender; it must match the sender
    /// named in the packet). Garbage gives an error, never a panic.
    pub fn handle_data(
        &mut self,
        from: HostId,
        data: &[u8],
        out: &mut MembershipOut,
    ) -> Result<(), MembershipError> {
        let max = self.cfg.packet_size();
        if data.len() > max {
            return Err(MembershipError::TooBig {
                from,
                len: data.len(),
                max,
            });
        }
        let header = {
            let suspects = &self.suspects;
            let watched = |h: HostId| suspects.contains(&h);
            inspect_packet(data, watched, &mut self.touched)
                .map_err(|source| MembershipError::Malformed { from, source })?
        };
        if header.src.host != from {
            return Err(MembershipError::WrongSender {
                from,
                claimed: header.src.host,
            });
        }
        let me = self.identity().host;
        if header.dst.host != me {
            return Err(MembershipError::Misaddressed {
                from,
                to: header.dst.host,
            });
        }
        if header.message == Message::TurnUndead && self.dismiss_verdict_of(header.src) {
            return Ok(());
        }
        let result = self.with_foca(out, |foca, sink| foca.handle_data(data, sink));
        self.report_suspicions(out);
        result.map_err(|source| match source {
            foca::Error::DataTooBig => MembershipError::TooBig {
                from,
                len: data.len(),
                max,
            },
            foca::Error::Decode(_) | foca::Error::MalformedPacket => {
                MembershipError::Malformed { from, source }
            }
            _ => MembershipError::Refused { from, source },
        })
    }

    /// A timer we asked for has expired.
    pub fn handle_timer(&mut self, timer: MembershipTimer, out: &mut MembershipOut) {
        match timer.0 {
            TimerKind::Foca(timer @ Timer::ChangeSuspectToDown { .. }) => {
                self.suspect_to_down(timer, false, out);
            }
            TimerKind::Confirm(timer) => self.suspect_to_down(timer, true, out),
            TimerKind::Foca(timer) => {
                // The end of a probe cycle is where a failed probe turns into suspicion
                // (foca then asks for the timer that declares the suspect down). Members
                // that others suspect come in packets (see `handle_data`).
                let result = self.with_foca(out, |foca, sink| foca.handle_timer(timer, sink));
                if result.is_err() {
                    self.internal_errors += 1;
                }
                self.report_suspicions(out);
            }
            TimerKind::Rejoin => self.rejoin(out),
        }
    }

    /// Graceful leave: tell the cluster we are going. Others see `Down` for us; we get no
    /// `Defunct`. Afterwards this instance stays silent (or call [`Self::renew`]).
    pub fn leave(&mut self, out: &mut MembershipOut) {
        self.left = true;
        let result = self.with_foca(out, |foca, sink| foca.leave_cluster(sink));
        if result.is_err() {
            self.internal_errors += 1;
        }
    }

    /// After `Defunct` (or a leave): take incarnation + 1 and rejoin, announcing to
    /// `seeds` (remembered as with [`Self::join`]). Returns the new identity.
    pub fn renew(&mut self, seeds: &[HostId], out: &mut MembershipOut) -> HostIdentity {
        let new_id = self.identity().renewed();
        self.renew_as(new_id, seeds, out)
    }

    /// Like [`Self::renew`], for a host that keeps its state: it was declared down but
    /// could show it is on the side with quorum. The others see the new identity as the
    /// same host going on ([`HostIdentity::since`] unchanged), not as a restart.
    pub fn refute(&mut self, seeds: &[HostId], out: &mut MembershipOut) -> HostIdentity {
        let new_id = self.identity().refreshed();
        self.renew_as(new_id, seeds, out)
    }

    fn renew_as(
        &mut self,
        new_id: HostIdentity,
        seeds: &[HostId],
        out: &mut MembershipOut,
    ) -> HostIdentity {
        self.defunct = false;
        self.left = false;
        self.connected = false;
        self.dismissed.clear();
        // Forget every "down" verdict of the old identity. Those made while we were cut
        // off are wrong, and kept they would tell each host we talk to that it is dead.
        // Hosts that are really dead stay known as such by the rest of the cluster.
        let down: Vec<HostIdentity> = self
            .foca
            .iter_membership_state()
            .filter(|m| m.state() == State::Down)
            .map(|m| *m.id())
            .collect();
        for id in down {
            let result = self.with_foca(out, |foca, sink| {
                foca.handle_timer(Timer::RemoveDown(id), sink)
            });
            if result.is_err() {
                self.internal_errors += 1;
            }
        }
        let result = self.with_foca(out, |foca, sink| foca.change_identity(new_id, sink));
        if result.is_err() {
            self.internal_errors += 1;
        }
        for &seed in seeds {
            self.join(seed, out);
        }
        self.arm_rejoin(out);
        self.identity()
    }

    /// An active member (alive or suspect), not us.
    pub fn is_alive(&self, host: HostId) -> bool {
        host != self.identity().host && self.peers.get(host).is_some_and(|p| p.active)
    }

    /// Active members, sorted, without us.
    pub fn live_members(&self) -> Vec<HostId> {
        self.live.clone()
    }

    /// Active members, sorted, without us (see [`Self::live_members`]), borrowed.
    pub fn live(&self) -> &[HostId] {
        &self.live
    }

    /// The incarnation of the identity we know for `host` (active or down); ours for our
    /// own host id.
    pub fn incarnation_of(&self, host: HostId) -> Option<u32> {
        let me = self.identity();
        if host == me.host {
            return Some(me.incarnation);
        }
        if let Some(peer) = self.peers.get(host) {
            return Some(peer.id.incarnation);
        }
        self.foca.member(&host).map(|m| m.id().incarnation)
    }

    /// We were declared down and have not renewed yet.
    pub fn is_defunct(&self) -> bool {
        self.defunct
    }

    /// Count of internal foca errors swallowed on timers and local calls (expected 0;
    /// late timers may cause some, foca recovers).
    pub fn internal_errors(&self) -> u64 {
        self.internal_errors
    }

    /// Re-tunes how many times each update is retransmitted for a cluster of about `n`
    /// hosts (6 + 2·⌊log10(n + 1)⌋). Probe timings cannot change on a running instance;
    /// build a new one from [`MembershipConfig::for_cluster_size`] for that.
    pub fn set_cluster_size_hint(&mut self, n: u32) {
        let config = self.cfg.to_foca(max_transmissions_for(n));
        if self.foca.set_config(config).is_err() {
            self.internal_errors += 1;
        }
    }

    /// Foca's "suspicion timed out" timer, with two guards in front of it:
    ///
    /// - foca 2.0.0 sends `TurnUndead` when the timer fires even if the suspect refuted
    ///   the suspicion meanwhile (it only skips the state change), which would make a
    ///   perfectly healthy member defunct. A timer whose suspicion is no longer current
    ///   is dropped here.
    /// - Before a suspect is declared down, we ask it directly: a ping carrying its own
    ///   suspicion (like memberlist's "buddy system"). A live suspect refutes and its ack
    ///   carries the refutation; only if it stays suspect for another `2 × probe_rtt` does
    ///   foca declare it down. This matters when the suspicion spread while the suspect
    ///   was cut off (or while *we* were), so it never heard of it and never refuted.
    fn suspect_to_down(
        &mut self,
        timer: Timer<HostIdentity>,
        confirmed: bool,
        out: &mut MembershipOut,
    ) {
        let Timer::ChangeSuspectToDown {
            member_id,
            incarnation,
            ..
        } = timer
        else {
            return;
        };
        let current = self
            .foca
            .member(&member_id.host)
            .map(|m| (*m.id(), m.incarnation(), m.state()));
        if let Some((id, current_incarnation, state)) = current {
            if state != State::Down {
                if id != member_id || current_incarnation != incarnation || state != State::Suspect
                {
                    return; // refuted, or replaced by a newer identity
                }
                if !confirmed {
                    if let Some(ping) = self.confirmation_ping(member_id, incarnation) {
                        out.sends.push((member_id.host, ping));
                    }
                    let delay = self.cfg.probe_rtt_ms.max(1).saturating_mul(2);
                    out.timers
                        .push((delay, MembershipTimer(TimerKind::Confirm(timer))));
                    return;
                }
            }
        }
        let result = self.with_foca(out, |foca, sink| foca.handle_timer(timer, sink));
        if result.is_err() {
            self.internal_errors += 1;
        }
    }

    /// A foca `Ping` to `suspect` piggybacking its own suspicion, so that it refutes (and
    /// its `Ack` brings the refutation back). We do not know foca's refutation counter of
    /// our own identity, so we claim 0: never more than the truth, so harmless.
    fn confirmation_ping(
        &self,
        suspect: HostIdentity,
        incarnation: foca::Incarnation,
    ) -> Option<Vec<u8>> {
        let mut codec = PostcardCodec;
        let header = Header {
            src: self.identity(),
            src_incarnation: 0,
            dst: suspect,
            message: Message::Ping(0),
        };
        let mut buf = Vec::with_capacity(64);
        codec.encode_header(&header, &mut buf).ok()?;
        buf.extend_from_slice(&1u16.to_be_bytes());
        let suspicion = Member::new(suspect, incarnation, State::Suspect);
        codec.encode_member(&suspicion, &mut buf).ok()?;
        Some(buf)
    }

    /// Whether to ignore "you are down" from `sender`, a member *we* hold as down or
    /// suspect, or whose identity we never saw alive (after a partition each side has declared the other dead, and foca would
    /// let whoever is contacted first be killed). We ignore it while the members we see
    /// as active, plus us, are a strict majority of the members we know, so the minority
    /// side renews and the majority keeps its identities; without a clear majority we
    /// yield as foca would. Should both sides believe they are the majority (members
    /// joined on one side during the partition), we yield after `DISMISS_LIMIT` refusals
    /// from the same identity.
    fn dismiss_verdict_of(&mut self, sender: HostIdentity) -> bool {
        let me = self.identity().host;
        let mut sender_suspect = false;
        let mut down = 0usize;
        for m in self.foca.iter_membership_state() {
            if m.id().host == me {
                continue;
            }
            if m.state() == State::Down {
                down += 1;
            }
            // Down or suspect to us, or an identity we never saw alive (a host we hold
            // as down that renewed while still cut off: its verdicts are as stale).
            if m.id().host == sender.host && !(m.state() == State::Alive && *m.id() == sender) {
                sender_suspect = true;
            }
        }
        if !sender_suspect || self.foca.num_members() < down {
            return false;
        }
        let refusals = self.dismissed.entry(sender).or_insert(0);
        *refusals += 1;
        *refusals <= DISMISS_LIMIT
    }

    fn announce(&mut self, host: HostId, out: &mut MembershipOut) {
        // An announce is accepted by any identity of that host, so incarnation 0 will do.
        let dst = HostIdentity::new(host, 0);
        let result = self.with_foca(out, |foca, sink| foca.announce(dst, sink));
        if result.is_err() {
            self.internal_errors += 1;
        }
    }

    fn arm_rejoin(&mut self, out: &mut MembershipOut) {
        if !self.rejoin_armed {
            self.rejoin_armed = true;
            out.timers.push((
                self.cfg.probe_period_ms.max(1),
                MembershipTimer(TimerKind::Rejoin),
            ));
        }
    }

    /// While we have no active member (and are neither defunct nor gone), announce to the
    /// seeds again. Foca itself stops all its timers when it has nobody to talk to.
    fn rejoin(&mut self, out: &mut MembershipOut) {
        self.rejoin_armed = false;
        if self.connected || self.defunct || self.left || self.seeds.is_empty() {
            return;
        }
        let seeds: Vec<HostId> = self.seeds.iter().copied().collect();
        for seed in seeds {
            self.announce(seed, out);
        }
        if !self.connected {
            self.arm_rejoin(out);
        }
    }

    /// Runs one foca call with a sink into `out`, then turns its notifications into
    /// notices.
    fn with_foca<R>(
        &mut self,
        out: &mut MembershipOut,
        call: impl FnOnce(&mut FocaInstance, &mut Sink<'_>) -> R,
    ) -> R {
        let mut sink = Sink {
            me: self.foca.identity().host,
            out,
            gossip: &mut self.gossip_asked,
            raw: &mut self.raw,
            suspected: &mut self.touched,
        };
        let result = call(&mut self.foca, &mut sink);
        self.settle_gossip(out);
        self.translate(out);
        result
    }

    /// Foca's periodic gossip timer fires every gossip period and sends only when it
    /// has updates to spread; a thousand hosts of a quiet cluster woke a thousand times
    /// a second to find nothing to say (a third of their membership timers). A gossip
    /// timer foca asks for while it has nothing to spread is held back here, with the
    /// time it was due; once foca has updates again, it is scheduled for the first
    /// instant of its period not yet past, when it would have fired anyway (and done
    /// nothing at each instant in between, except ask for itself again). Stale ones
    /// (after a rejoin) are ignored by foca as before.
    fn settle_gossip(&mut self, out: &mut MembershipOut) {
        let idle = self.foca.updates_backlog() == 0 && self.foca.custom_broadcast_backlog() == 0;
        for (after, timer) in self.gossip_asked.drain(..) {
            if idle {
                self.parked_gossip
                    .push((self.now.saturating_add(after), after.max(1), timer));
            } else {
                out.timers
                    .push((after, MembershipTimer(TimerKind::Foca(timer))));
            }
        }
        if idle || self.parked_gossip.is_empty() {
            return;
        }
        let now = self.now;
        for (due, period, timer) in self.parked_gossip.drain(..) {
            let after = if now <= due {
                due - now
            } else {
                let rem = (now - due) % period;
                if rem == 0 {
                    0
                } else {
                    period - rem
                }
            };
            out.timers
                .push((after, MembershipTimer(TimerKind::Foca(timer))));
        }
    }

    fn translate(&mut self, out: &mut MembershipOut) {
        let raw = std::mem::take(&mut self.raw);
        let me = self.identity().host;
        let mut i = 0;
        while i < raw.len() {
            match &raw[i] {
                OwnedNotification::MemberUp(id) if id.host != me => self.member_up(*id, out),
                OwnedNotification::MemberDown(id) if id.host != me => self.member_down(*id, out),
                OwnedNotification::Rename(old, new) if new.host != me => {
                    // Foca follows a rename with Up/Down when activity changed too.
                    match raw.get(i + 1) {
                        Some(OwnedNotification::MemberUp(next)) if next == new => {
                            self.member_up(*new, out);
                            i += 1;
                        }
                        Some(OwnedNotification::MemberDown(next)) if next == new => {
                            self.member_down(*new, out);
                            i += 1;
                        }
                        _ => {
                            let peer = self.peers.get_or_insert_with(new.host, || Peer {
                                id: *old,
                                active: false,
                                suspected_at: None,
                            });
                            peer.id = *new;
                            peer.suspected_at = None;
                            self.suspects.remove(&new.host);
                            // A renewal that kept its state is the same host going on.
                            if peer.active && new.since != old.since {
                                out.notices.push(Notice::Restarted(new.host));
                            }
                        }
                    }
                }
                OwnedNotification::Active => self.connected = true,
                OwnedNotification::Idle => {
                    self.connected = false;
                    self.arm_rejoin(out);
                }
                OwnedNotification::Defunct => {
                    self.connected = false;
                    if !self.defunct {
                        self.defunct = true;
                        if !self.left {
                            out.notices.push(Notice::Defunct);
                        }
                    }
                }
                // Own-host entries (our former identities), and Rejoin which cannot
                // happen since `renew()` returns None.
                _ => {}
            }
            i += 1;
        }
        self.raw = raw;
        self.raw.clear();
    }

    fn member_up(&mut self, id: HostIdentity, out: &mut MembershipOut) {
        let peer = self.peers.get_or_insert_with(id.host, || Peer {
            id,
            active: false,
            suspected_at: None,
        });
        peer.id = id;
        peer.suspected_at = None;
        self.suspects.remove(&id.host);
        if !peer.active {
            peer.active = true;
            if let Err(at) = self.live.binary_search(&id.host) {
                self.live.insert(at, id.host);
            }
            out.notices.push(Notice::Up(id.host));
        }
    }

    fn member_down(&mut self, id: HostIdentity, out: &mut MembershipOut) {
        let peer = self.peers.get_or_insert_with(id.host, || Peer {
            id,
            active: false,
            suspected_at: None,
        });
        peer.id = id;
        peer.suspected_at = None;
        self.suspects.remove(&id.host);
        if peer.active {
            peer.active = false;
            if let Ok(at) = self.live.binary_search(&id.host) {
                self.live.remove(at);
            }
            out.notices.push(Notice::Down(id.host));
        }
    }

    /// Reports members that foca now holds as suspect and that we have not reported for
    /// this suspicion yet; forgets reports of refuted suspicions. Looks at the hosts
    /// this call touched (`touched`: suspected by foca or by a packet, or named by a
    /// packet while suspected) and at the peers whose suspicion we reported: foca makes
    /// a member suspect only then, and a suspicion is refuted only by news of it.
    fn report_suspicions(&mut self, out: &mut MembershipOut) {
        if self.touched.is_empty() && self.suspects.is_empty() {
            return;
        }
        let me = self.foca.identity().host;
        let mut hosts = std::mem::take(&mut self.touched);
        hosts.extend(self.suspects.iter().copied());
        hosts.sort_unstable();
        hosts.dedup();
        let mut suspected = Vec::new();
        for &host in &hosts {
            if host == me {
                continue;
            }
            let Some(member) = self.foca.member(&host) else {
                continue;
            };
            let Some(peer) = self.peers.get_mut(host) else {
                continue;
            };
            if peer.id != *member.id() || !peer.active {
                continue;
            }
            match member.state() {
                State::Suspect => {
                    if peer.suspected_at != Some(member.incarnation()) {
                        peer.suspected_at = Some(member.incarnation());
                        suspected.push(host);
                    }
                }
                State::Alive => peer.suspected_at = None,
                State::Down => {}
            }
            if peer.suspected_at.is_some() {
                self.suspects.insert(host);
            } else {
                self.suspects.remove(&host);
            }
        }
        hosts.clear();
        self.touched = hosts;
        out.notices
            .extend(suspected.into_iter().map(Notice::Suspected));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::RngExt;
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;

    /// One-way network latency of the test network, ms.
    const LATENCY: u64 = 5;

    enum Payload {
        Data { from: HostId, bytes: Vec<u8> },
        Timer(MembershipTimer),
    }

    struct Event {
        target: HostId,
        /// Process generation of the target when the event was made (timers only).
        generation: u32,
        payload: Payload,
    }

    struct Node {
        m: Membership,
        generation: u32,
    }

    /// A tiny deterministic world: virtual ms clock, fixed latency, no loss, and hosts
    /// that can be cut off (packets dropped) and stopped (timers dropped too).
    struct Sim {
        now: u64,
        seq: u64,
        queue: BinaryHeap<Reverse<(u64, u64)>>,
        events: BTreeMap<u64, Event>,
        nodes: BTreeMap<HostId, Node>,
        cut: BTreeSet<HostId>,
        stopped: BTreeSet<HostId>,
        /// One side of a network partition: packets between it and the rest are dropped.
        side: BTreeSet<HostId>,
        /// Drop one packet in `loss_per_mille` / 1000, drawn from `net_rng`.
        loss_per_mille: u32,
        net_rng: ChaCha8Rng,
        log: Vec<(u64, HostId, Notice)>,
        cfg: MembershipConfig,
        seed: u64,
        packet_errors: u64,
        packets: u64,
        /// Every packet sent, when set (for the garbage test).
        recorded: Option<Vec<(HostId, HostId, Vec<u8>)>>,
    }

    impl Sim {
        fn new(cfg: MembershipConfig, seed: u64) -> Self {
            Sim {
                now: 0,
                seq: 0,
                queue: BinaryHeap::new(),
                events: BTreeMap::new(),
                nodes: BTreeMap::new(),
                cut: BTreeSet::new(),
                stopped: BTreeSet::new(),
                side: BTreeSet::new(),
                loss_per_mille: 0,
                net_rng: ChaCha8Rng::seed_from_u64(seed ^ 0x5eed),
                log: Vec::new(),
                cfg,
                seed,
                packet_errors: 0,
                packets: 0,
                recorded: None,
            }
        }

        fn seeds_for(host: HostId) -> Vec<HostId> {
            [0, 1].into_iter().filter(|s| *s != host).collect()
        }

        /// Starts (or restarts, as a fresh process) `host` with `incarnation`.
        fn boot(&mut self, host: HostId, incarnation: u32, hint: Option<u32>) {
            let generation = self.nodes.get(&host).map_or(0, |n| n.generation + 1);
            let seed = self.seed ^ (u64::from(host) << 32) ^ u64::from(generation);
            let mut m = Membership::new(HostIdentity::new(host, incarnation), &self.cfg, seed);
            m.set_now(self.now);
            if let Some(n) = hint {
                m.set_cluster_size_hint(n);
            }
            self.nodes.insert(host, Node { m, generation });
            self.cut.remove(&host);
            self.stopped.remove(&host);
            let mut out = MembershipOut::default();
            let node = self.nodes.get_mut(&host).unwrap();
            node.m.start(&mut out);
            if host != 0 {
                node.m.join(0, &mut out);
            }
            self.push_out(host, out);
        }

        fn kill(&mut self, host: HostId) {
            self.cut.insert(host);
            self.stopped.insert(host);
        }

        fn schedule(&mut self, at: u64, event: Event) {
            self.seq += 1;
            self.queue.push(Reverse((at, self.seq)));
            self.events.insert(self.seq, event);
        }

        fn push_out(&mut self, host: HostId, out: MembershipOut) {
            let generation = self.nodes[&host].generation;
            for (to, bytes) in out.sends {
                assert_ne!(to, host, "membership sent a packet to itself");
                if let Some(recorded) = &mut self.recorded {
                    recorded.push((host, to, bytes.clone()));
                }
                let payload = Payload::Data { from: host, bytes };
                self.schedule(
                    self.now + LATENCY,
                    Event {
                        target: to,
                        generation: 0,
                        payload,
                    },
                );
            }
            for (delay, timer) in out.timers {
                self.schedule(
                    self.now + delay,
                    Event {
                        target: host,
                        generation,
                        payload: Payload::Timer(timer),
                    },
                );
            }
            for notice in out.notices {
                self.log.push((self.now, host, notice));
                if notice == Notice::Defunct {
                    let mut out = MembershipOut::default();
                    let seeds = Self::seeds_for(host);
                    self.nodes.get_mut(&host).unwrap().m.renew(&seeds, &mut out);
                    self.push_out(host, out);
                }
            }
        }

        fn step(&mut self) -> bool {
            let Some(Reverse((at, seq))) = self.queue.pop() else {
                return false;
            };
            let event = self.events.remove(&seq).unwrap();
            self.now = at;
            let target = event.target;
            if self.stopped.contains(&target) || !self.nodes.contains_key(&target) {
                return true;
            }
            let mut out = MembershipOut::default();
            let node = self.nodes.get_mut(&target).unwrap();
            node.m.set_now(self.now);
            match event.payload {
                Payload::Data { from, bytes } => {
                    if self.cut.contains(&from)
                        || self.cut.contains(&target)
                        || self.side.contains(&from) != self.side.contains(&target)
                    {
                        return true;
                    }
                    if self.loss_per_mille > 0
                        && self.net_rng.random_range(0..1000) < self.loss_per_mille
                    {
                        return true;
                    }
                    self.packets += 1;
                    if node.m.handle_data(from, &bytes, &mut out).is_err() {
                        self.packet_errors += 1;
                    }
                }
                Payload::Timer(timer) => {
                    if event.generation != node.generation {
                        return true;
                    }
                    node.m.handle_timer(timer, &mut out);
                }
            }
            self.push_out(target, out);
            true
        }

        fn run_until(&mut self, t: u64) {
            while let Some(Reverse((at, _))) = self.queue.peek() {
                if *at > t {
                    break;
                }
                self.step();
            }
            self.now = t;
        }

        /// Runs until `done` holds (checked every 10 ms) or `deadline`; returns the time.
        fn run_until_cond(&mut self, deadline: u64, done: impl Fn(&Sim) -> bool) -> Option<u64> {
            while self.now < deadline {
                if done(self) {
                    return Some(self.now);
                }
                let next = self.now + 10;
                self.run_until(next);
            }
            done(self).then_some(self.now)
        }

        fn m(&self, host: HostId) -> &Membership {
            &self.nodes[&host].m
        }

        fn hosts(&self) -> Vec<HostId> {
            self.nodes.keys().copied().collect()
        }

        /// Every running, connected host sees exactly the other running hosts as live.
        fn converged(&self) -> bool {
            let running: Vec<HostId> = self
                .hosts()
                .into_iter()
                .filter(|h| !self.stopped.contains(h))
                .collect();
            running.iter().all(|h| {
                let others: Vec<HostId> = running.iter().copied().filter(|o| o != h).collect();
                self.m(*h).live_members() == others
            })
        }

        fn notices_at(&self, host: HostId) -> Vec<Notice> {
            self.log
                .iter()
                .filter(|(_, h, _)| *h == host)
                .map(|(_, _, n)| *n)
                .collect()
        }

        fn count(&self, pred: impl Fn(HostId, Notice) -> bool) -> usize {
            self.log.iter().filter(|(_, h, n)| pred(*h, *n)).count()
        }

        /// Our view agrees with foca's own list of active members.
        fn check_views(&self) {
            for (host, node) in &self.nodes {
                if self.stopped.contains(host) {
                    continue;
                }
                let mut from_foca: Vec<HostId> = node
                    .m
                    .foca
                    .iter_members()
                    .map(|m| m.id().host)
                    .filter(|h| h != host)
                    .collect();
                from_foca.sort_unstable();
                assert_eq!(node.m.live_members(), from_foca, "view of host {host}");
            }
        }
    }

    fn cluster(n: u32, cfg: MembershipConfig, seed: u64) -> Sim {
        let mut sim = Sim::new(cfg, seed);
        for host in 0..n {
            sim.boot(host, 0, None);
        }
        sim
    }

    /// Gossip timers pending in the harness's queue (foca's periodic gossip).
    fn pending_gossip(sim: &Sim) -> usize {
        sim.events
            .values()
            .filter(|e| {
                matches!(
                    &e.payload,
                    Payload::Timer(MembershipTimer(TimerKind::Foca(Timer::PeriodicGossip(_))))
                )
            })
            .count()
    }

    /// A quiet cluster holds its gossip timers back (foca would wake every host each
    /// gossip period to find nothing to say); news brings them back on every host
    /// that has some to spread, the news reaches everyone, and they are held back
    /// again once it is spread.
    #[test]
    fn gossip_timers_wait_for_news() {
        let mut sim = cluster(8, MembershipConfig::default(), 3);
        sim.run_until_cond(10_000, Sim::converged)
            .expect("8 members converge");
        let quiet = |s: &Sim| {
            pending_gossip(s) == 0 && s.hosts().iter().all(|h| s.m(*h).parked_gossip() == 1)
        };
        let t = sim.now;
        sim.run_until_cond(t + 30_000, quiet)
            .expect("once the joins are spread, no gossip timer is pending");
        sim.kill(7);
        let t = sim.now;
        sim.run_until_cond(t + 20_000, |s| pending_gossip(s) > 0)
            .expect("the suspicion of the killed host re-arms gossip");
        let all_know =
            |s: &Sim| (0..7).all(|h| !s.m(h).live_members().contains(&7)) && pending_gossip(s) == 0;
        let t = sim.now;
        sim.run_until_cond(t + 60_000, all_know)
            .expect("the others learn of the death, then hold gossip back again");
        for h in 0..7 {
            assert_eq!(sim.m(h).parked_gossip(), 1, "host {h}");
        }
        sim.check_views();
    }

    #[test]
    fn five_members_see_each_other_up() {
        let mut sim = cluster(5, MembershipConfig::default(), 1);
        let t = sim
            .run_until_cond(5_000, Sim::converged)
            .expect("5 members converge within 5 s");
        eprintln!("5 members converged at {t} ms");
        for h in sim.hosts() {
            let ups = sim
                .notices_at(h)
                .into_iter()
                .filter(|n| matches!(n, Notice::Up(_)))
                .count();
            assert_eq!(ups, 4, "host {h} saw 4 Ups");
        }
        sim.check_views();
        assert_eq!(sim.m(3).incarnation_of(1), Some(0));
        assert_eq!(sim.m(3).incarnation_of(3), Some(0));
        assert_eq!(sim.m(3).incarnation_of(42), None);
        assert!(sim.m(3).is_alive(1));
        assert!(!sim.m(3).is_alive(3));
    }

    #[test]
    fn lossless_run_has_no_false_suspicion() {
        let mut sim = cluster(5, MembershipConfig::default(), 2);
        sim.run_until(60_000);
        assert!(sim.converged());
        let bad = sim.count(|_, n| !matches!(n, Notice::Up(_)));
        assert_eq!(bad, 0, "unexpected notices: {:?}", sim.log);
        assert_eq!(sim.packet_errors, 0);
        for h in sim.hosts() {
            assert_eq!(sim.m(h).internal_errors(), 0);
        }
        sim.check_views();
    }

    #[test]
    fn killed_member_is_declared_down_everywhere() {
        let mut sim = cluster(5, MembershipConfig::default(), 3);
        sim.run_until(10_000);
        assert!(sim.converged());
        sim.kill(4);
        let killed_at = sim.now;
        let all_down = |sim: &Sim| {
            (0..4).all(|h| {
                sim.log
                    .iter()
                    .any(|(_, at, n)| *at == h && *n == Notice::Down(4))
            })
        };
        let t = sim
            .run_until_cond(killed_at + 10_000, all_down)
            .expect("every member sees the dead one Down within 10 s");
        let first = sim
            .log
            .iter()
            .find(|(_, _, n)| *n == Notice::Down(4))
            .map(|(t, _, _)| *t)
            .unwrap();
        let suspected_first = sim
            .log
            .iter()
            .find(|(_, _, n)| *n == Notice::Suspected(4))
            .map(|(t, _, _)| *t);
        eprintln!(
            "kill at {killed_at}: first Suspected at {:?}, first Down +{} ms, all Down +{} ms",
            suspected_first.map(|s| s - killed_at),
            first - killed_at,
            t - killed_at
        );
        assert!(
            suspected_first.is_some_and(|s| s < first),
            "suspicion comes first"
        );
        sim.run_until(60_000);
        assert!(sim.converged());
        // Nothing bad about the living, ever.
        let bad = sim.count(|_, n| match n {
            Notice::Down(h) | Notice::Suspected(h) | Notice::Restarted(h) => h != 4,
            Notice::Defunct => true,
            Notice::Up(_) => false,
        });
        assert_eq!(bad, 0, "{:?}", sim.log);
        for h in 0..4 {
            assert!(!sim.m(h).is_alive(4));
            assert_eq!(sim.m(h).live_members().len(), 3);
        }
        sim.check_views();
    }

    #[test]
    fn restarted_with_same_incarnation_is_told_defunct_and_renews() {
        let mut sim = cluster(5, MembershipConfig::default(), 4);
        sim.run_until(10_000);
        sim.kill(4);
        sim.run_until(20_000);
        for h in 0..4 {
            assert!(!sim.m(h).is_alive(4), "host {h} saw 4 down");
        }
        let restart_at = sim.now;
        sim.boot(4, 0, None); // a fresh process, same identity
        let t = sim
            .run_until_cond(restart_at + 10_000, Sim::converged)
            .expect("renewed member is up everywhere");
        eprintln!("same-incarnation restart: converged +{} ms", t - restart_at);
        assert!(sim.notices_at(4).contains(&Notice::Defunct));
        assert_eq!(sim.m(4).identity(), HostIdentity::new(4, 1));
        for h in 0..4 {
            assert_eq!(sim.m(h).incarnation_of(4), Some(1));
            let after: Vec<Notice> = sim
                .log
                .iter()
                .filter(|(at, host, _)| *host == h && *at >= restart_at)
                .map(|(_, _, n)| *n)
                .collect();
            assert_eq!(after, vec![Notice::Up(4)], "host {h}");
        }
        sim.run_until(restart_at + 30_000);
        assert!(sim.converged());
        assert_eq!(sim.count(|_, n| n == Notice::Defunct), 1);
        sim.check_views();
    }

    #[test]
    fn quick_restart_with_higher_incarnation_is_restarted() {
        let mut sim = cluster(5, MembershipConfig::default(), 5);
        sim.run_until(10_000);
        sim.kill(4);
        sim.run_until(10_300);
        sim.boot(4, 1, None); // restart counter 1, back before anyone noticed
        let restart_at = sim.now;
        let all_restarted = |sim: &Sim| {
            (0..4).all(|h| {
                sim.log
                    .iter()
                    .any(|(_, at, n)| *at == h && *n == Notice::Restarted(4))
            })
        };
        let t = sim
            .run_until_cond(restart_at + 10_000, all_restarted)
            .expect("every member sees the restart");
        eprintln!("quick restart: all Restarted +{} ms", t - restart_at);
        sim.run_until(40_000);
        assert!(sim.converged());
        assert_eq!(
            sim.count(|_, n| matches!(n, Notice::Down(_))),
            0,
            "{:?}",
            sim.log
        );
        assert_eq!(sim.count(|_, n| n == Notice::Defunct), 0);
        for h in 0..4 {
            assert_eq!(sim.m(h).incarnation_of(4), Some(1));
        }
        sim.check_views();
    }

    #[test]
    fn graceful_leave_is_down_without_defunct() {
        let mut sim = cluster(5, MembershipConfig::default(), 6);
        sim.run_until(5_000);
        assert!(sim.converged());
        let mut out = MembershipOut::default();
        sim.nodes.get_mut(&3).unwrap().m.leave(&mut out);
        let left_at = sim.now;
        sim.push_out(3, out);
        let all_down = |sim: &Sim| {
            [0, 1, 2, 4].iter().all(|h| {
                sim.log
                    .iter()
                    .any(|(_, at, n)| at == h && *n == Notice::Down(3))
            })
        };
        let t = sim
            .run_until_cond(left_at + 5_000, all_down)
            .expect("leave seen everywhere");
        eprintln!("graceful leave: all Down +{} ms", t - left_at);
        // The leaver keeps running: it must not be told it is defunct, nor come back.
        sim.run_until(left_at + 30_000);
        assert_eq!(sim.count(|_, n| n == Notice::Defunct), 0);
        assert_eq!(sim.count(|_, n| matches!(n, Notice::Suspected(_))), 0);
        assert_eq!(sim.count(|_, n| matches!(n, Notice::Down(h) if h != 3)), 0);
        for h in [0, 1, 2, 4] {
            assert!(!sim.m(h).is_alive(3));
            assert_eq!(sim.m(h).live_members(), {
                let mut v = vec![0, 1, 2, 4];
                v.retain(|x| *x != h);
                v
            });
        }
    }

    #[test]
    fn brief_glitch_is_suspected_then_refuted() {
        let mut sim = cluster(5, MembershipConfig::default(), 7);
        sim.run_until(10_000);
        sim.cut.insert(4); // no packets for 2.5 s, but the process keeps running
        sim.run_until(12_500);
        sim.cut.remove(&4);
        sim.run_until(40_000);
        eprintln!(
            "glitch: {} Suspected, {} Down",
            sim.count(|_, n| matches!(n, Notice::Suspected(_))),
            sim.count(|_, n| matches!(n, Notice::Down(_)))
        );
        assert!(sim.count(|_, n| matches!(n, Notice::Suspected(_))) >= 1);
        assert_eq!(
            sim.count(|_, n| matches!(n, Notice::Down(_))),
            0,
            "{:?}",
            sim.log
        );
        assert_eq!(sim.count(|_, n| n == Notice::Defunct), 0);
        assert!(sim.converged());
        sim.check_views();
    }

    #[test]
    fn isolated_member_heals_after_partition() {
        let mut sim = cluster(5, MembershipConfig::default(), 8);
        sim.run_until(10_000);
        sim.cut.insert(4); // cut off for 20 s, process keeps running
        sim.run_until(30_000);
        for h in 0..4 {
            assert!(!sim.m(h).is_alive(4));
        }
        assert!(sim.m(4).live_members().is_empty());
        sim.cut.remove(&4);
        let t = sim
            .run_until_cond(60_000, Sim::converged)
            .expect("partition heals");
        let defunct: Vec<HostId> = sim
            .log
            .iter()
            .filter(|(_, _, n)| *n == Notice::Defunct)
            .map(|(_, h, _)| *h)
            .collect();
        eprintln!(
            "isolated member: healed +{} ms, defunct hosts {defunct:?}",
            t - 30_000
        );
        // Only the cut-off member renews: the others see a majority and refuse its
        // verdicts.
        assert_eq!(defunct, vec![4]);
        for h in 0..4 {
            assert_eq!(sim.m(h).incarnation_of(h), Some(0));
            assert_eq!(sim.m(h).incarnation_of(4), Some(1));
        }
        sim.run_until(t + 20_000);
        assert!(sim.converged());
        sim.check_views();
    }

    #[test]
    fn minority_side_renews_after_partition() {
        let mut sim = cluster(7, MembershipConfig::default(), 12);
        sim.run_until(10_000);
        assert!(sim.converged());
        sim.side = [5, 6].into_iter().collect();
        sim.run_until(30_000);
        assert_eq!(sim.m(0).live_members(), vec![1, 2, 3, 4]);
        assert_eq!(sim.m(5).live_members(), vec![6]);
        sim.side.clear();
        let t = sim
            .run_until_cond(60_000, Sim::converged)
            .expect("partition heals");
        let mut defunct: Vec<HostId> = sim
            .log
            .iter()
            .filter(|(_, _, n)| *n == Notice::Defunct)
            .map(|(_, h, _)| *h)
            .collect();
        defunct.sort_unstable();
        eprintln!(
            "2|5 partition: healed +{} ms, defunct hosts {defunct:?}",
            t - 30_000
        );
        assert_eq!(defunct, vec![5, 6]);
        sim.run_until(t + 20_000);
        assert!(sim.converged());
        sim.check_views();
    }

    #[test]
    fn even_split_still_heals() {
        let mut sim = cluster(4, MembershipConfig::default(), 13);
        sim.run_until(10_000);
        sim.side = [2, 3].into_iter().collect();
        sim.run_until(30_000);
        sim.side.clear();
        let t = sim
            .run_until_cond(90_000, Sim::converged)
            .expect("partition heals");
        let defunct = sim.count(|_, n| n == Notice::Defunct);
        eprintln!(
            "2|2 partition: healed +{} ms, {defunct} defunct",
            t - 30_000
        );
        sim.run_until(t + 20_000);
        assert!(sim.converged());
        sim.check_views();
    }

    #[test]
    fn lossy_network_does_not_flap() {
        // 10% of packets lost: probes fail now and then and members get suspected, but
        // indirect probes, refutation and the confirmation ping keep everyone up.
        let mut sim = Sim::new(MembershipConfig::default(), 14);
        sim.loss_per_mille = 100;
        for host in 0..10 {
            sim.boot(host, 0, None);
        }
        sim.run_until(120_000);
        let suspected = sim.count(|_, n| matches!(n, Notice::Suspected(_)));
        let down = sim.count(|_, n| matches!(n, Notice::Down(_)));
        let defunct = sim.count(|_, n| n == Notice::Defunct);
        eprintln!(
            "10% loss, 10 members, 120 s: {suspected} Suspected, {down} Down, {defunct} Defunct"
        );
        assert!(suspected > 0);
        assert_eq!(down, 0, "{:?}", sim.log);
        assert_eq!(defunct, 0);
        assert!(sim.converged());
    }

    #[test]
    fn seeds_are_retried_until_they_answer() {
        let mut sim = Sim::new(MembershipConfig::default(), 9);
        sim.boot(1, 0, None); // joins seed 0, which does not exist yet
        sim.run_until(3_500);
        sim.boot(0, 0, None);
        let t = sim
            .run_until_cond(10_000, Sim::converged)
            .expect("late seed");
        eprintln!("late seed: converged at {t} ms");
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let cfg = MembershipConfig::default();
        let mut m = Membership::new(HostIdentity::new(1, 0), &cfg, 1);
        let mut out = MembershipOut::default();
        assert!(matches!(
            m.handle_data(2, &[], &mut out),
            Err(MembershipError::Malformed { .. })
        ));
        assert!(matches!(
            m.handle_data(2, &vec![0u8; 5000], &mut out),
            Err(MembershipError::TooBig { .. })
        ));
        let mut rng = ChaCha8Rng::seed_from_u64(99);
        for _ in 0..20_000 {
            let len = rng.random_range(0..1400);
            let bytes: Vec<u8> = (0..len).map(|_| rng.random()).collect();
            assert!(m.handle_data(2, &bytes, &mut out).is_err());
        }
        assert!(m.live_members().is_empty());

        // Real packets from a running cluster, truncated and bit-flipped, fed to a
        // running member: errors or harmless, never a panic.
        let mut sim = Sim::new(cfg, 10);
        sim.recorded = Some(Vec::new());
        for host in 0..3 {
            sim.boot(host, 0, None);
        }
        sim.run_until(3_000);
        let packets = sim.recorded.take().unwrap();
        assert!(packets.len() > 10);
        let mut errors = 0;
        for (from, to, bytes) in &packets {
            for cut in 0..bytes.len() {
                let mut out = MembershipOut::default();
                let node = sim.nodes.get_mut(to).unwrap();
                errors += usize::from(node.m.handle_data(*from, &bytes[..cut], &mut out).is_err());
            }
            for i in 0..bytes.len() {
                let mut flipped = bytes.clone();
                flipped[i] ^= 0x5a;
                let mut out = MembershipOut::default();
                let node = sim.nodes.get_mut(to).unwrap();
                let _ = node.m.handle_data(*from, &flipped, &mut out);
            }
            // Right bytes, wrong transport sender; right bytes, wrong recipient.
            let mut out = MembershipOut::default();
            let node = sim.nodes.get_mut(to).unwrap();
            assert!(matches!(
                node.m.handle_data(from + 100, bytes, &mut out),
                Err(MembershipError::WrongSender { .. })
            ));
            let other = (0..3).find(|h| h != from && h != to).unwrap();
            let node = sim.nodes.get_mut(&other).unwrap();
            assert!(matches!(
                node.m.handle_data(*from, bytes, &mut out),
                Err(MembershipError::Misaddressed { .. })
            ));
        }
        assert!(errors > 0);
    }

    fn scenario_log(seed: u64) -> (Vec<(u64, HostId, Notice)>, u64) {
        let mut sim = cluster(6, MembershipConfig::default(), seed);
        sim.run_until(8_000);
        sim.kill(5);
        sim.run_until(20_000);
        sim.boot(5, 0, None);
        sim.cut.insert(2);
        sim.run_until(21_000);
        sim.cut.remove(&2);
        sim.run_until(40_000);
        (sim.log, sim.packets)
    }

    #[test]
    fn same_seed_same_notices() {
        let (a, pa) = scenario_log(42);
        let (b, pb) = scenario_log(42);
        assert!(a.len() > 30);
        assert_eq!(a, b);
        assert_eq!(pa, pb);
        let (c, pc) = scenario_log(43);
        eprintln!(
            "seed 42: {} notices, {pa} packets; seed 43: {} notices, {pc} packets",
            a.len(),
            c.len()
        );
    }

    /// A host that joins a formed cluster learns every member from the feed that answers
    /// its announce: the packet size of a large cluster's config holds them all. With
    /// 1,400-byte packets the feed holds about 200 of 300 and the rest come one probe or
    /// periodic announce at a time (in a 1,000-host simulation, a minute or more after
    /// formation some hosts still did not know some members, and refused writes for
    /// the colonies those led).
    #[test]
    fn a_newcomer_learns_every_member_from_the_answer_to_its_join() {
        let n = 300;
        let knows_all_after_join = |cfg: MembershipConfig| {
            let mut sim = Sim::new(cfg, 5);
            for host in 0..n {
                sim.boot(host, 0, Some(n + 1));
                sim.run_until(sim.now + 10);
            }
            assert!(sim.run_until_cond(120_000, Sim::converged).is_some());
            sim.boot(n, 0, Some(n + 1));
            // Two probe periods: the announce, its feed, and nothing periodic.
            sim.run_until(sim.now + 2_000);
            sim.m(n).live_members().len() as u32 == n
        };
        let cfg = MembershipConfig::for_cluster_size(n + 1);
        assert!(cfg.max_packet_size > 1_400);
        assert!(knows_all_after_join(cfg.clone()));
        let small = MembershipConfig {
            max_packet_size: 1_400,
            ..cfg
        };
        assert!(!knows_all_after_join(small));
    }

    #[test]
    fn two_hundred_members_for_a_minute() {
        let n = 200;
        let cfg = MembershipConfig::for_cluster_size(n);
        let mut sim = Sim::new(cfg, 11);
        for host in 0..n {
            sim.boot(host, 0, Some(n));
            sim.run_until(sim.now + 10);
        }
        let t = sim.run_until_cond(60_000, Sim::converged);
        eprintln!("200 members: converged at {t:?} ms");
        assert!(t.is_some(), "200 members converge");
        sim.run_until(60_000);
        let alarms: Vec<_> = sim
            .log
            .iter()
            .filter(|(_, _, n)| !matches!(n, Notice::Up(_)))
            .take(20)
            .collect();
        assert!(alarms.is_empty(), "false alarms: {alarms:?}");
        assert_eq!(sim.packet_errors, 0);
        eprintln!(
            "200 members: {} packets in 60 s ({} per host per s)",
            sim.packets,
            sim.packets / u64::from(n) / 60
        );
        sim.check_views();

        // Then one dies: everybody hears of it within the bound of a 200-host config
        // (probe 1 s + suspicion 6 s + confirmation 1 s + dissemination).
        sim.kill(150);
        let all_down = |sim: &Sim| {
            let down: BTreeSet<HostId> = sim
                .log
                .iter()
                .filter(|(_, _, n)| *n == Notice::Down(150))
                .map(|(_, h, _)| *h)
                .collect();
            down.len() == 199
        };
        let t = sim
            .run_until_cond(75_000, all_down)
            .expect("199 members see the death within 15 s");
        let first = |notice: Notice| {
            sim.log
                .iter()
                .find(|(_, _, n)| *n == notice)
                .map(|(at, _, _)| at - 60_000)
        };
        eprintln!(
            "200 members: kill: first Suspected +{:?} ms, first Down +{:?} ms, all Down +{} ms",
            first(Notice::Suspected(150)),
            first(Notice::Down(150)),
            t - 60_000
        );
        sim.run_until(90_000);
        let alarms = sim.count(|_, n| match n {
            Notice::Down(h) | Notice::Suspected(h) | Notice::Restarted(h) => h != 150,
            Notice::Defunct => true,
            Notice::Up(_) => false,
        });
        assert_eq!(alarms, 0);
    }

    /// [`MEMBER_BYTES_MAX`] bounds a member's encoding whatever its values.
    #[test]
    fn a_member_never_encodes_in_more_than_the_bound() {
        let mut codec = PostcardCodec;
        let mut widest = 0;
        for v in [0, 1, 127, 128, 16_383, 16_384, 1 << 28, u32::MAX] {
            for state in [State::Alive, State::Suspect, State::Down] {
                let id = HostIdentity {
                    host: v,
                    incarnation: v,
                    since: v,
                };
                let member = Member::new(id, u16::try_from(v).unwrap_or(u16::MAX), state);
                let mut buf = Vec::new();
                codec.encode_member(&member, &mut buf).expect("encodes");
                widest = widest.max(buf.len());
            }
        }
        assert_eq!(widest, MEMBER_BYTES_MAX);
    }

    #[test]
    fn config_scaling_and_clamping() {
        assert_eq!(
            MembershipConfig::for_cluster_size(5),
            MembershipConfig::default()
        );
        let big = MembershipConfig::for_cluster_size(1000);
        assert_eq!(big.probe_period_ms, 1000);
        assert_eq!(big.suspect_to_down_ms, 9000);
        assert_eq!(big.gossip_fanout, 2);
        // (hosts, packet size, announce period)
        for (n, packet, announce) in [
            (63, 1_400, 10_000),
            (200, 4_056, 15_000),
            (511, 9_965, 15_000),
            (512, 9_984, 150_000),
            (1_000, 19_256, 180_000),
            (u32::MAX, 256 * 1024, 840_000),
        ] {
            let c = MembershipConfig::for_cluster_size(n);
            assert_eq!(
                (c.max_packet_size, c.announce_period_ms),
                (packet, announce),
                "{n}"
            );
        }
        assert_eq!((ceil_log2(0), ceil_log2(1), ceil_log2(2)), (0, 0, 1));
        assert_eq!(
            (ceil_log2(1000), ceil_log2(1024), ceil_log2(1025)),
            (10, 10, 11)
        );
        assert_eq!(max_transmissions_for(5).get(), 6);
        assert_eq!(max_transmissions_for(200).get(), 10);
        assert_eq!(max_transmissions_for(1000).get(), 12);
        assert_eq!(max_transmissions_for(u32::MAX).get(), 24);
        let silly = MembershipConfig {
            probe_period_ms: 0,
            probe_rtt_ms: 0,
            suspect_to_down_ms: 0,
            gossip_period_ms: 0,
            gossip_fanout: 0,
            announce_period_ms: 0,
            max_packet_size: 0,
        };
        let f = silly.to_foca(NonZeroU8::MIN);
        assert!(f.probe_rtt < f.probe_period);
        assert!(f.periodic_gossip.is_none() && f.periodic_announce.is_none());
        assert_eq!(f.max_packet_size.get(), MIN_PACKET_SIZE);
        let _ = Membership::new(HostIdentity::new(0, 0), &silly, 0);
        assert_eq!(duration_ms(Duration::from_micros(1500)), 2);
    }
}
