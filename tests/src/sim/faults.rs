//! The simulator's workload, faults and liveness phase: client writes and
//! syncs, the nemesis (partitions, crashes, pauses), the heal, and the
//! probes that must complete once everything is healed.

use super::*;

impl Simulation {
    pub(super) fn client(&mut self) {
        if self.healed {
            return;
        }
        let gap = self.cfg.client_gap_ms;
        let next = self.rng.range(gap.0, gap.1);
        self.schedule(next, Event::Client);
        let i = self.rng.below(self.slots.len() as u64) as usize;
        if self.slots[i].node.is_none() || self.slots[i].paused {
            return;
        }
        if self.rng.chance(self.cfg.sync_share) {
            self.issue_sync(i, false);
        } else {
            self.issue_write(i, false);
        }
    }
    pub(super) fn issue_write(&mut self, i: usize, probe: bool) -> u64 {
        let write = self.next_write;
        self.next_write += 1;
        if probe {
            self.probes.insert(Probe::Write(write));
        }
        let id = RequestId(self.next_request);
        self.next_request += 1;
        self.writes.insert(write, (i, id, false));
        let mut payload = BytesMut::with_capacity(16);
        payload.put_u64(write);
        payload.put_u64(self.slots[i].id.0);
        self.input(
            i,
            Input::Propose {
                id,
                payload: payload.freeze(),
            },
        );
        write
    }
    pub(super) fn issue_sync(&mut self, i: usize, probe: bool) -> RequestId {
        let id = RequestId(self.next_request);
        self.next_request += 1;
        if probe {
            // Before the input: a one-voter leader answers at once.
            self.probes.insert(Probe::Sync(i, id));
        }
        self.syncs.insert((i, id), self.ghost.max_acked);
        if let Role::Leading { .. } = self.slots[i].role {
            let me = self.slots[i].id;
            self.ghost.sync_arrivals.insert((me, me, id), self.now);
        }
        self.input(i, Input::Sync { id });
        id
    }

    // ---- faults ----

    pub(super) fn nemesis(&mut self) {
        if self.healed {
            return;
        }
        let gap = self.cfg.faults.nemesis_gap_ms;
        let next = self.rng.range(gap.0, gap.1);
        self.schedule(next, Event::Nemesis);
        let f = self.cfg.faults.clone();
        let n = self.slots.len();
        match self.rng.below(10) {
            0..=2 if f.partitions => self.partition(),
            3 if f.partitions || f.loss > 0.0 || f.duplication > 0.0 || f.reordering => {
                self.net.blocked.clear();
                self.net.loss = 0.0;
                self.net.duplication = 0.0;
                self.net.reordering = false;
            }
            4 | 5 if f.crashes => {
                let i = self.rng.below(n as u64) as usize;
                self.crash(i);
            }
            6 if f.pauses => {
                let i = self.rng.below(n as u64) as usize;
                if self.slots[i].node.is_some() && !self.slots[i].paused {
                    self.slots[i].paused = true;
                    let life = self.slots[i].life;
                    let dur = self.rng.range(300, 5000);
                    self.schedule(dur, Event::Resume { node: i, life });
                }
            }
            7 if f.slow_disks => {
                let i = self.rng.below(n as u64) as usize;
                self.slots[i].disk.slow = !self.slots[i].disk.slow;
            }
            8 => {
                self.net.loss = if self.net.loss > 0.0 { 0.0 } else { f.loss };
                self.net.duplication = if self.net.duplication > 0.0 {
                    0.0
                } else {
                    f.duplication
                };
            }
            9 if f.reordering => self.net.reordering = !self.net.reordering,
            _ => {}
        }
    }

    pub(super) fn partition(&mut self) {
        let n = self.slots.len();
        self.net.blocked.clear();
        let block = |a: usize, b: usize, both: bool, set: &mut HashSet<(usize, usize)>| {
            set.insert((a, b));
            if both {
                set.insert((b, a));
            }
        };
        let mut set = HashSet::new();
        match self.rng.below(4) {
            0 => {
                // Two halves.
                let side: Vec<bool> = (0..n).map(|_| self.rng.chance(0.5)).collect();
                for a in 0..n {
                    for b in 0..n {
                        if side[a] != side[b] {
                            block(a, b, false, &mut set);
                        }
                    }
                }
            }
            1 => {
                // One node isolated.
                let x = self.rng.below(n as u64) as usize;
                for b in (0..n).filter(|&b| b != x) {
                    block(x, b, true, &mut set);
                }
            }
            2 => {
                // One-way: a few links drop in one direction only.
                for _ in 0..self.rng.range(1, n as u64) {
                    let a = self.rng.below(n as u64) as usize;
                    let b = self.rng.below(n as u64) as usize;
                    if a != b {
                        block(a, b, false, &mut set);
                    }
                }
            }
            _ => {
                // Bridge: two halves that only one node connects.
                let bridge = self.rng.below(n as u64) as usize;
                let side: Vec<bool> = (0..n).map(|_| self.rng.chance(0.5)).collect();
                for a in 0..n {
                    for b in 0..n {
                        if a != bridge && b != bridge && side[a] != side[b] {
                            block(a, b, false, &mut set);
                        }
                    }
                }
            }
        }
        self.net.blocked = set;
    }

