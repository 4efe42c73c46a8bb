//! The httpd layer: the only code that sees httpd/APR types. Raw pointers
//! are met in [`safe`], a thin safe layer over pools, servers, requests,
//! directive parameters, configuration slots and logging; the other files
//! speak through it and convert at the edge (C strings to bytes, server
//! records to [`conf::ServerConfig`]) before handing plain Rust values to
//! the engine.
//!
//! Every `extern "C"` function runs its body inside [`safe::guard`]: a
//! panic unwinding into httpd's C frames would abort the whole server.
//!
//! Dependencies run one way: `record` (the module record) → `hooks`,
//! `directives` → `maps`, `pac`, `probe`, `status`, `shared` → `bycache`
//! → `dirconf`, `conf`, `state`, `events`, `logs` → `safe` → `ffi`.

mod bycache;
mod conf;
mod dirconf;
mod directives;
mod events;
mod ffi;
mod hooks;
mod logs;
mod maps;
mod pac;
mod probe;
mod record;
mod safe;
mod shared;
mod state;
mod status;
