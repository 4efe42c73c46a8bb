//! `engine::carp` against a real Squid: one Squid as a CARP front end
//! (`support::carp_front`, accelerator on 127.0.<net>.1:3128) over three
//! `carp` parents, which are the test's origins on 127.0.<net>.2/.3/.4:8001.
//! Every request is forwarded (`cache deny all`), so the origin that answers
//! is the parent Squid chose.
//!
//! For each of at least 1,000 URLs the test checks that Squid chose the
//! member `Array::owner` names, that the key Squid hashed is exactly
//! `http://localhost` + path and query (Squid's `effectiveRequestUri()`: the
//! accelerated URL built from `defaultsite=localhost`, default port left
//! out, bytes ≥ 0x80 raw), and that Squid's per-member scores (its
//! `debug_options 39,3` lines) are ours. Then it restarts Squid without one
//! member and checks the same again, and which URLs moved.
//!
//! Squid only uses a CARP parent that `neighborUp()` calls up (see
//! `support::carp_front`): `CarpFront::start` waits until the cache
//! manager's `server_list` shows every parent Up, the origins stay up
//! throughout, and the test checks afterwards that Squid never saw a failed
//! connection.
//!
//! Network numbers 80 and 81; each test runs its phases one after another.

mod support;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;

use mod_icpquery::engine::carp::{Array, Member, Variant};
use support::carp_front::{key, CarpFront, Parent};
use support::{tail, Origin, TestDir, ORIGIN_PORT};

/// Distinct URLs sent in each phase.
const URLS: usize = 1200;
/// The accelerator port (the key's host comes from defaultsite, not this).
const ACCEL_PORT: u16 = 3128;

fn front_addr(net: u8) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::new(127, 0, net, 1), ACCEL_PORT))
}

/// Request targets: mostly ASCII, every fourth with UTF-8 (bytes ≥ 0x80)
/// in the path and the query, which Squid hashes raw.
fn targets() -> Vec<String> {
    (0..URLS)
        .map(|n| if n % 4 == 3 { format!("/carp/\u{15d}{n}?k=\u{e9}{n}") } else { format!("/carp/{n}?k={n}") })
        .collect()
}

/// The origin parent `name`/`weight` on 127.0.<net>.<last>:8001.
fn parent(net: u8, last: u8, name: &str, weight: u32) -> Parent {
    Parent::origin(SocketAddr::from((Ipv4Addr::new(127, 0, net, last), ORIGIN_PORT)), name, weight)
}

/// The member list for `Array::new`: every parent of the test in the same
/// order, a removed one with weight 0 so that indices stay put.
fn members<'a>(all: &'a [Parent], present: &[Parent]) -> Vec<Member<'a>> {
    all.iter()
        .map(|p| Member { name: &p.name, weight: if present.iter().any(|q| q.name == p.name) { p.weight } else { 0 } })
        .collect()
}

