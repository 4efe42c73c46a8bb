//! CARP, the Cache Array Routing Protocol: which member of an array of
//! caches owns a URL, by hashing alone (no query, no state).
//!
//! Pure arithmetic: no I/O, no clock. Two variants:
//!
//! - [`Variant::Squid`] (the default) is what Squid 3.3 and later do in
//!   `src/carp.cc` (checked against Squid 5.7, 6.14 and master). Since the
//!   `carp-key` option arrived (commit de03b596, 2011, first released in
//!   3.3), Squid computes the URL hash inside its loop over the members and
//!   never resets it: member k (1-based, in array order) sees the hash of the
//!   key repeated k times, not the hash of the key.
//! - [`Variant::Draft`] hashes the URL once, as draft-vinod-carp-v1-03 §3.1
//!   says and as Squid up to 3.2 did. Everything else is the same in both:
//!   they share Squid's arithmetic (below), which is the draft's.
//!
//! Squid's details kept here, because they decide which member wins:
//! - Bytes are added to the hash as C `char`s, which are signed on x86: a
//!   byte ≥ 0x80 is sign-extended (0xE9 adds 0xFFFF_FFE9, not 0xE9). Squid
//!   on a platform with unsigned `char` (ARM) hashes such keys differently.
//! - Members are ordered by weight, ascending, keeping configuration order
//!   among equal weights (Squid sorts with `qsort`; glibc's, Debian 12's
//!   2.36 included, is a merge sort whenever it can allocate its buffer,
//!   which keeps equal elements in order; Squid 5.7 was seen doing so).
//!   That order is the draft's "smallest P_k to the largest"
//!   (§3.3), and with [`Variant::Squid`] it also decides how many times each
//!   member's URL hash has absorbed the key.
//! - Multipliers and scores are `f64` with Squid's operations in Squid's
//!   order (the draft asks for 32-bit floats; Squid, the implementation that
//!   matters here, never used them).
//! - A load factor below 0.1% is set to 0 (Squid's rule, not the draft's).
//!   The multiplier formula then yields 0 for that member, +inf for the next
//!   and NaN after it, so that next member wins every URL. Squid really
//!   routes like that; so do we.
//! - The winner is the eligible member with the highest score above 0.
//!   Squid keeps its candidate unless a later member scores strictly more,
//!   so equal scores go to the earlier member in array order, and a score
//!   of 0 or NaN never wins.

use std::fmt;
use std::str::FromStr;

/// Which URL hash: Squid's accumulating one or the draft's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Variant {
    /// Squid ≥ 3.3: the URL hash runs on across members.
    #[default]
    Squid,
    /// draft-vinod-carp-v1-03 (and Squid ≤ 3.2): one URL hash for all.
    Draft,
}

impl Variant {
    pub fn name(self) -> &'static str {
        match self {
            Variant::Squid => "squid",
            Variant::Draft => "draft",
        }
    }
}

impl fmt::Display for Variant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A variant name other than `squid` or `draft`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown CARP variant {0:?} (expected \"squid\" or \"draft\")")]
pub struct UnknownVariant(pub String);

impl FromStr for Variant {
    type Err = UnknownVariant;

    fn from_str(s: &str) -> Result<Variant, UnknownVariant> {
        if s.eq_ignore_ascii_case("squid") {
            Ok(Variant::Squid)
        } else if s.eq_ignore_ascii_case("draft") {
            Ok(Variant::Draft)
        } else {
            Err(UnknownVariant(s.to_string()))
        }
    }
}

/// One cache as configured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Member<'a> {
    /// The string hashed: Squid hashes the `cache_peer` `name=` (which
    /// defaults to the host exactly as written), byte for byte, no case
    /// folding.
    pub name: &'a str,
    /// Load factor, relative to the others. 0 leaves the member out of the
    /// array (Squid's `carpInit` skips weight 0; its config parser turns
    /// `weight=0` into 1, so there it never happens).
    pub weight: u32,
}

/// A member of the array, with what is precomputed for it.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// Position in the members given to [`Array::new`].
    pub index: usize,
    /// Hash of the name (draft §3.1, member hash).
    pub hash: u32,
    /// weight / sum of weights, or 0 below 0.1% (Squid's rule).
    pub load_factor: f64,
    /// The load factor multiplier X_k (draft §3.3).
    pub multiplier: f64,
}

