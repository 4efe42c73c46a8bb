//! `int:icpquerycarp` with real httpd and Squids (conf/httpd-portal-carp.conf):
//! an object no cache holds goes to its CARP owner — the same member
//! `engine::carp` computes — and is stored there only; a stopped owner's
//! URLs go to the next member in CARP order.

mod support;

use mod_icpquery::engine::carp::{Array, Member, Variant};
use support::httpd::{log_dir_for, module_path, substitute_hosts};
use support::{read_conf_file, Cluster, Mpm};

/// The shipped CARP configuration with the test's addresses and paths.
fn carp_portal(net: u8) -> Cluster {
    Cluster::start_with(net, Mpm::Event, |dir| {
        substitute_hosts(&read_conf_file("httpd-portal-carp.conf"), net)
            .replace("modules/mod_icpquery.so", &module_path().display().to_string())
            .replace("/var/log/httpd/", &format!("{}/", log_dir_for(dir).display()))
            + "\nICPQueryProbeInterval 0\n"
    })
}

/// The array the module builds: members named by their hosts, weight 1.
fn array(c: &Cluster) -> (Array, Vec<String>) {
    let names: Vec<String> = c.hosts().iter().map(|h| h.to_string()).collect();
    let members: Vec<Member<'_>> = names.iter().map(|n| Member { name: n, weight: 1 }).collect();
    (Array::new(&members, Variant::Squid), names)
}

#[test]
fn new_objects_go_to_their_carp_owner_and_are_stored_there_only() {
    let c = carp_portal(73);
    let (carp, _) = array(&c);
    let mut owners = [0usize; 3];
    for n in 0..30 {
        let path = format!("/wsgi/carp{n}?q={n}");
        let owner = carp.owner(format!("http://localhost{path}").as_bytes(), |_| true).unwrap();
        owners[owner] += 1;
        let squid = c.cache_for(c.hosts()[owner]).name();
        let first = c.get(&path);
        assert_eq!(first.x_cache(), Some(format!("MISS from {squid}").as_str()), "{path}: {first:?}");
        let again = c.get(&path);
        assert_eq!(again.x_cache(), Some(format!("HIT from {squid}").as_str()), "{path}: {again:?}");
    }
    assert!(owners.iter().all(|&n| n > 0), "every member owns some of 30 URLs: {owners:?}");
    assert_eq!(c.origin_total(), 30, "each object was fetched once: stored in one cache only");
    let log = c.httpd().module_log();
    assert!(log.contains("icpquerycarp \"http://localhost/wsgi/carp0?q=0\" -> \""), "{log}");
}

#[test]
fn a_stopped_owner_hands_its_urls_to_the_next_member() {
    let mut c = carp_portal(74);
    let (carp, _) = array(&c);
    let stopped = 1;
    let host = c.hosts()[stopped];
    c.cache_for_mut(host).stop();
    let mut moved = 0;
    for n in 0..30 {
        let path = format!("/wsgi/moved{n}");
        let key = format!("http://localhost{path}");
        let expected = carp.owner(key.as_bytes(), |i| i != stopped).unwrap();
        let r = c.get(&path);
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.cache_name(), Some(c.cache_for(c.hosts()[expected]).name().as_str()), "{path}: {r:?}");
        if carp.owner(key.as_bytes(), |_| true) == Some(stopped) {
            moved += 1;
        }
    }
    assert!(moved > 0, "some of the 30 URLs belonged to the stopped cache");
}
