use super::*;
use std::collections::VecDeque;

use zab_proto::Stat;

use crate::tree::Outcome;
use zab_core::{Epoch, Zxid};

const S: u64 = 0x11;
const OTHER: u64 = 0x22;

/// A replica's tree: `propose` resolves a request and applies it at once,
/// as every replica does at apply time; `commit` hands back the outcomes in
/// order.
struct Leader {
    tree: DataTree,
    outcomes: VecDeque<Outcome>,
    counter: u32,
}

impl Leader {
    fn new() -> Leader {
        let mut leader = Leader {
            tree: DataTree::new(),
            outcomes: VecDeque::new(),
            counter: 0,
        };
        leader.propose(S, Request::CreateSession { timeout_ms: 5_000 });
        leader.propose(OTHER, Request::CreateSession { timeout_ms: 5_000 });
        leader.commit_all();
        leader
    }

    fn prepare(&self, session: u64, request: Request) -> Result<Txn, Rejected> {
        self.tree.prepare(session, &request)
    }

    fn propose(&mut self, session: u64, request: Request) -> Txn {
        let txn = self
            .prepare(session, request.clone())
            .unwrap_or_else(|e| panic!("{request:?}: {e:?}"));
        self.push(txn.clone());
        txn
    }

    fn push(&mut self, txn: Txn) {
        self.counter += 1;
        let zxid = Zxid::new(Epoch(1), self.counter);
        let applied = self
            .tree
            .apply(zxid, 1_000, &txn)
            .unwrap_or_else(|e| panic!("{e}"));
        self.outcomes.push_back(applied.outcome);
    }

    fn commit(&mut self) -> Outcome {
        self.outcomes.pop_front().expect("something proposed")
    }

    fn commit_all(&mut self) {
        self.outcomes.clear();
    }

    fn stat(&self, path: &str) -> Stat {
        self.tree
            .exists(path)
            .unwrap_or_else(|| panic!("{path} missing"))
    }
}

fn create(path: &str, kind: NodeKind, sequential: bool) -> Request {
    Request::Create {
        path: path.into(),
        data: Bytes::new(),
        kind,
        sequential,
        acl: None,
    }
}

fn persistent(path: &str) -> Request {
    create(path, NodeKind::Persistent, false)
}

fn sequential(path: &str) -> Request {
    create(path, NodeKind::Persistent, true)
}

fn delete(path: &str, version: i32) -> Request {
    Request::Delete {
        path: path.into(),
        version,
    }
}

fn set(path: &str, version: i32) -> Request {
    Request::SetData {
        path: path.into(),
        data: Bytes::from_static(b"v"),
        version,
    }
}

fn created_path(txn: &Txn) -> &str {
    match txn {
        Txn::Create { path, .. } => path,
        other => panic!("not a create: {other:?}"),
    }
}

fn rejected(code: ErrorCode) -> Result<Txn, Rejected> {
    Err(Rejected::Op(code))
}

#[test]
fn sequential_names_count_every_create_and_never_go_back() {
    let mut l = Leader::new();
    l.propose(S, persistent("/p"));
    let first = l.propose(S, sequential("/p/s-"));
    assert_eq!(created_path(&first), "/p/s-0000000000");
    l.propose(S, persistent("/p/a"));
    let third = l.propose(S, sequential("/p/s-"));
    assert_eq!(created_path(&third), "/p/s-0000000002");
    l.commit_all();
    l.propose(S, delete("/p/s-0000000002", ANY_VERSION));
    l.propose(S, delete("/p/a", 0));
    l.commit_all();
    // Deletes do not give numbers back.
    let next = l.propose(S, sequential("/p/s-"));
    assert_eq!(created_path(&next), "/p/s-0000000003");
    let queue = l.propose(S, sequential("/p/"));
    assert_eq!(created_path(&queue), "/p/0000000004");
    l.commit_all();
    assert_eq!(
        l.tree.children("/p").map(|c| c.0),
        Some(vec![
            "0000000004".into(),
            "s-0000000000".into(),
            "s-0000000003".into()
        ])
    );
    // cversion: five creates and two deletes.
    assert_eq!(l.stat("/p").cversion, 7);
    assert_eq!(l.stat("/p").num_children, 3);
    let root_child = l.propose(S, sequential("/"));
    assert_eq!(created_path(&root_child), "/0000000001");
}

