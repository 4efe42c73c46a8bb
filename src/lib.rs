//! mod_icpquery: ask a cluster of caches over ICP (RFC 2186) which one holds a
//! URL, and hand the answer to mod_rewrite.
//!
//! Layers, one direction: [`icp`] (bytes <-> messages, no I/O) → [`engine`]
//! (sockets, deadlines) → `httpd` (the only place with raw httpd types and
//! `unsafe` FFI). [`config`] parses directive values and [`logfile`] writes the
//! module's own log; both are plain Rust shared by the module and the tools.

pub mod config;
pub mod engine;
pub mod icp;
pub mod logfile;

mod httpd;
