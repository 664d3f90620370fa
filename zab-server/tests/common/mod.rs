//! Test harness shared by the real-process suites: an ensemble of
//! `zab-server` processes on loopback, each with its own data directory and
//! log, killed and cleaned up on drop (logs kept if the test failed).
#![allow(dead_code)] // each suite uses a different part

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use zab_client::{Client, Error, ErrorCode};
use zab_tests::netns::Net;
use zab_tests::proxy::{Direction, Proxy, Rule};

pub struct Ensemble {
    pub dir: PathBuf,
    pub clients: Vec<SocketAddr>,
    /// Each server's own peer listening address.
    pub peers: Vec<SocketAddr>,
    procs: Vec<Option<Child>>,
    /// Keyed (dialer, target), dialer > target; empty unless proxied.
    proxies: BTreeMap<(usize, usize), Proxy>,
    /// Keep the data dirs and logs on drop (also kept when a test panics).
    keep: bool,
    /// Each server's admin address (empty unless configured with them).
    pub admins: Vec<SocketAddr>,
    /// Extra command-line arguments for each server.
    pub args: Vec<Vec<String>>,
    /// A binary to run instead of this build's, per server (an older
    /// release, for upgrade tests).
    pub bins: Vec<Option<PathBuf>>,
    /// The hosts the servers run on, if not this one's loopback.
    net: Option<std::sync::Arc<Net>>,
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// `n` distinct free loopback ports for servers to bind, chosen below the
/// kernel's ephemeral range (32768-60999 on Linux): a port handed out by
/// `bind(0)` is released before its server binds it, and meanwhile another
/// test's `bind(0)` or an outgoing connection's source port could take it
/// (a server then fails with "Address already in use"). Ports below the
/// range are never handed out that way. Each process counts up from its own
/// offset, skipping ports found busy.
pub fn free_ports(n: usize) -> Vec<u16> {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::OnceLock;
    const LOW: u32 = 10_000;
    static HIGH: OnceLock<u32> = OnceLock::new();
    static NEXT: OnceLock<AtomicU32> = OnceLock::new();
    let high = *HIGH.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
            .ok()
            .and_then(|r| r.split_whitespace().next()?.parse().ok())
            .unwrap_or(32_768)
    });
    if high <= LOW + 1_000 {
        // An unusual ephemeral range: fall back on the kernel's choice.
        let held: Vec<TcpListener> = (0..n)
            .map(|_| TcpListener::bind("127.0.0.1:0").expect("a free port on loopback"))
            .collect();
        return held
            .iter()
            .map(|l| l.local_addr().expect("bound").port())
            .collect();
    }
    let span = high - LOW;
    let next = NEXT.get_or_init(|| AtomicU32::new(std::process::id().wrapping_mul(7_919) % span));
    let mut ports = Vec::with_capacity(n);
    for _ in 0..span {
        if ports.len() == n {
            break;
        }
        let port =
            u16::try_from(LOW + next.fetch_add(1, Ordering::Relaxed) % span).expect("below 65536");
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            ports.push(port);
        }
    }
    assert_eq!(ports.len(), n, "no {n} free loopback ports below {high}");
    ports
}

impl Ensemble {
    /// `n` servers on loopback whose peers talk to each other directly.
    pub fn start(n: usize, name: &str) -> Ensemble {
        Ensemble::start_with(n, name, "")
    }

    /// [`Ensemble::start`] with `extra` TOML lines in every server's config.
    pub fn start_with(n: usize, name: &str, extra: &str) -> Ensemble {
        let ports = free_ports(2 * n);
        let (peers, clients) = ports.split_at(n);
        let peers: Vec<SocketAddr> = peers.iter().map(|p| loopback(*p)).collect();
        let mut e = Ensemble::configure(n, name, clients, extra, |_, j| peers[j]);
        e.spawn_all();
        e
    }