#[test]
fn sequential_creates_from_any_session_get_consecutive_names() {
    let mut l = Leader::new();
    l.propose(S, persistent("/q"));
    let a = l.propose(S, sequential("/q/n-"));
    let b = l.propose(OTHER, create("/q/n-", NodeKind::Ephemeral, true));
    assert_eq!(
        a,
        Txn::Create {
            path: "/q/n-0000000000".into(),
            data: Bytes::new(),
            ephemeral_owner: 0,
            kind: NodeKind::Persistent,
            parent_cversion: 1,
            acl: crate::tree::open_acl(),
        }
    );
    assert_eq!(
        b,
        Txn::Create {
            path: "/q/n-0000000001".into(),
            data: Bytes::new(),
            ephemeral_owner: OTHER,
            kind: NodeKind::Ephemeral,
            parent_cversion: 2,
            acl: crate::tree::open_acl(),
        }
    );
    let c = l.propose(S, sequential("/q/n-"));
    assert_eq!(created_path(&c), "/q/n-0000000002");
    l.commit_all();
    assert_eq!(l.stat("/q").cversion, 3);
    assert_eq!(l.tree.ephemerals(OTHER), vec!["/q/n-0000000001"]);
}

#[test]
fn creates_and_deletes_before_are_seen() {
    let mut l = Leader::new();
    l.propose(S, persistent("/a"));
    assert_eq!(
        l.prepare(OTHER, persistent("/a")),
        rejected(ErrorCode::NodeExists)
    );
    // A child of a node created just before.
    l.propose(S, persistent("/a/b"));
    assert_eq!(
        l.prepare(S, delete("/a", ANY_VERSION)),
        rejected(ErrorCode::NotEmpty)
    );
    l.propose(S, delete("/a/b", ANY_VERSION));
    assert_eq!(
        l.prepare(S, delete("/a/b", ANY_VERSION)),
        rejected(ErrorCode::NoNode)
    );
    // Recreate after a delete: the parent's cversion counts both.
    let again = l.propose(S, persistent("/a/b"));
    assert!(
        matches!(
            again,
            Txn::Create {
                parent_cversion: 3,
                ..
            }
        ),
        "{again:?}"
    );
    l.commit_all();
    assert_eq!(l.stat("/a").cversion, 3);
    assert_eq!(l.stat("/a").num_children, 1);
}

#[test]
fn version_checks_see_the_latest_version() {
    let mut l = Leader::new();
    l.propose(S, persistent("/v"));
    l.commit_all();
    let first = l.propose(S, set("/v", 0));
    assert!(
        matches!(first, Txn::SetData { version: 1, .. }),
        "{first:?}"
    );
    assert_eq!(l.prepare(S, set("/v", 0)), rejected(ErrorCode::BadVersion));
    assert_eq!(
        l.prepare(S, delete("/v", 0)),
        rejected(ErrorCode::BadVersion)
    );
    let check = Request::Check {
        path: "/v".into(),
        version: 0,
    };
    assert_eq!(l.prepare(S, check), rejected(ErrorCode::BadVersion));
    let second = l.propose(S, set("/v", 1));
    assert!(
        matches!(second, Txn::SetData { version: 2, .. }),
        "{second:?}"
    );
    let any = l.propose(S, set("/v", ANY_VERSION));
    assert!(matches!(any, Txn::SetData { version: 3, .. }), "{any:?}");
    assert_eq!(l.stat("/v").version, 3);
    assert_eq!(l.prepare(S, set("/v", 1)), rejected(ErrorCode::BadVersion));
    assert!(l.prepare(S, delete("/v", 3)).is_ok());
    l.commit_all();
    assert_eq!(l.stat("/v").version, 3);
    assert!(l.prepare(S, delete("/v", 3)).is_ok());
}

#[test]
fn multi_later_ops_see_earlier_ones_and_all_apply_at_one_zxid() {
    let mut l = Leader::new();
    let request = Request::Multi(vec![
        persistent("/m"),
        sequential("/m/c-"),
        set("/m", 0),
        Request::Check {
            path: "/m".into(),
            version: 1,
        },
        delete("/m/c-0000000000", 0),
    ]);
    let txn = l.propose(S, request);
    assert_eq!(
        txn,
        Txn::Multi(vec![
            Txn::Create {
                path: "/m".into(),
                data: Bytes::new(),
                ephemeral_owner: 0,
                kind: NodeKind::Persistent,
                parent_cversion: 1,
                acl: crate::tree::open_acl(),
            },
            Txn::Create {
                path: "/m/c-0000000000".into(),
                data: Bytes::new(),
                ephemeral_owner: 0,
                kind: NodeKind::Persistent,
                parent_cversion: 1,
                acl: crate::tree::open_acl(),
            },
            Txn::SetData {
                path: "/m".into(),
                data: Bytes::from_static(b"v"),
                version: 1,
            },
            Txn::Check {
                path: "/m".into(),
                version: 1,
            },
            Txn::Delete {
                path: "/m/c-0000000000".into(),
            },
        ])
    );
    // The next request sees the whole multi.
    assert_eq!(l.prepare(S, set("/m", 0)), rejected(ErrorCode::BadVersion));
    let Outcome::Multi(results) = l.commit() else {
        panic!("not a multi")
    };
    assert!(matches!(&results[1], Outcome::Created { path, .. } if path == "/m/c-0000000000"));
    assert_eq!(&results[3..], &[Outcome::Checked, Outcome::Deleted]);
    let m = l.stat("/m");
    assert_eq!(
        (m.version, m.cversion, m.num_children, m.czxid, m.mzxid),
        (1, 2, 0, m.pzxid, m.pzxid)
    );
}

