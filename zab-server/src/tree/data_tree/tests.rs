use super::*;
use zab_core::Epoch;

pub(crate) fn z(counter: u32) -> Zxid {
    Zxid::new(Epoch(1), counter)
}

fn create(
    path: &str,
    data: &'static [u8],
    kind: NodeKind,
    owner: u64,
    parent_cversion: i32,
) -> Txn {
    Txn::Create {
        path: path.into(),
        data: Bytes::from_static(data),
        ephemeral_owner: owner,
        kind,
        parent_cversion,
        acl: crate::tree::open_acl(),
    }
}

fn persistent(path: &str, parent_cversion: i32) -> Txn {
    create(path, b"", NodeKind::Persistent, 0, parent_cversion)
}

fn change(path: &str, kind: ChangeKind) -> Change {
    Change {
        path: path.into(),
        kind,
        acl: crate::tree::open_acl(),
    }
}

fn ok(tree: &mut DataTree, counter: u32, time_ms: i64, txn: Txn) -> Applied {
    match tree.apply(z(counter), time_ms, &txn) {
        Ok(applied) => applied,
        Err(e) => panic!("{txn:?}: {e}"),
    }
}

fn stat(tree: &DataTree, path: &str) -> Stat {
    tree.exists(path)
        .unwrap_or_else(|| panic!("{path} missing"))
}

#[test]
fn a_new_tree_has_only_the_root_with_a_zero_stat() {
    let tree = DataTree::new();
    assert_eq!(tree.node_count(), 1);
    assert_eq!(tree.get("/"), Some((&b""[..], Stat::default())));
    assert_eq!(tree.children("/"), Some((vec![], Stat::default())));
    assert_eq!(tree.last_applied_zxid(), Zxid::ZERO);
}

#[test]
fn create_sets_every_stat_field_and_moves_the_parents() {
    let mut tree = DataTree::new();
    let applied = ok(
        &mut tree,
        1,
        1_000,
        create("/a", b"hello", NodeKind::Persistent, 0, 1),
    );
    let expected = Stat {
        czxid: z(1).0,
        mzxid: z(1).0,
        ctime: 1_000,
        mtime: 1_000,
        version: 0,
        cversion: 0,
        aversion: 0,
        ephemeral_owner: 0,
        data_length: 5,
        num_children: 0,
        // ZooKeeper's quirk: a new node's pzxid is its own czxid.
        pzxid: z(1).0,
    };
    assert_eq!(
        applied,
        Applied {
            outcome: Outcome::Created {
                path: "/a".into(),
                stat: expected
            },
            changes: vec![
                change("/a", ChangeKind::Created),
                change("/", ChangeKind::ChildrenChanged)
            ],
        }
    );
    assert_eq!(tree.get("/a"), Some((&b"hello"[..], expected)));
    // The parent: cversion, pzxid and num_children move; nothing else.
    assert_eq!(
        stat(&tree, "/"),
        Stat {
            cversion: 1,
            num_children: 1,
            pzxid: z(1).0,
            ..Stat::default()
        }
    );
    assert_eq!(tree.last_applied_zxid(), z(1));
}

#[test]
fn set_data_moves_version_mzxid_mtime_and_length_only() {
    let mut tree = DataTree::new();
    ok(
        &mut tree,
        1,
        1_000,
        create("/a", b"hello", NodeKind::Persistent, 0, 1),
    );
    let set = Txn::SetData {
        path: "/a".into(),
        data: Bytes::from_static(b"hi"),
        version: 1,
    };
    let applied = ok(&mut tree, 2, 2_000, set);
    let expected = Stat {
        czxid: z(1).0,
        mzxid: z(2).0,
        ctime: 1_000,
        mtime: 2_000,
        version: 1,
        cversion: 0,
        aversion: 0,
        ephemeral_owner: 0,
        data_length: 2,
        num_children: 0,
        pzxid: z(1).0,
    };
    assert_eq!(
        applied,
        Applied {
            outcome: Outcome::DataSet { stat: expected },
            changes: vec![change("/a", ChangeKind::DataChanged)],
        }
    );
    assert_eq!(stat(&tree, "/a"), expected);
    // The parent does not see a child's setData.
    assert_eq!(stat(&tree, "/").pzxid, z(1).0);
    assert_eq!(stat(&tree, "/").cversion, 1);
}

