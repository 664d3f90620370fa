//! The simulator's faults: server crashes, partitions, an isolated leader,
//! wall-clock steps, and the client faults (cut off with the connection
//! left open, paused, crashed, moved, bounced); and the heal that ends them.

use zab_core::Role;
use zab_server::core::ConnId;

use super::{ClientLife, Event, Simulation, HOUR_MS};

impl Simulation {
    pub(super) fn leader(&self) -> Option<usize> {
        (0..self.cfg.servers).find(|&i| {
            self.servers[i].core.as_ref().is_some_and(|c| {
                matches!(
                    c.status().role,
                    Role::Leading {
                        phase: zab_core::Phase::Broadcast,
                        ..
                    }
                )
            })
        })
    }

    pub(super) fn crash(&mut self, i: usize) {
        if self.servers[i].core.take().is_none() {
            return;
        }
        self.leading[i] = false;
        self.checker.outage(i, None, self.now);
        // A power loss: unsynced writes are lost, kept in part or torn; its
        // connections close (clients see it).
        self.servers[i].disk.power_loss(&mut self.rng);
        for j in 0..self.cfg.servers {
            if j != i {
                self.break_link(i, j);
            }
        }
        let conns: Vec<ConnId> = self
            .links
            .iter()
            .filter(|(_, l)| l.server == i && l.server_open)
            .map(|(c, _)| *c)
            .collect();
        for conn in conns {
            let l = self.links.get_mut(&conn).expect("listed");
            l.server_open = false;
            if !l.blackholed {
                let at = l.to_client_at.max(self.now + 100);
                self.schedule(at, Event::ClientSeesClose { conn });
            }
        }
        let back = self.rng.range(1_000_000, 6_000_000);
        self.after(back, Event::Restart(i));
    }

    fn cut_link(&mut self, a: usize, b: usize) {
        if self.cut.insert((a, b)) {
            self.cut.insert((b, a));
            self.checker.outage(a, Some(b), self.now);
            self.break_link(a, b);
        }
    }

    /// A server's storage failed: the injected full disk stops it (the
    /// real driver exits; here it crashes and comes back later with space
    /// again); any other failure is a storage bug.
    pub(super) fn storage_failed(&mut self, i: usize, why: &str) {
        if self.servers[i].disk.was_full() {
            self.count("storage-fail-stop");
            self.crash(i);
        } else {
            self.report.violation = Some(format!("server {}: {why}", i + 1));
        }
    }

    /// One server's disk is struck while it is down (a crash first), never
    /// while another's is damaged and not yet resynchronized. Half the time
    /// the most up-to-date other running server goes down with it, so only
    /// the damaged server and staler ones remain: the quorum a damaged
    /// server must never complete.
    fn disk_fault(&mut self) {
        let n = self.cfg.servers;
        if self.servers.iter().any(|s| s.disk.damaged) {
            return;
        }
        let i = match self.leader() {
            Some(l) if self.rng.chance(0.5) => l,
            _ => self.rng.below(n as u64) as usize,
        };
        self.crash(i);
        if let Some(kind) = self.servers[i].disk.damage(&mut self.rng) {
            if self.trace {
                eprintln!("{:>9} µs server {}: {kind}", self.now, i + 1);
            }
            self.count(kind);
        }
        if self.rng.chance(0.5) {
            let newest = (0..n)
                .filter(|&j| j != i)
                .filter_map(|j| Some((self.servers[j].core.as_ref()?.status().applied, j)))
                .max();
            if let Some((_, j)) = newest {
                if self.trace {
                    eprintln!("{:>9} µs server {} crashes too", self.now, j + 1);
                }
                self.count("crash-with-disk-fault");
                self.crash(j);
            }
        }
    }

    /// A running server's disk fills: its next write fails.
    fn disk_full(&mut self) {
        let n = self.cfg.servers;
        let i = match self.leader() {
            Some(l) if self.rng.chance(0.7) => l,
            _ => self.rng.below(n as u64) as usize,
        };
        if self.servers[i].core.is_some() {
            self.count("disk-full");
            self.servers[i].disk.fill();
        }
    }

