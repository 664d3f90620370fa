//! Tree transactions: what the leader proposes and every replica applies.
//!
//! A transaction is *idempotent and fully resolved*: sequential names already
//! chosen, versions already checked and incremented, the time stamped by the
//! leader. Applying one needs nothing but the tree it follows.
//!
//! The payload handed to `zab-core` (and stored in the log) is a header and a
//! body. The zxid is not in it: the core assigns the zxid when it proposes, and
//! the log record carries it; `DataTree::apply` takes it as an argument.
//!
//! ```text
//! payload := version:u8 (=1) session:u64 cxid:i32 time_ms:i64 txn
//! txn     := tag:u8 fields              (big-endian, strings u32-length-prefixed)
//!   1 CreateSession  session:u64 timeout_ms:u32
//!   2 CloseSession   session:u64
//!   3 Create         path data ephemeral_owner:u64 kind parent_cversion:i32 acl
//!   4 Delete         path
//!   5 SetData        path data version:i32
//!   6 Check          path version:i32
//!   7 Multi          count:u32 txn*       (ops: Create, Delete, SetData, Check, Error)
//!   8 Error          code:i32
//!   9 Noop
//!  10 SetAcl         path acl aversion:i32
//! kind    := 0 persistent | 1 ephemeral | 2 container | 3 ttl ttl_ms:u64
//! acl     := count:u32 (perms:u8 scheme id)*
//! ```
//!
//! The encoding is canonical: every value has exactly one encoding, and
//! `decode` accepts only encodings `encode` produces (no trailing bytes, no
//! unknown tags), so re-encoding a decoded payload gives back the same bytes.
//! Checksums are the log's job.

use std::fmt;

use bytes::{BufMut, Bytes};

use super::wire::{put_acls, put_bytes, put_kind, Malformed, Reader};
use super::znode::NodeKind;
use crate::acl::AclRef;
use zab_proto::ErrorCode;

/// The payload format version written first in every payload.
pub const TXN_FORMAT_VERSION: u8 = 1;

/// Who asked for a transaction and when the leader stamped it. `session` and
/// `cxid` route the reply (they are 0 for the leader's own transactions, such
/// as session expiry and container removal); `time_ms` becomes ctime/mtime.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct TxnHeader {
    pub session: u64,
    pub cxid: i32,
    /// Leader's wall clock, ms since the Unix epoch.
    pub time_ms: i64,
}

/// One resolved change to the tree. See the module docs for the encoding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Txn {
    CreateSession {
        session: u64,
        timeout_ms: u32,
    },
    /// Removes the session and every ephemeral it owns, at this one zxid.
    CloseSession {
        session: u64,
    },
    Create {
        /// The final path (sequential suffix included).
        path: String,
        data: Bytes,
        /// The owning session for `NodeKind::Ephemeral`, else 0.
        ephemeral_owner: u64,
        kind: NodeKind,
        /// The parent's cversion after this create.
        parent_cversion: i32,
        /// The node's ACL, resolved (no `auth` entries left).
        acl: AclRef,
    },
    Delete {
        path: String,
    },
    SetData {
        path: String,
        data: Bytes,
        /// The node's version after this setData.
        version: i32,
    },
    /// A multi's version check that passed: changes nothing, holds the op's
    /// place in the per-op results. `version` is the node's current version.
    Check {
        path: String,
        version: i32,
    },
    /// All ops at one zxid. A failed multi holds only `Error`s: `Ok` for the
    /// ops before the failing one, its code, then `RuntimeInconsistency`.
    Multi(Vec<Txn>),
    /// Replaces a node's ACL; `aversion` is the node's aversion after it.
    SetAcl {
        path: String,
        acl: AclRef,
        aversion: i32,
    },
    /// A request that failed the leader's checks. It changes nothing but
    /// still takes a zxid, so its reply is ordered after the session's earlier
    /// writes (as in ZooKeeper).
    Error {
        code: ErrorCode,
    },
    Noop,
}

impl Txn {
    /// Appends the payload for `header` and this transaction to `dst`.
    pub fn encode(&self, header: &TxnHeader, dst: &mut impl BufMut) {
        dst.put_u8(TXN_FORMAT_VERSION);
        dst.put_u64(header.session);
        dst.put_i32(header.cxid);
        dst.put_i64(header.time_ms);
        self.encode_body(dst);
    }

