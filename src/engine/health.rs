//! Peer health shared by every process and thread of a server.
//!
//! A [`PeerSlot`] holds only atomics and is valid when all-zero, so it can
//! live in shared memory that the httpd parent maps before forking its
//! children: every lookup in every child reads and updates the same record
//! without a lock. All times are microseconds since the Unix epoch, passed
//! in by the caller (tests drive the clock).

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use crate::icp::{DecodeError, Opcode};

/// What a peer's record counts. The names are the status page's keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum Counter {
    /// Queries sent to the peer.
    Queries,
    Hit,
    Miss,
    MissNoFetch,
    Denied,
    Err,
    /// ICMP errors (port or host unreachable) in answer to a query.
    Icmp,
    /// Queries the peer did not answer in time while it was waited for.
    Timeouts,
    /// Times the peer was declared dead.
    Deaths,
    /// Lookups answered from memory with a HIT at the peer.
    Remembered,
}

impl Counter {
    pub const ALL: [Counter; 10] = [
        Counter::Queries,
        Counter::Hit,
        Counter::Miss,
        Counter::MissNoFetch,
        Counter::Denied,
        Counter::Err,
        Counter::Icmp,
        Counter::Timeouts,
        Counter::Deaths,
        Counter::Remembered,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Counter::Queries => "Queries",
            Counter::Hit => "Hit",
            Counter::Miss => "Miss",
            Counter::MissNoFetch => "MissNoFetch",
            Counter::Denied => "Denied",
            Counter::Err => "Err",
            Counter::Icmp => "Icmp",
            Counter::Timeouts => "Timeouts",
            Counter::Deaths => "Deaths",
            Counter::Remembered => "Remembered",
        }
    }

    fn for_reply(opcode: Opcode) -> Option<Counter> {
        match opcode {
            Opcode::Hit | Opcode::HitObj => Some(Counter::Hit),
            Opcode::Miss => Some(Counter::Miss),
            Opcode::MissNoFetch => Some(Counter::MissNoFetch),
            Opcode::Denied => Some(Counter::Denied),
            Opcode::Err => Some(Counter::Err),
            _ => None,
        }
    }
}

/// Why a datagram from a peer's own address and port was dropped: what
/// each peer's record counts, one counter per variant (its index).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum RejectReason {
    TooShort,
    TooLong,
    LengthMismatch,
    BadVersion,
    UnknownOpcode,
    UrlNotTerminated,
    TrailingBytes,
    ObjectLengthMismatch,
    NotAReply,
    WrongRequestNumber,
    WrongUrl,
    Duplicate,
}

impl RejectReason {
    /// Every reason, in index order (the status page's order).
    pub const ALL: [RejectReason; 12] = [
        RejectReason::TooShort,
        RejectReason::TooLong,
        RejectReason::LengthMismatch,
        RejectReason::BadVersion,
        RejectReason::UnknownOpcode,
        RejectReason::UrlNotTerminated,
        RejectReason::TrailingBytes,
        RejectReason::ObjectLengthMismatch,
        RejectReason::NotAReply,
        RejectReason::WrongRequestNumber,
        RejectReason::WrongUrl,
        RejectReason::Duplicate,
    ];

    /// Where this reason's counter is in a peer's record.
    pub fn index(self) -> usize {
        self as usize
    }

    /// The stable `snake_case` name counters and logs use: scripts key on
    /// it, so it never changes when a message is reworded.
    pub fn label(self) -> &'static str {
        match self {
            RejectReason::TooShort => "too_short",
            RejectReason::TooLong => "too_long",
            RejectReason::LengthMismatch => "length_mismatch",
            RejectReason::BadVersion => "bad_version",
            RejectReason::UnknownOpcode => "unknown_opcode",
            RejectReason::UrlNotTerminated => "url_not_terminated",
            RejectReason::TrailingBytes => "trailing_bytes",
            RejectReason::ObjectLengthMismatch => "object_length_mismatch",
            RejectReason::NotAReply => "not_a_reply",
            RejectReason::WrongRequestNumber => "wrong_request_number",
            RejectReason::WrongUrl => "wrong_url",
            RejectReason::Duplicate => "duplicate",
        }
    }

    pub(super) fn of_decode(e: &DecodeError) -> RejectReason {
        match e {
            DecodeError::TooShort { .. } => RejectReason::TooShort,
            DecodeError::TooLong { .. } => RejectReason::TooLong,
            DecodeError::LengthMismatch { .. } => RejectReason::LengthMismatch,
            DecodeError::BadVersion(_) => RejectReason::BadVersion,
            DecodeError::UnknownOpcode(_) => RejectReason::UnknownOpcode,
            DecodeError::UrlNotTerminated => RejectReason::UrlNotTerminated,
            DecodeError::TrailingBytes => RejectReason::TrailingBytes,
            DecodeError::ObjectLengthMismatch => RejectReason::ObjectLengthMismatch,
        }
    }
}