    pub(super) fn crash(&mut self, i: usize) {
        if self.slots[i].node.is_none() {
            return;
        }
        if self.cfg.trace {
            println!("{:>7} {:?} CRASH", self.now, self.slots[i].id);
        }
        self.report.crashes += 1;
        let pending = self.slots[i].disk.pending.len() as u64;
        // Half the crashes lose every unsynced write; the others keep a prefix.
        let keep = if self.rng.chance(0.5) {
            0
        } else {
            self.rng.range(0, pending) as usize
        };
        let slot = &mut self.slots[i];
        if let Some(node) = slot.node.take() {
            self.report.epoch_bumps += node.stats().epoch_bumps;
        }
        slot.disk.crash(keep);
        if self.cfg.faults.disk_faults && self.rng.chance(0.3) {
            self.damage_disk(i);
        }
        let slot = &mut self.slots[i];
        slot.life += 1;
        slot.paused = false;
        slot.held.clear();
        slot.role = Role::Looking;
        for j in (0..self.slots.len()).filter(|&j| j != i) {
            let life = self.slots[j].life;
            let delay = self.rng.range(1, 30);
            self.schedule(
                delay,
                Event::PeerDown {
                    node: j,
                    life,
                    peer: i,
                },
            );
        }
        let down = self.rng.range(200, 5000);
        self.schedule(down, Event::Restart { node: i });
    }

    /// A disk fault on crashed node `i`, if every other node is intact (so a
    /// quorum keeps a good copy of every committed transaction): the data
    /// directory is wiped, or recovery finds damage and keeps only what comes
    /// before it (a corrupt record, a missing segment), or nothing at all (a
    /// corrupt snapshot with no good fallback). The last two restore as
    /// recovering, as the real storage reports them.
    fn damage_disk(&mut self, i: usize) {
        for j in 0..self.slots.len() {
            let disk = &self.slots[j].disk.durable;
            if self.slots[j].damaged && !disk.recovering && !disk.ensemble.is_none() {
                self.slots[j].damaged = false;
            }
        }
        if (0..self.slots.len()).any(|j| j != i && self.slots[j].damaged) {
            return;
        }
        let how = self.rng.below(3);
        self.slots[i].before_fault = Some(self.slots[i].disk.durable.clone());
        let disk = &mut self.slots[i].disk;
        let image = &mut disk.durable;
        match how {
            0 => *image = disk::Image::default(),
            1 => {
                let keep = self.rng.below(image.log.len() as u64 + 1) as usize;
                image.log.truncate(keep);
                image.recovering = true;
            }
            _ => {
                image.log.clear();
                image.snapshot = SnapshotState::default();
                image.recovering = true;
            }
        }
        disk.view = disk.durable.clone();
        if self.cfg.trace {
            println!("{:>7} {:?} DISK FAULT {how}", self.now, self.slots[i].id);
        }
        self.slots[i].damaged = true;
        self.report.disk_faults += 1;
    }

    pub(super) fn resume(&mut self, i: usize) {
        if !self.slots[i].paused {
            return;
        }
        self.slots[i].paused = false;
        for event in std::mem::take(&mut self.slots[i].held) {
            self.schedule(0, event);
        }
    }

    // ---- liveness ----

    pub(super) fn heal(&mut self) {
        self.healed = true;
        self.net.blocked.clear();
        self.net.loss = 0.0;
        self.net.duplication = 0.0;
        self.net.reordering = false;
        for i in 0..self.slots.len() {
            self.slots[i].disk.slow = false;
            self.resume(i);
            if self.slots[i].node.is_none() {
                self.boot(i);
            }
        }
    }

    /// After healing: a leader is established with everyone in broadcast, and
    /// a batch of new writes and syncs at every server completes, within a
    /// bounded time. A batch caught by a leader change is retried, as a client
    /// would after ConnectionLoss.
    pub(super) fn liveness(&mut self) {
        let deadline = self.now + self.cfg.liveness_ms;
        let mut batch: Option<(PeerId, u64)> = None;
        while self.now < deadline && self.report.violation.is_none() {
            self.run_until(self.now + 100);
            let leader = self.stable_leader();
            match (batch, leader) {
                (None, Some(l)) => batch = Some((l, self.issue_probes())),
                (Some((l, started)), now_leader) => {
                    let converged = self
                        .slots
                        .iter()
                        .all(|s| s.applied.len == self.ghost.delivered.len() as u64);
                    if self.probes.is_empty() && converged {
                        return;
                    }
                    if now_leader != Some(l) || self.now - started > 5_000 {
                        self.probes.clear();
                        batch = None;
                    }
                }
                (None, None) => {}
            }
        }
        if self.report.violation.is_none() {
            let roles: Vec<_> = self
                .slots
                .iter()
                .map(|s| (s.id, s.role, s.applied.len))
                .collect();
            let detail = format!(
                "no progress {} ms after healing (waiting for {:?}); roles {roles:?}, committed {}",
                self.cfg.liveness_ms,
                self.probes,
                self.ghost.delivered.len()
            );
            note(&mut self.report, inv::fail("liveness", detail));
        }
    }

    /// One write and one sync at every server; returns the time issued.
    pub(super) fn issue_probes(&mut self) -> u64 {
        for i in 0..self.slots.len() {
            self.issue_write(i, true);
            self.issue_sync(i, true);
        }
        self.now
    }

    pub(super) fn stable_leader(&self) -> Option<PeerId> {
        let leader = self.slots.iter().find_map(|s| match s.role {
            Role::Leading {
                phase: Phase::Broadcast,
                term,
                ..
            } => Some((s.id, term)),
            _ => None,
        })?;
        let all = self.slots.iter().all(|s| match s.role {
            Role::Leading { .. } => s.id == leader.0,
            Role::Following {
                leader: l,
                term,
                phase: Phase::Broadcast,
            }
            | Role::Observing {
                leader: l,
                term,
                phase: Phase::Broadcast,
            } => l == leader.0 && term == leader.1,
            _ => false,
        });
        all.then_some(leader.0)
    }
}
