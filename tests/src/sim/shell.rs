//! What the simulator does as each node's shell: carrying out its actions
//! (messages, persistence with fsync batching, delivery, snapshots), and the
//! ghost bookkeeping the invariants check after every step.

use super::*;

impl Simulation {
    pub(super) fn act(&mut self, i: usize, action: Action) {
        if self.cfg.trace {
            println!("{:>7} {:?} -> {action:?}", self.now, self.slots[i].id);
        }
        match action {
            Action::Send { to, msg } => self.on_send(i, to, msg),
            Action::Persist { seq, op } => self.on_persist(i, seq, op),
            Action::SendDiff {
                to,
                epoch,
                after,
                through,
            } => {
                let txns = self.slots[i].disk.view.range(after, through).to_vec();
                let complete = txns.first().is_some_and(|t| after.is_followed_by(t.zxid))
                    && txns.last().is_some_and(|t| t.zxid == through);
                if !complete {
                    let detail = format!(
                        "{:?} asked to stream ({after}, {through}] it does not hold",
                        self.slots[i].id
                    );
                    note(&mut self.report, inv::fail("diff_source", detail));
                    return;
                }
                for msg in zab_core::diff_stream(epoch, after, txns) {
                    self.on_send(i, to, msg);
                }
            }
            Action::SendSnapshot {
                to,
                epoch,
                join,
                zxid,
            } => {
                let state = self.slots[i].applied;
                if state.zxid != zxid {
                    let detail = format!(
                        "snapshot asked at {zxid}, applied state is at {}",
                        state.zxid
                    );
                    note(&mut self.report, inv::fail("snapshot_source", detail));
                    return;
                }
                let data = state.encode();
                self.on_send(
                    i,
                    to,
                    Message::Snapshot {
                        epoch,
                        join,
                        zxid,
                        data,
                    },
                );
            }
            Action::Deliver { through } => self.on_deliver(i, through),
            Action::SyncDone { id, zxid } => self.on_sync_done(i, id, zxid),
            Action::Reject { id, .. } => {
                self.syncs.remove(&(i, id));
                let write = self.probes.iter().find(|p| matches!(p, Probe::Write(w) if self.writes.get(w).is_some_and(|&(o, r, _)| o == i && r == id))).copied();
                if let Some(p) = write {
                    self.probes.remove(&p);
                }
                self.probes.remove(&Probe::Sync(i, id));
            }
            Action::RoleChanged(role) => self.on_role(i, role),
            // The simulated workload sends no relayed notes.
            Action::Relayed { .. } => {}
        }
    }
    pub(super) fn on_send(&mut self, i: usize, to: PeerId, msg: Message) {
        if let Message::FollowerInfo { join, .. } = msg {
            self.slots[i].join = join;
        }
        let slot = &self.slots[i];
        let node = slot.node.as_ref().expect("only live nodes act");
        let (accepted, current, last) = match msg {
            // Nothing is written between the acceptedEpoch barrier and ACKEPOCH.
            Message::AckNewLeader { .. } => {
                (node.accepted_epoch(), slot.newleader.0, slot.newleader.1)
            }
            _ => (
                node.accepted_epoch(),
                node.current_epoch(),
                node.history().last(),
            ),
        };
        let check =
            inv::ack_durable::on_send(slot.id, &msg, &slot.disk.durable, accepted, current, last);
        note(&mut self.report, check);
        let check = inv::vote_reflects_disk::on_send(slot.id, &msg, &slot.disk.durable);
        note(&mut self.report, check);
        if let (Message::SyncReply { id, .. }, Role::Leading { term, .. }) = (&msg, slot.role) {
            let check = inv::sync_linearizable::on_answered(
                &self.ghost,
                slot.id,
                term,
                to,
                *id,
                &self.membership,
            );
            note(&mut self.report, check);
        }
        let j = (to.0 - 1) as usize;
        self.transmit(i, j, msg);
    }