#[test]
fn child_create_and_delete_move_cversion_pzxid_and_num_children() {
    let mut tree = DataTree::new();
    ok(&mut tree, 1, 1_000, persistent("/p", 1));
    ok(&mut tree, 2, 2_000, persistent("/p/a", 1));
    ok(&mut tree, 3, 3_000, persistent("/p/b", 2));
    let parent = Stat {
        czxid: z(1).0,
        mzxid: z(1).0,
        ctime: 1_000,
        mtime: 1_000,
        version: 0,
        cversion: 2,
        aversion: 0,
        ephemeral_owner: 0,
        data_length: 0,
        num_children: 2,
        pzxid: z(3).0,
    };
    assert_eq!(stat(&tree, "/p"), parent);
    let applied = ok(
        &mut tree,
        4,
        4_000,
        Txn::Delete {
            path: "/p/a".into(),
        },
    );
    assert_eq!(
        applied,
        Applied {
            outcome: Outcome::Deleted,
            changes: vec![
                change("/p/a", ChangeKind::Deleted),
                change("/p", ChangeKind::ChildrenChanged)
            ],
        }
    );
    assert_eq!(tree.exists("/p/a"), None);
    assert_eq!(
        stat(&tree, "/p"),
        Stat {
            cversion: 3,
            num_children: 1,
            pzxid: z(4).0,
            ..parent
        }
    );
    assert_eq!(
        tree.children("/p").map(|(names, _)| names),
        Some(vec!["b".to_owned()])
    );
    assert_eq!(tree.node_count(), 3);
}

#[test]
fn session_close_removes_its_ephemerals_at_one_zxid() {
    let mut tree = DataTree::new();
    ok(
        &mut tree,
        1,
        0,
        Txn::CreateSession {
            session: 7,
            timeout_ms: 10_000,
        },
    );
    ok(
        &mut tree,
        2,
        0,
        Txn::CreateSession {
            session: 8,
            timeout_ms: 10_000,
        },
    );
    ok(&mut tree, 3, 0, persistent("/p", 1));
    ok(
        &mut tree,
        4,
        500,
        create("/p/e2", b"x", NodeKind::Ephemeral, 7, 1),
    );
    ok(
        &mut tree,
        5,
        600,
        create("/p/e1", b"", NodeKind::Ephemeral, 7, 2),
    );
    ok(
        &mut tree,
        6,
        700,
        create("/p/other", b"", NodeKind::Ephemeral, 8, 3),
    );
    ok(
        &mut tree,
        7,
        800,
        create("/top", b"", NodeKind::Ephemeral, 7, 2),
    );
    assert_eq!(
        stat(&tree, "/p/e2"),
        Stat {
            czxid: z(4).0,
            mzxid: z(4).0,
            ctime: 500,
            mtime: 500,
            ephemeral_owner: 7,
            data_length: 1,
            pzxid: z(4).0,
            ..Stat::default()
        }
    );
    assert_eq!(tree.ephemerals(7), vec!["/p/e1", "/p/e2", "/top"]);

    let applied = ok(&mut tree, 8, 900, Txn::CloseSession { session: 7 });
    assert_eq!(
        applied,
        Applied {
            outcome: Outcome::SessionClosed,
            changes: vec![
                change("/p/e1", ChangeKind::Deleted),
                change("/p", ChangeKind::ChildrenChanged),
                change("/p/e2", ChangeKind::Deleted),
                change("/p", ChangeKind::ChildrenChanged),
                change("/top", ChangeKind::Deleted),
                change("/", ChangeKind::ChildrenChanged),
            ],
        }
    );
    assert_eq!(tree.ephemerals(7), Vec::<String>::new());
    assert_eq!(tree.ephemerals(8), vec!["/p/other"]);
    assert_eq!(tree.sessions(), vec![(8, 10_000)]);
    // Three creates and two removals under /p, all removals at zxid 8.
    assert_eq!(
        stat(&tree, "/p"),
        Stat {
            czxid: z(3).0,
            mzxid: z(3).0,
            cversion: 5,
            num_children: 1,
            pzxid: z(8).0,
            ..Stat::default()
        }
    );
    assert_eq!(stat(&tree, "/").cversion, 3);
    assert_eq!(stat(&tree, "/").pzxid, z(8).0);
    assert_eq!(stat(&tree, "/").num_children, 1);
}