    /// `n` servers whose every peer link runs through an in-process
    /// [`Proxy`], so tests can drop, delay and partition links (one-way
    /// included) with [`Ensemble::cut`], [`Ensemble::isolate`],
    /// [`Ensemble::partition`], [`Ensemble::delay`] and [`Ensemble::heal`].
    ///
    /// The higher id dials the lower, so the link between `i > j` is one
    /// connection from `i` to a proxy in front of `j`'s peer port; each server
    /// gets its own config, in which the other servers' peer addresses are
    /// those proxies.
    pub async fn start_proxied(n: usize, name: &str) -> Ensemble {
        Ensemble::start_proxied_with(n, name, "").await
    }

    /// [`Ensemble::start_proxied`] with `extra` TOML lines in every
    /// server's config (before the server list), e.g. `snapshot_every_txns = 20`.
    pub async fn start_proxied_with(n: usize, name: &str, extra: &str) -> Ensemble {
        Ensemble::proxied(n, name, extra, false).await.0
    }

    /// [`Ensemble::start_proxied`], each server also serving ZooKeeper's
    /// client protocol; returns those addresses too.
    pub async fn start_proxied_zookeeper(n: usize, name: &str) -> (Ensemble, Vec<SocketAddr>) {
        Ensemble::proxied(n, name, "", true).await
    }

    async fn proxied(
        n: usize,
        name: &str,
        extra: &str,
        zookeeper: bool,
    ) -> (Ensemble, Vec<SocketAddr>) {
        // Servers' ports come from below the ephemeral range (see
        // `free_ports`); the proxies' own from inside it: they cannot meet.
        let ports = free_ports(3 * n);
        let (peer_ports, rest) = ports.split_at(n);
        let (clients, zks) = rest.split_at(n);
        let peers: Vec<SocketAddr> = peer_ports.iter().map(|p| loopback(*p)).collect();
        let mut proxies = BTreeMap::new();
        for i in 0..n {
            for (j, peer) in peers.iter().enumerate().take(i) {
                let proxy = Proxy::start(*peer).await.expect("a proxy on loopback");
                proxies.insert((i, j), proxy);
            }
        }
        let listed = |i: usize, j: usize| match proxies.get(&(i, j)) {
            Some(proxy) => proxy.addr(),
            None => peers[j], // i does not dial j (or j is i itself)
        };
        let mut e = Ensemble::configure(n, name, clients, extra, listed);
        e.proxies = proxies;
        let zookeeper = if zookeeper {
            e.serve_zookeeper(clients, zks);
            zks.iter().map(|p| loopback(*p)).collect()
        } else {
            Vec::new()
        };
        e.spawn_all();
        (e, zookeeper)
    }