const ALIVE: u32 = 0;
const DEAD: u32 = 1;

/// A peer waited for that stays silent in this many lookups in a row while
/// other peers answer them is hung: dead, so that it costs no more
/// requests the timeout, long before `ICPQueryDeadTime` has passed.
pub const HUNG_AFTER: u32 = 3;

/// A dead peer is asked again this often (at most; or once per dead time
/// when that is shorter), so that a cache that answers again is used again
/// within about that time.
pub const REVIVE_EVERY: Duration = Duration::from_secs(1);

/// A change of a peer's state, for the logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transition {
    Died(Death),
    Revived,
}

/// Why a peer died.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Death {
    /// Its host refused the query (ICMP): nobody listens there.
    Refused,
    /// Silent in [`HUNG_AFTER`] lookups in a row that other peers answered.
    Hung,
    /// No valid reply for the dead time while asked.
    Silent,
}

/// One peer's shared record.
#[repr(C)]
#[derive(Default)]
pub struct PeerSlot {
    state: AtomicU32,
    /// Smoothed round-trip time in µs (0: never measured).
    srtt_us: AtomicU32,
    last_reply_us: AtomicU64,
    /// Since when the peer has been failing to answer (0: it answered last).
    silent_since_us: AtomicU64,
    /// A dead peer is sent a revival query every [`REVIVE_EVERY`] (or dead
    /// time, if shorter); this is when the next one is due.
    next_probe_us: AtomicU64,
    /// Lookups in a row that waited for it in vain while other peers answered.
    silent_lookups: AtomicU32,
    counters: [AtomicU64; Counter::ALL.len()],
    rejects: [AtomicU64; RejectReason::ALL.len()],
}

/// A consistent-enough copy of a record, for the status page.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub dead: bool,
    pub srtt: Option<Duration>,
    pub last_reply_us: Option<u64>,
    pub counters: [u64; Counter::ALL.len()],
    pub rejects: [u64; RejectReason::ALL.len()],
}

impl PeerSlot {
    pub fn is_dead(&self) -> bool {
        self.state.load(Relaxed) == DEAD
    }

    pub fn srtt(&self) -> Option<Duration> {
        match self.srtt_us.load(Relaxed) {
            0 => None,
            us => Some(Duration::from_micros(us.into())),
        }
    }

    pub fn count(&self, counter: Counter) {
        self.counters[counter as usize].fetch_add(1, Relaxed);
    }

    pub fn count_reject(&self, reason: RejectReason) {
        self.rejects[reason.index()].fetch_add(1, Relaxed);
    }

    /// Whether a dead peer is due its revival query; at most one lookup in
    /// the whole server wins each [`revival period`](revival_period).
    pub fn claim_probe(&self, now_us: u64, dead_time: Duration) -> bool {
        let due = self.next_probe_us.load(Relaxed);
        let next = now_us + revival_period(dead_time).as_micros() as u64;
        now_us >= due && self.next_probe_us.compare_exchange(due, next, Relaxed, Relaxed).is_ok()
    }

    /// A valid reply arrived after `rtt`: the peer is alive.
    pub fn record_reply(&self, opcode: Opcode, rtt: Duration, now_us: u64) -> Option<Transition> {
        if let Some(c) = Counter::for_reply(opcode) {
            self.count(c);
        }
        self.last_reply_us.store(now_us, Relaxed);
        self.silent_since_us.store(0, Relaxed);
        self.silent_lookups.store(0, Relaxed);
        // TCP's smoothing (RFC 6298): srtt += (rtt - srtt) / 8. Lost updates
        // between racing lookups only drop one sample.
        let rtt_us = rtt.as_micros().clamp(1, u32::MAX as u128) as u32;
        let old = self.srtt_us.load(Relaxed);
        let new = if old == 0 { rtt_us } else { (old as i64 + (rtt_us as i64 - old as i64) / 8).max(1) as u32 };
        self.srtt_us.store(new, Relaxed);
        (self.state.swap(ALIVE, Relaxed) == DEAD).then_some(Transition::Revived)
    }

