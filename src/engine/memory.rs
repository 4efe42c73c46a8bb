//! `ICPQueryRemember`: what lookups found, kept in shared memory so that a
//! repeat within a few seconds, in any process or thread, needs no ICP.
//!
//! Only what per-request ICP would answer the same way is kept:
//! - a HIT list (the caches that answered HIT, in reply order): the object
//!   is there until the cache evicts it, and a request sent there then has
//!   the same cache fetch it again, so no second copy is made;
//! - the member a balancer routed a MISS to (bycache): it stores the object
//!   as the request passes through, so its HIT is what ICP would find next.
//!
//! "Nobody has it" is never kept: the request it routes stores the object
//! somewhere, and a remembered MISS would send the next request for it
//! elsewhere (under a random rule, to make a second copy). Whether a
//! remembered cache is alive is checked when it is recalled, against the
//! health records, never stored.
//!
//! The table is fixed in size, made once per configuration: a key hashes
//! (keyed SipHash, so nobody can aim at one bucket) to a bucket of [`WAYS`]
//! slots; a full bucket replaces its oldest entry. Each slot holds the whole
//! key, so two URLs never share an entry, and is read and written under a
//! sequence number (a seqlock of atomics): a torn read is a miss, a
//! contended write is skipped.

use std::sync::atomic::{fence, AtomicU64, Ordering::Acquire, Ordering::Relaxed, Ordering::Release};
use std::time::Duration;

use super::health::{Counter, Health};
use super::lookup::{Outcome, Reply, Responder};
use super::sys;
use crate::icp::Opcode;

/// Longest key kept, in bytes; longer ones are looked up every time.
pub const KEY_CAPACITY: usize = 480;
const KEY_WORDS: usize = KEY_CAPACITY / 8;
/// Slots per bucket: a flood of distinct keys evicts, never searches more.
pub const WAYS: usize = 4;
/// Peers a cluster may have for its answers to be kept (a bit each).
pub const MAX_PEERS: usize = 64;
/// HITs kept per answer, in reply order.
pub const MAX_HITS: usize = 8;
/// `ICPQueryRemember`'s default table size.
pub const DEFAULT_ENTRIES: usize = 16_384;

/// The table's own record: its hash key and counters.
#[repr(C)]
#[derive(Default)]
pub struct MemoryHeader {
    key: [AtomicU64; 2],
    /// Lookups answered from memory (a kept answer naming a live cache).
    pub recalled: AtomicU64,
    /// Answers stored (new or refreshed).
    pub stored: AtomicU64,
    /// Live answers replaced by newer ones in a full bucket.
    pub evicted: AtomicU64,
}

/// One remembered answer.
#[repr(C)]
pub struct AnswerSlot {
    /// Even: stable; odd: being written. 0: never written.
    seq: AtomicU64,
    hash: AtomicU64,
    stored_us: AtomicU64,
    /// Key length (low 16 bits) and number of HITs (next 8).
    lengths: AtomicU64,
    /// Up to [`MAX_HITS`] peer indices, a byte each, in reply order.
    hits: AtomicU64,
    /// A bit per peer that answered at all.
    answered: AtomicU64,
    key: [AtomicU64; KEY_WORDS],
}

impl Default for AnswerSlot {
    fn default() -> Self {
        AnswerSlot {
            seq: AtomicU64::new(0),
            hash: AtomicU64::new(0),
            stored_us: AtomicU64::new(0),
            lengths: AtomicU64::new(0),
            hits: AtomicU64::new(0),
            answered: AtomicU64::new(0),
            key: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

/// An answer as it was stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// Peers (indices) that answered HIT, in reply order.
    pub hits: Vec<usize>,
    /// A bit per peer that answered at all.
    pub answered: u64,
}

/// What storing did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stored {
    /// In a free or expired slot, or over the key's own older answer.
    Kept,
    /// Over another key's live answer (the bucket was full).
    Evicted,
    /// Not kept: the key is too long, the answer names a peer past
    /// [`MAX_PEERS`], or another process was writing the slot.
    Skipped,
}

/// A view of one table.
#[derive(Clone, Copy)]
pub struct Memory<'a> {
    pub header: &'a MemoryHeader,
    pub slots: &'a [AnswerSlot],
}

