//! The PAC file of `icpquery pac`, run by a real JavaScript engine (node)
//! over 1,000 URLs per array, must give exactly the CARP choice and
//! failover order of `engine::carp::Array::owner` in Rust: the owner, then
//! the owner with the earlier ones out of the way, then the fallback.
//!
//! The binary's PAC is checked with its members (weight 1 until
//! `ICPQueryPeer` takes `weight=`); unequal weights (3:1:2, names with bytes
//! ≥ 0x80, a share under 0.1% that makes multipliers inf and NaN, twins
//! with equal scores) are rendered by the PAC writer the binary and the
//! module share (`mod_icpquery::pac`).
//!
//! node is required: without it the tests fail and say how to install it.

mod support;

use std::process::Command;

use mod_icpquery::engine::carp::{Array, Member, Variant};
use mod_icpquery::pac::{self, PacMember};
use support::node::run_pac;
use support::TestDir;

/// What the PAC must answer, from the library alone: the owner, then the
/// owner of what is left, and so on; then the fallback.
fn expected(array: &Array, routes: &[String], fallback: &str, url: &str) -> String {
    expected_in_service(array, routes, &[], fallback, url)
}

/// The same, with the members at `out` (indexes) passed over wherever
/// they rank.
fn expected_in_service(array: &Array, routes: &[String], out: &[usize], fallback: &str, url: &str) -> String {
    let mut order: Vec<usize> = Vec::new();
    while let Some(i) = array.owner(url.as_bytes(), |i| !order.contains(&i)) {
        order.push(i);
    }
    order.retain(|i| !out.contains(i));
    let mut parts: Vec<&str> = order.iter().map(|&i| routes[i].as_str()).collect();
    parts.push(fallback);
    parts.join("; ")
}

/// 1,000 URLs: plain ASCII, %-escapes (kept as sent), non-ASCII text (2-,
/// 3- and 4-byte UTF-8, so bytes ≥ 0x80 and JavaScript surrogate pairs),
/// several schemes and hosts, and the fixed vectors of engine::carp's tests.
fn urls() -> Vec<String> {
    let mut urls: Vec<String> = [
        "http://localhost/carp/1?k=1",
        "http://localhost/caf\u{e9}",
        "http://localhost/plain?k=1",
        "http://localhost/x/%C3%A9",
        "http://localhost/",
        "http://localhost/wsgi/page0?lang=en",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let prefixes = ["http://localhost", "http://www.example.com:8080", "https://cache.test", "ftp://files.test"];
    let pieces = [
        "a",
        "b",
        "z",
        "Z",
        "0",
        "9",
        "/",
        "/",
        "?",
        "&",
        "=",
        "-",
        ".",
        "_",
        "~",
        "%20",
        "%2F",
        "%C3%A9",
        "%e2%82%ac",
        "%",
        "\u{e9}",
        "\u{fc}",
        "\u{ff}",
        "\u{20ac}",
        "\u{65e5}\u{672c}",
        "\u{1f600}",
        "\u{10348}",
        "\u{80}",
        "\u{7ff}",
        "\u{800}",
        "\u{ffff}",
        "index.html",
        "wsgi",
        "?lang=en",
        "#frag",
    ];
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n as u64) as usize
    };
    while urls.len() < 1000 {
        let mut u = prefixes[next(prefixes.len())].to_string();
        u.push('/');
        for _ in 0..next(24) {
            u.push_str(pieces[next(pieces.len())]);
        }
        urls.push(u);
    }
    urls
}

fn check(label: &str, members: &[PacMember], variant: Variant, fallback: &str) -> Vec<String> {
    let out: Vec<usize> = (0..members.len()).filter(|&i| members[i].out_of_service.is_some()).collect();
    let dir = TestDir::new("pac-node");
    let text = pac::render(members, variant, fallback);
    let carp: Vec<Member> = members.iter().map(|m| Member { name: &m.name, weight: m.weight }).collect();
    let array = Array::new(&carp, variant);
    let routes: Vec<String> = members.iter().map(|m| m.route.clone()).collect();
    let urls = urls();
    let answers = run_pac(dir.path(), &text, &urls);
    let mut owners = Vec::new();
    for (url, (native, polyfilled)) in urls.iter().zip(answers) {
        let want = expected_in_service(&array, &routes, &out, fallback, url);
        assert_eq!(native, want, "{label}, {variant}: {url:?}\n{text}");
        assert_eq!(polyfilled, want, "{label}, {variant}, without Math.imul: {url:?}");
        owners.push(native.split(';').next().unwrap().to_string());
    }
    owners
}

fn member(name: &str, weight: u32, ip: &str) -> PacMember {
    PacMember { name: name.to_string(), weight, route: format!("PROXY {ip}:3128"), out_of_service: None }
}

