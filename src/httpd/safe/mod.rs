//! A thin safe layer over the httpd and APR types the module uses: pools,
//! server records and their list, requests, directive parameters, the
//! module's configuration slots, logging, optional functions and hooks.
//!
//! Each wrapper holds a raw pointer that httpd handed over and says, in its
//! constructor's contract, for how long it is valid; its methods read and
//! write the C structure so that the rest of `src/httpd/` needs `unsafe`
//! only where httpd calls in (the `extern "C"` entry points) and where a
//! contract cannot be checked (what type a configuration slot holds).

mod cmd;
mod guard;
mod hooks;
mod log;
mod module;
mod optional;
mod pool;
mod proxy;
mod request;
mod server;
mod text;

pub use cmd::Cmd;
pub use guard::guard;
pub use hooks::{
    first_startup_pass, register_fixups, register_handler, register_post_config, register_pre_config,
    register_status_hook, Predecessors,
};
pub use log::Level;
pub use module::server_config;
pub use optional::{register_rewrite_map, rewrite_loaded, Watchdog};
pub use pool::{Pool, Zeroable};
pub use proxy::{register_lbmethod, Balancer, LbMethod, Members, Proxy, Worker};
pub use request::Request;
pub use server::{main_server, Server};
pub use text::c_bytes;