    /// A valid reply to an earlier lookup arrived after that lookup ended
    /// (on a socket kept for reuse): the peer is alive, though too slow to
    /// count for that lookup; nothing about its RTT is learnt.
    pub fn record_late_reply(&self, now_us: u64) -> Option<Transition> {
        self.last_reply_us.store(now_us, Relaxed);
        self.silent_since_us.store(0, Relaxed);
        self.silent_lookups.store(0, Relaxed);
        (self.state.swap(ALIVE, Relaxed) == DEAD).then_some(Transition::Revived)
    }

    /// The peer's host refused the query (ICMP): nobody listens there.
    pub fn record_refused(&self, now_us: u64, dead_time: Duration) -> Option<Transition> {
        self.count(Counter::Icmp);
        self.die(now_us, dead_time, Death::Refused)
    }

    /// The peer was waited for and did not answer; `others_answered` says
    /// whether other peers answered that lookup. It dies when it has been
    /// silent in [`HUNG_AFTER`] such lookups in a row, or for `dead_time`
    /// while being asked. One lost datagram is one silent lookup: it never
    /// kills a live peer.
    pub fn record_timeout(&self, now_us: u64, dead_time: Duration, others_answered: bool) -> Option<Transition> {
        self.count(Counter::Timeouts);
        let since = match self.silent_since_us.compare_exchange(0, now_us, Relaxed, Relaxed) {
            Ok(_) => now_us,
            Err(earlier) => earlier,
        };
        let in_a_row = match others_answered {
            true => self.silent_lookups.fetch_add(1, Relaxed) + 1,
            false => self.silent_lookups.load(Relaxed),
        };
        if in_a_row >= HUNG_AFTER {
            self.die(now_us, dead_time, Death::Hung)
        } else if now_us.saturating_sub(since) >= dead_time.as_micros() as u64 {
            self.die(now_us, dead_time, Death::Silent)
        } else {
            None
        }
    }

    fn die(&self, now_us: u64, dead_time: Duration, death: Death) -> Option<Transition> {
        if self.state.swap(DEAD, Relaxed) == DEAD {
            return None;
        }
        self.silent_lookups.store(0, Relaxed);
        self.next_probe_us.store(now_us + revival_period(dead_time).as_micros() as u64, Relaxed);
        self.count(Counter::Deaths);
        Some(Transition::Died(death))
    }

    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            dead: self.is_dead(),
            srtt: self.srtt(),
            last_reply_us: Some(self.last_reply_us.load(Relaxed)).filter(|t| *t != 0),
            counters: std::array::from_fn(|i| self.counters[i].load(Relaxed)),
            rejects: std::array::from_fn(|i| self.rejects[i].load(Relaxed)),
        }
    }
}

/// Counters that belong to no single peer.
#[repr(C)]
#[derive(Default)]
pub struct ClusterSlot {
    pub lookups: AtomicU64,
    /// Lookups that ended before their timeout because every peer answered.
    pub complete: AtomicU64,
    /// Valid replies to multicast queries.
    pub multicast_replies: AtomicU64,
    /// Datagrams from addresses that are no peer.
    pub unknown_sender: AtomicU64,
    /// How many hosts answer a multicast query, as last learnt (0: not yet).
    /// Like Squid, the count is learnt by a lookup that waits its whole
    /// timeout; the others end as soon as that many have answered.
    pub multicast_responders: AtomicU32,
    /// When the count is next relearnt (µs since the epoch).
    next_multicast_count_us: AtomicU64,
    /// Whether a count has been learnt at all (it may be 0).
    multicast_learnt: AtomicU32,
    /// Lookups in a row that fell short of the count, and the most
    /// responders any of them saw.
    multicast_short: AtomicU32,
    multicast_short_most: AtomicU32,
}

impl ClusterSlot {
    /// How many multicast responders a lookup may wait for, or `None` when
    /// this lookup is the one that (re)learns the count by waiting its whole
    /// timeout: at first, and once per `every` across the whole server.
    pub fn multicast_responders_expected(&self, now_us: u64, every: Duration) -> Option<u32> {
        let learnt = self.multicast_learnt.load(Relaxed) != 0;
        let known = self.multicast_responders.load(Relaxed);
        let due = self.next_multicast_count_us.load(Relaxed);
        let relearn = !learnt || now_us >= due;
        if relearn
            && self
                .next_multicast_count_us
                .compare_exchange(due, now_us + every.as_micros() as u64, Relaxed, Relaxed)
                .is_ok()
        {
            return None;
        }
        // Another lookup is learning right now: wait the whole timeout too
        // until a count is known.
        learnt.then_some(known)
    }

