//! ACL checks of writes, as every replica runs them at apply time: each
//! operation's permission, ZooKeeper's order of checks, multi as a whole,
//! setAcl with its aversion, and the ACL a create asks for made concrete.

use std::sync::Arc;

use bytes::Bytes;
use zab_core::{Epoch, Zxid};
use zab_proto::{digest_id, Acl, ErrorCode, Perms};

use crate::acl::{authenticate, Caller};
use crate::tree::{DataTree, NodeKind, Outcome, Rejected, Request, Txn};

const S: u64 = 0x11;

struct Tree {
    tree: DataTree,
    counter: u32,
}

impl Tree {
    fn new() -> Tree {
        let mut t = Tree {
            tree: DataTree::new(),
            counter: 0,
        };
        t.run(
            &Caller::anonymous(),
            Request::CreateSession { timeout_ms: 5_000 },
        )
        .expect("session");
        t
    }

    /// Resolves `request` for `caller` and applies what it resolves to.
    fn run(&mut self, caller: &Caller, request: Request) -> Result<Outcome, Rejected> {
        let txn = self.tree.prepare_as(S, caller, &request)?;
        self.counter += 1;
        let applied = self
            .tree
            .apply(Zxid::new(Epoch(1), self.counter), 1_000, &txn)
            .expect("a resolved transaction applies");
        Ok(applied.outcome)
    }

    fn code(&mut self, caller: &Caller, request: Request) -> ErrorCode {
        match self.run(caller, request) {
            Ok(outcome) => panic!("expected a refusal, got {outcome:?}"),
            Err(rejected) => rejected.code(),
        }
    }

    fn acl(&self, path: &str) -> Vec<Acl> {
        self.tree.acl(path).expect("node").0.to_vec()
    }
}

fn user(name: &str, password: &str) -> Caller {
    let id = authenticate("digest", format!("{name}:{password}").as_bytes()).expect("digest");
    Caller {
        ids: vec![id],
        ..Caller::anonymous()
    }
}

fn create(path: &str, acl: Option<Vec<Acl>>) -> Request {
    Request::Create {
        path: path.into(),
        data: Bytes::new(),
        kind: NodeKind::Persistent,
        sequential: false,
        acl,
    }
}

fn set(path: &str) -> Request {
    Request::SetData {
        path: path.into(),
        data: Bytes::from_static(b"v"),
        version: -1,
    }
}

fn delete(path: &str) -> Request {
    Request::Delete {
        path: path.into(),
        version: -1,
    }
}

fn set_acl(path: &str, acl: Vec<Acl>, version: i32) -> Request {
    Request::SetAcl {
        path: path.into(),
        acl,
        version,
    }
}

#[test]
fn every_write_needs_its_permission_and_the_owner_has_them() {
    let mut t = Tree::new();
    let bob = user("bob", "secret");
    let anyone = Caller::anonymous();
    t.run(&bob, create("/b", Some(Acl::creator_all())))
        .expect("bob creates his node");
    assert_eq!(
        t.acl("/b"),
        vec![Acl::new(Perms::ALL, "digest", digest_id("bob", "secret"))],
        "auth is made concrete: bob's identity, not the word auth"
    );
    let no = ErrorCode::NoAuth;
    assert_eq!(
        t.code(&anyone, create("/b/c", None)),
        no,
        "CREATE on the parent"
    );
    assert_eq!(t.code(&user("bob", "guess"), create("/b/c", None)), no);
    t.run(&bob, create("/b/c", None)).expect("bob may");
    assert_eq!(t.code(&anyone, set("/b")), no, "WRITE on the node");
    assert_eq!(t.code(&anyone, delete("/b/c")), no, "DELETE on the parent");
    let check = Request::Check {
        path: "/b".into(),
        version: -1,
    };
    assert_eq!(t.code(&anyone, check.clone()), no, "READ on the node");
    assert_eq!(
        t.code(&anyone, set_acl("/b", Acl::open_unsafe(), -1)),
        no,
        "ADMIN on the node"
    );
    // Open children of a closed parent are open: permissions are per node.
    t.run(&anyone, set("/b/c")).expect("/b/c has the open ACL");
    t.run(&bob, check).expect("bob reads");
    t.run(&bob, delete("/b/c")).expect("bob deletes");

    // Per permission, not all or nothing: read-only to the world.
    let read_only = vec![
        Acl::new(Perms::READ, "world", "anyone"),
        Acl::new(Perms::ALL, "digest", digest_id("bob", "secret")),
    ];
    t.run(&bob, create("/r", Some(read_only))).expect("create");
    let check_r = Request::Check {
        path: "/r".into(),
        version: 0,
    };
    t.run(&anyone, check_r).expect("READ is granted");
    assert_eq!(t.code(&anyone, set("/r")), no);

    // Networks: the ip scheme matches the connection's address.
    let lan = vec![Acl::new(Perms::ALL, "ip", "10.1.0.0/16")];
    t.run(&anyone, create("/lan", Some(lan))).expect("create");
    let at = |ip: &str| Caller {
        ip: Some(ip.parse().expect("ip")),
        ..Caller::anonymous()
    };
    t.run(&at("10.1.4.4"), set("/lan"))
        .expect("inside the network");
    assert_eq!(t.code(&at("10.2.0.1"), set("/lan")), no);
    assert_eq!(t.code(&anyone, set("/lan")), no, "no address, no match");

    // The super user passes every check.
    let root = Caller {
        superuser: true,
        ..Caller::anonymous()
    };
    t.run(&root, set("/b")).expect("super");
}

