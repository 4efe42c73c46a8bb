//! A hostile-but-real cache on loopback: a configured peer that answers every
//! query with a genuine reply, but first floods the query's source port with
//! a catalogue of forged and malformed datagrams, from its own peer socket,
//! from the peer's address on another port, and from a stranger's address.
//!
//! Every datagram of the catalogue is sent BEFORE the genuine reply, so the
//! lookup (which waits for this peer) reads all of them; the peer counts what
//! it sent, by the reason the module must give for dropping it.

use std::collections::BTreeMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use mod_icpquery::icp::{Message, Opcode, Payload, HEADER_LEN, MAX_MESSAGE_LEN};

/// What the hostile peer has sent so far.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sent {
    /// Queries received (each answered with the catalogue, then the reply).
    pub queries: u64,
    /// Genuine replies sent from the peer socket, by opcode name.
    pub genuine: BTreeMap<&'static str, u64>,
    /// Bogus datagrams from the peer's own address and ICP port, by the
    /// reason the module must drop them for (`Peer<n>Rejected_<reason>`).
    pub from_peer: BTreeMap<&'static str, u64>,
    /// Bogus datagrams from senders that are not a configured peer, by
    /// sender (`Region<i>UnknownSender`).
    pub from_strangers: BTreeMap<SocketAddr, u64>,
}

impl Sent {
    pub fn strangers_total(&self) -> u64 {
        self.from_strangers.values().sum()
    }
}