#[test]
fn a_failed_multi_reports_ok_then_its_error_then_runtime_inconsistency() {
    let mut l = Leader::new();
    let request = Request::Multi(vec![
        persistent("/x"),
        delete("/nope", ANY_VERSION),
        set("/x", 0),
        persistent("/y"),
    ]);
    let failure = l.prepare(S, request).expect_err("must fail");
    assert_eq!(
        failure,
        Rejected::Multi {
            failed_op: 1,
            code: ErrorCode::NoNode,
            op_count: 4,
        }
    );
    assert_eq!(failure.code(), ErrorCode::NoNode);
    let expected = [
        ErrorCode::Ok,
        ErrorCode::NoNode,
        ErrorCode::RuntimeInconsistency,
        ErrorCode::RuntimeInconsistency,
    ];
    assert_eq!(failure.op_results(), expected);
    // Proposed for ordering, it applies as exactly those results and
    // changes nothing (the first op's create does not happen).
    l.push(failure.to_txn());
    let outcome = l.commit();
    assert_eq!(
        outcome,
        Outcome::Multi(expected.iter().map(|&c| Outcome::Error(c)).collect())
    );
    assert_eq!(l.tree.exists("/x"), None);
    // A failure caused by an earlier op of the same multi.
    let twice = Request::Multi(vec![persistent("/y"), persistent("/y")]);
    assert_eq!(
        l.prepare(S, twice),
        Err(Rejected::Multi {
            failed_op: 1,
            code: ErrorCode::NodeExists,
            op_count: 2,
        })
    );
    let nested = Request::Multi(vec![Request::Multi(vec![])]);
    assert_eq!(
        l.prepare(S, nested).map_err(|r| r.op_results()),
        Err(vec![ErrorCode::BadArguments])
    );
    assert_eq!(l.prepare(S, Request::Multi(vec![])), Ok(Txn::Multi(vec![])));
}

#[test]
fn ephemerals_cannot_have_children() {
    let mut l = Leader::new();
    l.propose(S, create("/e", NodeKind::Ephemeral, false));
    let child = persistent("/e/c");
    assert_eq!(
        l.prepare(S, child.clone()),
        rejected(ErrorCode::NoChildrenForEphemerals)
    );
    assert_eq!(
        l.prepare(S, create("/e/", NodeKind::Ephemeral, true)),
        rejected(ErrorCode::NoChildrenForEphemerals)
    );
    l.commit_all();
    assert_eq!(
        l.prepare(S, child),
        rejected(ErrorCode::NoChildrenForEphemerals)
    );
    assert_eq!(l.stat("/e").ephemeral_owner, S);
}