    /// Writes each server's data dir and config; `peer(i, j)` is the address
    /// server `i`'s config lists for server `j`.
    fn configure(
        n: usize,
        name: &str,
        clients: &[u16],
        extra: &str,
        peer: impl Fn(usize, usize) -> SocketAddr,
    ) -> Ensemble {
        let dir = std::env::temp_dir().join(format!("zab-cluster-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("ensemble dir");
        // Every server of the ensemble shares one peer secret, as
        // scripts/cluster.sh sets it up.
        let secret = dir.join("peer-secret");
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        std::fs::write(&secret, format!("test-secret-{name}-{nanos:x}\n")).expect("peer secret");
        for i in 0..n {
            let mut servers = String::new();
            for (j, client) in clients.iter().enumerate() {
                servers.push_str(&format!(
                    "[[servers]]\nid = {}\npeer = \"{}\"\nclient = \"127.0.0.1:{client}\"\n",
                    j + 1,
                    peer(i, j),
                ));
            }
            let data = dir.join(format!("{}", i + 1));
            std::fs::create_dir_all(&data).expect("data dir");
            let cfg = format!(
                "id = {}\ndata_dir = \"{}\"\npeer_secret_file = \"{}\"\n{extra}\n{servers}",
                i + 1,
                data.display(),
                secret.display()
            );
            std::fs::write(data.join("zab.toml"), cfg).expect("config");
        }
        Ensemble {
            dir,
            clients: clients.iter().map(|p| loopback(*p)).collect(),
            peers: (0..n).map(|j| peer(j, j)).collect(),
            procs: (0..n).map(|_| None).collect(),
            proxies: BTreeMap::new(),
            keep: false,
            admins: Vec::new(),
            args: vec![Vec::new(); n],
            bins: vec![None; n],
            net: None,
        }
    }

    /// One server on each server host of `net` (`zab_tests::netns`),
    /// configured by host name (`zab2:2888`); faults ([`Ensemble::cut`],
    /// [`Ensemble::delay`], [`Ensemble::isolate`], [`Ensemble::partition`],
    /// [`Ensemble::heal`]) act on the net's switch. The calling thread must
    /// be on the net's client host ([`Net::enter_client`]) to reach them.
    pub fn start_multihost(net: std::sync::Arc<Net>, name: &str, extra: &str) -> Ensemble {
        let n = net.servers();
        let mut e = Ensemble::configure(n, name, &vec![2181; n], extra, |_, j| {
            SocketAddr::from((net.server(j).ip, 2888))
        });
        for i in 0..n {
            let path = e.dir.join(format!("{}", i + 1)).join("zab.toml");
            let mut cfg = std::fs::read_to_string(&path).expect("config");
            for j in 0..n {
                let host = net.server(j);
                cfg = cfg
                    .replace(
                        &format!("\"{}:2888\"", host.ip),
                        &format!("\"{}:2888\"", host.name),
                    )
                    .replacen("\"127.0.0.1:2181\"", &format!("\"{}:2181\"", host.name), 1);
            }
            std::fs::write(&path, cfg).expect("config");
        }
        e.clients = (0..n)
            .map(|j| SocketAddr::from((net.server(j).ip, 2181)))
            .collect();
        e.net = Some(net);
        e.spawn_all();
        e
    }

    /// Configured like [`Ensemble::start_with`], each server also with an
    /// admin port ([`Ensemble::admins`]), but not started:
    /// [`Ensemble::spawn_all`] starts them.
    pub fn prepare_with_admin(n: usize, name: &str, extra: &str) -> Ensemble {
        let ports = free_ports(3 * n);
        let (peers, rest) = ports.split_at(n);
        let (clients, admins) = rest.split_at(n);
        let peers: Vec<SocketAddr> = peers.iter().map(|p| loopback(*p)).collect();
        let mut e = Ensemble::configure(n, name, clients, extra, |_, j| peers[j]);
        for i in 0..n {
            let path = e.dir.join(format!("{}", i + 1)).join("zab.toml");
            let mut cfg = std::fs::read_to_string(&path).expect("config");
            for (c, a) in clients.iter().zip(admins) {
                let line = format!("client = \"127.0.0.1:{c}\"\n");
                cfg = cfg.replace(&line, &format!("{line}admin = \"127.0.0.1:{a}\"\n"));
            }
            std::fs::write(&path, cfg).expect("config");
        }
        e.admins = admins.iter().map(|p| loopback(*p)).collect();
        e
    }

    /// `n` servers, each also serving ZooKeeper's client protocol; returns
    /// those addresses too.
    pub fn start_with_zookeeper(n: usize, name: &str, extra: &str) -> (Ensemble, Vec<SocketAddr>) {
        let ports = free_ports(3 * n);
        let (peers, rest) = ports.split_at(n);
        let (clients, zks) = rest.split_at(n);
        let peers: Vec<SocketAddr> = peers.iter().map(|p| loopback(*p)).collect();
        let mut e = Ensemble::configure(n, name, clients, extra, |_, j| peers[j]);
        e.serve_zookeeper(clients, zks);
        e.spawn_all();
        (e, zks.iter().map(|p| loopback(*p)).collect())
    }

    /// Adds `zookeeper = "127.0.0.1:zks[j]"` to server `j`'s entry in every
    /// config (found by its client port, `clients[j]`).
    fn serve_zookeeper(&self, clients: &[u16], zks: &[u16]) {
        for i in 0..clients.len() {
            let path = self.dir.join(format!("{}", i + 1)).join("zab.toml");
            let mut cfg = std::fs::read_to_string(&path).expect("config");
            for (c, z) in clients.iter().zip(zks) {
                let line = format!("client = \"127.0.0.1:{c}\"\n");
                cfg = cfg.replace(&line, &format!("{line}zookeeper = \"127.0.0.1:{z}\"\n"));
            }
            std::fs::write(&path, cfg).expect("config");
        }
    }

    /// Stops server `i` with SIGTERM, as an operator would, and waits for it
    /// to exit (SIGKILL after 10 s).
    pub fn stop(&mut self, i: usize) {
        if let Some(mut c) = self.procs[i].take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(c.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// `GET path` on server `i`'s admin port: status code and body.
    pub async fn admin_get(&self, i: usize, path: &str) -> std::io::Result<(u16, Vec<u8>)> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(self.admins[i]).await?;
        s.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())
            .await?;
        let mut raw = Vec::new();
        tokio::time::timeout(Duration::from_secs(60), s.read_to_end(&mut raw))
            .await
            .map_err(|_| std::io::Error::other("admin request timed out"))??;
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .ok_or_else(|| std::io::Error::other("no HTTP header"))?;
        let head = String::from_utf8_lossy(&raw[..split]).to_string();
        let code = head
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("bad status line: {head}")))?;
        Ok((code, raw[split + 4..].to_vec()))
    }

