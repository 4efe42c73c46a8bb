//! A small ICP responder on loopback, built on the crate's codec: it
//! answers queries like a cache does, late, or not at all, as a test needs.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use mod_icpquery::icp::{Message, Opcode};

pub struct Responder {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Responder {
    /// Answers each query with the opcode `answer(url)` gives; `None`
    /// reads the query and never answers (a hung cache).
    pub fn start(addr: &str, answer: impl Fn(&[u8]) -> Option<Opcode> + Send + 'static) -> Responder {
        Responder::start_after(addr, Duration::ZERO, answer)
    }

    /// The same, each reply sent `delay` after its query arrived (a cache
    /// slower than the others).
    pub fn start_after(
        addr: &str,
        delay: Duration,
        answer: impl Fn(&[u8]) -> Option<Opcode> + Send + 'static,
    ) -> Responder {
        let socket = UdpSocket::bind(addr).unwrap_or_else(|e| panic!("bind ICP responder {addr}: {e}"));
        // Bounds how long Drop waits for the thread to see `stop`.
        socket.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = thread::spawn(move || {
            let mut buf = [0u8; 16_384];
            let mut out = Vec::new();
            while !stopped.load(Ordering::Relaxed) {
                let Ok((n, from)) = socket.recv_from(&mut buf) else { continue };
                let Ok(query) = Message::decode(&buf[..n]) else { continue };
                if query.opcode != Opcode::Query {
                    continue;
                }
                let Some(opcode) = answer(query.url()) else { continue };
                if !delay.is_zero() {
                    thread::sleep(delay);
                }
                query.reply(opcode).encode(&mut out).unwrap();
                socket.send_to(&out, from).unwrap();
            }
        });
        Responder { addr: socket_addr(addr), stop, thread: Some(thread) }
    }
}

fn socket_addr(addr: &str) -> SocketAddr {
    addr.parse().unwrap_or_else(|e| panic!("{addr}: {e}"))
}

impl Drop for Responder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
