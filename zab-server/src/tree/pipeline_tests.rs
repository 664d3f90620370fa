//! A seeded random workload through the leader's pipeline: whatever `prepare`
//! accepts against the tree plus changes in flight must apply cleanly, in
//! order, on the leader and on a follower that only sees the encoded
//! payloads, and both must end with identical snapshots.

use std::collections::VecDeque;

use bytes::Bytes;
use zab_core::{Epoch, Zxid};

use super::*;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

const PATHS: [&str; 10] = [
    "/a", "/a/x", "/a/y", "/a/x/z", "/c", "/c/x", "/q", "/q/x", "/e", "/t",
];
const PREFIXES: [&str; 4] = ["/q/n-", "/a/", "/n-", "/c/s-"];
const SESSIONS: [u64; 3] = [0x101, 0x102, 0x103];

fn random_op(rng: &mut Rng) -> Request {
    let version = if rng.below(3) == 0 {
        rng.below(3) as i32
    } else {
        ANY_VERSION
    };
    match rng.below(6) {
        0 | 1 => {
            let sequential = rng.below(3) == 0;
            let path = if sequential {
                rng.pick(&PREFIXES)
            } else {
                rng.pick(&PATHS)
            };
            let kind = match rng.below(6) {
                0 => NodeKind::Ephemeral,
                1 if !sequential => NodeKind::Container,
                2 => NodeKind::Ttl {
                    ttl_ms: 1 + rng.below(1_000) as u64,
                },
                _ => NodeKind::Persistent,
            };
            Request::Create {
                path: path.into(),
                data: Bytes::from(vec![rng.next() as u8; rng.below(4)]),
                kind,
                sequential,
            }
        }
        2 => Request::Delete {
            path: rng.pick(&PATHS).into(),
            version,
        },
        3 => Request::SetData {
            path: rng.pick(&PATHS).into(),
            data: Bytes::from_static(b"d"),
            version,
        },
        4 => Request::Check {
            path: rng.pick(&PATHS).into(),
            version,
        },
        _ => Request::Delete {
            path: rng.pick(&["/a/x/z", "/c/x", "/q/x"]).into(),
            version: ANY_VERSION,
        },
    }
}

fn random_request(rng: &mut Rng, leader: &DataTree) -> Request {
    // Sessions close rarely and reopen often, so most requests have one.
    match rng.below(60) {
        0 => Request::CloseSession,
        1..=6 => Request::CreateSession { timeout_ms: 4_000 },
        7..=9 => {
            let candidates = leader.expired_candidates(i64::MAX);
            match candidates.first() {
                Some(path) => Request::DeleteExpired { path: path.clone() },
                None => Request::DeleteExpired { path: "/c".into() },
            }
        }
        10..=20 => Request::Multi((0..1 + rng.below(3)).map(|_| random_op(rng)).collect()),
        _ => random_op(rng),
    }
}

#[test]
fn random_pipelines_always_apply_cleanly_and_replicas_agree() {
    for seed in 1..=50u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let mut leader = DataTree::new();
        let mut follower = DataTree::new();
        let mut pending = PendingChanges::new();
        let mut in_flight: VecDeque<Vec<u8>> = VecDeque::new();
        let mut counter = 0u32;
        let (mut accepted, mut refused) = (0, 0);
        for step in 0..3_000 {
            let session = SESSIONS[rng.below(SESSIONS.len())];
            let request = if step < 3 {
                Request::CreateSession { timeout_ms: 4_000 }
            } else {
                random_request(&mut rng, &leader)
            };
            let session = if step < 3 {
                SESSIONS[step as usize]
            } else {
                session
            };
            // Keep between 0 and ~8 transactions in flight.
            if in_flight.len() > rng.below(9) {
                let payload = in_flight.pop_front().expect("non-empty");
                let (header, txn) = Txn::decode(&payload).expect("our own payload decodes");
                counter += 1;
                let zxid = Zxid::new(Epoch(1), counter);
                let on_leader = leader.apply(zxid, header.time_ms, &txn);
                let on_leader =
                    on_leader.unwrap_or_else(|e| panic!("seed {seed} step {step}: {e}"));
                let on_follower = follower
                    .apply(zxid, header.time_ms, &txn)
                    .expect("follower applies");
                assert_eq!(on_leader, on_follower, "seed {seed} step {step}");
                assert!(pending.retire_oldest());
                continue;
            }
            let txn = match leader.prepare(&pending, session, &request) {
                Ok(txn) => {
                    accepted += 1;
                    txn
                }
                Err(rejected) => {
                    refused += 1;
                    rejected.to_txn()
                }
            };
            pending.push(&leader, &txn);
            let header = TxnHeader {
                session,
                cxid: step,
                time_ms: i64::from(step) * 10,
            };
            in_flight.push_back(txn.to_payload(&header));
        }
        assert!(
            accepted > 300 && refused > 300,
            "seed {seed}: {accepted} accepted, {refused} refused"
        );
        assert!(leader.node_count() > 1, "seed {seed}");
        let snapshot = leader.serialize();
        assert_eq!(follower.serialize(), snapshot, "seed {seed}");
        assert_eq!(
            DataTree::deserialize(&snapshot).as_ref(),
            Ok(&leader),
            "seed {seed}"
        );
    }
}