    /// Waits (bounded, 30 s) until server `i` serves (`/health`, which
    /// older releases answer too, says what `/readyz` does).
    pub async fn wait_ready(&self, i: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok((200, _)) = self.admin_get(i, "/health").await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("server {} never became ready", i + 1);
    }

    /// Keeps the data dirs and server logs after the ensemble is dropped.
    pub fn keep_logs(&mut self) {
        self.keep = true;
    }

    pub fn spawn_all(&mut self) {
        for i in 0..self.procs.len() {
            self.spawn(i);
        }
    }

    pub fn size(&self) -> usize {
        self.procs.len()
    }

    /// The proxy and direction carrying bytes from server `from` to `to`.
    fn link(&self, from: usize, to: usize) -> (&Proxy, Direction) {
        if from > to {
            (&self.proxies[&(from, to)], Direction::ToTarget)
        } else {
            (&self.proxies[&(to, from)], Direction::FromTarget)
        }
    }

    /// Drops everything `from` sends to `to` (one way).
    pub fn cut(&self, from: usize, to: usize) {
        if let Some(net) = &self.net {
            return net.set_link(from, to, |r| r.cut = true);
        }
        let (proxy, direction) = self.link(from, to);
        proxy.set(direction, Rule::DROP);
    }

    /// Delays everything `from` sends to `to` by `delay` (one way).
    pub fn delay(&self, from: usize, to: usize, delay: Duration) {
        if let Some(net) = &self.net {
            return net.set_link(from, to, |r| r.delay += delay);
        }
        let (proxy, direction) = self.link(from, to);
        proxy.set(direction, Rule { drop: false, delay });
    }

    /// Cuts server `i` off from every other server, both ways.
    pub fn isolate(&self, i: usize) {
        for j in (0..self.size()).filter(|&j| j != i) {
            self.cut(i, j);
            self.cut(j, i);
        }
    }

    /// Cuts every link between servers in different `groups`, both ways.
    pub fn partition(&self, groups: &[Vec<usize>]) {
        for (a, ga) in groups.iter().enumerate() {
            for gb in &groups[a + 1..] {
                for &i in ga {
                    for &j in gb {
                        self.cut(i, j);
                        self.cut(j, i);
                    }
                }
            }
        }
    }