#[test]
fn weights_3_1_2_give_the_rust_choice_for_1000_urls_in_both_variants() {
    // The array of engine::carp's tests, checked there against Squid 5.7.
    let members =
        [member("carp-b", 3, "127.0.93.2"), member("carp-a", 1, "127.0.93.3"), member("carp-c", 2, "127.0.93.4")];
    for variant in [Variant::Squid, Variant::Draft] {
        let owners = check("3:1:2", &members, variant, "DIRECT");
        // Every member owns some URLs, the heaviest the most.
        let count = |ip: &str| owners.iter().filter(|o| o.contains(ip)).count();
        let (b, a, c) = (count("127.0.93.2"), count("127.0.93.3"), count("127.0.93.4"));
        assert_eq!(a + b + c, 1000, "{variant}");
        assert!(a > 50 && b > a && c > a, "{variant}: carp-b {b}, carp-a {a}, carp-c {c}");
    }
    // Squid 5.7 sent this URL to carp-c (and the draft's hash picks carp-b).
    let pac = pac::render(&members, Variant::Squid, "DIRECT");
    let dir = TestDir::new("pac-node-vector");
    let url = "http://localhost/carp/1?k=1".to_string();
    assert!(run_pac(dir.path(), &pac, std::slice::from_ref(&url))[0].0.starts_with("PROXY 127.0.93.4:3128; "));
    let draft = pac::render(&members, Variant::Draft, "DIRECT");
    assert!(run_pac(dir.path(), &draft, &[url])[0].0.starts_with("PROXY 127.0.93.2:3128; "));
}

#[test]
fn a_member_out_of_service_passes_its_urls_to_their_next_member_and_no_other_url_moves() {
    let mut members =
        [member("carp-b", 3, "127.0.93.2"), member("carp-a", 1, "127.0.93.3"), member("carp-c", 2, "127.0.93.4")];
    let before = check("all in service", &members, Variant::Squid, "DIRECT");
    members[2].out_of_service = Some("drained".to_string());
    let text = pac::render(&members, Variant::Squid, "DIRECT");
    assert!(text.contains("-> none, drained (PROXY 127.0.93.4:3128)"), "{text}");
    assert!(text.contains("route: null"), "{text}");
    let after = check("carp-c drained", &members, Variant::Squid, "DIRECT");
    for (b, a) in before.iter().zip(&after) {
        if !b.contains("127.0.93.4") {
            assert_eq!(a, b, "a URL carp-c did not own changed owner");
        } else {
            assert!(!a.contains("127.0.93.4"));
        }
    }
    assert!(before.iter().any(|b| b.contains("127.0.93.4")), "carp-c owned some URLs before");
}

#[test]
fn names_with_bytes_above_0x7f_and_equal_weights() {
    // engine::carp's second array (member hashes checked against Squid 5.7).
    let members = [
        member("\u{dc}n\u{ef}c\u{f8}de", 2, "127.0.93.2"),
        member("cach\u{e9}e", 1, "127.0.93.3"),
        member("cache-a", 1, "127.0.93.4"),
    ];
    for variant in [Variant::Squid, Variant::Draft] {
        check("non-ASCII names", &members, variant, "PROXY 127.0.93.1:8080; DIRECT");
    }
}

#[test]
fn a_share_under_one_per_mille_and_equal_scores_break_ties_like_rust() {
    // Multipliers 0, inf and NaN: "mid" owns everything, the others never
    // appear, exactly as in Squid 5.7.
    let broken =
        [member("big", 2000, "127.0.93.2"), member("tiny", 1, "127.0.93.3"), member("mid", 1001, "127.0.93.4")];
    let text = pac::render(&broken, Variant::Squid, "DIRECT");
    assert!(text.contains("multiplier: Infinity") && text.contains("multiplier: NaN"), "{text}");
    for variant in [Variant::Squid, Variant::Draft] {
        let owners = check("tiny share", &broken, variant, "DIRECT");
        assert!(owners.iter().all(|o| o == "PROXY 127.0.93.4:3128"), "{variant}");
    }
    // The same name twice: equal scores with the draft's hash, the earlier
    // member first. A weight-0 member is left out.
    let twins = [member("twin", 4, "127.0.93.2"), member("off", 0, "127.0.93.9"), member("twin", 4, "127.0.93.3")];
    let owners = check("twins", &twins, Variant::Draft, "DIRECT");
    assert!(owners.iter().all(|o| o == "PROXY 127.0.93.2:3128"));
    // No member at all: the fallback alone.
    check("empty", &[member("off", 0, "127.0.93.9")], Variant::Squid, "PROXY 127.0.93.1:8080");
}

#[test]
fn the_binary_writes_a_pac_file_that_routes_like_the_library() {
    let dir = TestDir::new("pac-node-bin");
    let hosts = ["127.0.93.2", "127.0.93.3", "127.0.93.4", "127.0.93.5"];
    for (variant, fallback, port) in [("squid", "DIRECT", "3128"), ("draft", "PROXY 127.0.93.1:8080; DIRECT", "8000")] {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_icpquery"));
        cmd.args(["pac", "--variant", variant, "--fallback", fallback, "--proxy-port", port]);
        for h in hosts {
            cmd.args(["--peer", &format!("{h}:3130")]);
        }
        let out = cmd.output().expect("run icpquery");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8(out.stdout).unwrap();
        // Readable: says what generated it and for which members.
        assert!(text.starts_with("// Proxy auto-configuration generated by mod_icpquery "), "{text}");
        for h in hosts {
            assert!(text.contains(&format!("//   {h}  weight 1 ")), "{text}");
        }
        let variant: Variant = variant.parse().unwrap();
        let members: Vec<Member> = hosts.iter().map(|h| Member { name: h, weight: 1 }).collect();
        let array = Array::new(&members, variant);
        let routes: Vec<String> = hosts.iter().map(|h| format!("PROXY {h}:{port}")).collect();
        let urls = urls();
        for (url, (native, polyfilled)) in urls.iter().zip(run_pac(dir.path(), &text, &urls)) {
            let want = expected(&array, &routes, fallback, url);
            assert_eq!(native, want, "{variant}: {url:?}");
            assert_eq!(polyfilled, want, "{variant}: {url:?}");
        }
    }
}