    /// What a learning lookup counted.
    pub fn learn_multicast_responders(&self, responders: u32) {
        self.multicast_responders.store(responders, Relaxed);
        self.multicast_learnt.store(1, Relaxed);
        self.multicast_short.store(0, Relaxed);
        self.multicast_short_most.store(0, Relaxed);
    }

    /// A lookup that expected `expected` responders saw `seen`. After
    /// [`HUNG_AFTER`] lookups in a row that fell short (and so waited their
    /// whole timeout), the count drops to the most of them saw: a group
    /// member that died costs a few lookups, not a dead time of them.
    pub fn multicast_seen(&self, expected: u32, seen: u32) {
        if seen >= expected {
            self.multicast_short.store(0, Relaxed);
            self.multicast_short_most.store(0, Relaxed);
            return;
        }
        let most = self.multicast_short_most.fetch_max(seen, Relaxed).max(seen);
        if self.multicast_short.fetch_add(1, Relaxed) + 1 >= HUNG_AFTER {
            self.learn_multicast_responders(most);
        }
    }
}

/// The health records a lookup reads and updates: one slot per peer of its
/// cluster, in the same order, and the cluster's own counters.
#[derive(Clone, Copy)]
pub struct Health<'a> {
    pub peers: &'a [PeerSlot],
    pub cluster: &'a ClusterSlot,
}

/// Health records in ordinary memory, for one process (tests, tools).
#[derive(Default)]
pub struct LocalHealth {
    pub peers: Vec<PeerSlot>,
    pub cluster: ClusterSlot,
}

impl LocalHealth {
    pub fn new(peers: usize) -> LocalHealth {
        LocalHealth { peers: (0..peers).map(|_| PeerSlot::default()).collect(), cluster: ClusterSlot::default() }
    }

    pub fn view(&self) -> Health<'_> {
        Health { peers: &self.peers, cluster: &self.cluster }
    }
}

/// How often a dead peer is asked again: [`REVIVE_EVERY`], or the dead time
/// when that is shorter.
pub fn revival_period(dead_time: Duration) -> Duration {
    dead_time.min(REVIVE_EVERY)
}