    /// Every link back to normal.
    pub fn heal(&self) {
        if let Some(net) = &self.net {
            net.heal();
        }
        for proxy in self.proxies.values() {
            proxy.heal();
        }
    }

    pub fn spawn(&mut self, i: usize) {
        let data = self.dir.join(format!("{}", i + 1));
        // Appended to, so a restarted server's earlier life stays readable.
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(data.join("server.log"))
            .expect("log file");
        // Where this life's lines start (see `leads`).
        std::io::Write::write_all(&mut log, format!("{LIFE_MARK}\n").as_bytes())
            .expect("log marker");
        let bin = self.bins[i]
            .clone()
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_zab-server")));
        let mut command = match &self.net {
            Some(net) => net.command(i, bin),
            None => Command::new(bin),
        };
        let child = command
            .arg("--config")
            .arg(data.join("zab.toml"))
            .args(&self.args[i])
            // The test hook on the wall-clock input (see `step_wall_clock`).
            .env(
                "ZAB_TEST_WALL_CLOCK_OFFSET_FILE",
                data.join("wall-offset-ms"),
            )
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start zab-server");
        self.procs[i] = Some(child);
    }

    /// Steps server `i`'s wall clock to `offset_ms` from the real one (the
    /// server reads the offset at each tick).
    pub fn step_wall_clock(&self, i: usize, offset_ms: i64) {
        let file = self.dir.join(format!("{}", i + 1)).join("wall-offset-ms");
        std::fs::write(file, offset_ms.to_string()).expect("offset file");
    }

    /// Server `i`'s resident memory in bytes, if it runs.
    pub fn rss_bytes(&self, i: usize) -> Option<u64> {
        let pid = self.procs[i].as_ref()?.id();
        let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
        let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
        Some(pages * 4096)
    }

    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.procs[i].take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Connects to server `i` only, retrying until it serves (bounded).
    pub async fn client(&self, i: usize, timeout_ms: u32) -> Client {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match Client::connect(&[self.clients[i]], timeout_ms).await {
                Ok(c) => return c,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("server {} never accepted a session: {e}", i + 1),
            }
        }
    }

    /// The id (0-based) of the server whose log says it leads now.
    pub fn leader(&self) -> Option<usize> {
        (0..self.procs.len()).find(|&i| {
            self.procs[i].is_some()
                && std::fs::read_to_string(self.dir.join(format!("{}", i + 1)).join("server.log"))
                    .map(|log| {
                        let last_role = log.lines().rev().find(|l| l.contains("role changed"));
                        last_role.is_some_and(|l| l.contains("Leading") && l.contains("Broadcast"))
                    })
                    .unwrap_or(false)
        })
    }
}

impl Drop for Ensemble {
    fn drop(&mut self) {
        for i in 0..self.procs.len() {
            self.kill(i);
        }
        if !std::thread::panicking() && !self.keep {
            let _ = std::fs::remove_dir_all(&self.dir);
        } else {
            eprintln!("server logs kept in {}", self.dir.display());
        }
    }
}

/// Opens a session trying `servers` in order, retrying while the ensemble is
/// still electing (bounded).
pub async fn connect_retry(servers: &[SocketAddr], timeout_ms: u32) -> Result<Client, Error> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match Client::connect_in_order(servers, timeout_ms).await {
            Err(Error::NoServer(_)) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => return other,
        }
    }
}

/// Retries `f` on ConnectionLoss or a refused write while a leader is being
/// elected (bounded), as an application would.
pub async fn retry<T, F, Fut>(mut f: F) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, Error>>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match f().await {
            Err(Error::ConnectionLoss | Error::Server(ErrorCode::NotLeaderNoQuorum))
                if Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => return other,
        }
    }
}

