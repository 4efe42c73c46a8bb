//! The lookup engine: who to ask, how long to wait, and which answers count.
//!
//! [`Lookup`] is the decision logic of one query round and touches no socket
//! or clock: it is told what arrived and when. [`transport::run`] drives it
//! with real UDP sockets and a deadline. The httpd layer and the tools only
//! see [`Cluster`] (what was configured) and [`Outcome`] (what happened).

pub mod carp;
pub mod choice;
mod cluster;
pub mod health;
mod lookup;
pub mod memory;
mod plan;
mod record;
pub mod sockets;
#[allow(unsafe_code)] // plain libc calls, the engine's only unsafe
mod sys;
pub mod transport;

pub use cluster::{carp_array, ip_text, BindAddr, Cluster, Peer, Timeout, DEFAULT_ICP_PORT};
pub use health::RejectReason;
pub use health::{ClusterSlot, Death, Health, LocalHealth, PeerSlot, Transition};
pub use lookup::{Lookup, Outcome, Reject, Rejected, Reply, Responder};
pub use plan::{Ask, Groups, Plan, Purpose};
pub use record::record;
pub use sockets::SocketPool;
pub use transport::{probe, run, LookupError, Shared};