#[test]
fn bad_requests_get_zookeepers_codes() {
    let mut l = Leader::new();
    l.propose(S, persistent("/p"));
    let big = Bytes::from(vec![0u8; DATA_BYTES_MAX + 1]);
    let cases: Vec<(u64, Request, ErrorCode)> = vec![
        (
            S,
            create("/t", NodeKind::Ttl { ttl_ms: 0 }, false),
            ErrorCode::BadArguments,
        ),
        (
            S,
            create(
                "/t",
                NodeKind::Ttl {
                    ttl_ms: TTL_MS_MAX + 1,
                },
                false,
            ),
            ErrorCode::BadArguments,
        ),
        (
            S,
            create("/c", NodeKind::Container, true),
            ErrorCode::BadArguments,
        ),
        (S, persistent("/p/"), ErrorCode::BadArguments),
        (S, persistent("relative"), ErrorCode::BadArguments),
        (S, persistent("/a\0b"), ErrorCode::BadArguments),
        (S, sequential("/p//"), ErrorCode::BadArguments),
        (S, persistent("/missing/child"), ErrorCode::NoNode),
        (S, sequential("/missing/"), ErrorCode::NoNode),
        (S, persistent("/"), ErrorCode::NodeExists),
        (S, persistent("/p"), ErrorCode::NodeExists),
        (
            S,
            Request::Create {
                path: "/big".into(),
                data: big.clone(),
                kind: NodeKind::Persistent,
                sequential: false,
                acl: None,
            },
            ErrorCode::BadArguments,
        ),
        (
            S,
            Request::SetData {
                path: "/p".into(),
                data: big,
                version: ANY_VERSION,
            },
            ErrorCode::BadArguments,
        ),
        (S, delete("/", ANY_VERSION), ErrorCode::BadArguments),
        (S, delete("/p/", ANY_VERSION), ErrorCode::BadArguments),
        (S, set("/nope", ANY_VERSION), ErrorCode::NoNode),
        (0x99, persistent("/q"), ErrorCode::SessionExpired),
        (0x99, Request::Multi(vec![]), ErrorCode::SessionExpired),
        (0x99, Request::CloseSession, ErrorCode::SessionExpired),
        (
            0,
            create("/q", NodeKind::Ephemeral, false),
            ErrorCode::SessionExpired,
        ),
        (
            S,
            Request::CreateSession { timeout_ms: 1 },
            ErrorCode::BadArguments,
        ),
        (
            0,
            Request::CreateSession { timeout_ms: 1 },
            ErrorCode::BadArguments,
        ),
    ];
    for (session, request, code) in cases {
        assert_eq!(
            l.prepare(session, request.clone()),
            rejected(code),
            "{request:?}"
        );
    }
    let ok = create("/t", NodeKind::Ttl { ttl_ms: TTL_MS_MAX }, false);
    assert!(l.prepare(S, ok).is_ok());
    assert!(l
        .prepare(S, create("/c", NodeKind::Container, false))
        .is_ok());
}

#[test]
fn a_closed_session_is_closed_and_its_ephemerals_gone() {
    let mut l = Leader::new();
    l.propose(S, persistent("/locks"));
    l.commit_all();
    l.propose(S, create("/locks/held", NodeKind::Ephemeral, false));
    l.commit_all();
    l.propose(S, create("/locks/also", NodeKind::Ephemeral, false));
    l.propose(S, Request::CloseSession);
    assert_eq!(
        l.prepare(S, persistent("/x")),
        rejected(ErrorCode::SessionExpired)
    );
    assert_eq!(
        l.prepare(S, Request::CloseSession),
        rejected(ErrorCode::SessionExpired)
    );
    // Both ephemerals are gone.
    let take = l.propose(OTHER, create("/locks/held", NodeKind::Ephemeral, false));
    assert!(
        matches!(
            take,
            Txn::Create {
                parent_cversion: 5,
                ..
            }
        ),
        "{take:?}"
    );
    assert!(l.prepare(OTHER, persistent("/locks/also")).is_ok());
    l.commit_all();
    assert_eq!(l.tree.ephemerals(OTHER), vec!["/locks/held"]);
    assert_eq!(l.stat("/locks").cversion, 5);
    assert_eq!(l.stat("/locks").num_children, 1);
    // The id is free again once closed.
    assert!(l
        .prepare(S, Request::CreateSession { timeout_ms: 1 })
        .is_ok());
}

#[test]
fn delete_expired_rechecks_the_node() {
    let mut l = Leader::new();
    l.propose(S, create("/c", NodeKind::Container, false));
    l.propose(S, persistent("/c/x"));
    l.propose(S, persistent("/plain"));
    l.commit_all();
    let expired = |path: &str| Request::DeleteExpired { path: path.into() };
    assert_eq!(l.prepare(0, expired("/c")), rejected(ErrorCode::NotEmpty));
    assert_eq!(
        l.prepare(0, expired("/plain")),
        rejected(ErrorCode::BadArguments)
    );
    assert_eq!(l.prepare(0, expired("/gone")), rejected(ErrorCode::NoNode));
    l.propose(S, delete("/c/x", ANY_VERSION));
    l.commit_all();
    assert_eq!(l.tree.expired_candidates(0), vec!["/c"]);
    assert_eq!(
        l.prepare(0, expired("/c")),
        Ok(Txn::Delete { path: "/c".into() })
    );
    // A child created since the sweep looked stops it.
    l.propose(S, persistent("/c/y"));
    assert_eq!(l.prepare(0, expired("/c")), rejected(ErrorCode::NotEmpty));
}