impl Ensemble {
    pub fn signal(&self, i: usize, sig: &str) {
        let pid = self.procs[i].as_ref().expect("running").id();
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(pid.to_string())
            .status()
            .expect("kill(1)")
            .success();
        assert!(ok, "kill -{sig} {pid}");
    }

    pub async fn wait_for_leader(&self, not: Option<usize>) -> usize {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(l) = (0..self.procs.len()).find(|&i| Some(i) != not && self.leads(i)) {
                self.wait_until_joined().await;
                return l;
            }
            assert!(Instant::now() < deadline, "no leader");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Gives every running server up to 5 s to have joined the ensemble
    /// once (reached broadcast): a server that never finished its first
    /// synchronization is blank and does not vote (docs/disk-faults.md), so
    /// a test that takes the leader down right after the first election
    /// would otherwise find no quorum. Best effort: a server a test keeps
    /// cut off is waited for, then left.
    async fn wait_until_joined(&self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            let joined = (0..self.procs.len()).all(|i| {
                self.procs[i].is_none()
                    || std::fs::read_to_string(
                        self.dir.join(format!("{}", i + 1)).join("server.log"),
                    )
                    .is_ok_and(|log| log.contains("phase: Broadcast"))
            });
            if joined {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Whether server `i` is running and, in its current life, last said
    /// it leads in broadcast (an earlier life's lines do not count).
    pub fn leads(&self, i: usize) -> bool {
        self.procs[i].is_some()
            && std::fs::read_to_string(self.dir.join(format!("{}", i + 1)).join("server.log"))
                .map(|log| {
                    let life = log.rsplit(LIFE_MARK).next().unwrap_or("");
                    let last = life.lines().rev().find(|l| l.contains("role changed"));
                    last.is_some_and(|l| l.contains("Leading") && l.contains("Broadcast"))
                })
                .unwrap_or(false)
    }
}

/// The line the harness writes to a server's log each time it starts it.
const LIFE_MARK: &str = "--- zab test harness: server started ---";

/// Asserts the server has closed every one of `sockets` (each read ends or
/// fails within 5 s); `what` names them in the failure.
pub async fn assert_all_closed(sockets: Vec<tokio::net::TcpStream>, what: &str) {
    for mut s in sockets {
        let mut b = [0u8; 1];
        let closed = tokio::time::timeout(
            Duration::from_secs(5),
            tokio::io::AsyncReadExt::read(&mut s, &mut b),
        )
        .await;
        assert!(
            matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
            "{what} stayed open: {closed:?}"
        );
    }
}

/// A raw client handshake on `addr`, below the client library: sends a
/// ConnectRequest for a new session (1 MiB frames, 4 s timeout) claiming
/// `last_zxid_seen`, and returns the stream with the server's answer.
pub async fn raw_handshake(
    addr: SocketAddr,
    last_zxid_seen: u64,
) -> (tokio::net::TcpStream, zab_proto::ConnectReply) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use zab_proto::{ConnectReply, ConnectRequest, FRAME_BYTES_DEFAULT, PROTOCOL_VERSION};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut out = bytes::BytesMut::new();
    ConnectRequest {
        protocol_version: PROTOCOL_VERSION,
        last_zxid_seen,
        timeout_ms: 4_000,
        session_id: 0,
        password: [0; 16],
        max_frame_bytes: FRAME_BYTES_DEFAULT,
    }
    .encode(&mut out);
    stream.write_all(&out).await.expect("send hello");
    let mut buf = bytes::BytesMut::new();
    let body = loop {
        if let Some(b) = zab_proto::decode_frame(&mut buf, FRAME_BYTES_DEFAULT).expect("frame") {
            break b;
        }
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read_buf(&mut buf))
            .await
            .expect("a handshake answer in time")
            .expect("read");
        assert!(n > 0, "closed during the handshake");
    };
    (
        stream,
        ConnectReply::decode(body).expect("a handshake reply"),
    )
}