pub struct HostilePeer {
    pub peer: SocketAddr,
    pub side_port: SocketAddr,
    pub stranger: SocketAddr,
    sent: Arc<Mutex<Sent>>,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

/// One bogus datagram: who sends it, the bytes, and the drop reason.
enum Sender {
    Peer,
    SidePort,
    Stranger,
}

fn encode(m: &Message<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    m.encode(&mut out).unwrap_or_else(|e| panic!("encode {m:?}: {e}"));
    out
}

fn set_len_field(d: &mut [u8], len: usize) {
    d[2..4].copy_from_slice(&(len as u16).to_be_bytes());
}

/// The catalogue for one query: every entry carries a HIT (or HIT_OBJ) where
/// the format allows, so any datagram wrongly accepted would change routing.
fn catalogue(query: &Message<'_>) -> Vec<(Sender, &'static str, Vec<u8>)> {
    let (n, url) = (query.request_number, query.url());
    let hit = encode(&query.reply(Opcode::Hit));
    let mut c: Vec<(Sender, &'static str, Vec<u8>)> = Vec::new();

    // Perfect forged HITs from senders that are not the configured peer.
    c.push((Sender::Stranger, "unknown_sender", hit.clone()));
    c.push((Sender::SidePort, "unknown_sender", hit.clone()));
    let hit_obj = Message { payload: Payload::HitObj { url, object: b"forged object" }, ..query.reply(Opcode::HitObj) };
    c.push((Sender::Stranger, "unknown_sender", encode(&hit_obj)));

    // From the peer's own address and port.
    let wrong_number = Message { request_number: n.wrapping_add(1), ..query.reply(Opcode::Hit) };
    c.push((Sender::Peer, "wrong_request_number", encode(&wrong_number)));
    let wrong_number = Message { request_number: !n, ..query.reply(Opcode::HitObj) };
    c.push((Sender::Peer, "wrong_request_number", encode(&wrong_number)));
    let mut other = url.to_vec();
    other.extend_from_slice(b"-other");
    let other_url = Message::query(n, &other).reply(Opcode::Hit);
    c.push((Sender::Peer, "wrong_url", encode(&other_url)));
    let prefix = Message::query(n, &url[..url.len() - 1]).reply(Opcode::Hit);
    c.push((Sender::Peer, "wrong_url", encode(&prefix)));

    // Truncated headers, down to nothing.
    c.push((Sender::Peer, "too_short", hit[..HEADER_LEN - 1].to_vec()));
    c.push((Sender::Peer, "too_short", hit[..4].to_vec()));
    c.push((Sender::Peer, "too_short", Vec::new()));

    // Length field larger and smaller than the datagram.
    let mut longer = hit.clone();
    set_len_field(&mut longer, hit.len() + 1);
    c.push((Sender::Peer, "length_mismatch", longer));
    let mut shorter = hit.clone();
    set_len_field(&mut shorter, HEADER_LEN);
    c.push((Sender::Peer, "length_mismatch", shorter));
    // A valid HIT with extra bytes behind it: the field tells the truth about
    // the message but not about the datagram.
    let mut padded = hit.clone();
    padded.extend_from_slice(b"junk");
    c.push((Sender::Peer, "length_mismatch", padded));

    // Version 3, unknown opcodes.
    let mut v3 = hit.clone();
    v3[1] = 3;
    c.push((Sender::Peer, "bad_version", v3));
    for op in [5u8, 99, 255] {
        let mut unknown = hit.clone();
        unknown[0] = op;
        c.push((Sender::Peer, "unknown_opcode", unknown));
    }

    // 16 KiB and more: one byte over the maximum, and far over it (the
    // module reads at most MAX_MESSAGE_LEN + 1 bytes of it, and logs the size).
    for size in [MAX_MESSAGE_LEN + 1, 20_000] {
        let mut big = hit[..HEADER_LEN].to_vec();
        big.resize(size - 1, b'a');
        big.push(0);
        set_len_field(&mut big, size);
        c.push((Sender::Peer, "too_long", big));
    }

    // HIT_OBJ whose object size field lies: larger, smaller, missing.
    let good_obj = encode(&hit_obj);
    let size_at = HEADER_LEN + url.len() + 1;
    let mut larger = good_obj.clone();
    larger[size_at..size_at + 2].copy_from_slice(&1000u16.to_be_bytes());
    c.push((Sender::Peer, "object_length_mismatch", larger));
    let mut smaller = good_obj.clone();
    smaller[size_at..size_at + 2].copy_from_slice(&1u16.to_be_bytes());
    c.push((Sender::Peer, "object_length_mismatch", smaller));
    let mut no_size = encode(&query.reply(Opcode::HitObj));
    no_size.truncate(size_at);
    set_len_field(&mut no_size, size_at);
    c.push((Sender::Peer, "object_length_mismatch", no_size));

    // URL without its NUL; bytes after the NUL.
    let mut unterminated = hit.clone();
    unterminated.pop();
    let len = unterminated.len();
    set_len_field(&mut unterminated, len);
    c.push((Sender::Peer, "url_not_terminated", unterminated));
    let mut trailing = hit.clone();
    trailing.extend_from_slice(b"\0x");
    let len = trailing.len();
    set_len_field(&mut trailing, len);
    c.push((Sender::Peer, "trailing_bytes", trailing));

    // Well-formed ICP that does not answer a query.
    c.push((Sender::Peer, "not_a_reply", encode(query)));
    c.push((Sender::Peer, "not_a_reply", encode(&query.reply(Opcode::SEcho))));
    c.push((Sender::Peer, "not_a_reply", encode(&query.reply(Opcode::Invalid))));
    c
}

impl HostilePeer {
    /// Binds `peer` (the configured cache address), `side_port` (the same
    /// address, another port) and `stranger` (a non-peer address); answers
    /// each query with the catalogue, then `answer(url)` as a genuine reply.
    pub fn start(
        peer: SocketAddr,
        side_port: SocketAddr,
        stranger: SocketAddr,
        answer: impl Fn(&[u8]) -> Opcode + Send + 'static,
    ) -> HostilePeer {
        let bind = |a: SocketAddr| UdpSocket::bind(a).unwrap_or_else(|e| panic!("bind hostile socket {a}: {e}"));
        let (peer_sock, side_sock, stranger_sock) = (bind(peer), bind(side_port), bind(stranger));
        // Bounds how long Drop waits for the thread to see `stop`.
        peer_sock.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        let sent = Arc::new(Mutex::new(Sent::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (sent2, stop2) = (sent.clone(), stop.clone());
        let thread = thread::spawn(move || {
            let mut buf = vec![0u8; 65_536];
            while !stop2.load(Ordering::Relaxed) {
                let Ok((n, from)) = peer_sock.recv_from(&mut buf) else { continue };
                let Ok(query) = Message::decode(&buf[..n]) else { continue };
                if query.opcode != Opcode::Query {
                    continue;
                }
                let mut tally = Sent { queries: 1, ..Sent::default() };
                for (who, reason, bytes) in catalogue(&query) {
                    let sock = match who {
                        Sender::Peer => &peer_sock,
                        Sender::SidePort => &side_sock,
                        Sender::Stranger => &stranger_sock,
                    };
                    let sent = sock.send_to(&bytes, from).unwrap_or_else(|e| panic!("send {reason} to {from}: {e}"));
                    assert_eq!(sent, bytes.len());
                    match who {
                        Sender::Peer => *tally.from_peer.entry(reason).or_default() += 1,
                        _ => *tally.from_strangers.entry(sock.local_addr().unwrap()).or_default() += 1,
                    }
                }
                let opcode = answer(query.url());
                peer_sock.send_to(&encode(&query.reply(opcode)), from).expect("send the genuine reply");
                *tally.genuine.entry(opcode.name()).or_default() += 1;
                // Record the tally only once everything is on its way.
                let mut total = sent2.lock().unwrap();
                total.queries += tally.queries;
                for (k, v) in tally.genuine {
                    *total.genuine.entry(k).or_default() += v;
                }
                for (k, v) in tally.from_peer {
                    *total.from_peer.entry(k).or_default() += v;
                }
                for (k, v) in tally.from_strangers {
                    *total.from_strangers.entry(k).or_default() += v;
                }
            }
        });
        HostilePeer { peer, side_port, stranger, sent, stop, thread: Some(thread) }
    }

    pub fn sent(&self) -> Sent {
        self.sent.lock().unwrap().clone()
    }
}

impl Drop for HostilePeer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
