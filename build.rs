//! Generates Rust declarations for the httpd and APR API the module uses,
//! from the headers installed on this machine (apache2-dev / httpd-devel).

use std::env;
use std::path::PathBuf;
use std::process::Command;

/// Runs `cmd args` and returns its trimmed stdout, or explains what is missing.
fn query(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).output().unwrap_or_else(|e| {
        panic!("cannot run `{cmd}` ({e}): install the httpd development files (Debian: apt-get install apache2-dev)")
    });
    assert!(out.status.success(), "`{cmd} {}` failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8 output").trim().to_owned()
}

fn main() {
    let apxs = env::var("APXS").unwrap_or_else(|_| "apxs".into());
    let apr_config = env::var("APR_CONFIG").unwrap_or_else(|_| query(&apxs, &["-q", "APR_CONFIG"]));
    let include_dir = query(&apxs, &["-q", "INCLUDEDIR"]);
    let apr_flags = query(&apr_config, &["--includes", "--cppflags"]);

    println!("cargo:rerun-if-changed=src/httpd/wrapper.h");
    println!("cargo:rerun-if-env-changed=APXS");
    println!("cargo:rerun-if-env-changed=APR_CONFIG");

    let mut clang_args = vec![format!("-I{include_dir}")];
    clang_args.extend(apr_flags.split_whitespace().map(str::to_owned));

    let bindings = bindgen::Builder::default()
        .header("src/httpd/wrapper.h")
        .clang_args(&clang_args)
        .allowlist_type("module")
        .allowlist_type("command_rec")
        .allowlist_type("cmd_parms")
        .allowlist_type("request_rec")
        .allowlist_type("server_rec")
        .allowlist_type("rewrite_mapfunc_t")
        // mod_proxy's structures only: its functions live in mod_proxy.so,
        // which the module must not link against (see httpd/safe/proxy.rs).
        .allowlist_type("proxy_(server_conf|balancer|balancer_shared|worker|worker_shared|balancer_method)")
        .allowlist_type("proxy_is_best_callback_fn_t")
        .allowlist_var(
            "PROXY_WORKER_(INITIALIZED|DRAIN|IN_SHUTDOWN|DISABLED|STOPPED|IN_ERROR|HOT_STANDBY|HC_FAIL|HOT_SPARE)",
        )
        .allowlist_function("ap_register_provider")
        .allowlist_function("ap_find_linked_module")
        .allowlist_function("ap_get_server_revision")
        .allowlist_function("ap_hook_fixups")
        .allowlist_function("apr_table_(get|setn)")
        .allowlist_type("apr_OFN_ap_watchdog_(get_instance|register_callback)_t")
        .allowlist_function("ap_hook_(pre_config|post_config|child_init)")
        .allowlist_function("ap_(get|set)_module_config")
        .allowlist_function("ap_(create_per_dir_config|walk_config)")
        .allowlist_function("ap_get_(request|server)_module_loglevel")
        .allowlist_function("ap_log_(error|rerror)_")
        .allowlist_function("ap_server_root_relative")
        .allowlist_function("ap_(open_piped_log|piped_log_write_fd)")
        .allowlist_function("apr_os_file_get")
        .allowlist_function("ap_state_query")
        .allowlist_function("apr_dynamic_fn_retrieve")
        .allowlist_function("apr_pool_cleanup_(register|null)")
        .allowlist_function("apr_pstrmemdup")
        .allowlist_function("apr_pstrdup")
        .allowlist_function("apr_shm_(create|baseaddr_get)")
        .allowlist_function("ap_hook_handler")
        .allowlist_function("ap_rwrite")
        .allowlist_function("ap_allow_standard_methods")
        .allowlist_var("MERGE_ALLOW")
        .allowlist_function("ap_set_content_(type|length)")
        .allowlist_function("ap_(update_mtime|set_last_modified|meets_conditions)")
        .allowlist_function("apr_optional_hook_add")
        .allowlist_var("ap_server_conf")
        .allowlist_var("AP_STATUS_SHORT")
        .allowlist_var("M_GET")
        .allowlist_var("HTTP_(METHOD_NOT_ALLOWED|INTERNAL_SERVER_ERROR)")
        .allowlist_var("MODULE_MAGIC_(NUMBER_MAJOR|NUMBER_MINOR|COOKIE)")
        .allowlist_var("AP_MODULE_FLAG_ALWAYS_MERGE")
        .allowlist_var("(RSRC|ACCESS)_CONF")
        .allowlist_var("APLOG_(EMERG|ALERT|CRIT|ERR|WARNING|NOTICE|INFO|DEBUG|TRACE1)")
        .allowlist_var("AP_SQ_(MAIN_STATE|MS_CREATE_PRE_CONFIG)")
        .allowlist_var("APR_HOOK_MIDDLE")
        .allowlist_var("AP_WATCHDOG_STATE_(STARTING|RUNNING|STOPPING)")
        .allowlist_var("(OK|DECLINED|APR_SUCCESS)")
        .default_enum_style(bindgen::EnumVariation::Consts)
        .derive_debug(false)
        .layout_tests(false)
        .generate_comments(false)
        .generate()
        .expect("bindgen failed on the httpd headers");

    let out = PathBuf::from(env::var("OUT_DIR").unwrap()).join("httpd_bindings.rs");
    bindings.write_to_file(&out).expect("write bindings");
}