#[test]
fn checks_come_in_zookeepers_order() {
    let mut t = Tree::new();
    let bob = user("bob", "secret");
    let anyone = Caller::anonymous();
    t.run(&bob, create("/b", Some(Acl::creator_all())))
        .expect("create");
    // Create: an invalid ACL before a missing parent; a missing parent
    // before the parent's ACL; the parent's ACL before the name's existence.
    let bad_acl = Some(vec![Acl::new(Perms::ALL, "world", "someone")]);
    assert_eq!(
        t.code(&anyone, create("/none/x", bad_acl)),
        ErrorCode::InvalidAcl
    );
    assert_eq!(t.code(&anyone, create("/none/x", None)), ErrorCode::NoNode);
    t.run(&bob, create("/b/x", None)).expect("create");
    assert_eq!(t.code(&anyone, create("/b/x", None)), ErrorCode::NoAuth);
    assert_eq!(t.code(&bob, create("/b/x", None)), ErrorCode::NodeExists);
    // Delete: the node before the parent's ACL.
    assert_eq!(t.code(&anyone, delete("/b/none")), ErrorCode::NoNode);
    // SetAcl: the ACL asked for, the node, ADMIN, then the aversion.
    let open = Acl::open_unsafe();
    assert_eq!(
        t.code(&anyone, set_acl("/none", vec![], -1)),
        ErrorCode::InvalidAcl
    );
    assert_eq!(
        t.code(&anyone, set_acl("/none", open.clone(), -1)),
        ErrorCode::NoNode
    );
    assert_eq!(
        t.code(&anyone, set_acl("/b", open.clone(), 7)),
        ErrorCode::NoAuth
    );
    assert_eq!(
        t.code(&bob, set_acl("/b", open.clone(), 7)),
        ErrorCode::BadVersion
    );
    // `auth` without an identity, an unknown scheme.
    assert_eq!(
        t.code(&anyone, create("/a", Some(Acl::creator_all()))),
        ErrorCode::InvalidAcl
    );
    let sasl = Some(vec![Acl::new(Perms::ALL, "sasl", "bob")]);
    assert_eq!(t.code(&bob, create("/a", sasl)), ErrorCode::InvalidAcl);
}

#[test]
fn set_acl_moves_the_aversion_and_takes_effect_at_once() {
    let mut t = Tree::new();
    let bob = user("bob", "secret");
    let anyone = Caller::anonymous();
    t.run(&anyone, create("/n", None)).expect("create");
    assert_eq!(
        t.code(&anyone, set_acl("/n", Acl::creator_all(), 0)),
        ErrorCode::InvalidAcl,
        "auth from a caller with no identity"
    );
    let outcome = t.run(&bob, set_acl("/n", Acl::creator_all(), 0));
    let Ok(Outcome::AclSet { stat }) = outcome else {
        panic!("{outcome:?}");
    };
    assert_eq!(stat.aversion, 1);
    assert_eq!(t.tree.exists("/n").expect("node").aversion, 1);
    assert_eq!(t.code(&anyone, set("/n")), ErrorCode::NoAuth, "closed now");
    assert_eq!(
        t.code(&bob, set_acl("/n", Acl::open_unsafe(), 0)),
        ErrorCode::BadVersion,
        "the aversion moved"
    );
    t.run(&bob, set_acl("/n", Acl::open_unsafe(), 1))
        .expect("reopen");
    t.run(&anyone, set("/n")).expect("open again");
}

