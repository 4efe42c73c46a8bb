//! mod_icpquery: ask a cluster of caches over ICP (RFC 2186) which one holds a
//! URL, and hand the answer to mod_rewrite and mod_proxy_balancer.
//!
//! Layers, one direction: [`icp`] (bytes <-> messages, no I/O) → [`engine`]
//! (lookup policy as pure logic, a thin UDP driver, peer health, CARP) →
//! `httpd` (the only place with httpd/APR types). [`settings`] is the one
//! model of the `ICPQuery*` directives, [`logfile`] writes the module's
//! own log and [`pac`] its Proxy Auto-Config files; all three are plain
//! Rust shared by the module and the tool.
//!
//! `unsafe` is refused everywhere but in the httpd layer and the engine's
//! one syscall file.
#![deny(unsafe_code)]

pub mod engine;
pub mod icp;
pub mod logfile;
pub mod pac;
pub mod settings;

#[allow(unsafe_code)] // httpd's C API: raw pointers behind a thin safe layer
mod httpd;