/// A table and how long its answers stay good: what a lookup remembers with.
#[derive(Clone, Copy)]
pub struct Remember<'a> {
    pub memory: Memory<'a>,
    pub keep: Duration,
}

impl Remember<'_> {
    /// The remembered answer for `url`, as the outcome of a lookup that
    /// sent nothing: its HITs at caches that are not dead now, in the order
    /// they answered, and the other caches that answered then and are not
    /// dead now. `None` (ask the caches) when nothing young is kept or every
    /// cache it names has died since.
    pub fn recall(&self, health: Health<'_>, url: &[u8], now_us: u64) -> Option<Outcome> {
        let (answer, age) = self.memory.recall(url, now_us, self.keep)?;
        let alive = |p: usize| health.peers.get(p).is_some_and(|slot| !slot.is_dead());
        let hits: Vec<usize> = answer.hits.iter().copied().filter(|&p| alive(p)).collect();
        if hits.is_empty() {
            return None;
        }
        let reply = |p: usize, opcode: Opcode| Reply { responder: Responder::Peer(p), opcode, rtt: Duration::ZERO };
        let mut replies: Vec<Reply> = hits.iter().map(|&p| reply(p, Opcode::Hit)).collect();
        let others = (0..health.peers.len().min(MAX_PEERS)).filter(|&p| answer.answered & 1 << p != 0);
        replies.extend(others.filter(|p| alive(*p) && !hits.contains(p)).map(|p| reply(p, Opcode::Miss)));
        self.memory.header.recalled.fetch_add(1, Relaxed);
        for &p in &hits {
            health.peers[p].count(Counter::Remembered);
        }
        Some(Outcome { replies, complete: true, from_memory: Some(age), ..Outcome::default() })
    }

    /// Keeps what a lookup found, if it is worth keeping (see the module
    /// notes): its HITs at configured caches, in reply order.
    pub fn store(&self, url: &[u8], outcome: &Outcome, now_us: u64) -> Option<Stored> {
        let peer = |r: &Reply| match r.responder {
            Responder::Peer(p) => Some(p),
            Responder::Multicast(_) => None,
        };
        let hits: Vec<usize> = outcome.replies.iter().filter(|r| r.opcode.is_hit()).filter_map(peer).collect();
        if hits.is_empty() || outcome.from_memory.is_some() {
            return None;
        }
        let answered = outcome.replies.iter().filter_map(peer).filter(|&p| p < MAX_PEERS).fold(0, |m, p| m | 1 << p);
        Some(self.memory.remember(url, &Answer { hits, answered }, now_us, self.keep))
    }

    /// Keeps `peer` as the holder of `url`: a request is on its way there
    /// and the cache stores the object as it passes (bycache's choice of
    /// the CARP owner for an object nobody had).
    pub fn store_holder(&self, url: &[u8], peer: usize, now_us: u64) -> Stored {
        let answered = if peer < MAX_PEERS { 1 << peer } else { 0 };
        self.memory.remember(url, &Answer { hits: vec![peer], answered }, now_us, self.keep)
    }
}

/// The number of slots for `entries` answers: whole buckets, at least one.
pub fn slots_for(entries: usize) -> usize {
    entries.div_ceil(WAYS).max(1) * WAYS
}

impl<'a> Memory<'a> {
    /// Gives a new table an unguessable hash key (in the process that made
    /// it, before any other uses it).
    pub fn init_random(&self) {
        let word = || u64::from(sys::random_u32()) << 32 | u64::from(sys::random_u32());
        self.init([word(), word()]);
    }

    pub fn init(&self, key: [u64; 2]) {
        self.header.key[0].store(key[0], Relaxed);
        self.header.key[1].store(key[1], Relaxed);
    }

    fn bucket(&self, key: &[u8]) -> (u64, &'a [AnswerSlot]) {
        let k = [self.header.key[0].load(Relaxed), self.header.key[1].load(Relaxed)];
        let hash = siphash13(k, key);
        let buckets = self.slots.len() / WAYS;
        let first = (hash % buckets as u64) as usize * WAYS;
        (hash, &self.slots[first..first + WAYS])
    }