/// The members that take part (weight > 0), in the order Squid evaluates
/// them, with their hashes and multipliers.
#[derive(Clone, Debug, PartialEq)]
pub struct Array {
    variant: Variant,
    entries: Vec<Entry>,
}

/// Spreads member hashes and combined hashes (draft §3.1, §3.2; Squid's
/// carp.cc uses the same constant).
const SPREAD: u32 = 0x6253_1965;

/// Runs the draft's §3.1 string hash on from `hash` over `bytes`:
/// `hash += rotl(hash, 19) + c` for each byte. `c` is sign-extended, as
/// Squid's `*c` of a `const char *` is on x86 (see the module notes).
fn absorb(mut hash: u32, bytes: &[u8]) -> u32 {
    for &b in bytes {
        hash = hash.wrapping_add(hash.rotate_left(19)).wrapping_add(b as i8 as u32);
    }
    hash
}

/// `h += h * 0x62531965; h = rotl(h, 21)`: the final spreading step of the
/// member hash (§3.1) and of the combination (§3.2).
fn spread(h: u32) -> u32 {
    h.wrapping_add(h.wrapping_mul(SPREAD)).rotate_left(21)
}

/// Member hash (draft §3.1; Squid's carpInit).
pub fn member_hash(name: &[u8]) -> u32 {
    spread(absorb(0, name))
}

/// URL hash combined with a member hash (draft §3.2; Squid's
/// carpSelectParent).
pub fn combine(url_hash: u32, member_hash: u32) -> u32 {
    spread(url_hash ^ member_hash)
}