#[test]
fn multi_applies_all_ops_at_one_zxid() {
    let mut tree = DataTree::new();
    let multi = Txn::Multi(vec![
        persistent("/a", 1),
        persistent("/a/b", 1),
        Txn::SetData {
            path: "/a".into(),
            data: Bytes::from_static(b"v"),
            version: 1,
        },
        Txn::Check {
            path: "/a".into(),
            version: 1,
        },
        Txn::Delete {
            path: "/a/b".into(),
        },
    ]);
    let applied = ok(&mut tree, 1, 10, multi);
    let Outcome::Multi(results) = applied.outcome else {
        panic!("{:?}", applied.outcome)
    };
    assert_eq!(results.len(), 5);
    assert!(matches!(&results[0], Outcome::Created { path, .. } if path == "/a"));
    assert!(matches!(&results[2], Outcome::DataSet { stat } if stat.version == 1));
    assert_eq!(&results[3..], &[Outcome::Checked, Outcome::Deleted]);
    assert_eq!(
        stat(&tree, "/a"),
        Stat {
            czxid: z(1).0,
            mzxid: z(1).0,
            ctime: 10,
            mtime: 10,
            version: 1,
            cversion: 2,
            data_length: 1,
            pzxid: z(1).0,
            ..Stat::default()
        }
    );
    assert_eq!(applied.changes.len(), 7);
}

#[test]
fn a_failed_multi_changes_nothing_and_reports_its_codes() {
    let mut tree = DataTree::new();
    let failed = Txn::Multi(vec![
        Txn::Error {
            code: ErrorCode::Ok,
        },
        Txn::Error {
            code: ErrorCode::NoNode,
        },
        Txn::Error {
            code: ErrorCode::RuntimeInconsistency,
        },
    ]);
    let applied = ok(&mut tree, 1, 0, failed);
    assert_eq!(
        applied,
        Applied {
            outcome: Outcome::Multi(vec![
                Outcome::Error(ErrorCode::Ok),
                Outcome::Error(ErrorCode::NoNode),
                Outcome::Error(ErrorCode::RuntimeInconsistency),
            ]),
            changes: vec![],
        }
    );
    assert_eq!(tree.node_count(), 1);
    assert_eq!(tree.last_applied_zxid(), z(1));
    let error = ok(
        &mut tree,
        2,
        0,
        Txn::Error {
            code: ErrorCode::NodeExists,
        },
    );
    assert_eq!(error.outcome, Outcome::Error(ErrorCode::NodeExists));
    assert_eq!(ok(&mut tree, 3, 0, Txn::Noop).outcome, Outcome::Noop);
}