    /// The answer stored for `key` at most `max_age` before `now_us`.
    pub fn recall(&self, key: &[u8], now_us: u64, max_age: Duration) -> Option<(Answer, Duration)> {
        if key.len() > KEY_CAPACITY || self.slots.len() < WAYS {
            return None;
        }
        let (hash, bucket) = self.bucket(key);
        let words = pack(key);
        // The youngest, should two processes have stored the key at once.
        let (stored_us, answer) =
            bucket.iter().filter_map(|slot| slot.read(hash, key.len(), &words)).max_by_key(|(stored, _)| *stored)?;
        let age = Duration::from_micros(now_us.saturating_sub(stored_us));
        (age <= max_age).then_some((answer, age))
    }

    /// Stores `answer` for `key` at `now_us`; answers older than `max_age`
    /// count as free slots.
    pub fn remember(&self, key: &[u8], answer: &Answer, now_us: u64, max_age: Duration) -> Stored {
        let peers_fit = answer.hits.iter().all(|&p| p < MAX_PEERS);
        if key.len() > KEY_CAPACITY || !peers_fit || self.slots.len() < WAYS {
            return Stored::Skipped;
        }
        let (hash, bucket) = self.bucket(key);
        let words = pack(key);
        if bucket.iter().any(|s| s.seq.load(Relaxed) % 2 == 1 && s.hash.load(Relaxed) == hash) {
            return Stored::Skipped; // another process is storing this key now
        }
        let expired = |slot: &AnswerSlot| {
            let stored = slot.stored_us.load(Relaxed);
            stored == 0 || now_us.saturating_sub(stored) > max_age.as_micros() as u64
        };
        let (slot, stored) = match bucket.iter().find(|s| s.read(hash, key.len(), &words).is_some()) {
            Some(own) => (own, Stored::Kept),
            None => match bucket.iter().find(|s| expired(s)) {
                Some(free) => (free, Stored::Kept),
                None => {
                    let oldest = bucket.iter().min_by_key(|s| s.stored_us.load(Relaxed)).expect("WAYS > 0");
                    (oldest, Stored::Evicted)
                }
            },
        };
        if !slot.write(hash, &words, key.len(), answer, now_us) {
            return Stored::Skipped;
        }
        self.header.stored.fetch_add(1, Relaxed);
        if stored == Stored::Evicted {
            self.header.evicted.fetch_add(1, Relaxed);
        }
        stored
    }
}

impl AnswerSlot {
    /// The slot's time and answer if it holds `key` (with `hash`, `len`
    /// bytes, packed in `words`) and was not being written meanwhile.
    fn read(&self, hash: u64, len: usize, words: &[u64; KEY_WORDS]) -> Option<(u64, Answer)> {
        let seq = self.seq.load(Acquire);
        if seq == 0 || seq % 2 == 1 || self.hash.load(Relaxed) != hash {
            return None;
        }
        let lengths = self.lengths.load(Relaxed);
        if (lengths & 0xffff) as usize != len {
            return None;
        }
        let used = len.div_ceil(8);
        if (0..used).any(|i| self.key[i].load(Relaxed) != words[i]) {
            return None;
        }
        let stored_us = self.stored_us.load(Relaxed);
        let hit_count = ((lengths >> 16) & 0xff) as usize;
        let hit_bytes = self.hits.load(Relaxed).to_le_bytes();
        let answered = self.answered.load(Relaxed);
        fence(Acquire);
        if self.seq.load(Relaxed) != seq {
            return None; // written while read: a miss, never a torn answer
        }
        let hits = hit_bytes[..hit_count.min(MAX_HITS)].iter().map(|&b| usize::from(b)).collect();
        Some((stored_us, Answer { hits, answered }))
    }