/// One Squid run over `present` (a subset of `all`): start, send every
/// target, check Squid against `Array`, stop. Returns the owner (index into
/// `all`) of each target.
fn phase(
    dir: &Path,
    net: u8,
    origins: &[Origin],
    all: &[Parent],
    present: &[Parent],
    targets: &[String],
) -> Vec<usize> {
    let label = dir.file_name().unwrap().to_string_lossy().into_owned();
    let mut front = CarpFront::start(dir, front_addr(net), present);
    let array = Array::new(&members(all, present), Variant::Squid);

    // The cache manager's view of the array: hash and multiplier per name.
    let table = front.carp_report();
    let ours: BTreeMap<String, (String, String)> = array
        .entries()
        .iter()
        .map(|e| (all[e.index].name.clone(), (format!("{:x}", e.hash), format!("{:.6}", e.multiplier))))
        .collect();
    assert_eq!(table, ours, "{label}: Squid's carp report:\n{}", front.mgr("carp").unwrap_or_default());

    let index_of = |p: &Parent| all.iter().position(|q| q.name == p.name).unwrap();
    let routed: Vec<usize> = targets.iter().map(|t| index_of(front.forwarded_to_origin(t, origins))).collect();
    let mut mismatches = Vec::new();
    for (t, &got) in targets.iter().zip(&routed) {
        let want = array.owner(key(t).as_bytes(), |_| true).expect("an owner");
        if got != want {
            mismatches.push(format!(
                "{t}: Squid chose {} ({}), Array::owner {}",
                all[got].name,
                all[got].addr(),
                all[want].name
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{label}: {} of {} differ:\n{}",
        mismatches.len(),
        targets.len(),
        mismatches.join("\n")
    );

    // The exact key, the evaluation order and every score, from Squid's log.
    let logged = front.logged_scores();
    assert_eq!(
        logged.len(),
        targets.len(),
        "{label}: keys in Squid's log: {:?}",
        logged.keys().take(5).collect::<Vec<_>>()
    );
    for t in targets {
        let k = key(t);
        let theirs = logged.get(&k).unwrap_or_else(|| panic!("{label}: Squid never hashed the key {k:?}"));
        let ours: Vec<(String, String)> =
            array.scores(k.as_bytes()).into_iter().map(|(i, s)| (all[i].name.clone(), format!("{s:.0}"))).collect();
        assert_eq!(theirs, &ours, "{label}: scores for {k}");
    }
    // No parent ever looked down to Squid.
    let log = front.cache_log();
    for bad in ["Detected DEAD", "TCP connection to", "ERROR"] {
        assert!(!log.contains(bad), "{label}: cache.log has {bad:?}:\n{}", tail(&front.cache_log_path(), 30));
    }
    front.stop();
    routed
}

/// How many targets changed owner, split by whether `gone` owned them.
fn moved(before: &[usize], after: &[usize], gone: usize) -> (usize, usize) {
    let owned = before.iter().filter(|&&b| b == gone).count();
    assert!(after.iter().all(|&a| a != gone));
    let others = before.iter().zip(after).filter(|(&b, &a)| b != gone && a != b).count();
    (owned, others)
}

fn start_origins(parents: &[Parent]) -> Vec<Origin> {
    parents.iter().map(|p| Origin::start(p.addr())).collect()
}

#[test]
fn squid_picks_the_array_owner_for_every_url_and_after_removing_a_member() {
    const NET: u8 = 80;
    // Configuration order is not weight order: Squid sorts by weight.
    let all = [parent(NET, 2, "carp-b", 3), parent(NET, 3, "carp-a", 1), parent(NET, 4, "carp-c", 2)];
    let dir = TestDir::new("carp80");
    let origins = start_origins(&all);
    let targets = targets();

    let before = phase(&dir.join("all"), NET, &origins, &all, &all, &targets);
    let mut share = [0usize; 3];
    before.iter().for_each(|&i| share[i] += 1);
    eprintln!("weights 3:1:2 → URLs {share:?}");
    assert!(share.iter().all(|&n| n > 0));

    // Without carp-c, the middle member in evaluation order (a, c, b).
    let gone = 2;
    let present = [all[0].clone(), all[1].clone()];
    let after = phase(&dir.join("without-carp-c"), NET, &origins, &all, &present, &targets);
    let (owned, others) = moved(&before, &after, gone);
    eprintln!("without carp-c: its {owned} URLs moved, and {others} of the other members' URLs");
    // Squid agrees with Array before and after (checked in `phase`), and
    // Array predicts this: with unequal weights the remaining multipliers
    // change, and the member after the removed one absorbs the key one
    // time fewer, so URLs move between the remaining members too.
    assert!(owned > 0);
    assert!(others > 0, "CARP with unequal weights is not minimally disruptive");
}

#[test]
fn with_equal_weights_removing_the_last_member_moves_only_its_urls() {
    const NET: u8 = 81;
    // Equal weights keep configuration order: cache-1, cache-2, cache-3.
    let all = [parent(NET, 2, "cache-1", 1), parent(NET, 3, "cache-2", 1), parent(NET, 4, "cache-3", 1)];
    let dir = TestDir::new("carp81");
    let origins = start_origins(&all);
    let targets = targets();

    let before = phase(&dir.join("all"), NET, &origins, &all, &all, &targets);

    // The last member in evaluation order: the others keep their URL
    // hashes and (equal weights) multipliers of 1, so only its URLs move.
    let after = phase(&dir.join("without-cache-3"), NET, &origins, &all, &all[..2], &targets);
    let (owned, others) = moved(&before, &after, 2);
    eprintln!("without cache-3: its {owned} URLs moved, and {others} others");
    assert!(owned > 0);
    assert_eq!(others, 0, "only the URLs cache-3 owned may move");

    // The first member: every later member's URL hash now absorbs the key
    // one time fewer (Squid's accumulation), so other URLs move as well.
    let after = phase(&dir.join("without-cache-1"), NET, &origins, &all, &all[1..], &targets);
    let (owned, others) = moved(&before, &after, 0);
    eprintln!("without cache-1: its {owned} URLs moved, and {others} others");
    assert!(owned > 0);
    assert!(others > 0, "Squid's accumulating URL hash reshuffles the members after the removed one");
}
