//! Several hosts on one machine, for real-process tests that must cross a
//! network: each host is a Linux network namespace this harness creates,
//! with one Ethernet interface (a TAP device) plugged into a userspace
//! switch that runs in the test process. The switch delivers frames after a
//! per-link delay, drops a share of them, and drops everything on a cut
//! link (silently, as a real partition does: no reset, no error), so the
//! kernel's real TCP stacks see latency, loss and partitions. Each host has
//! its own hosts file (`/etc/netns/<ns>/hosts`, which `ip netns exec`
//! mounts), so configurations name hosts `zab1`, `zab2`, ...
//!
//! Why a userspace switch rather than a bridge with `tc netem`: netem is a
//! kernel module that machines like this one do not have, and the switch
//! needs nothing but `/dev/net/tun`. Everything it makes lives inside its
//! own namespaces (and `/etc/netns/<ns>`), and is removed on drop; names
//! carry the process id, so leftovers of a killed run are found and removed
//! by the next.
//!
//! Needs root (namespaces, TAP devices) and iproute2's `ip`.
//! [`Net::available`] says whether this machine can.

use std::fs::File;
use std::io;
use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use tun_tap::{Iface, Mode};

/// Frames larger than this are never sent by an interface with the default
/// MTU of 1500 (no offloads on a TAP device without a vnet header).
const FRAME_BYTES_MAX: usize = 65_536;
const NS_DIR: &str = "/run/netns";
const PREFIX: &str = "zt";

/// What happens to frames on one directed link.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LinkRule {
    /// One-way delay (half the round trip when both directions have it).
    pub delay: Duration,
    /// The share of frames dropped, 0.0..=1.0.
    pub loss: f64,
    /// Every frame dropped.
    pub cut: bool,
}

impl LinkRule {
    pub const CLEAN: LinkRule = LinkRule {
        delay: Duration::ZERO,
        loss: 0.0,
        cut: false,
    };
}

/// One host: its namespace, name and address.
#[derive(Clone, Debug)]
pub struct Host {
    pub ns: String,
    pub name: String,
    pub ip: Ipv4Addr,
}

#[derive(Debug)]
struct Rules {
    /// The rule every link returns to on [`Net::heal`].
    baseline: LinkRule,
    /// `links[from][to]`.
    links: Vec<Vec<LinkRule>>,
    rng: u64,
}

impl Rules {
    /// A uniform draw in [0, 1) (xorshift; seeded per net).
    fn draw(&mut self) -> f64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        (self.rng >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A frame and when it is due at its port.
type Due = (Instant, Vec<u8>);

#[derive(Debug)]
struct Switch {
    rules: Mutex<Rules>,
    /// The port each MAC address was last seen on.
    macs: Mutex<std::collections::HashMap<[u8; 6], usize>>,
    /// `outboxes[from][to]`: each directed link's delivery queue (frames
    /// with their due time), so a slow link holds up no other.
    outboxes: Vec<Vec<Mutex<mpsc::Sender<Due>>>>,
}

impl Switch {
    fn forward(&self, from: usize, frame: &[u8]) {
        if frame.len() < 14 {
            return;
        }
        let dst: [u8; 6] = frame[..6].try_into().expect("6 bytes");
        let src: [u8; 6] = frame[6..12].try_into().expect("6 bytes");
        let known = {
            let mut macs = self.macs.lock().unwrap_or_else(|e| e.into_inner());
            macs.insert(src, from);
            // Broadcast and multicast (the group bit) flood.
            if dst[0] & 1 == 1 {
                None
            } else {
                macs.get(&dst).copied()
            }
        };
        let ports: Vec<usize> = match known {
            Some(p) => vec![p],
            None => (0..self.outboxes.len()).filter(|&p| p != from).collect(),
        };
        let now = Instant::now();
        for to in ports {
            if to == from {
                continue;
            }
            let due = {
                let mut rules = self.rules.lock().unwrap_or_else(|e| e.into_inner());
                let rule = rules.links[from][to];
                if rule.cut || (rule.loss > 0.0 && rules.draw() < rule.loss) {
                    continue;
                }
                now + rule.delay
            };
            let outbox = self.outboxes[from][to]
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let _ = outbox.send((due, frame.to_vec()));
        }
    }
}

/// The hosts and their switch. Dropping it removes the namespaces.
#[derive(Debug)]
pub struct Net {
    hosts: Vec<Host>,
    switch: Arc<Switch>,
}

fn ip(args: &[&str]) -> io::Result<()> {
    let out = Command::new("ip").args(args).output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// Switch threads running in this process (its tests check none outlive
/// their net).
static SWITCH_THREADS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn spawn_switch_thread(f: impl FnOnce() + Send + 'static) {
    use std::sync::atomic::Ordering;
    struct Running;
    impl Drop for Running {
        fn drop(&mut self) {
            SWITCH_THREADS.fetch_sub(1, Ordering::SeqCst);
        }
    }
    SWITCH_THREADS.fetch_add(1, Ordering::SeqCst);
    let running = Running;
    std::thread::Builder::new()
        .name("netns-switch".into())
        .spawn(move || {
            let _running = running;
            f();
        })
        .expect("a switch thread");
}

/// Enters namespace `ns` on the calling thread only.
fn enter(ns: &str) -> io::Result<()> {
    let file = File::open(format!("{NS_DIR}/{ns}"))?;
    nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET).map_err(io::Error::from)
}

/// Removes namespaces (and hosts files) left by runs whose process is gone.
fn remove_leftovers() {
    let Ok(entries) = std::fs::read_dir(NS_DIR) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(PREFIX) else {
            continue;
        };
        let pid: String = rest.chars().take_while(char::is_ascii_digit).collect();
        if pid.is_empty() || std::path::Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let _ = ip(&["netns", "del", &name]);
        let _ = std::fs::remove_dir_all(format!("/etc/netns/{name}"));
    }
}

impl Net {
    /// Whether this machine can build a net: root, `ip`, `/dev/net/tun`.
    pub fn available() -> Result<(), String> {
        if !nix::unistd::Uid::effective().is_root() {
            return Err("needs root (network namespaces and TAP devices)".into());
        }
        if !std::path::Path::new("/dev/net/tun").exists() {
            return Err("/dev/net/tun is missing".into());
        }
        match Command::new("ip").arg("-V").output() {
            Ok(o) if o.status.success() => Ok(()),
            _ => Err("iproute2's `ip` is missing".into()),
        }
    }

