//! An in-process TCP proxy for fault injection on real peer links.
//!
//! A [`Proxy`] listens on a loopback port and forwards every connection to
//! one target, byte for byte, in both directions. Each direction has a
//! [`Rule`] that can be changed at any time:
//!
//! - `drop`: bytes read in that direction are discarded. A TCP stream cannot
//!   lose a message in the middle without corrupting the ones after it, so a
//!   connection that lost bytes is *tainted*: when its direction heals it is
//!   closed, and the peers reconnect through the proxy (fresh connections
//!   made while a direction drops are tainted from their first byte). This is
//!   what a partition looks like to a real server: silence, then a reset.
//! - `delay`: bytes are held for this long before they are written on,
//!   preserving order (a change of delay never reorders bytes).
//!
//! One-way partitions are a rule on one direction only. The proxy is meant
//! for 127.0.0.1 only; [`Proxy::start`] binds there.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// What happens to bytes flowing in one direction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rule {
    pub drop: bool,
    pub delay: Duration,
}

impl Rule {
    /// Bytes flow unchanged.
    pub const PASS: Rule = Rule {
        drop: false,
        delay: Duration::ZERO,
    };
    /// Bytes are discarded.
    pub const DROP: Rule = Rule {
        drop: true,
        delay: Duration::ZERO,
    };
}

/// One of the two directions of a proxied link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// From the side that connected to the proxy, towards the target.
    ToTarget,
    /// From the target back to the side that connected.
    FromTarget,
}

/// A running proxy; stops accepting (and closes its connections) on drop.
#[derive(Debug)]
pub struct Proxy {
    addr: SocketAddr,
    to_target: watch::Sender<Rule>,
    from_target: watch::Sender<Rule>,
    accept: JoinHandle<()>,
}

impl Proxy {
    /// Listens on a free loopback port, forwarding to `target`.
    pub async fn start(target: SocketAddr) -> io::Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (to_target, to_rx) = watch::channel(Rule::PASS);
        let (from_target, from_rx) = watch::channel(Rule::PASS);
        let accept = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            loop {
                let Ok((inbound, _)) = listener.accept().await else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let (to_rx, from_rx) = (to_rx.clone(), from_rx.clone());
                connections.spawn(async move {
                    let Ok(outbound) = TcpStream::connect(target).await else {
                        return; // the target is down: the dialer sees a close
                    };
                    let _ = inbound.set_nodelay(true);
                    let _ = outbound.set_nodelay(true);
                    let (in_read, in_write) = inbound.into_split();
                    let (out_read, out_write) = outbound.into_split();
                    // Either direction ending (or healing from a drop) ends both.
                    tokio::select! {
                        () = pump(in_read, out_write, to_rx) => {}
                        () = pump(out_read, in_write, from_rx) => {}
                    }
                });
                // Reap finished connections so the set stays small.
                while connections.try_join_next().is_some() {}
            }
        });
        Ok(Proxy {
            addr,
            to_target,
            from_target,
            accept,
        })
    }

    /// Where to connect to reach the target through this proxy.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn set(&self, direction: Direction, rule: Rule) {
        let tx = match direction {
            Direction::ToTarget => &self.to_target,
            Direction::FromTarget => &self.from_target,
        };
        tx.send_replace(rule);
    }

    /// Both directions back to [`Rule::PASS`].
    pub fn heal(&self) {
        self.set(Direction::ToTarget, Rule::PASS);
        self.set(Direction::FromTarget, Rule::PASS);
    }

    pub fn rule(&self, direction: Direction) -> Rule {
        match direction {
            Direction::ToTarget => *self.to_target.borrow(),
            Direction::FromTarget => *self.from_target.borrow(),
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        // Dropping the JoinSet inside the task aborts every connection.
        self.accept.abort();
    }
}