    pub(super) fn nemesis(&mut self) {
        let n = self.cfg.servers;
        let kinds = if self.cfg.disk_faults { 12 } else { 10 };
        match self.rng.below(kinds) {
            10 => self.disk_fault(),
            11 => self.disk_full(),
            0 => {
                let i = self.rng.below(n as u64) as usize;
                self.count("crash");
                self.crash(i);
            }
            1 => {
                if let Some(l) = self.leader() {
                    self.count("crash-leader");
                    self.crash(l);
                }
            }
            2 => {
                self.count("partition");
                let side: Vec<bool> = (0..n).map(|_| self.rng.chance(0.5)).collect();
                for a in 0..n {
                    for b in a + 1..n {
                        if side[a] != side[b] {
                            self.cut_link(a, b);
                        }
                    }
                }
                let heal = self.rng.range(1_000_000, 6_000_000);
                self.after(heal, Event::Heal);
            }
            3 => {
                if let Some(l) = self.leader() {
                    self.count("isolate-leader");
                    for b in (0..n).filter(|&b| b != l) {
                        self.cut_link(l, b);
                    }
                    let heal = self.rng.range(1_000_000, 6_000_000);
                    self.after(heal, Event::Heal);
                }
            }
            4 => {
                let i = match self.leader() {
                    Some(l) if self.rng.chance(0.7) => l,
                    _ => self.rng.below(n as u64) as usize,
                };
                self.count("wall-clock-step");
                let step = if self.rng.chance(0.5) {
                    HOUR_MS
                } else {
                    -HOUR_MS
                };
                self.servers[i].wall_offset_ms += step;
            }
            5 => self.silence_client(false),
            6 => self.silence_client(true),
            7 => {
                let c = self.rng.below(self.cfg.clients as u64) as usize;
                self.count("client-crash");
                let actions = self.clients[c].drop_connections();
                self.client_actions(c, actions);
                // It comes back as a new process: a new session.
                self.clients[c].forget_session();
            }
            8 => {
                let c = self.rng.below(self.cfg.clients as u64) as usize;
                let to = self.rng.below(n as u64) as usize;
                self.count("client-move");
                self.clients[c].move_session(to);
            }
            _ => {
                let c = self.rng.below(self.cfg.clients as u64) as usize;
                if self.client_life[c] == ClientLife::Active {
                    self.count("client-bounce");
                    let actions = self.clients[c].bounce(self.now, &mut self.next_conn);
                    self.client_actions(c, actions);
                }
            }
        }
    }

    /// Cuts a client off (its connections stay open, its bytes vanish) or
    /// pauses it, for between a third of its timeout and twice it.
    fn silence_client(&mut self, pause: bool) {
        let c = self.rng.below(self.cfg.clients as u64) as usize;
        if self.client_life[c] != ClientLife::Active {
            return;
        }
        let timeout = u64::from(self.clients[c].requested_timeout_ms()) * 1000;
        let until = self.now + self.rng.range(timeout / 3, timeout * 2);
        if pause {
            self.count("client-pause");
            self.client_life[c] = ClientLife::Paused(until);
        } else {
            self.count("client-cut");
            self.client_life[c] = ClientLife::Cut(until);
            self.blackhole(c, true);
        }
        self.schedule(until, Event::ClientBack(c));
    }

    fn blackhole(&mut self, c: usize, on: bool) {
        for l in self.links.values_mut().filter(|l| l.client == c) {
            if on {
                l.blackholed = true;
            }
        }
    }

    /// Heals partitions (and, once chaos is over, everything): restarts
    /// crashed servers, reconnects cut links, and at the end of chaos puts
    /// two clients to permanent silence for the liveness check.
    pub(super) fn heal(&mut self) {
        let chaos_over = self.now >= self.cfg.chaos_ms * 1000;
        let links: Vec<(usize, usize)> = self.cut.drain().collect();
        for (a, b) in links {
            if a < b {
                self.checker.outage_over(a, Some(b), self.now);
            }
        }
        if !chaos_over || self.calm {
            return;
        }
        self.calm = true;
        for i in 0..self.cfg.servers {
            if self.servers[i].core.is_none() {
                self.boot(i);
            }
        }
        for c in 0..self.cfg.clients {
            self.resume_client(c);
        }
        // The leader's wall clock jumps, then two clients fall silent for
        // good: one cut off, one paused. Their sessions must end on time.
        if let Some(l) = self.leader() {
            let step = if self.rng.chance(0.5) {
                HOUR_MS
            } else {
                -HOUR_MS
            };
            self.servers[l].wall_offset_ms += step;
        }
        let forever = u64::MAX / 2;
        let a = self.rng.below(self.cfg.clients as u64) as usize;
        let b = (a + 1) % self.cfg.clients;
        self.client_life[a] = ClientLife::Cut(forever);
        self.blackhole(a, true);
        self.client_life[b] = ClientLife::Paused(forever);
    }
}