    /// `servers` hosts named `zab1`.. at 10.77.0.1.., and one client host
    /// `client` at 10.77.0.100, every link clean. `tag` tells nets of one
    /// process apart (short: it goes into interface-free namespace names).
    pub fn create(tag: &str, servers: usize, seed: u64) -> io::Result<Net> {
        Net::available().map_err(io::Error::other)?;
        assert!(servers < 100, "addresses 10.77.0.1..99 are the servers'");
        // The process id ends where the tag begins (see `remove_leftovers`).
        assert!(
            tag.starts_with(|c: char| c.is_ascii_alphabetic())
                && tag.chars().all(|c| c.is_ascii_alphanumeric()),
            "a tag is letters and digits, starting with a letter: {tag:?}"
        );
        remove_leftovers();
        let pid = std::process::id();
        let mut hosts: Vec<Host> = (1..=servers)
            .map(|i| Host {
                ns: format!("{PREFIX}{pid}{tag}s{i}"),
                name: format!("zab{i}"),
                ip: Ipv4Addr::new(10, 77, 0, i as u8),
            })
            .collect();
        hosts.push(Host {
            ns: format!("{PREFIX}{pid}{tag}c"),
            name: "client".into(),
            ip: Ipv4Addr::new(10, 77, 0, 100),
        });
        let mut hosts_file = String::from("127.0.0.1 localhost\n::1 localhost\n");
        for h in &hosts {
            hosts_file.push_str(&format!("{} {}\n", h.ip, h.name));
        }
        // From here on, a failure drops `net`, which removes what was made.
        let ports = hosts.len();
        let n = Net {
            hosts,
            switch: Arc::new(Switch {
                rules: Mutex::new(Rules {
                    baseline: LinkRule::CLEAN,
                    links: vec![vec![LinkRule::CLEAN; ports]; ports],
                    rng: seed | 1,
                }),
                macs: Mutex::default(),
                outboxes: Vec::new(),
            }),
        };
        for h in &n.hosts {
            ip(&["netns", "add", &h.ns])?;
            let etc = format!("/etc/netns/{}", h.ns);
            std::fs::create_dir_all(&etc)?;
            std::fs::write(format!("{etc}/hosts"), &hosts_file)?;
        }
        // TAP devices are made inside each namespace, by a thread that
        // enters them one by one (the descriptors stay usable after).
        let names: Vec<String> = n.hosts.iter().map(|h| h.ns.clone()).collect();
        let ifaces = std::thread::spawn(move || -> io::Result<Vec<Iface>> {
            names
                .iter()
                .map(|ns| {
                    enter(ns)?;
                    Iface::without_packet_info("eth0", Mode::Tap)
                })
                .collect()
        })
        .join()
        .map_err(|_| io::Error::other("the TAP thread panicked"))??;
        for h in &n.hosts {
            let addr = format!("{}/24", h.ip);
            ip(&["-n", &h.ns, "link", "set", "lo", "up"])?;
            ip(&["-n", &h.ns, "addr", "add", &addr, "dev", "eth0"])?;
            ip(&["-n", &h.ns, "link", "set", "eth0", "up"])?;
        }
        let ifaces: Vec<Arc<Iface>> = ifaces.into_iter().map(Arc::new).collect();
        let mut outboxes = Vec::new();
        for _from in 0..ifaces.len() {
            let mut row = Vec::new();
            for iface in &ifaces {
                let (tx, rx) = mpsc::channel::<Due>();
                row.push(Mutex::new(tx));
                let iface = iface.clone();
                // Delivers in arrival order, each frame once it is due (a
                // link keeps its order, as a cable does). Ends when the
                // switch is gone, or the device.
                spawn_switch_thread(move || {
                    while let Ok((due, frame)) = rx.recv() {
                        let now = Instant::now();
                        if due > now {
                            std::thread::sleep(due - now);
                        }
                        if iface.send(&frame).is_err() {
                            return;
                        }
                    }
                });
            }
            outboxes.push(row);
        }
        let mut net = n;
        Arc::get_mut(&mut net.switch)
            .expect("not shared yet")
            .outboxes = outboxes;
        for (port, iface) in ifaces.into_iter().enumerate() {
            let switch = net.switch.clone();
            spawn_switch_thread(move || {
                let mut buf = vec![0u8; FRAME_BYTES_MAX];
                // Ends when the namespace and its device go away.
                while let Ok(len) = iface.recv(&mut buf) {
                    switch.forward(port, &buf[..len]);
                }
            });
        }
        Ok(net)
    }

