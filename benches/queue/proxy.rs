//! A TCP proxy between the library and the server: counts the commands on the wire and can
//! delay every client packet, as a slower link would.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A TCP proxy to the server that counts client packets with sequence id 0 (each starts a
/// command: one round trip) and can delay every client chunk, as a link with that latency would.
pub struct Proxy {
    pub port: u16,
    commands: Arc<AtomicU64>,
}

impl Proxy {
    pub fn start(upstream: (String, u16), delay: Duration) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let commands = Arc::new(AtomicU64::new(0));
        let counter = commands.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let server = TcpStream::connect((upstream.0.as_str(), upstream.1)).unwrap();
                client.set_nodelay(true).unwrap();
                server.set_nodelay(true).unwrap();
                let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                let counter = counter.clone();
                std::thread::spawn(move || pump_counting(client, server, counter, delay));
                std::thread::spawn(move || pump(s2, c2));
            }
        });
        Proxy { port, commands }
    }

    pub fn commands(&self) -> u64 {
        self.commands.load(Ordering::SeqCst)
    }
}

fn pump(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = vec![0u8; 1 << 16];
    while let Ok(n) = from.read(&mut buf) {
        if n == 0 || to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Both);
}

/// Forwards client to server, parsing packet headers (3-byte length, 1-byte sequence id). A
/// second thread writes each chunk `delay` after it arrived, as a link with that latency would:
/// chunks sent back to back arrive back to back, not a delay apart.
fn pump_counting(mut from: TcpStream, mut to: TcpStream, counter: Arc<AtomicU64>, delay: Duration) {
    let (chunks, delayed) = std::sync::mpsc::channel::<(Instant, Vec<u8>)>();
    std::thread::spawn(move || {
        for (arrived, chunk) in delayed {
            if let Some(wait) = (arrived + delay).checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            if to.write_all(&chunk).is_err() {
                break;
            }
        }
        let _ = to.shutdown(std::net::Shutdown::Both);
    });
    let mut buf = vec![0u8; 1 << 16];
    let mut pending: Vec<u8> = Vec::new();
    while let Ok(n) = from.read(&mut buf) {
        if n == 0 {
            break;
        }
        let arrived = Instant::now();
        pending.extend_from_slice(&buf[..n]);
        while pending.len() >= 4 {
            let len =
                pending[0] as usize | (pending[1] as usize) << 8 | (pending[2] as usize) << 16;
            if pending.len() < 4 + len {
                break;
            }
            if pending[3] == 0 {
                counter.fetch_add(1, Ordering::SeqCst);
            }
            pending.drain(..4 + len);
        }
        if chunks.send((arrived, buf[..n].to_vec())).is_err() {
            break;
        }
    }
}