impl Array {
    /// Build the array from `members` (weight-0 members left out); indices
    /// in [`owner`](Array::owner) and [`scores`](Array::scores) refer to
    /// `members`. The same members in the same order give the same array.
    pub fn new(members: &[Member<'_>], variant: Variant) -> Array {
        // Sum in u64: no overflow, and exact in f64 for any realistic count.
        let total: u64 = members.iter().map(|m| u64::from(m.weight)).sum();
        let mut entries: Vec<Entry> = members
            .iter()
            .enumerate()
            .filter(|(_, m)| m.weight > 0)
            .map(|(index, m)| {
                // As Squid's carpInit: weight / W in double, and a share
                // that rounds to under one per mille counts as none.
                let mut load_factor = f64::from(m.weight) / total as f64;
                if (load_factor * 1000.0).floor() == 0.0 {
                    load_factor = 0.0;
                }
                Entry { index, hash: member_hash(m.name.as_bytes()), load_factor, multiplier: 0.0 }
            })
            .collect();
        // Ascending weight; stable, as Squid's qsort is with glibc.
        entries.sort_by_key(|e| members[e.index].weight);

        // Draft §3.3, in Squid's arrangement of the loop (X_0 = 0 and an
        // empty product 1, so X_1 needs no special case):
        //   X_k = ( (K-k+1)(P_k - P_{k-1}) / (X_1 ⋯ X_{k-1}) + X_{k-1}^(K-k+1) )^(1/(K-k+1))
        let k_total = entries.len();
        let (mut p_last, mut x_last, mut product) = (0.0f64, 0.0f64, 1.0f64);
        for (k0, e) in entries.iter_mut().enumerate() {
            let kk1 = (k_total - k0) as f64; // K - k + 1 with k = k0 + 1
            let mut x = (kk1 * (e.load_factor - p_last)) / product;
            x += x_last.powf(kk1);
            x = x.powf(1.0 / kk1);
            product *= x;
            x_last = x;
            p_last = e.load_factor;
            e.multiplier = x;
        }
        Array { variant, entries }
    }

    pub fn variant(&self) -> Variant {
        self.variant
    }

    /// The members taking part, in evaluation order (ascending weight).
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Calls `each` with every entry, its combined hash and its score for
    /// `url`, in evaluation order.
    fn evaluate(&self, url: &[u8], mut each: impl FnMut(&Entry, u32, f64)) {
        let once = match self.variant {
            Variant::Draft => absorb(0, url),
            Variant::Squid => 0,
        };
        let mut running = 0u32;
        for e in &self.entries {
            let url_hash = match self.variant {
                Variant::Draft => once,
                // Squid >= 3.3: the hash is never reset between members.
                Variant::Squid => {
                    running = absorb(running, url);
                    running
                }
            };
            let combined = combine(url_hash, e.hash);
            // As Squid: the 32-bit combined hash converted to double, times
            // the multiplier (draft §3.3 "Resultant_value").
            each(e, combined, f64::from(combined) * e.multiplier);
        }
    }

    /// The member that owns `url`: the highest score among the members
    /// `eligible` accepts (e.g. the running ones), ties to the earlier one in
    /// evaluation order, as Squid's carpSelectParent. `eligible` is asked
    /// only about a member whose score would beat the best so far, as Squid
    /// asks peerHTTPOkay. `None` when no eligible member has a score above 0
    /// (or the array is empty).
    pub fn owner(&self, url: &[u8], eligible: impl Fn(usize) -> bool) -> Option<usize> {
        let mut best = None;
        let mut high = 0.0f64;
        self.evaluate(url, |e, _, score| {
            if score > high && eligible(e.index) {
                best = Some(e.index);
                high = score;
            }
        });
        best
    }

    /// The members that can own `url`, best first: the owner, then the one
    /// that owns it once the owner is not eligible, and so on, as
    /// [`owner`](Array::owner) picks them. Members scoring 0 or NaN never
    /// appear (no eligibility makes them owners).
    pub fn preference(&self, url: &[u8]) -> Vec<usize> {
        let mut scored: Vec<(usize, f64)> = Vec::with_capacity(self.entries.len());
        self.evaluate(url, |e, _, score| {
            if score > 0.0 {
                scored.push((e.index, score));
            }
        });
        // Stable: equal scores keep evaluation order, as owner() breaks ties.
        scored.sort_by(|a, b| b.1.total_cmp(&a.1));
        scored.into_iter().map(|(i, _)| i).collect()
    }

    /// Every member's score for `url` as (index into the members given to
    /// `new`, score), in evaluation order (the order ties are broken in).
    pub fn scores(&self, url: &[u8]) -> Vec<(usize, f64)> {
        let mut out = Vec::with_capacity(self.entries.len());
        self.evaluate(url, |e, _, score| out.push((e.index, score)));
        out
    }
}

#[cfg(test)]
mod tests {
    //! Fixed vectors, obtained independently of this code in two ways that
    //! agree to the last bit:
    //!
    //! 1. Squid 5.7 (Debian 12, amd64, package 5.7-2+deb12u6), run as an
    //!    accelerator (`http_port … accel defaultsite=localhost no-vhost`,
    //!    `cache deny all`, `never_direct allow all`) in front of three
    //!    loopback origins, one `cache_peer <ip> parent 8001 0 carp no-query
    //!    no-digest originserver name=<name> weight=<w>` each, in the order
    //!    listed below. Member hashes, multipliers and load factors are its
    //!    cache manager `carp` report (multipliers there have 6 decimals);
    //!    combined hashes are its `debug_options 39,3` lines ("key=<url>
    //!    name=<name> combined_hash=<n> score=<s>", scores rounded to an
    //!    integer), for requests whose raw request-target bytes are the URL
    //!    path shown (Squid keeps bytes ≥ 0x80 raw in the key).
    //! 2. A separate Python 3 model written from Squid's carp.cc and the
    //!    draft: ints masked to 32 bits, each byte b ≥ 0x80 added as b - 256
    //!    (x86 `char`), floats as IEEE doubles, `math.pow` (C `pow`), stable
    //!    `list.sort` by weight. It gives the exact doubles below (`repr`)
    //!    and, for URLs Squid ≥ 3.3 no longer hashes that way, the draft's
    //!    combined hashes (hash the URL once, combine with every member).

    use super::*;

    const fn m(name: &str, weight: u32) -> Member<'_> {
        Member { name, weight }
    }