    pub(super) fn transmit(&mut self, from: usize, to: usize, msg: Message) {
        self.report.messages += 1;
        if self.net.blocked.contains(&(from, to)) || self.rng.chance(self.net.loss) {
            return;
        }
        // Snapshots cross as the transport sends them: streamed in chunks
        // far smaller than the simulated states, so every transfer
        // exercises reassembly and its checksum.
        let bytes = Bytes::from(codec::frames(&msg, SIM_CHUNK_BYTES).concat());
        let copies = if self.rng.chance(self.net.duplication) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let mut delay = self.rng.range(1, 5);
            if self.net.reordering {
                delay += self.rng.below(40);
            } else {
                let last = self.net.last.entry((from, to)).or_insert(0);
                let at = (self.now + delay).max(*last);
                *last = at;
                delay = at - self.now;
            }
            let sender_role = self.slots[from].role;
            let event = Event::Deliver {
                from,
                to,
                bytes: bytes.clone(),
                sent_at: self.now,
                sender_role,
            };
            self.schedule(delay, event);
        }
    }

    pub(super) fn on_persist(&mut self, i: usize, seq: PersistSeq, op: PersistOp) {
        let slot = &self.slots[i];
        let view = &slot.disk.view;
        let check = match &op {
            PersistOp::Append(txn) => {
                let gap = inv::no_zxid_gaps::on_append(slot.id, view.last_zxid(), txn.zxid);
                if gap.is_ok() && matches!(slot.role, Role::Leading { .. }) {
                    inv::integrity::on_proposed(&mut self.ghost, txn)
                } else {
                    gap
                }
            }
            PersistOp::Truncate { to } => inv::committed_never_truncated::on_truncate(
                &self.ghost,
                slot.id,
                view,
                (*to, slot.applied.zxid),
                learner_term(slot.role),
            ),
            PersistOp::InstallSnapshot { data, .. } => {
                let snap = SnapshotState::decode(data.clone());
                let check = inv::committed_never_truncated::on_install(
                    &self.ghost,
                    slot.id,
                    view,
                    snap,
                    learner_term(slot.role),
                );
                self.slots[i].applied = snap;
                check
            }
            PersistOp::AcceptedEpoch(_) | PersistOp::CurrentEpoch(_) | PersistOp::Intact { .. } => {
                Ok(())
            }
        };
        note(&mut self.report, check);
        self.slots[i].disk.write(seq, op);
        self.kick_fsync(i);
    }

    /// Group commit: one fsync covers every write issued before it started.
    pub(super) fn kick_fsync(&mut self, i: usize) {
        let disk = &mut self.slots[i].disk;
        if disk.fsync_in_flight {
            return;
        }
        let Some(&(through, _)) = disk.pending.back() else {
            return;
        };
        disk.fsync_in_flight = true;
        let latency = if disk.slow {
            self.rng.range(30, 400)
        } else {
            self.rng.range(1, 4)
        };
        let life = self.slots[i].life;
        self.schedule(
            latency,
            Event::FsyncDone {
                node: i,
                life,
                through,
            },
        );
    }

    pub(super) fn on_deliver(&mut self, i: usize, through: Zxid) {
        let id = self.slots[i].id;
        let start = self.slots[i].applied;
        let txns = self.slots[i].disk.view.range(start.zxid, through).to_vec();
        if txns.last().map(|t| t.zxid) != Some(through) {
            let detail = format!("{id:?} delivered through {through}, which it has not logged");
            note(&mut self.report, inv::fail("integrity", detail));
            return;
        }
        if let Role::Leading { term, .. } = self.slots[i].role {
            for txn in &txns {
                self.ghost.committed_in.entry(txn.zxid).or_insert(term);
            }
            let disks = self
                .slots
                .iter()
                .filter(|s| self.membership.is_voter(s.id))
                .map(|s| (s.id, &s.disk.durable, s.before_fault.as_ref()));
            let check = inv::commit_quorum::on_commit(id, through, &self.membership, disks);
            note(&mut self.report, check);
        }
        let mut state = start;
        for txn in txns {
            let checks = [
                inv::primary_order::on_delivered(state.zxid, txn.zxid),
                inv::no_zxid_gaps::on_delivered(id, state.zxid, txn.zxid),
                inv::integrity::on_delivered(&self.ghost, txn.zxid, &txn.payload),
                inv::agreement::on_delivered(
                    &mut self.ghost,
                    id,
                    state.len,
                    txn.zxid,
                    &txn.payload,
                ),
            ];
            for check in checks {
                note(&mut self.report, check);
            }
            state = SnapshotState {
                zxid: txn.zxid,
                len: state.len + 1,
            };
            self.client_ack(i, &txn.payload, txn.zxid);
        }
        self.slots[i].applied = state;
    }

    /// The origin server applied its client's write: the client hears success.
    pub(super) fn client_ack(&mut self, i: usize, payload: &Bytes, zxid: Zxid) {
        let write = payload.clone().get_u64();
        // For liveness, committed anywhere is enough: the origin may have
        // caught up through a snapshot and never apply the write itself.
        self.probes.remove(&Probe::Write(write));
        if let Some(entry) = self.writes.get_mut(&write) {
            if entry.0 == i && !entry.2 {
                entry.2 = true;
                self.ghost.acked_writes.push((write, zxid));
                self.ghost.max_acked = self.ghost.max_acked.max(zxid);
            }
        }
    }

    pub(super) fn on_sync_done(&mut self, i: usize, id: RequestId, zxid: Zxid) {
        let slot = &self.slots[i];
        if let Role::Leading { term, .. } = slot.role {
            let check = inv::sync_linearizable::on_answered(
                &self.ghost,
                slot.id,
                term,
                slot.id,
                id,
                &self.membership,
            );
            note(&mut self.report, check);
        }
        let Some(required) = self.syncs.remove(&(i, id)) else {
            let detail = format!("{:?} completed sync {id:?} twice or never issued", slot.id);
            note(&mut self.report, inv::fail("sync_linearizable", detail));
            return;
        };
        let applied = slot.applied.zxid;
        note(
            &mut self.report,
            inv::sync_linearizable::on_done(slot.id, id, required, zxid, applied),
        );
        self.probes.remove(&Probe::Sync(i, id));
        self.report.syncs += 1;
    }

    pub(super) fn on_role(&mut self, i: usize, role: Role) {
        self.slots[i].role = role;
        if let Role::Leading {
            epoch,
            term,
            phase: Phase::Broadcast,
        } = role
        {
            self.terms.insert(term);
            let id = self.slots[i].id;
            let check = inv::one_leader_per_epoch::on_established(&mut self.ghost, id, epoch);
            note(&mut self.report, check);
            let history = &self.slots[i].disk.view;
            note(
                &mut self.report,
                inv::primary_integrity::on_established(&self.ghost, id, epoch, history),
            );
            note(
                &mut self.report,
                inv::acked_writes_survive::on_established(&self.ghost, id, epoch, history),
            );
        }
    }

    /// Now and then the shell snapshots its applied state and purges the log.
    pub(super) fn maybe_compact(&mut self, i: usize) {
        if !self.cfg.faults.compaction || !self.rng.chance(0.01) {
            return;
        }
        let slot = &mut self.slots[i];
        let state = slot.applied;
        let durable = &slot.disk.durable;
        if !slot.disk.pending.is_empty()
            || state.zxid <= durable.snapshot.zxid
            || !durable.contains(state.zxid)
        {
            return;
        }
        slot.disk.compact(state);
        self.input(
            i,
            Input::Compacted {
                through: state.zxid,
            },
        );
    }

    // ---- workload ----
}

/// The term of the leader a learner is synchronizing with, if it is one.
fn learner_term(role: Role) -> Option<Epoch> {
    match role {
        Role::Following { term, .. } | Role::Observing { term, .. } if term != Epoch(0) => {
            Some(term)
        }
        _ => None,
    }
}