    /// The payload as a fresh buffer.
    pub fn to_payload(&self, header: &TxnHeader) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(header, &mut out);
        out
    }

    /// Decodes a whole payload. Never panics, and allocates only what the
    /// bytes present justify.
    pub fn decode(payload: &[u8]) -> Result<(TxnHeader, Txn), TxnDecodeError> {
        let mut r = Reader::new(payload);
        let decoded = decode_payload(&mut r);
        decoded.map_err(|m| TxnDecodeError {
            offset: m.offset,
            reason: m.reason,
        })
    }

    /// Whether this transaction may be an op of a `Multi`.
    pub fn is_multi_op(&self) -> bool {
        matches!(
            self,
            Txn::Create { .. }
                | Txn::Delete { .. }
                | Txn::SetData { .. }
                | Txn::Check { .. }
                | Txn::Error { .. }
        )
    }

    fn encode_body(&self, dst: &mut impl BufMut) {
        match self {
            Txn::CreateSession {
                session,
                timeout_ms,
            } => {
                dst.put_u8(TAG_CREATE_SESSION);
                dst.put_u64(*session);
                dst.put_u32(*timeout_ms);
            }
            Txn::CloseSession { session } => {
                dst.put_u8(TAG_CLOSE_SESSION);
                dst.put_u64(*session);
            }
            Txn::Create {
                path,
                data,
                ephemeral_owner,
                kind,
                parent_cversion,
                acl,
            } => {
                dst.put_u8(TAG_CREATE);
                put_bytes(dst, path.as_bytes());
                put_bytes(dst, data);
                dst.put_u64(*ephemeral_owner);
                put_kind(dst, *kind);
                dst.put_i32(*parent_cversion);
                put_acls(dst, acl);
            }
            Txn::SetAcl {
                path,
                acl,
                aversion,
            } => {
                dst.put_u8(TAG_SET_ACL);
                put_bytes(dst, path.as_bytes());
                put_acls(dst, acl);
                dst.put_i32(*aversion);
            }
            Txn::Delete { path } => {
                dst.put_u8(TAG_DELETE);
                put_bytes(dst, path.as_bytes());
            }
            Txn::SetData {
                path,
                data,
                version,
            } => {
                dst.put_u8(TAG_SET_DATA);
                put_bytes(dst, path.as_bytes());
                put_bytes(dst, data);
                dst.put_i32(*version);
            }
            Txn::Check { path, version } => {
                dst.put_u8(TAG_CHECK);
                put_bytes(dst, path.as_bytes());
                dst.put_i32(*version);
            }
            Txn::Multi(ops) => {
                dst.put_u8(TAG_MULTI);
                dst.put_u32(u32::try_from(ops.len()).unwrap_or(u32::MAX));
                for op in ops {
                    op.encode_body(dst);
                }
            }
            Txn::Error { code } => {
                dst.put_u8(TAG_ERROR);
                dst.put_i32(code.code());
            }
            Txn::Noop => dst.put_u8(TAG_NOOP),
        }
    }
}

/// A payload that is not a valid transaction: `offset` is where the failed
/// check looked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxnDecodeError {
    pub offset: usize,
    pub reason: &'static str,
}

impl fmt::Display for TxnDecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "transaction payload is malformed at byte {}: {}",
            self.offset, self.reason
        )
    }
}

impl std::error::Error for TxnDecodeError {}

const TAG_CREATE_SESSION: u8 = 1;
const TAG_CLOSE_SESSION: u8 = 2;
const TAG_CREATE: u8 = 3;
const TAG_DELETE: u8 = 4;
const TAG_SET_DATA: u8 = 5;
const TAG_CHECK: u8 = 6;
const TAG_MULTI: u8 = 7;
const TAG_ERROR: u8 = 8;
const TAG_NOOP: u8 = 9;
const TAG_SET_ACL: u8 = 10;

fn decode_payload(r: &mut Reader<'_>) -> Result<(TxnHeader, Txn), Malformed> {
    if r.u8()? != TXN_FORMAT_VERSION {
        return Err(Malformed {
            offset: 0,
            reason: "unknown payload format version",
        });
    }
    let header = TxnHeader {
        session: r.u64()?,
        cxid: r.i32()?,
        time_ms: r.i64()?,
    };
    let txn = decode_body(r, false)?;
    r.finish()?;
    Ok((header, txn))
}