/// Microseconds since the Unix epoch.
pub fn now_us() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEAD_TIME: Duration = Duration::from_secs(10);
    const S: u64 = 1_000_000;

    #[test]
    fn a_fresh_slot_is_alive_and_unmeasured() {
        let slot = PeerSlot::default();
        assert!(!slot.is_dead());
        assert_eq!(slot.snapshot(), Snapshot::default());
    }

    #[test]
    fn silence_kills_only_after_the_dead_time() {
        let slot = PeerSlot::default();
        assert_eq!(slot.record_timeout(100 * S, DEAD_TIME, false), None);
        assert_eq!(slot.record_timeout(105 * S, DEAD_TIME, false), None);
        assert_eq!(slot.record_timeout(110 * S, DEAD_TIME, false), Some(Transition::Died(Death::Silent)));
        assert_eq!(slot.record_timeout(111 * S, DEAD_TIME, false), None, "already dead");
        assert!(slot.is_dead());
        let snap = slot.snapshot();
        assert_eq!(snap.counters[Counter::Timeouts as usize], 4);
        assert_eq!(snap.counters[Counter::Deaths as usize], 1);
    }

    #[test]
    fn a_reply_resets_the_silence_and_revives() {
        let slot = PeerSlot::default();
        slot.record_timeout(100 * S, DEAD_TIME, false);
        slot.record_reply(Opcode::Miss, Duration::from_micros(300), 108 * S);
        assert_eq!(slot.record_timeout(112 * S, DEAD_TIME, false), None, "silent only since 112 s");
        assert_eq!(slot.record_refused(113 * S, DEAD_TIME), Some(Transition::Died(Death::Refused)));
        assert_eq!(slot.record_reply(Opcode::Hit, Duration::from_micros(300), 114 * S), Some(Transition::Revived));
        assert!(!slot.is_dead());
        let snap = slot.snapshot();
        assert_eq!(snap.counters[Counter::Icmp as usize], 1);
        assert_eq!(snap.counters[Counter::Hit as usize], 1);
        assert_eq!(snap.counters[Counter::Miss as usize], 1);
        assert_eq!(snap.last_reply_us, Some(114 * S));
    }

    #[test]
    fn a_dead_peer_gets_one_revival_query_per_second_or_dead_time() {
        let slot = PeerSlot::default();
        slot.record_refused(100 * S, DEAD_TIME);
        assert!(!slot.claim_probe(100 * S + S / 2, DEAD_TIME), "not due yet");
        assert!(slot.claim_probe(101 * S, DEAD_TIME));
        assert!(!slot.claim_probe(101 * S, DEAD_TIME), "another lookup already took it");
        assert!(slot.claim_probe(102 * S, DEAD_TIME));
        let short = PeerSlot::default();
        let quarter = Duration::from_millis(250);
        short.record_refused(100 * S, quarter);
        assert!(short.claim_probe(100 * S + S / 4, quarter), "a dead time under a second is the period");
    }

    #[test]
    fn a_hung_peer_dies_after_a_few_lookups_others_answered_and_one_loss_is_forgiven() {
        let slot = PeerSlot::default();
        assert_eq!(slot.record_timeout(100 * S, DEAD_TIME, true), None, "one lost datagram");
        slot.record_reply(Opcode::Miss, Duration::from_micros(300), 100 * S);
        assert_eq!(slot.record_timeout(101 * S, DEAD_TIME, true), None);
        assert_eq!(slot.record_timeout(101 * S, DEAD_TIME, false), None, "nobody answered: not counted");
        assert_eq!(slot.record_timeout(101 * S, DEAD_TIME, true), None);
        assert_eq!(slot.record_timeout(101 * S, DEAD_TIME, true), Some(Transition::Died(Death::Hung)));
        assert_eq!(slot.record_reply(Opcode::Miss, Duration::from_micros(300), 102 * S), Some(Transition::Revived));
        assert_eq!(slot.record_timeout(103 * S, DEAD_TIME, true), None, "the count starts again");
    }

    #[test]
    fn rtt_is_smoothed() {
        let slot = PeerSlot::default();
        slot.record_reply(Opcode::Miss, Duration::from_micros(800), S);
        assert_eq!(slot.srtt(), Some(Duration::from_micros(800)));
        slot.record_reply(Opcode::Miss, Duration::from_micros(0), S);
        assert_eq!(slot.srtt(), Some(Duration::from_micros(701)), "800 + (1 - 800) / 8, rounded toward zero");
    }

    #[test]
    fn the_multicast_count_is_learnt_then_relearnt_once_per_period() {
        let slot = ClusterSlot::default();
        assert_eq!(slot.multicast_responders_expected(100 * S, DEAD_TIME), None, "unknown: learn");
        assert_eq!(slot.multicast_responders_expected(101 * S, DEAD_TIME), None, "still unknown: wait too");
        slot.learn_multicast_responders(3);
        assert_eq!(slot.multicast_responders_expected(102 * S, DEAD_TIME), Some(3));
        assert_eq!(slot.multicast_responders_expected(111 * S, DEAD_TIME), None, "due: one lookup relearns");
        assert_eq!(slot.multicast_responders_expected(111 * S, DEAD_TIME), Some(3), "the others use the count");
    }

    #[test]
    fn a_group_that_answers_short_is_recounted_after_a_few_lookups() {
        let slot = ClusterSlot::default();
        slot.multicast_responders_expected(100 * S, DEAD_TIME);
        slot.learn_multicast_responders(3);
        slot.multicast_seen(3, 2);
        slot.multicast_seen(3, 3);
        slot.multicast_seen(3, 2);
        slot.multicast_seen(3, 1);
        assert_eq!(slot.multicast_responders_expected(101 * S, DEAD_TIME), Some(3), "two short lookups in a row");
        slot.multicast_seen(3, 2);
        assert_eq!(slot.multicast_responders_expected(101 * S, DEAD_TIME), Some(2), "the most the short ones saw");
        slot.multicast_seen(2, 0);
        slot.multicast_seen(2, 0);
        slot.multicast_seen(2, 0);
        assert_eq!(slot.multicast_responders_expected(102 * S, DEAD_TIME), Some(0), "none left: a count of 0");
    }

    #[test]
    fn rejects_are_counted_by_reason() {
        let slot = PeerSlot::default();
        slot.count_reject(RejectReason::WrongUrl);
        slot.count_reject(RejectReason::WrongUrl);
        slot.count_reject(RejectReason::TooShort);
        let snap = slot.snapshot();
        assert_eq!(snap.rejects[RejectReason::WrongUrl.index()], 2);
        assert_eq!(snap.rejects.iter().sum::<u64>(), 3);
        for (i, reason) in RejectReason::ALL.iter().enumerate() {
            assert_eq!(reason.index(), i, "ALL is in index order");
            assert!(reason.label().bytes().all(|b| b.is_ascii_lowercase() || b == b'_'));
        }
    }
}