    /// Server host `i` (0-based).
    pub fn server(&self, i: usize) -> &Host {
        &self.hosts[i]
    }

    /// The client host.
    pub fn client(&self) -> &Host {
        self.hosts.last().expect("a client host")
    }

    pub fn servers(&self) -> usize {
        self.hosts.len() - 1
    }

    /// For a test: a net whose every link follows `rule`, or `None` (after
    /// saying why) where this machine cannot make one. With
    /// `ZAB_REQUIRE_NETNS=1` (CI sets it) that is a failure instead.
    pub fn for_test(tag: &str, servers: usize, rule: LinkRule, seed: u64) -> Option<Arc<Net>> {
        if let Err(why) = Net::available() {
            if std::env::var("ZAB_REQUIRE_NETNS").as_deref() == Ok("1") {
                panic!("ZAB_REQUIRE_NETNS=1 but no multi-host net here: {why}");
            }
            println!("SKIPPED: no multi-host net on this machine: {why}");
            return None;
        }
        let net = Net::create(tag, servers, seed).expect("a multi-host net");
        net.set_baseline(rule);
        Some(Arc::new(net))
    }

    /// Runs `body` to completion on a runtime whose threads live on the
    /// client host (a thread of its own enters it; so do the runtime's).
    pub fn block_on_client<F, Fut>(self: &Arc<Self>, body: F) -> Fut::Output
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: std::future::Future,
        Fut::Output: Send + 'static,
    {
        let net = self.clone();
        std::thread::spawn(move || {
            net.enter_client().expect("onto the client host");
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("a runtime");
            rt.block_on(body())
        })
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p))
    }

    /// A command that runs `program` on server host `i`.
    pub fn command(&self, i: usize, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.hosts[i].ns]).arg(program);
        c
    }

    /// Moves the calling thread (and threads it starts later) onto the
    /// client host: its sockets are then the client's.
    pub fn enter_client(&self) -> io::Result<()> {
        enter(&self.client().ns)
    }

    /// Sets every link, both ways, to `rule`, and makes it the rule
    /// [`Net::heal`] returns to.
    pub fn set_baseline(&self, rule: LinkRule) {
        let mut rules = self.rules();
        rules.baseline = rule;
        for row in rules.links.iter_mut() {
            row.fill(rule);
        }
    }

    /// Changes the link from server `from` to server `to` (one way).
    pub fn set_link(&self, from: usize, to: usize, change: impl FnOnce(&mut LinkRule)) {
        change(&mut self.rules().links[from][to]);
    }

    /// Cuts every link between server `i` and the other servers, both
    /// ways (its clients still reach it).
    pub fn isolate(&self, i: usize) {
        let mut rules = self.rules();
        for j in (0..self.servers()).filter(|&j| j != i) {
            rules.links[i][j].cut = true;
            rules.links[j][i].cut = true;
        }
    }

    /// Cuts the links between servers of different groups.
    pub fn partition(&self, groups: &[Vec<usize>]) {
        let mut rules = self.rules();
        for (a, ga) in groups.iter().enumerate() {
            for (b, gb) in groups.iter().enumerate() {
                if a == b {
                    continue;
                }
                for &i in ga {
                    for &j in gb {
                        rules.links[i][j].cut = true;
                    }
                }
            }
        }
    }

    /// Every link back to the baseline.
    pub fn heal(&self) {
        let baseline = self.rules().baseline;
        self.set_baseline(baseline);
    }

    fn rules(&self) -> std::sync::MutexGuard<'_, Rules> {
        self.switch.rules.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for h in &self.hosts {
            // Deleting the device wakes its reader with an error, so the
            // switch's threads end and the namespace can go with the name.
            let _ = ip(&["-n", &h.ns, "link", "del", "eth0"]);
            let _ = ip(&["netns", "del", &h.ns]);
            let _ = std::fs::remove_dir_all(format!("/etc/netns/{}", h.ns));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};

    use super::*;

    fn switch_threads() -> usize {
        SWITCH_THREADS.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// On host `ns`'s network: a listener on `addr` that echoes one byte.
    fn echo_on(net: &Arc<Net>, i: usize, port: u16) -> std::thread::JoinHandle<()> {
        let ns = net.server(i).ns.clone();
        let addr = (net.server(i).ip, port);
        let (ready_tx, ready_rx) = mpsc::channel();
        let t = std::thread::spawn(move || {
            enter(&ns).expect("onto the server host");
            let listener = TcpListener::bind(addr).expect("bind");
            let _ = ready_tx.send(());
            if let Ok((mut s, _)) = listener.accept() {
                let mut b = [0u8; 1];
                if s.read_exact(&mut b).is_ok() {
                    let _ = s.write_all(&b);
                }
            }
        });
        ready_rx.recv().expect("listening");
        t
    }

    /// From the client host: connect and one echoed byte; the time taken.
    fn round_trip(net: &Arc<Net>, i: usize, port: u16) -> io::Result<Duration> {
        let (client, addr) = (net.client().ns.clone(), (net.server(i).ip, port));
        std::thread::spawn(move || {
            enter(&client)?;
            let began = Instant::now();
            let mut s = TcpStream::connect_timeout(&addr.into(), Duration::from_secs(2))?;
            s.set_read_timeout(Some(Duration::from_secs(2)))?;
            s.write_all(b"x")?;
            let mut b = [0u8; 1];
            s.read_exact(&mut b)?;
            Ok(began.elapsed())
        })
        .join()
        .expect("the client thread")
    }

    #[test]
    fn frames_cross_with_the_delay_a_cut_link_drops_them_and_drop_cleans_up() {
        let Some(net) = Net::for_test("unit", 2, LinkRule::CLEAN, 7) else {
            return;
        };
        assert!(switch_threads() > 0);
        net.set_baseline(LinkRule {
            delay: Duration::from_millis(10),
            ..LinkRule::CLEAN
        });
        // Connecting and one echo: two round trips of at least 20 ms.
        let server = echo_on(&net, 0, 9000);
        let took = round_trip(&net, 0, 9000).expect("through the switch");
        assert!(took >= Duration::from_millis(40), "{took:?}");
        server.join().expect("echo");
        // Cut from the client host to server 1: nothing gets through.
        let client = net.servers();
        net.set_link(client, 0, |r| r.cut = true);
        let server = echo_on(&net, 0, 9001);
        assert!(round_trip(&net, 0, 9001).is_err(), "crossed a cut link");
        net.heal();
        assert!(round_trip(&net, 0, 9001).is_ok(), "healed");
        server.join().expect("echo");
        let names: Vec<String> = net.hosts.iter().map(|h| h.ns.clone()).collect();
        drop(net);
        // Names, hosts files and threads are gone.
        for ns in names {
            assert!(!std::path::Path::new(&format!("{NS_DIR}/{ns}")).exists());
            assert!(!std::path::Path::new(&format!("/etc/netns/{ns}")).exists());
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while switch_threads() > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(switch_threads(), 0, "switch threads outlived the net");
    }
}
