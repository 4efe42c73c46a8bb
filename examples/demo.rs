//! The seed's setup, live: three origins, three Squid accelerators and the
//! portal httpd with mod_icpquery and conf/httpd-portal.conf, on 127.0.0.x.
//!
//!     cargo build --release && cargo run --release --example demo
//!
//! Sends a scripted sequence of requests to the portal and prints, for each,
//! who answered; then the tail of the module's log. Everything it started is
//! stopped at the end (and on Ctrl-C).

#[path = "../tests/support/mod.rs"]
mod support;

use support::{Cluster, Mpm, Response};

const NET: u8 = 0;

fn main() {
    println!("starting origins, Squids and the portal httpd (event MPM) on 127.0.{NET}.x ...");
    let mut cluster = Cluster::start(NET, Mpm::Event);
    let [h2, h3, h4] = cluster.hosts();
    println!("portal    http://{}/", cluster.portal_addr());
    for s in cluster.squids() {
        println!(
            "{:<9} http://{} icp {} -> origin {}:{}",
            s.name(),
            s.http_addr(),
            s.icp_addr(),
            s.host(),
            s.origin_port()
        );
    }
    println!();

    step("a new object lands on a running cache (MISS there)");
    let first = show(&cluster, "/wsgi/hello?name=world");
    step("the same object again: the portal finds it over ICP (HIT at that cache)");
    show(&cluster, "/wsgi/hello?name=world");
    show(&cluster, "/wsgi/hello?name=world");
    step("a second object");
    show(&cluster, "/wsgi/second");
    show(&cluster, "/wsgi/second");
    step("static content is served by the portal itself");
    show(&cluster, "/index.html");

    // Stop the cache that holds the first object.
    let holder = first.cache_name().and_then(|n| cluster.squids().iter().find(|s| s.name() == n)).map(|s| s.host());
    let victim = holder.unwrap_or(h2);
    step(&format!("stop {} (it held the first object); requests still succeed", cluster.cache_for(victim).name()));
    cluster.cache_for_mut(victim).stop();
    show(&cluster, "/wsgi/hello?name=world");
    show(&cluster, "/wsgi/third?n=1");
    show(&cluster, "/wsgi/third?n=1");

    step("stop all Squids: the balancer sends requests to the origins");
    cluster.stop_all_squids();
    show(&cluster, "/wsgi/hello?name=world");
    show(&cluster, "/wsgi/fourth");
    show(&cluster, "/wsgi/fourth");

    println!();
    println!(
        "origin requests: {h2}: {}, {h3}: {}, {h4}: {}",
        cluster.origin_for(h2).total(),
        cluster.origin_for(h3).total(),
        cluster.origin_for(h4).total()
    );
    println!();
    let log_path = cluster.httpd().module_log_path();
    println!("---- {} (last 40 lines) ----", log_path.display());
    println!("{}", support::tail(&log_path, 40));
    println!("---- end ----");
    println!("stopping everything ...");
    cluster.shutdown();
}

fn step(what: &str) {
    println!("\n# {what}");
}

fn show(cluster: &Cluster, path: &str) -> Response {
    match support::http::try_get(cluster.portal_addr(), path) {
        Ok(r) => {
            println!("  {:<34} {:>3}  {}", format!("GET {path}"), r.status, r.served_by());
            r
        }
        Err(e) => {
            println!("  {:<34} ---  request failed: {e}", format!("GET {path}"));
            Response { status: 0, headers: Vec::new(), body: Vec::new() }
        }
    }
}