    /// Writes an answer, unless another process is writing this slot.
    fn write(&self, hash: u64, words: &[u64; KEY_WORDS], len: usize, answer: &Answer, now_us: u64) -> bool {
        let seq = self.seq.load(Relaxed);
        if seq % 2 == 1 || self.seq.compare_exchange(seq, seq + 1, Acquire, Relaxed).is_err() {
            return false;
        }
        let hits = answer.hits.len().min(MAX_HITS);
        let mut hit_bytes = [0u8; 8];
        for (b, &p) in hit_bytes.iter_mut().zip(&answer.hits) {
            *b = p as u8;
        }
        self.hash.store(hash, Relaxed);
        self.stored_us.store(now_us.max(1), Relaxed);
        self.lengths.store(len as u64 | (hits as u64) << 16, Relaxed);
        self.hits.store(u64::from_le_bytes(hit_bytes), Relaxed);
        self.answered.store(answer.answered, Relaxed);
        for (slot, &word) in self.key.iter().zip(words.iter()).take(len.div_ceil(8)) {
            slot.store(word, Relaxed);
        }
        self.seq.store(seq + 2, Release);
        true
    }
}

/// `key` as little-endian words, zero-padded.
fn pack(key: &[u8]) -> [u64; KEY_WORDS] {
    let mut words = [0u64; KEY_WORDS];
    for (word, chunk) in words.iter_mut().zip(key.chunks(8)) {
        let mut bytes = [0u8; 8];
        bytes[..chunk.len()].copy_from_slice(chunk);
        *word = u64::from_le_bytes(bytes);
    }
    words
}