#[test]
fn a_txn_that_does_not_fit_the_tree_is_a_divergence_not_a_panic() {
    let mut tree = DataTree::new();
    ok(&mut tree, 1, 0, persistent("/a", 1));
    ok(
        &mut tree,
        2,
        0,
        Txn::CreateSession {
            session: 9,
            timeout_ms: 1,
        },
    );
    ok(
        &mut tree,
        3,
        0,
        create("/e", b"", NodeKind::Ephemeral, 9, 2),
    );
    let set = |version| Txn::SetData {
        path: "/a".into(),
        data: Bytes::new(),
        version,
    };
    let cases: Vec<(Txn, Divergence)> = vec![
        (
            persistent("/x/y", 1),
            Divergence::NoParent {
                path: "/x/y".into(),
            },
        ),
        (
            persistent("/a", 3),
            Divergence::NodeExists { path: "/a".into() },
        ),
        (
            persistent("/", 1),
            Divergence::NodeExists { path: "/".into() },
        ),
        (
            persistent("/b", 2),
            Divergence::ParentCversion {
                path: "/b".into(),
                txn: 2,
                tree: 2,
            },
        ),
        (
            persistent("/e/c", 1),
            Divergence::EphemeralParent {
                path: "/e/c".into(),
            },
        ),
        (
            create("/f", b"", NodeKind::Ephemeral, 10, 3),
            Divergence::NoSession { session: 10 },
        ),
        (
            create("/f", b"", NodeKind::Ephemeral, 0, 3),
            Divergence::Malformed {
                reason: "an ephemeral create without an owner",
            },
        ),
        (
            create("/f", b"", NodeKind::Persistent, 9, 3),
            Divergence::Malformed {
                reason: "an owner on a node that is not ephemeral",
            },
        ),
        (
            persistent("/a/", 1),
            Divergence::InvalidPath {
                path: "/a/".into(),
                error: path::PathError::TrailingSlash,
            },
        ),
        (
            Txn::Delete {
                path: "/nope".into(),
            },
            Divergence::NoNode {
                path: "/nope".into(),
            },
        ),
        (
            Txn::Delete { path: "/".into() },
            Divergence::Malformed {
                reason: "a delete of the root",
            },
        ),
        (
            set(2),
            Divergence::Version {
                path: "/a".into(),
                txn: 2,
                tree: 0,
            },
        ),
        (
            Txn::Check {
                path: "/a".into(),
                version: 1,
            },
            Divergence::Version {
                path: "/a".into(),
                txn: 1,
                tree: 0,
            },
        ),
        (
            Txn::CreateSession {
                session: 9,
                timeout_ms: 1,
            },
            Divergence::SessionExists { session: 9 },
        ),
        (
            Txn::CloseSession { session: 4 },
            Divergence::NoSession { session: 4 },
        ),
        (
            Txn::Multi(vec![
                Txn::Error {
                    code: ErrorCode::Ok,
                },
                Txn::Noop,
            ]),
            Divergence::Malformed {
                reason: "a multi mixes error results and operations",
            },
        ),
        (
            Txn::Multi(vec![Txn::Noop]),
            Divergence::Malformed {
                reason: "transaction not allowed inside a multi",
            },
        ),
    ];
    for (txn, divergence) in cases {
        let before = tree.clone();
        assert_eq!(
            tree.apply(z(10), 0, &txn),
            Err(ApplyError {
                zxid: z(10),
                divergence
            }),
            "{txn:?}"
        );
        assert_eq!(tree, before, "{txn:?} changed the tree");
    }
    ok(&mut tree, 4, 0, persistent("/a/b", 1));
    assert_eq!(
        tree.apply(z(5), 0, &Txn::Delete { path: "/a".into() }),
        Err(ApplyError {
            zxid: z(5),
            divergence: Divergence::NotEmpty { path: "/a".into() }
        })
    );
    assert_eq!(
        tree.apply(z(4), 0, &Txn::Noop),
        Err(ApplyError {
            zxid: z(4),
            divergence: Divergence::StaleZxid { last_applied: z(4) }
        })
    );
}

