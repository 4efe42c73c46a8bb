//! Runs Proxy Auto-Config files under node, as a browser runs them: the
//! file loaded into a fresh context with nothing but the language.
//!
//! node is required: without it the tests fail and say how to install it.

use std::path::Path;
use std::process::Command;

/// node's program: loads the PAC file into a fresh context (as a browser
/// does, with nothing but the language), once as is and once with
/// `Math.imul` removed so that the fallback multiplication runs, and
/// prints both answers for each URL, one URL per line.
const DRIVER: &str = r#"
const fs = require("fs");
const vm = require("vm");
const [pacPath, urlsPath] = process.argv.slice(2);
const pac = fs.readFileSync(pacPath, "utf8");
const urls = fs.readFileSync(urlsPath, "utf8").split("\n");
urls.pop();
function load(withoutImul) {
    const context = vm.createContext({});
    if (withoutImul) vm.runInContext("Math.imul = undefined;", context);
    vm.runInContext(pac, context, { filename: pacPath });
    if (typeof context.FindProxyForURL !== "function") throw new Error("no FindProxyForURL");
    return context.FindProxyForURL;
}
const native = load(false), fallback = load(true);
const out = urls.map(function (u) {
    const host = (/^[a-z]+:\/\/([^\/:?#]*)/.exec(u) || ["", ""])[1];
    return native(u, host) + "\t" + fallback(u, host);
});
process.stdout.write(out.join("\n") + "\n");
"#;

pub fn require_node() {
    match Command::new("node").arg("--version").output() {
        Ok(out) if out.status.success() => {}
        _ => panic!(
            "node is not installed, so the generated PAC file cannot be run: install Debian's \"nodejs\" \
             package (apt-get install nodejs; tests/deps.sh should list it) and run the tests again"
        ),
    }
}

/// Runs `pac_text` under node for every URL; (native, polyfilled) answers.
pub fn run_pac(dir: &Path, pac_text: &str, urls: &[String]) -> Vec<(String, String)> {
    require_node();
    let pac_path = dir.join("proxy.pac");
    let urls_path = dir.join("urls.txt");
    let driver_path = dir.join("driver.js");
    std::fs::write(&pac_path, pac_text).unwrap();
    std::fs::write(&driver_path, DRIVER).unwrap();
    let mut list = String::new();
    for u in urls {
        assert!(!u.contains('\n'));
        list.push_str(u);
        list.push('\n');
    }
    std::fs::write(&urls_path, list).unwrap();
    let out = Command::new("node").arg(&driver_path).arg(&pac_path).arg(&urls_path).output().expect("run node");
    assert!(out.status.success(), "node failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).expect("node output is UTF-8");
    let answers: Vec<(String, String)> = text
        .lines()
        .map(|l| {
            let (a, b) = l.split_once('\t').expect("two answers per line");
            (a.to_string(), b.to_string())
        })
        .collect();
    assert_eq!(answers.len(), urls.len(), "one answer per URL");
    answers
}