/// SipHash-1-3 of `data` under `key` (the standard library's hash, whose
/// keyed form it does not expose for a key shared by processes).
pub fn siphash13(key: [u64; 2], data: &[u8]) -> u64 {
    let mut v = [
        key[0] ^ 0x736f_6d65_7073_6575,
        key[1] ^ 0x646f_7261_6e64_6f6d,
        key[0] ^ 0x6c79_6765_6e65_7261,
        key[1] ^ 0x7465_6462_7974_6573,
    ];
    fn round(v: &mut [u64; 4]) {
        v[0] = v[0].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(13) ^ v[0];
        v[0] = v[0].rotate_left(32);
        v[2] = v[2].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(16) ^ v[2];
        v[0] = v[0].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(21) ^ v[0];
        v[2] = v[2].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(17) ^ v[2];
        v[2] = v[2].rotate_left(32);
    }
    let mut compress = |m: u64| {
        v[3] ^= m;
        round(&mut v);
        v[0] ^= m;
    };
    let mut chunks = data.chunks_exact(8);
    for chunk in &mut chunks {
        compress(u64::from_le_bytes(chunk.try_into().expect("8 bytes")));
    }
    let rest = chunks.remainder();
    let mut last = [0u8; 8];
    last[..rest.len()].copy_from_slice(rest);
    compress(u64::from_le_bytes(last) | (data.len() as u64) << 56);
    v[2] ^= 0xff;
    for _ in 0..3 {
        round(&mut v);
    }
    v[0] ^ v[1] ^ v[2] ^ v[3]
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000;
    const KEEP: Duration = Duration::from_secs(5);

    struct Table {
        header: MemoryHeader,
        slots: Vec<AnswerSlot>,
    }

    fn table(entries: usize) -> Table {
        let t = Table {
            header: MemoryHeader::default(),
            slots: (0..slots_for(entries)).map(|_| AnswerSlot::default()).collect(),
        };
        t.view().init([0x0123_4567_89ab_cdef, 0xfedc_ba98_7654_3210]);
        t
    }

    impl Table {
        fn view(&self) -> Memory<'_> {
            Memory { header: &self.header, slots: &self.slots }
        }
    }

    fn hit(peers: &[usize]) -> Answer {
        Answer { hits: peers.to_vec(), answered: peers.iter().fold(0, |m, &p| m | 1 << p) }
    }

    #[test]
    fn an_answer_is_recalled_only_for_its_own_key_and_while_young() {
        let t = table(64);
        let m = t.view();
        assert_eq!(m.remember(b"http://localhost/a", &hit(&[2, 0]), 100 * S, KEEP), Stored::Kept);
        let (answer, age) = m.recall(b"http://localhost/a", 103 * S, KEEP).unwrap();
        assert_eq!((answer, age), (hit(&[2, 0]), Duration::from_secs(3)));
        assert_eq!(m.recall(b"http://localhost/a", 106 * S, KEEP), None, "too old");
        assert_eq!(m.recall(b"http://localhost/b", 101 * S, KEEP), None, "another key");
        assert_eq!(m.recall(b"http://localhost/a2", 101 * S, KEEP), None, "a longer key");
        assert_eq!(m.remember(b"http://localhost/a", &hit(&[1]), 104 * S, KEEP), Stored::Kept, "refreshed in place");
        assert_eq!(m.recall(b"http://localhost/a", 105 * S, KEEP).unwrap().0, hit(&[1]));
        assert_eq!(t.header.stored.load(Relaxed), 2);
    }

    #[test]
    fn keys_that_cannot_be_kept_are_skipped() {
        let t = table(8);
        let long = vec![b'x'; KEY_CAPACITY + 1];
        assert_eq!(t.view().remember(&long, &hit(&[0]), S, KEEP), Stored::Skipped);
        assert_eq!(t.view().recall(&long, S, KEEP), None);
        assert_eq!(t.view().remember(b"k", &hit(&[64]), S, KEEP), Stored::Skipped);
        let exact = vec![b'y'; KEY_CAPACITY];
        assert_eq!(t.view().remember(&exact, &hit(&[0]), S, KEEP), Stored::Kept);
        assert_eq!(t.view().recall(&exact, S, KEEP).unwrap().0, hit(&[0]));
    }

    #[test]
    fn a_flood_of_distinct_keys_only_evicts_and_recent_answers_survive_in_other_buckets() {
        let t = table(1024);
        let m = t.view();
        for n in 0..100_000u64 {
            let key = format!("http://localhost/flood/{n}");
            assert_ne!(m.remember(key.as_bytes(), &hit(&[(n % 3) as usize]), S + n, KEEP), Stored::Skipped);
        }
        assert_eq!(t.slots.len(), 1024, "the table never grows");
        let evicted = t.header.evicted.load(Relaxed);
        assert_eq!(evicted, 100_000 - 1024, "every store past the table's size evicted one live answer");
        // The most recent answers are the ones kept.
        let recent = (99_000..100_000u64).filter(|n| {
            let key = format!("http://localhost/flood/{n}");
            m.recall(key.as_bytes(), S + 100_000, KEEP).is_some_and(|(a, _)| a == hit(&[(n % 3) as usize]))
        });
        assert!(recent.count() > 700, "most of the last thousand are still there");
        for n in 0..1_000u64 {
            let key = format!("http://localhost/flood/{n}");
            assert_eq!(m.recall(key.as_bytes(), S + 100_000, KEEP), None, "the oldest were evicted");
        }
    }

    #[test]
    fn a_slot_being_written_reads_as_a_miss_and_is_not_written_twice() {
        let t = table(4);
        let m = t.view();
        m.remember(b"k", &hit(&[1]), S, KEEP);
        let (hash, bucket) = m.bucket(b"k");
        let slot = bucket.iter().find(|s| s.hash.load(Relaxed) == hash).unwrap();
        slot.seq.fetch_add(1, Relaxed); // another process is writing it
        assert_eq!(m.recall(b"k", S, KEEP), None);
        assert_eq!(m.remember(b"k", &hit(&[2]), S, KEEP), Stored::Skipped);
        slot.seq.fetch_add(1, Relaxed);
        assert_eq!(m.recall(b"k", S, KEEP).unwrap().0, hit(&[1]));
    }

    #[test]
    fn hits_past_the_limit_are_cut_and_order_is_kept() {
        let t = table(4);
        let many: Vec<usize> = (0..12).rev().collect();
        t.view().remember(b"k", &hit(&many), S, KEEP);
        assert_eq!(t.view().recall(b"k", S, KEEP).unwrap().0.hits, &many[..MAX_HITS]);
    }

    /// The standard library's `DefaultHasher` is SipHash-1-3 with a zero
    /// key (its algorithm is documented as unspecified: should it change,
    /// replace this with fixed vectors).
    #[test]
    fn siphash13_agrees_with_the_standard_librarys() {
        use std::hash::Hasher;
        for n in 0..40u8 {
            let data: Vec<u8> = (0..n).collect();
            let mut h = std::collections::hash_map::DefaultHasher::new();
            h.write(&data);
            assert_eq!(siphash13([0, 0], &data), h.finish(), "{n} bytes");
        }
    }
}