#[test]
fn expired_candidates_are_emptied_containers_and_idle_ttl_nodes() {
    let mut tree = DataTree::new();
    ok(
        &mut tree,
        1,
        0,
        create("/never-used", b"", NodeKind::Container, 0, 1),
    );
    ok(
        &mut tree,
        2,
        0,
        create("/emptied", b"", NodeKind::Container, 0, 2),
    );
    ok(&mut tree, 3, 0, persistent("/emptied/x", 1));
    ok(
        &mut tree,
        4,
        0,
        create("/full", b"", NodeKind::Container, 0, 3),
    );
    ok(&mut tree, 5, 0, persistent("/full/x", 1));
    ok(
        &mut tree,
        6,
        1_000,
        create("/ttl", b"", NodeKind::Ttl { ttl_ms: 500 }, 0, 4),
    );
    ok(
        &mut tree,
        7,
        1_000,
        create("/ttl-parent", b"", NodeKind::Ttl { ttl_ms: 500 }, 0, 5),
    );
    ok(&mut tree, 8, 1_000, persistent("/ttl-parent/x", 1));
    ok(&mut tree, 9, 0, persistent("/plain", 6));
    assert_eq!(tree.expired_candidates(1_500), Vec::<String>::new());
    ok(
        &mut tree,
        10,
        0,
        Txn::Delete {
            path: "/emptied/x".into(),
        },
    );
    // The TTL counts from the last modification, strictly.
    assert_eq!(tree.expired_candidates(1_500), vec!["/emptied"]);
    assert_eq!(tree.expired_candidates(1_501), vec!["/emptied", "/ttl"]);
    let touch = Txn::SetData {
        path: "/ttl".into(),
        data: Bytes::new(),
        version: 1,
    };
    ok(&mut tree, 11, 1_400, touch);
    assert_eq!(tree.expired_candidates(1_501), vec!["/emptied"]);
    assert_eq!(tree.expired_candidates(1_901), vec!["/emptied", "/ttl"]);
    ok(
        &mut tree,
        12,
        0,
        Txn::Delete {
            path: "/ttl".into(),
        },
    );
    ok(
        &mut tree,
        13,
        0,
        Txn::Delete {
            path: "/ttl-parent/x".into(),
        },
    );
    assert_eq!(
        tree.expired_candidates(i64::MAX),
        vec!["/emptied", "/ttl-parent"]
    );
    assert_eq!(tree.expired_candidates(i64::MIN), vec!["/emptied"]);
}

/// Nodes below `path`, counted by walking the subtree: the oracle for the
/// counts the tree keeps.
fn walked_descendants(tree: &DataTree, path: &str) -> u64 {
    let (names, _) = tree.children(path).expect("present");
    names
        .iter()
        .map(|name| 1 + walked_descendants(tree, &path::join(path, name)))
        .sum()
}

#[test]
fn descendant_counts_follow_creates_and_deletes_at_every_depth_and_survive_a_restore() {
    let mut tree = DataTree::new();
    let mut paths: Vec<String> = vec!["/".into()];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move |m: usize| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % m as u64) as usize
    };
    for counter in 1..=3_000u32 {
        let at = paths[next(paths.len())].clone();
        let delete = next(10) < 4 && at != "/" && tree.children(&at).expect("present").0.is_empty();
        let txn = if delete {
            paths.retain(|p| *p != at);
            Txn::Delete { path: at }
        } else {
            let path = path::join(&at, &format!("n{counter}"));
            let txn = persistent(&path, stat(&tree, &at).cversion + 1);
            paths.push(path);
            txn
        };
        ok(&mut tree, counter, 0, txn);
        if counter % 500 == 0 {
            for p in &paths {
                assert_eq!(
                    tree.descendant_count(p),
                    Some(walked_descendants(&tree, p)),
                    "{p}"
                );
            }
        }
    }
    assert_eq!(tree.descendant_count("/"), Some(paths.len() as u64 - 1));
    assert!(
        paths.iter().any(|p| p.matches('/').count() >= 4),
        "the tree has depth"
    );
    // A restore counts them again from the snapshot: the same tree.
    let restored = DataTree::deserialize(&tree.serialize()).expect("decodes");
    assert_eq!(restored, tree);
    assert_eq!(tree.descendant_count("/missing"), None);
}
