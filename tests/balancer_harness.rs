//! Self-test of `support::balancer` against the real thing: the system
//! httpd with stock mod_proxy_balancer (`lbmethod=byrequests`), its
//! balancer-manager and mod_proxy_hcheck, in front of three real Squid
//! accelerators. mod_icpquery is not loaded. Every change goes through the
//! manager's own forms (link, form, POST with the page's nonce), and every
//! claim about routing is checked by who answered (X-Cache).

mod support;

use std::time::Duration;

use support::balancer::{self, member_url, squid_name, tally, BalancerConf, Flag, HealthCheck, Member};
use support::Mpm;

const B: &str = "squids";
/// Health checks run every 200 ms; this only bounds a wait on a loaded box.
const HC_WAIT: Duration = Duration::from_secs(30);

#[test]
fn byrequests_through_the_manager_drain_disable_standby_lbmethod() {
    let net = 170;
    let conf = BalancerConf::over_squids(net, B);
    let c = balancer::start(net, Mpm::Event, &conf);
    let m = balancer::manager(&c);
    let portal = c.portal_addr();
    let hosts = c.hosts();
    let [u2, u3, u4] = hosts.map(member_url);
    let [n2, n3, n4] = hosts.map(squid_name);

    // The page as configured.
    let page = m.page();
    assert!(page.server_version.starts_with("Apache/2.4"), "{}", page.server_version);
    let b = page.balancer(B);
    assert_eq!((b.url.as_str(), b.lbmethod.as_str(), b.path.as_str()), ("balancer://squids", "byrequests", "/wsgi/"));
    assert_eq!((b.max_members, b.used_members), (3, 3));
    assert!(!b.nonce.is_empty(), "{}", page.summary());
    assert_eq!(b.members.iter().map(|w| w.url.as_str()).collect::<Vec<_>>(), [&u2, &u3, &u4]);
    for (w, name) in b.members.iter().zip([&n2, &n3, &n4]) {
        assert_eq!(w.status, "Init Ok", "{}", page.summary());
        assert_eq!((w.route.as_str(), w.loadfactor, w.lbset, w.elected), (name.as_str(), 1.0, 0, 0));
        assert!(w.hc.is_none(), "no mod_proxy_hcheck in this portal");
    }

    // (a) Equal factors, one request after another: byrequests takes turns.
    let t = tally(portal, 30, |i| format!("/wsgi/spread{i}"));
    for n in [&n2, &n3, &n4] {
        assert_eq!(t.of(n), 10, "{t}");
    }
    let page = m.page();
    for w in &page.balancer(B).members {
        assert_eq!(w.elected, 10, "the page counts what the Squids saw:\n{}", page.summary());
    }

    // (b) Drain squid2 through its form, exactly as a browser submits it.
    let mut form = m.member_form(B, &u2);
    assert_eq!(form.get("nonce"), Some(page.balancer(B).nonce.as_str()), "the form carries the page's nonce");
    assert_eq!((form.get("b"), form.get("w")), (Some(B), Some(u2.as_str())));
    assert_eq!(form.get("w_status_N"), Some("0"));
    assert!(!form.has("w_status_C"), "no HC Fail radio without mod_proxy_hcheck");
    form.set("w_status_N", "1");
    let page = m.submit(&form);
    let w = page.member(B, &u2);
    assert!(w.has(Flag::Drain) && w.is_usable(), "{}", page.summary());
    assert_eq!(w.status, "Init Drn Ok");
    let t = tally(portal, 12, |i| format!("/wsgi/drained{i}"));
    assert_eq!((t.of(&n2), t.of(&n3) + t.of(&n4)), (0, 12), "a drained member gets no new request: {t}");

    // httpd's CSRF guards, seen from outside: a wrong nonce, or no
    // Referer, and the submission changes nothing.
    let mut forged = m.member_form(B, &u2);
    forged.set("w_status_N", "0").set("nonce", "00000000-0000-0000-0000-000000000000");
    assert!(m.submit(&forged).member(B, &u2).has(Flag::Drain), "a POST with a wrong nonce was applied");
    let mut no_referer = m.member_form(B, &u2);
    no_referer.set("w_status_N", "0");
    no_referer.referer = None;
    assert!(m.submit(&no_referer).member(B, &u2).has(Flag::Drain), "a POST without Referer was applied");
    // Only that POST came without a Referer; the wrong nonce is ignored silently.
    let log = c.httpd().error_log();
    assert_eq!(log.matches("AH10187: ignoring params in balancer-manager cross-site access").count(), 1, "{log}");

    let page = m.undrain(B, &u2);
    assert_eq!(page.member(B, &u2).status, "Init Ok", "{}", page.summary());

    // (c) Disable squid3: not usable, and no request reaches it.
    let page = m.disable(B, &u3);
    let w = page.member(B, &u3);
    assert!(w.has(Flag::Disabled) && !w.is_usable(), "{}", page.summary());
    assert_eq!(w.status, "Init Dis");
    let before = c.cache_for(hosts[1]).access_log().lines().count();
    let t = tally(portal, 12, |i| format!("/wsgi/disabled{i}"));
    assert_eq!(t.of(&n3), 0, "{t}");
    assert_eq!(t.of(&n2) + t.of(&n4), 12, "{t}");
    assert_eq!(c.cache_for(hosts[1]).access_log().lines().count(), before, "squid3's own log saw a request");
    let page = m.enable(B, &u3);
    assert_eq!(page.member(B, &u3).status, "Init Ok", "{}", page.summary());

    // (d) squid4 hot standby: idle while another member is usable, used
    // once the others are disabled.
    let page = m.set_hot_standby(B, &u4);
    assert_eq!(page.member(B, &u4).status, "Init Stby Ok", "{}", page.summary());
    let t = tally(portal, 12, |i| format!("/wsgi/standby{i}"));
    assert_eq!((t.of(&n4), t.of(&n2) + t.of(&n3)), (0, 12), "{t}");
    m.disable(B, &u2);
    let page = m.disable(B, &u3);
    assert!(!page.member(B, &u2).is_usable() && !page.member(B, &u3).is_usable(), "{}", page.summary());
    let t = tally(portal, 6, |i| format!("/wsgi/standby-only{i}"));
    assert_eq!(t.of(&n4), 6, "with the others disabled the standby serves: {t}");
    m.enable(B, &u2);
    m.enable(B, &u3);
    let page = m.clear_hot_standby(B, &u4);
    for w in &page.balancer(B).members {
        assert_eq!(w.status, "Init Ok", "{}", page.summary());
    }

    // (e) lbmethod: the balancer form offers the loaded providers.
    let form = m.balancer_form(B);
    let offered = &form.field("b_lbm").expect("LBmethod select").choices;
    for p in ["byrequests", "bytraffic", "bybusyness"] {
        assert!(offered.iter().any(|o| o == p), "{p} not offered: {offered:?}");
    }
    let page = m.set_lbmethod(B, "bytraffic");
    assert_eq!(page.balancer(B).lbmethod, "bytraffic", "{}", page.summary());
    let t = tally(portal, 6, |i| format!("/wsgi/bytraffic{i}"));
    assert_eq!(t.total, 6, "{t}");
    let page = m.set_lbmethod(B, "byrequests");
    assert_eq!(page.balancer(B).lbmethod, "byrequests", "{}", page.summary());

    // Load factor, lbset and route through the form.
    let page = m.set_loadfactor(B, &u2, 3.0);
    assert_eq!(page.member(B, &u2).loadfactor, 3.0, "{}", page.summary());
    let page = m.set_lbset(B, &u3, 1);
    assert_eq!(page.member(B, &u3).lbset, 1, "{}", page.summary());
    let page = m.set_route(B, &u4, "four");
    assert_eq!(page.member(B, &u4).route, "four", "{}", page.summary());
    let t = tally(portal, 16, |i| format!("/wsgi/factors{i}"));
    assert_eq!(t.of(&n3), 0, "lbset 1 is not used while lbset 0 has usable members: {t}");
    assert!(t.of(&n2) >= 2 * t.of(&n4) && t.of(&n4) > 0, "factor 3 against 1: {t}");
}