#[test]
fn a_multi_is_checked_op_by_op_and_applies_nothing_if_one_is_refused() {
    let mut t = Tree::new();
    let bob = user("bob", "secret");
    let anyone = Caller::anonymous();
    t.run(&bob, create("/b", Some(Acl::creator_all())))
        .expect("create");
    let multi = Request::Multi(vec![
        create("/open", None),
        set("/b"),
        create("/later", None),
    ]);
    match t.run(&anyone, multi.clone()) {
        Err(Rejected::Multi {
            failed_op: 1,
            code: ErrorCode::NoAuth,
            op_count: 3,
        }) => {}
        other => panic!("{other:?}"),
    }
    assert!(t.tree.exists("/open").is_none(), "nothing applied");
    // A node created earlier in the same multi is judged by its own ACL.
    let inner = Request::Multi(vec![
        create("/mine", Some(Acl::creator_all())),
        create("/mine/child", None),
    ]);
    match t.run(&anyone, inner.clone()) {
        Err(Rejected::Multi {
            failed_op: 0,
            code: ErrorCode::InvalidAcl,
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    t.run(&bob, inner).expect("bob creates both at once");
    let closed = Request::Multi(vec![
        create(
            "/shut",
            Some(vec![Acl::new(Perms::READ, "world", "anyone")]),
        ),
        create("/shut/child", None),
    ]);
    match t.run(&anyone, closed) {
        Err(Rejected::Multi {
            failed_op: 1,
            code: ErrorCode::NoAuth,
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    // SetAcl is not a multi op.
    let with_acl = Request::Multi(vec![set_acl("/b", Acl::open_unsafe(), -1)]);
    assert_eq!(t.code(&bob, with_acl), ErrorCode::BadArguments);
}

#[test]
fn one_copy_per_distinct_acl_and_snapshots_keep_them() {
    let mut t = Tree::new();
    let bob = user("bob", "secret");
    let empty = t.tree.data_bytes();
    for i in 0..200 {
        t.run(&bob, create(&format!("/n{i:03}"), Some(Acl::creator_all())))
            .expect("create");
    }
    let ip = vec![Acl::new(Perms::READ, "ip", "127.0.0.1")];
    t.run(&bob, create("/ip", Some(ip.clone())))
        .expect("create");
    assert_eq!(t.tree.distinct_acls(), 2, "200 nodes share one list");
    let (a, _) = t.tree.acl("/n000").expect("node");
    let (b, _) = t.tree.acl("/n199").expect("node");
    assert!(Arc::ptr_eq(a, b));

    let bytes = t.tree.serialize();
    let restored = DataTree::deserialize(&bytes).expect("restores");
    assert_eq!(restored, t.tree);
    assert_eq!(restored.acl("/ip").expect("node").0.to_vec(), ip);
    assert_eq!(restored.distinct_acls(), 2);
    assert_eq!(restored.serialize(), bytes, "canonical after a restore");

    for i in 0..200 {
        t.run(&bob, delete(&format!("/n{i:03}"))).expect("delete");
    }
    assert_eq!(t.tree.distinct_acls(), 1, "a list goes with its last node");

    // ACLs other than the open one count against the data quota, per node.
    let charge = crate::acl::charge(&ip);
    assert!(charge > 0);
    assert_eq!(t.tree.data_bytes(), empty + "/ip".len() as u64 + charge);
    let root = Caller {
        superuser: true,
        ..Caller::anonymous()
    };
    t.run(&root, set_acl("/ip", Acl::open_unsafe(), -1))
        .expect("reopen");
    assert_eq!(t.tree.data_bytes(), empty + "/ip".len() as u64);
    t.run(&root, set_acl("/ip", ip, -1)).expect("close");
    t.run(&root, delete("/ip")).expect("delete");
    assert_eq!(t.tree.data_bytes(), empty);
}

#[test]
fn transactions_carry_resolved_acls_through_their_codec() {
    let t = Tree::new();
    let bob = user("bob", "secret");
    let txn = t
        .tree
        .prepare_as(S, &bob, &create("/x", Some(Acl::creator_all())))
        .expect("resolves");
    let Txn::Create { acl, .. } = &txn else {
        panic!("{txn:?}");
    };
    assert_eq!(
        acl.as_slice(),
        &[Acl::new(Perms::ALL, "digest", digest_id("bob", "secret"))]
    );
    let payload = txn.to_payload(&Default::default());
    let (_, decoded) = Txn::decode(&payload).expect("decodes");
    assert_eq!(decoded, txn);
}
