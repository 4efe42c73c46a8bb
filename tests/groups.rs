//! Two independent cache groups behind one portal (`<ICPQueryGroup>`): each
//! group's maps ask only its own caches and log to its own file. Long
//! timeouts: which cache answers is the point, not how fast.

mod support;

use support::httpd::{module_path, Httpd, HttpdOptions};
use support::{http, Cluster, Mpm, TestDir};

#[test]
fn two_clusters_behind_one_portal_stay_apart() {
    let app = Cluster::start_caches(75);
    let media = Cluster::start_caches(76);
    let peers = |c: &Cluster| c.hosts().iter().map(|h| format!("    ICPQueryPeer {h}:3130\n")).collect::<String>();
    let portal_conf = format!(
        "LoadModule icpquery_module {module}
<ICPQueryGroup app>
{app_peers}    ICPQueryTimeout 2000000
    ICPQueryLog logs/app.log
    ICPQueryLogLevel 3
    ICPQueryProbeInterval 0
</ICPQueryGroup>
<ICPQueryGroup media>
{media_peers}    ICPQueryTimeout 2000000
    ICPQueryLog logs/media.log
    ICPQueryLogLevel 3
    ICPQueryProbeInterval 0
</ICPQueryGroup>
RewriteEngine On
RewriteMap app        int:icpquerymap:app
RewriteMap appcarp    int:icpquerycarp:app
RewriteMap media      int:icpquerymap:media
RewriteMap mediaup    int:icpqueryisrunning:media
RewriteCond ${{app:http://localhost$1}} ^([^;]+);
RewriteRule ^(/wsgi/.+)$ http://%1:3128$1 [P,L]
RewriteCond ${{appcarp:http://localhost$1}} ^(.+)$
RewriteRule ^(/wsgi/.+)$ http://%1:3128$1 [P,L]
RewriteCond ${{media:http://localhost$1}} ^([^;]+);
RewriteRule ^(/media/.+)$ http://%1:3128$1 [P,L]
RewriteCond ${{mediaup:{media2}}} ^(.+)$
RewriteRule ^(/media/.+)$ http://%1:3128$1 [P,L]
",
        module = module_path().display(),
        app_peers = peers(&app),
        media_peers = peers(&media),
        media2 = media.hosts()[0],
    );
    let dir = TestDir::new("groups");
    let portal =
        Httpd::start(dir.path(), HttpdOptions { net: 75, mpm: Mpm::Event, portal_conf, module: module_path() });

    // Each object is cached at one Squid of its own cluster.
    let app3 = app.hosts()[1];
    let media4 = media.hosts()[2];
    assert!(http::get(app.cache_for(app3).http_addr(), "/wsgi/page").status == 200);
    assert!(http::get(media.cache_for(media4).http_addr(), "/media/clip").status == 200);

    let r = portal.get("/wsgi/page");
    assert!(r.is_hit(), "{r:?}");
    assert_eq!(r.x_origin(), Some(app3.to_string().as_str()), "served by the app cluster's cache that has it");
    let r = portal.get("/media/clip");
    assert!(r.is_hit(), "{r:?}");
    assert_eq!(r.x_origin(), Some(media4.to_string().as_str()));
    // New objects: the app group routes by CARP, the media group to its
    // first cache when it is running.
    let r = portal.get("/media/new");
    assert_eq!(r.x_origin(), Some(media.hosts()[0].to_string().as_str()), "{r:?}");
    let r = portal.get("/wsgi/new");
    assert!(app.hosts().iter().any(|h| r.x_origin() == Some(h.to_string().as_str())), "{r:?}");

    let app_log = support::read_lossy(&portal.log_dir().join("app.log"));
    let media_log = support::read_lossy(&portal.log_dir().join("media.log"));
    let net_of = |log: &str, net: &str| log.lines().filter(|l| l.contains(&format!("from 127.0.{net}."))).count();
    assert!(net_of(&app_log, "75") >= 6 && net_of(&app_log, "76") == 0, "{app_log}");
    assert!(net_of(&media_log, "76") >= 6 && net_of(&media_log, "75") == 0, "{media_log}");
    assert!(app_log.contains("icpquerycarp \"http://localhost/wsgi/new\""), "{app_log}");
    assert!(media_log.contains(&format!("icpqueryisrunning \"{}\" -> the key", media.hosts()[0])), "{media_log}");
    assert!(!app_log.contains("/media/") && !media_log.contains("/wsgi/"), "each group saw only its own URLs");
}