#[test]
fn hcheck_marks_a_stopped_squid_failed_and_clears_it_when_it_returns() {
    let net = 171;
    let hc = HealthCheck::get("/wsgi/hc").interval_ms(200).fails(1).passes(1);
    let conf = BalancerConf::over_squids(net, B)
        .hcheck_all(&hc)
        .hc_expr("ok234", "%{REQUEST_STATUS} =~ /^[234]/")
        .with_member(0, |w| w.loadfactor(2))
        .with_member(2, Member::hot_standby);
    let rendered = conf.render();
    assert!(rendered.contains("proxy_hcheck_module"), "{rendered}");
    assert!(rendered.contains("status=+H hcmethod=GET hcuri=/wsgi/hc hcinterval=200ms"), "{rendered}");
    let mut c = balancer::start(net, Mpm::Event, &conf);
    let m = balancer::manager(&c);
    let portal = c.portal_addr();
    let hosts = c.hosts();
    let [u2, u3, u4] = hosts.map(member_url);
    let [n2, n3, n4] = hosts.map(squid_name);

    // What the configuration set shows on the page; every check passes.
    let page = m.wait_for(HC_WAIT, "all members usable", |p| p.balancer(B).members.iter().all(|w| w.is_usable()));
    assert_eq!(page.hc_exprs, [("ok234".to_string(), "%{REQUEST_STATUS} =~ /^[234]/".to_string())]);
    assert_eq!(page.member(B, &u2).loadfactor, 2.0);
    assert_eq!(page.member(B, &u4).status, "Init Stby Ok", "{}", page.summary());
    for w in &page.balancer(B).members {
        let h = w.hc.as_ref().expect("HC columns");
        assert_eq!(
            (h.method.as_str(), h.interval_ms, h.uri.as_str(), h.fails, h.passes),
            ("GET", 200, "/wsgi/hc", 1, 1)
        );
    }
    let t = tally(portal, 9, |i| format!("/wsgi/before{i}"));
    assert_eq!((t.of(&n4), t.of(&n2) + t.of(&n3)), (0, 9), "{t}");

    // The form has the HC Fail radio and the health-check fields.
    let form = m.member_form(B, &u2);
    for f in ["w_status_C", "w_hm", "w_he", "w_hi", "w_hp", "w_hf", "w_hu"] {
        assert!(form.has(f), "no {f} in the hcheck form: {form:?}");
    }
    assert_eq!((form.get("w_hm"), form.get("w_hi"), form.get("w_hu")), (Some("GET"), Some("200"), Some("/wsgi/hc")));

    // Stop squid3: the health check marks it HcFl, and it gets no request.
    c.cache_for_mut(hosts[1]).stop();
    let page = m.wait_for(HC_WAIT, "squid3 HcFl", |p| p.member(B, &u3).has(Flag::HcFail));
    let w = page.member(B, &u3);
    assert!(!w.is_usable(), "{}", page.summary());
    assert_eq!(w.status, "Init HcFl", "{}", page.summary());
    let t = tally(portal, 9, |i| format!("/wsgi/during{i}"));
    assert_eq!((t.of(&n3), t.of(&n4), t.of(&n2)), (0, 0, 9), "{t}");
    assert!(
        c.httpd().error_log().contains(&format!("Health check DISABLING {u3}"))
            || c.httpd().error_log().contains(&format!("attempt to connect to {}:3128", hosts[1])),
        "{}",
        c.httpd().error_log()
    );

    // Start it again: the next passing check clears HcFl.
    c.cache_for_mut(hosts[1]).start_again();
    let page = m.wait_for(HC_WAIT, "squid3 usable again", |p| p.member(B, &u3).is_usable());
    assert_eq!(page.member(B, &u3).status, "Init Ok", "{}", page.summary());
    let t = tally(portal, 9, |i| format!("/wsgi/after{i}"));
    assert!(t.of(&n3) > 0 && t.of(&n4) == 0, "{t}");

    // A browser's quirk worth knowing: the form's Expr select has no
    // selected option when the member has no hcexpr, so a browser submits
    // the first one; submitting the form unchanged sets hcexpr=ok234.
    assert_eq!(page.member(B, &u2).hc.as_ref().unwrap().expr, "");
    let form = m.member_form(B, &u2);
    assert_eq!(form.get("w_he"), Some("ok234"));
    let page = m.submit(&form);
    assert_eq!(page.member(B, &u2).hc.as_ref().unwrap().expr, "ok234", "{}", page.summary());
    assert!(page.member(B, &u2).is_usable(), "{}", page.summary());
}
