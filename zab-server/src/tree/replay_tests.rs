//! A seeded random workload, resolved and applied as every replica does it:
//! whatever `prepare` makes of a request (a transaction or its rejection)
//! applies cleanly on the replica that resolved it and, from the encoded
//! payload alone, on another replica with the same outcome; both end with
//! identical snapshots that restore to the same tree.

use bytes::Bytes;
use zab_core::{Epoch, Zxid};
use zab_tests::sim::rng::Rng;

use super::*;

fn below(rng: &mut Rng, n: usize) -> usize {
    rng.below(n as u64) as usize
}

const PATHS: [&str; 10] = [
    "/a", "/a/x", "/a/y", "/a/x/z", "/c", "/c/x", "/q", "/q/x", "/e", "/t",
];
const PREFIXES: [&str; 4] = ["/q/n-", "/a/", "/n-", "/c/s-"];
const SESSIONS: [u64; 3] = [0x101, 0x102, 0x103];

fn random_op(rng: &mut Rng) -> Request {
    let version = if below(rng, 3) == 0 {
        below(rng, 3) as i32
    } else {
        ANY_VERSION
    };
    match below(rng, 6) {
        0 | 1 => {
            let sequential = below(rng, 3) == 0;
            let path = if sequential {
                *rng.pick(&PREFIXES)
            } else {
                *rng.pick(&PATHS)
            };
            let kind = match below(rng, 6) {
                0 => NodeKind::Ephemeral,
                1 if !sequential => NodeKind::Container,
                2 => NodeKind::Ttl {
                    ttl_ms: 1 + below(rng, 1_000) as u64,
                },
                _ => NodeKind::Persistent,
            };
            Request::Create {
                path: path.into(),
                data: Bytes::from(vec![rng.next_u64() as u8; below(rng, 4)]),
                kind,
                sequential,
                acl: None,
            }
        }
        2 => Request::Delete {
            path: (*rng.pick(&PATHS)).into(),
            version,
        },
        3 => Request::SetData {
            path: (*rng.pick(&PATHS)).into(),
            data: Bytes::from_static(b"d"),
            version,
        },
        4 => Request::Check {
            path: (*rng.pick(&PATHS)).into(),
            version,
        },
        _ => Request::Delete {
            path: (*rng.pick(&["/a/x/z", "/c/x", "/q/x"])).into(),
            version: ANY_VERSION,
        },
    }
}

fn random_request(rng: &mut Rng, leader: &DataTree) -> Request {
    // Sessions close rarely and reopen often, so most requests have one.
    match below(rng, 60) {
        0 => Request::CloseSession,
        1..=6 => Request::CreateSession { timeout_ms: 4_000 },
        7..=9 => {
            let candidates = leader.expired_candidates(i64::MAX);
            match candidates.first() {
                Some(path) => Request::DeleteExpired { path: path.clone() },
                None => Request::DeleteExpired { path: "/c".into() },
            }
        }
        10..=20 => Request::Multi((0..1 + below(rng, 3)).map(|_| random_op(rng)).collect()),
        _ => random_op(rng),
    }
}

#[test]
fn random_requests_always_apply_cleanly_and_replicas_agree() {
    for seed in 1..=50u64 {
        let mut rng = Rng::new(seed);
        let mut origin = DataTree::new();
        let mut other = DataTree::new();
        let (mut accepted, mut refused) = (0, 0);
        for step in 0..3_000u32 {
            let (session, request) = if step < 3 {
                let session = SESSIONS[step as usize];
                (session, Request::CreateSession { timeout_ms: 4_000 })
            } else {
                let session = *rng.pick(&SESSIONS);
                (session, random_request(&mut rng, &origin))
            };
            let txn = match origin.prepare(session, &request) {
                Ok(txn) => {
                    accepted += 1;
                    txn
                }
                Err(rejected) => {
                    refused += 1;
                    rejected.to_txn()
                }
            };
            let header = TxnHeader {
                session,
                cxid: step as i32,
                time_ms: i64::from(step) * 10,
            };
            let payload = txn.to_payload(&header);
            let zxid = Zxid::new(Epoch(1), step + 1);
            let here = origin
                .apply(zxid, header.time_ms, &txn)
                .unwrap_or_else(|e| panic!("seed {seed} step {step}: {e}"));
            let (header, decoded) = Txn::decode(&payload).expect("our own payload decodes");
            let there = other
                .apply(zxid, header.time_ms, &decoded)
                .expect("the other replica applies");
            assert_eq!(here, there, "seed {seed} step {step}");
        }
        assert!(
            accepted > 300 && refused > 300,
            "seed {seed}: {accepted} accepted, {refused} refused"
        );
        assert!(origin.node_count() > 1, "seed {seed}");
        let snapshot = origin.serialize();
        assert_eq!(other.serialize(), snapshot, "seed {seed}");
        assert_eq!(
            DataTree::deserialize(&snapshot).as_ref(),
            Ok(&origin),
            "seed {seed}"
        );
    }
}