fn decode_body(r: &mut Reader<'_>, in_multi: bool) -> Result<Txn, Malformed> {
    let at = r.offset();
    let txn = match r.u8()? {
        TAG_CREATE_SESSION => Txn::CreateSession {
            session: r.u64()?,
            timeout_ms: r.u32()?,
        },
        TAG_CLOSE_SESSION => Txn::CloseSession { session: r.u64()? },
        TAG_CREATE => Txn::Create {
            path: r.string()?,
            data: r.bytes()?,
            ephemeral_owner: r.u64()?,
            kind: r.kind()?,
            parent_cversion: r.i32()?,
            acl: std::sync::Arc::new(r.acls()?),
        },
        TAG_SET_ACL if !in_multi => Txn::SetAcl {
            path: r.string()?,
            acl: std::sync::Arc::new(r.acls()?),
            aversion: r.i32()?,
        },
        TAG_DELETE => Txn::Delete { path: r.string()? },
        TAG_SET_DATA => Txn::SetData {
            path: r.string()?,
            data: r.bytes()?,
            version: r.i32()?,
        },
        TAG_CHECK => Txn::Check {
            path: r.string()?,
            version: r.i32()?,
        },
        TAG_MULTI if !in_multi => {
            // Every op is at least its one-byte tag.
            let count = r.count(1)?;
            let mut ops = Vec::with_capacity(count);
            for _ in 0..count {
                ops.push(decode_body(r, true)?);
            }
            Txn::Multi(ops)
        }
        TAG_ERROR => {
            let code_at = r.offset();
            let code = r.i32()?;
            let code = match ErrorCode::from_code(code) {
                ErrorCode::Unknown(_) => {
                    return Err(Malformed {
                        offset: code_at,
                        reason: "unknown error code",
                    })
                }
                known => known,
            };
            Txn::Error { code }
        }
        TAG_NOOP => Txn::Noop,
        _ => {
            return Err(Malformed {
                offset: at,
                reason: "unknown transaction tag",
            })
        }
    };
    if in_multi && !txn.is_multi_op() {
        return Err(Malformed {
            offset: at,
            reason: "transaction not allowed inside a multi",
        });
    }
    Ok(txn)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples() -> Vec<Txn> {
        let create = Txn::Create {
            path: "/app/lock-0000000042".into(),
            data: Bytes::from_static(b"\x00\x01data\xff"),
            ephemeral_owner: 0x1234_5678_9abc_def0,
            kind: NodeKind::Ephemeral,
            parent_cversion: 43,
            acl: crate::tree::znode::open_acl(),
        };
        vec![
            Txn::CreateSession {
                session: 0x0100_0000_0000_0001,
                timeout_ms: 30_000,
            },
            Txn::CloseSession { session: u64::MAX },
            create.clone(),
            Txn::Create {
                path: "/ttl".into(),
                data: Bytes::new(),
                ephemeral_owner: 0,
                kind: NodeKind::Ttl { ttl_ms: 1 << 39 },
                parent_cversion: -7,
                acl: std::sync::Arc::new(vec![
                    zab_proto::Acl::new(zab_proto::Perms::READ, "ip", "10.0.0.0/8"),
                    zab_proto::Acl::new(zab_proto::Perms::ALL, "digest", "bob:x"),
                ]),
            },
            Txn::Create {
                path: "/c".into(),
                data: Bytes::new(),
                ephemeral_owner: 0,
                kind: NodeKind::Container,
                parent_cversion: 1,
                acl: crate::tree::znode::open_acl(),
            },
            Txn::SetAcl {
                path: "/secret".into(),
                acl: std::sync::Arc::new(vec![zab_proto::Acl::new(
                    zab_proto::Perms::NONE,
                    "world",
                    "anyone",
                )]),
                aversion: 7,
            },
            Txn::Delete {
                path: "/a/b".into(),
            },
            Txn::SetData {
                path: "/ünï".into(),
                data: Bytes::from(vec![7u8; 300]),
                version: i32::MIN,
            },
            Txn::Check {
                path: "/a".into(),
                version: 3,
            },
            Txn::Multi(vec![]),
            Txn::Multi(vec![
                create,
                Txn::Delete { path: "/x".into() },
                Txn::SetData {
                    path: "/y".into(),
                    data: Bytes::from_static(b"v"),
                    version: 2,
                },
                Txn::Check {
                    path: "/y".into(),
                    version: 2,
                },
            ]),
            Txn::Multi(vec![
                Txn::Error {
                    code: ErrorCode::Ok,
                },
                Txn::Error {
                    code: ErrorCode::NoNode,
                },
                Txn::Error {
                    code: ErrorCode::RuntimeInconsistency,
                },
            ]),
            Txn::Error {
                code: ErrorCode::BadVersion,
            },
            Txn::Noop,
        ]
    }

    fn header() -> TxnHeader {
        TxnHeader {
            session: 0xdead_beef,
            cxid: -5,
            time_ms: 1_700_000_000_123,
        }
    }

    #[test]
    fn round_trip_every_variant() {
        for txn in samples() {
            let payload = txn.to_payload(&header());
            assert_eq!(
                Txn::decode(&payload),
                Ok((header(), txn.clone())),
                "{txn:?}"
            );
        }
    }

    #[test]
    fn exact_bytes_of_a_small_payload() {
        let payload = Txn::Delete { path: "/a".into() }.to_payload(&TxnHeader {
            session: 1,
            cxid: 2,
            time_ms: 3,
        });
        let expected: Vec<u8> = [
            &[1u8][..],                // format version
            &[0, 0, 0, 0, 0, 0, 0, 1], // session
            &[0, 0, 0, 2],             // cxid
            &[0, 0, 0, 0, 0, 0, 0, 3], // time_ms
            &[4],                      // tag: delete
            &[0, 0, 0, 2],             // path length
            b"/a",
        ]
        .concat();
        assert_eq!(payload, expected);
    }

    #[test]
    fn every_truncation_is_an_error() {
        for txn in samples() {
            let payload = txn.to_payload(&header());
            for cut in 0..payload.len() {
                assert!(
                    Txn::decode(&payload[..cut]).is_err(),
                    "{txn:?} cut at {cut}"
                );
            }
            let mut longer = payload.clone();
            longer.push(0);
            assert_eq!(
                Txn::decode(&longer),
                Err(TxnDecodeError {
                    offset: payload.len(),
                    reason: "trailing bytes"
                })
            );
        }
    }

    #[test]
    fn refuses_what_encode_never_writes() {
        let mut nested = Vec::new();
        Txn::Multi(vec![Txn::Multi(vec![])]).encode(&header(), &mut nested);
        assert_eq!(
            Txn::decode(&nested).map_err(|e| e.reason),
            Err("unknown transaction tag")
        );
        let mut session_in_multi = Vec::new();
        Txn::Multi(vec![Txn::CloseSession { session: 1 }]).encode(&header(), &mut session_in_multi);
        assert_eq!(
            Txn::decode(&session_in_multi).map_err(|e| e.reason),
            Err("transaction not allowed inside a multi")
        );
        let mut unknown_code = Txn::Error {
            code: ErrorCode::NoNode,
        }
        .to_payload(&header());
        let n = unknown_code.len();
        unknown_code[n - 4..].copy_from_slice(&(-126i32).to_be_bytes());
        assert_eq!(
            Txn::decode(&unknown_code).map_err(|e| e.reason),
            Err("unknown error code")
        );
        let mut version = Txn::Noop.to_payload(&header());
        version[0] = 2;
        assert_eq!(
            Txn::decode(&version).map_err(|e| e.reason),
            Err("unknown payload format version")
        );
        // A huge multi count with nothing behind it is refused before any
        // allocation.
        let mut huge = Txn::Multi(vec![]).to_payload(&header());
        let n = huge.len();
        huge[n - 4..].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(
            Txn::decode(&huge).map_err(|e| e.reason),
            Err("count larger than the rest of the buffer")
        );
    }

    #[test]
    fn random_bytes_and_mutations_never_panic_and_what_decodes_is_canonical() {
        let mut rng = zab_tests::sim::rng::Rng::new(0x7e57);
        let payloads: Vec<Vec<u8>> = samples().iter().map(|t| t.to_payload(&header())).collect();
        let mut decoded = 0;
        for i in 0..200_000 {
            let bytes: Vec<u8> = if i % 2 == 0 {
                // Pure noise, with a valid version byte half the time.
                let len = (rng.next_u64() % 64) as usize;
                let mut b: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
                if i % 4 == 0 && !b.is_empty() {
                    b[0] = TXN_FORMAT_VERSION;
                }
                b
            } else {
                // A valid payload with a few bytes changed.
                let mut b = payloads[(rng.next_u64() as usize) % payloads.len()].clone();
                for _ in 0..1 + rng.next_u64() % 3 {
                    let at = (rng.next_u64() as usize) % b.len();
                    b[at] = rng.next_u64() as u8;
                }
                b
            };
            if let Ok((h, txn)) = Txn::decode(&bytes) {
                decoded += 1;
                assert_eq!(txn.to_payload(&h), bytes, "not canonical: {txn:?}");
            }
        }
        assert!(
            decoded > 1000,
            "the mutations should often still decode ({decoded})"
        );
    }
}