    /// Combined hashes and owner for `url`, evaluation order.
    fn combined(array: &Array, url: &[u8]) -> (Vec<u32>, Option<usize>) {
        let mut out = Vec::new();
        array.evaluate(url, |_, c, _| out.push(c));
        (out, array.owner(url, |_| true))
    }

    fn order(array: &Array) -> Vec<usize> {
        array.entries().iter().map(|e| e.index).collect()
    }

    // Set 1: configuration order carp-b (3), carp-a (1), carp-c (2).
    const SET1: [Member<'static>; 3] = [m("carp-b", 3), m("carp-a", 1), m("carp-c", 2)];

    #[test]
    fn set1_member_hashes_and_multipliers_match_squid_5_7() {
        let a = Array::new(&SET1, Variant::Squid);
        // Evaluation order: ascending weight.
        assert_eq!(order(&a), [1, 2, 0]);
        let want = [
            // Squid mgr:carp: carp-a f40f4586 0.793701 0.166667,
            // carp-c 4d87da4d 1.024663 0.333333, carp-b 20db8fea 1.229596 0.500000.
            (1, 0xf40f_4586, 1.0 / 6.0, 0.7937005259840998),
            (2, 0x4d87_da4d, 1.0 / 3.0, 1.0246629730041619),
            (0, 0x20db_8fea, 0.5, 1.2295955676049943),
        ];
        for (e, (index, hash, lf, x)) in a.entries().iter().zip(want) {
            assert_eq!((e.index, e.hash, e.load_factor, e.multiplier), (index, hash, lf, x));
        }
        // The draft variant differs only in the URL hash.
        assert_eq!(Array::new(&SET1, Variant::Draft).entries(), a.entries());
    }

    #[test]
    fn set1_url_scores_match_squid_5_7_and_the_draft_model() {
        let url = b"http://localhost/carp/1?k=1";
        let squid = Array::new(&SET1, Variant::Squid);
        // Squid 5.7: carp-a 1771870281 (score 1406334374), carp-c 3347867814
        // (3430436188), carp-b 394474252 (485043792); "selected carp-c".
        assert_eq!(combined(&squid, url), (vec![1_771_870_281, 3_347_867_814, 394_474_252], Some(2)));
        assert_eq!(squid.scores(url), [(1, 1406334374.0052948), (2, 3430436187.518184), (0, 485043791.7934956)]);
        // Draft: the first member sees the same URL hash in both variants.
        let draft = Array::new(&SET1, Variant::Draft);
        assert_eq!(combined(&draft, url), (vec![1_771_870_281, 1_390_140_598, 1_788_820_934], Some(0)));
        assert_eq!(draft.scores(url), [(1, 1406334374.0052948), (2, 1424425598.0404634), (0, 2199526291.685426)]);
    }

    // Set 2: names with bytes ≥ 0x80 (UTF-8) and two equal weights, in
    // configuration order "Ünïcøde" (2), "cachée" (1), "cache-a" (1).
    const SET2: [Member<'static>; 3] = [m("Ünïcøde", 2), m("cachée", 1), m("cache-a", 1)];

    #[test]
    fn set2_non_ascii_names_and_equal_weights_match_squid_5_7() {
        let a = Array::new(&SET2, Variant::Squid);
        // Equal weights keep configuration order (Squid's debug lines list
        // cachée before cache-a).
        assert_eq!(order(&a), [1, 2, 0]);
        // Squid mgr:carp: Ünïcøde d017b30c 1.211414 0.500000, cachée 224dcb0a
        // 0.908560 0.250000, cache-a 33dc6ff7 0.908560 0.250000.
        let want = [
            (1, 0x224d_cb0a, 0.25, 0.9085602964160698),
            (2, 0x33dc_6ff7, 0.25, 0.9085602964160698),
            (0, 0xd017_b30c, 0.5, 1.2114137285547597),
        ];
        for (e, (index, hash, lf, x)) in a.entries().iter().zip(want) {
            assert_eq!((e.index, e.hash, e.load_factor, e.multiplier), (index, hash, lf, x));
        }
    }

    /// Key, Squid 5.7's combined hashes and owner, the draft model's.
    type Case = (&'static [u8], [u32; 3], usize, [u32; 3], usize);

    #[test]
    fn set2_keys_with_bytes_above_0x7f_match_squid_5_7() {
        let squid = Array::new(&SET2, Variant::Squid);
        let draft = Array::new(&SET2, Variant::Draft);
        let cases: [Case; 4] = [
            // Request-target "/caf\xc3\xa9" (UTF-8 "é").
            (
                b"http://localhost/caf\xc3\xa9",
                [664_436_456, 3_768_219_102, 3_772_008_315],
                0,
                [664_436_456, 1_162_793_599, 2_166_208_408],
                0,
            ),
            // Request-target "/\xff\x80?q=\xe9": not UTF-8, still raw.
            (
                b"http://localhost/\xff\x80?q=\xe9",
                [1_779_015_675, 1_968_294_857, 2_882_590_178],
                0,
                [1_779_015_675, 1_338_055_235, 1_988_915_668],
                0,
            ),
            (
                b"http://localhost/plain?k=1",
                [4_057_558_911, 4_190_933_067, 1_656_939_524],
                2,
                [4_057_558_911, 1_209_244_313, 2_555_512_843],
                1,
            ),
            // Percent-encoded stays as sent: a different key from the raw one.
            (
                b"http://localhost/x/%C3%A9",
                [1_828_741_744, 227_693_225, 1_791_038_202],
                0,
                [1_828_741_744, 1_289_288_475, 327_934_256],
                1,
            ),
        ];
        for (url, sq, sq_owner, dr, dr_owner) in cases {
            let shown = String::from_utf8_lossy(url);
            assert_eq!(combined(&squid, url), (sq.to_vec(), Some(sq_owner)), "squid {shown}");
            assert_eq!(combined(&draft, url), (dr.to_vec(), Some(dr_owner)), "draft {shown}");
        }
        // Squid's rounded scores for the first key: 603680583, 3423654264,
        // 4569462657.
        let scores = squid.scores(b"http://localhost/caf\xc3\xa9");
        let rounded: Vec<String> = scores.iter().map(|(_, s)| format!("{s:.0}")).collect();
        assert_eq!(rounded, ["603680583", "3423654264", "4569462657"]);
    }

    #[test]
    fn bytes_above_0x7f_are_sign_extended_like_x86_char() {
        // One byte from 0: 0 + rotl(0, 19) + c.
        assert_eq!(absorb(0, b"\x7f"), 0x7f);
        assert_eq!(absorb(0, b"\x80"), 0xffff_ff80);
        assert_eq!(absorb(0, b"\xff"), 0xffff_ffff);
        assert_eq!(absorb(0, "é".as_bytes()), absorb(absorb(0, b"\xc3"), b"\xa9"));
        // Treating bytes as unsigned would give another member hash than
        // the one Squid 5.7 reports for "Ünïcøde" (d017b30c).
        let unsigned =
            "Ünïcøde".bytes().fold(0u32, |h, b| h.wrapping_add(h.rotate_left(19)).wrapping_add(u32::from(b)));
        assert_ne!(spread(unsigned), 0xd017_b30c);
        assert_eq!(member_hash("Ünïcøde".as_bytes()), 0xd017_b30c);
        // ASCII is unaffected: both readings agree.
        assert_eq!(member_hash(b"carp-a"), 0xf40f_4586);
    }

    #[test]
    fn weights_are_normalised_so_only_their_ratios_matter() {
        let scaled = |f: u32| SET1.map(|x| m(x.name, x.weight * f));
        let base = Array::new(&SET1, Variant::Squid);
        for f in [2, 7, 1000] {
            // Same load factors and multipliers to the last bit: w/W is the
            // same rational number, rounded once.
            assert_eq!(Array::new(&scaled(f), Variant::Squid), base, "weights x{f}");
        }
        let sum: f64 = base.entries().iter().map(|e| e.load_factor).sum();
        assert!((sum - 1.0).abs() < 1e-15, "{sum}");
        // Equal weights: every multiplier exactly 1 (the Python model gives
        // 1.0 for K = 1..7), so scores are the combined hashes.
        for k in 1..=7u32 {
            let names: Vec<String> = (0..k).map(|i| format!("m{i}")).collect();
            let members: Vec<Member> = names.iter().map(|n| m(n, 5)).collect();
            let a = Array::new(&members, Variant::Squid);
            assert!(a.entries().iter().all(|e| e.multiplier == 1.0), "K={k}: {:?}", a.entries());
        }
    }

    #[test]
    fn weight_zero_leaves_a_member_out_and_keeps_indices() {
        let with_zero = [m("off", 0), SET1[0], SET1[1], m("off2", 0), SET1[2]];
        let a = Array::new(&with_zero, Variant::Squid);
        let b = Array::new(&SET1, Variant::Squid);
        assert_eq!(a.len(), 3);
        let remap = [1, 2, 4];
        for (x, y) in a.entries().iter().zip(b.entries()) {
            assert_eq!(x.index, remap[y.index]);
            assert_eq!((x.hash, x.load_factor, x.multiplier), (y.hash, y.load_factor, y.multiplier));
        }
        for n in 0..200 {
            let url = format!("http://localhost/w0/{n}");
            assert_eq!(a.owner(url.as_bytes(), |_| true), b.owner(url.as_bytes(), |_| true).map(|i| remap[i]));
        }
        let none = Array::new(&[m("a", 0), m("b", 0)], Variant::Squid);
        assert!(none.is_empty());
        assert_eq!(none.owner(b"http://localhost/", |_| true), None);
        assert!(none.scores(b"http://localhost/").is_empty());
        assert!(Array::new(&[], Variant::Draft).is_empty());
    }

    #[test]
    fn a_share_under_one_per_mille_breaks_the_array_as_in_squid_5_7() {
        // Squid 5.7 with big (2000), tiny (1), mid (1001) in that order:
        // mgr:carp "big dd8c5653 nan 0.666223", "tiny f30fdea6 0.000000
        // 0.000000", "mid 5389fe28 inf 0.333444"; debug lines score=0,
        // score=inf, score=nan for every URL, and every request went to mid.
        let members = [m("big", 2000), m("tiny", 1), m("mid", 1001)];
        for variant in [Variant::Squid, Variant::Draft] {
            let a = Array::new(&members, variant);
            let e = a.entries();
            assert_eq!(order(&a), [1, 2, 0]);
            assert_eq!([e[0].hash, e[1].hash, e[2].hash], [0xf30f_dea6, 0x5389_fe28, 0xdd8c_5653]);
            assert_eq!(e[0].load_factor, 0.0);
            assert_eq!(e[0].multiplier, 0.0);
            assert_eq!(e[1].multiplier, f64::INFINITY);
            assert!(e[2].multiplier.is_nan());
            for path in ["/caf\u{e9}", "/a", "/b", "/c?d"] {
                let url = format!("http://localhost{path}");
                assert_eq!(a.owner(url.as_bytes(), |_| true), Some(2), "{variant} {url}");
                // Without mid, nobody: 0 and NaN never win.
                assert_eq!(a.owner(url.as_bytes(), |i| i != 2), None, "{variant} {url}");
            }
        }
    }

    #[test]
    fn ineligible_members_are_skipped_for_the_next_best_score() {
        let a = Array::new(&SET1, Variant::Squid);
        for n in 0..300 {
            let url = format!("http://localhost/carp/{n}?k={n}");
            let mut ranked = a.scores(url.as_bytes());
            ranked.sort_by(|x, y| y.1.total_cmp(&x.1));
            assert_eq!(a.owner(url.as_bytes(), |_| true), Some(ranked[0].0));
            let first = ranked[0].0;
            assert_eq!(a.owner(url.as_bytes(), |i| i != first), Some(ranked[1].0));
            assert_eq!(a.owner(url.as_bytes(), |i| i == ranked[2].0), Some(ranked[2].0));
            assert_eq!(a.owner(url.as_bytes(), |_| false), None);
        }
        // As Squid's peerHTTPOkay: asked only about a member that would
        // beat the best score so far.
        let url = b"http://localhost/carp/1?k=1"; // scores: a < c > b
        let asked = std::cell::RefCell::new(Vec::new());
        a.owner(url, |i| {
            asked.borrow_mut().push(i);
            true
        });
        assert_eq!(*asked.borrow(), [1, 2]);
    }

    #[test]
    fn equal_scores_go_to_the_earlier_member() {
        // The same name twice with the same weight: with the draft's URL
        // hash both score the same, and the first in order wins.
        let twins = [m("twin", 4), m("twin", 4)];
        let a = Array::new(&twins, Variant::Draft);
        for n in 0..50 {
            let url = format!("http://localhost/t/{n}");
            let s = a.scores(url.as_bytes());
            assert_eq!(s[0].1, s[1].1);
            assert_eq!(a.owner(url.as_bytes(), |_| true), Some(0));
            assert_eq!(a.owner(url.as_bytes(), |i| i == 1), Some(1));
        }
    }

    #[test]
    fn squid_accumulates_the_url_hash_across_members() {
        // Member k (1-based) sees the key absorbed k times; the draft once.
        let url = b"http://localhost/acc";
        let squid = Array::new(&SET1, Variant::Squid);
        let draft = Array::new(&SET1, Variant::Draft);
        let (sq, _) = combined(&squid, url);
        let (dr, _) = combined(&draft, url);
        let mut h = 0;
        for (k, e) in squid.entries().iter().enumerate() {
            h = absorb(h, url);
            assert_eq!(sq[k], combine(h, e.hash));
            assert_eq!(dr[k], combine(absorb(0, url), e.hash));
        }
        assert_eq!(sq[0], dr[0]);
        assert_ne!(sq[1..], dr[1..]);
    }

    #[test]
    fn removing_a_member_moves_only_its_urls_only_in_the_draft_with_equal_weights() {
        // What the real Squid shows in tests/carp_squid.rs, in miniature.
        let urls: Vec<String> = (0..1200).map(|n| format!("http://localhost/carp/{n}?k={n}")).collect();
        let others_moved = |members: &[Member], variant, gone: usize| {
            let before = Array::new(members, variant);
            let mut less = members.to_vec();
            less[gone].weight = 0;
            let after = Array::new(&less, variant);
            let mut moved = 0;
            for u in &urls {
                let (b, a) = (before.owner(u.as_bytes(), |_| true), after.owner(u.as_bytes(), |_| true));
                assert_ne!(a, Some(gone));
                if b != Some(gone) && a != b {
                    moved += 1;
                }
            }
            moved
        };
        let equal = SET1.map(|x| m(x.name, 1));
        for gone in 0..3 {
            assert_eq!(others_moved(&equal, Variant::Draft, gone), 0, "draft, equal, without {gone}");
        }
        // Squid: only the last member in evaluation order (the others keep
        // their position, hence their URL hash).
        assert_eq!(others_moved(&equal, Variant::Squid, 2), 0);
        assert!(others_moved(&equal, Variant::Squid, 0) > 0);
        // Unequal weights: the remaining multipliers change, so some URLs
        // move between the remaining members even with the draft's hash.
        for gone in 0..3 {
            assert!(others_moved(&SET1, Variant::Draft, gone) > 0, "draft, 3:1:2, without {gone}");
            assert!(others_moved(&SET1, Variant::Squid, gone) > 0, "squid, 3:1:2, without {gone}");
        }
    }

    #[test]
    fn variant_names() {
        assert_eq!("squid".parse(), Ok(Variant::Squid));
        assert_eq!("Draft".parse(), Ok(Variant::Draft));
        assert_eq!(Variant::default(), Variant::Squid);
        assert_eq!(Variant::Draft.to_string(), "draft");
        assert!("v1".parse::<Variant>().is_err());
    }

    #[test]
    fn preference_is_owner_after_owner() {
        let members = [
            Member { name: "a", weight: 1 },
            Member { name: "b", weight: 2 },
            Member { name: "c", weight: 3 },
            Member { name: "z", weight: 0 },
        ];
        for variant in [Variant::Squid, Variant::Draft] {
            let array = Array::new(&members, variant);
            for n in 0..500 {
                let url = format!("http://localhost/wsgi/{n}");
                let mut expected = Vec::new();
                while let Some(i) = array.owner(url.as_bytes(), |i| !expected.contains(&i)) {
                    expected.push(i);
                }
                assert_eq!(array.preference(url.as_bytes()), expected, "{url}");
            }
        }
    }
}