/// Copies `from` to `to` under the direction's current rule until either
/// side closes, or until a tainted stream's direction heals.
async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, rules: watch::Receiver<Rule>) {
    let tainted_cell = AtomicBool::new(false);
    let tainted = &tainted_cell;
    let (queue, mut queued) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let read_rules = rules.clone();
    // Owns the queue's sender: when reading stops, the writer drains what is
    // queued and then ends too.
    let read = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match from.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let rule = *read_rules.borrow();
            // Once bytes were lost, nothing more may pass: delivering later
            // bytes after a gap is something TCP never does.
            if rule.drop || tainted.load(Ordering::Relaxed) {
                tainted.store(true, Ordering::Relaxed);
                continue;
            }
            if queue
                .send((Instant::now() + rule.delay, buf[..n].to_vec()))
                .is_err()
            {
                return;
            }
        }
    };
    let write = async {
        while let Some((due, bytes)) = queued.recv().await {
            tokio::time::sleep_until(due).await;
            if to.write_all(&bytes).await.is_err() {
                return;
            }
        }
    };
    let mut heal_rules = rules;
    let healed = async move {
        loop {
            if heal_rules.changed().await.is_err() {
                return std::future::pending::<()>().await;
            }
            if tainted.load(Ordering::Relaxed) && !heal_rules.borrow().drop {
                return;
            }
        }
    };
    tokio::select! {
        _ = async { tokio::join!(read, write) } => {}
        () = healed => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn echo_server() -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = l.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = s.into_split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        addr
    }

    async fn read_some(s: &mut TcpStream, ms: u64) -> Option<Vec<u8>> {
        let mut buf = [0u8; 64];
        match tokio::time::timeout(Duration::from_millis(ms), s.read(&mut buf)).await {
            Ok(Ok(n)) => Some(buf[..n].to_vec()),
            _ => None,
        }
    }

    #[tokio::test]
    async fn forwards_drops_one_way_and_resets_tainted_streams_on_heal() {
        let proxy = Proxy::start(echo_server().await).await.expect("proxy");
        let mut s = TcpStream::connect(proxy.addr()).await.expect("connect");
        s.write_all(b"ping").await.expect("write");
        assert_eq!(read_some(&mut s, 2000).await.as_deref(), Some(&b"ping"[..]));

        // Replies dropped: the request reaches the echo server, the echo never returns.
        proxy.set(Direction::FromTarget, Rule::DROP);
        s.write_all(b"lost").await.expect("write");
        assert_eq!(
            read_some(&mut s, 300).await,
            None,
            "a dropped direction delivered"
        );

        // Healing closes the tainted stream rather than resuming mid-stream.
        proxy.heal();
        assert_eq!(
            read_some(&mut s, 2000).await.as_deref(),
            Some(&b""[..]),
            "not closed"
        );

        // A new connection flows again.
        let mut s = TcpStream::connect(proxy.addr()).await.expect("reconnect");
        s.write_all(b"back").await.expect("write");
        assert_eq!(read_some(&mut s, 2000).await.as_deref(), Some(&b"back"[..]));
    }

    #[tokio::test]
    async fn delays_keep_order() {
        let proxy = Proxy::start(echo_server().await).await.expect("proxy");
        proxy.set(
            Direction::ToTarget,
            Rule {
                drop: false,
                delay: Duration::from_millis(200),
            },
        );
        let mut s = TcpStream::connect(proxy.addr()).await.expect("connect");
        let sent = Instant::now();
        s.write_all(b"a").await.expect("write");
        // Let the proxy read "a" under the delay before the rule changes.
        tokio::time::sleep(Duration::from_millis(50)).await;
        proxy.set(Direction::ToTarget, Rule::PASS);
        s.write_all(b"b").await.expect("write");
        let mut got = Vec::new();
        while got.len() < 2 {
            got.extend(read_some(&mut s, 2000).await.expect("echo"));
        }
        assert_eq!(got, b"ab", "a later, undelayed byte overtook a delayed one");
        assert!(sent.elapsed() >= Duration::from_millis(200));
    }
}
