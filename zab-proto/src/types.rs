//! The values requests and replies are built from: [`Stat`], the u8 enums
//! ([`CreateMode`], [`WatchEventKind`], [`AddWatchMode`], [`WatcherKind`]),
//! [`ErrorCode`] and the request id [`Xid`].

use std::fmt;

use crate::error::DecodeError;
use crate::wire::{wire_enum, Reader, Sink};

/// The `version` argument of delete, set_data and check that matches any
/// version.
pub const ANY_VERSION: i32 = -1;

/// The xid of every watch notification (server to client).
pub const XID_NOTIFICATION: i32 = -1;

/// The xid of a ping and of its reply.
pub const XID_PING: i32 = -2;

/// A request id chosen by the client: `0..=i32::MAX`.
///
/// Negative xids are reserved for frames that answer no request
/// ([`XID_NOTIFICATION`], [`XID_PING`]), so a value of this type is never
/// one of them. The server only echoes the xid; replies come back in request
/// order, and the client uses the xid to check that pairing.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Xid(i32);

impl Xid {
    /// The first xid a client uses on a new connection.
    pub const FIRST: Xid = Xid(1);

    /// `value` as an xid, or `None` if it is negative (reserved).
    pub const fn new(value: i32) -> Option<Xid> {
        if value >= 0 {
            Some(Xid(value))
        } else {
            None
        }
    }

    /// The wire value, never negative.
    pub const fn get(self) -> i32 {
        self.0
    }

    /// The xid after this one; `i32::MAX` wraps to 0.
    #[must_use]
    pub const fn next(self) -> Xid {
        if self.0 == i32::MAX {
            Xid(0)
        } else {
            Xid(self.0 + 1)
        }
    }
}

impl fmt::Display for Xid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A node's metadata: ZooKeeper's 11 fields, in wire order.
///
/// Zxids are in hex when printed by the server and the CLI. Times are the
/// leader's wall clock in milliseconds since the Unix epoch, stamped into the
/// transaction so every replica agrees.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct Stat {
    /// Zxid of the transaction that created the node.
    pub czxid: u64,
    /// Zxid of the last set_data (equal to `czxid` until the first one).
    pub mzxid: u64,
    /// Creation time, ms since the Unix epoch.
    pub ctime: i64,
    /// Time of the last set_data, ms since the Unix epoch.
    pub mtime: i64,
    /// Number of set_data calls on the node.
    pub version: i32,
    /// Number of child creations plus deletions.
    pub cversion: i32,
    /// Number of setAcl calls on the node.
    pub aversion: i32,
    /// Session id owning an ephemeral node; 0 for every other kind.
    pub ephemeral_owner: u64,
    /// Length of the node's data in bytes.
    pub data_length: i32,
    /// Number of children.
    pub num_children: i32,
    /// Zxid of the last child creation or deletion (including an ephemeral
    /// child removed when its session closed).
    pub pzxid: u64,
}

impl Stat {
    /// Size of an encoded `Stat`.
    pub const ENCODED_BYTES: usize = 68;

    pub(crate) fn write(&self, s: &mut impl Sink) {
        s.u64(self.czxid);
        s.u64(self.mzxid);
        s.i64(self.ctime);
        s.i64(self.mtime);
        s.i32(self.version);
        s.i32(self.cversion);
        s.i32(self.aversion);
        s.u64(self.ephemeral_owner);
        s.i32(self.data_length);
        s.i32(self.num_children);
        s.u64(self.pzxid);
    }

    /// Struct-literal fields are evaluated in source order, the wire order.
    pub(crate) fn read(r: &mut Reader) -> Result<Stat, DecodeError> {
        Ok(Stat {
            czxid: r.u64("stat.czxid")?,
            mzxid: r.u64("stat.mzxid")?,
            ctime: r.i64("stat.ctime")?,
            mtime: r.i64("stat.mtime")?,
            version: r.i32("stat.version")?,
            cversion: r.i32("stat.cversion")?,
            aversion: r.i32("stat.aversion")?,
            ephemeral_owner: r.u64("stat.ephemeral_owner")?,
            data_length: r.i32("stat.data_length")?,
            num_children: r.i32("stat.num_children")?,
            pzxid: r.u64("stat.pzxid")?,
        })
    }
}

wire_enum! {
    /// The kind of node a create makes (ZooKeeper's numbering).
    pub enum CreateMode {
        /// Stays until deleted.
        Persistent = 0,
        /// Deleted when the creating session ends; cannot have children.
        Ephemeral = 1,
        /// Persistent, with the parent's 10-digit sequence number appended.
        PersistentSequential = 2,
        /// Ephemeral, with the parent's 10-digit sequence number appended.
        EphemeralSequential = 3,
        /// Removed by the server some time after its last child is deleted.
        Container = 4,
        /// Removed when unmodified for `ttl_ms` and childless.
        PersistentWithTtl = 5,
        /// `PersistentWithTtl` with a sequence number appended.
        PersistentSequentialWithTtl = 6,
    }
}

impl CreateMode {
    /// Whether the node is owned by the creating session.
    pub const fn is_ephemeral(self) -> bool {
        matches!(
            self,
            CreateMode::Ephemeral | CreateMode::EphemeralSequential
        )
    }

    /// Whether the server appends a sequence number to the name.
    pub const fn is_sequential(self) -> bool {
        matches!(
            self,
            CreateMode::PersistentSequential
                | CreateMode::EphemeralSequential
                | CreateMode::PersistentSequentialWithTtl
        )
    }

    /// Whether the create's `ttl_ms` applies (and must be positive).
    pub const fn has_ttl(self) -> bool {
        matches!(
            self,
            CreateMode::PersistentWithTtl | CreateMode::PersistentSequentialWithTtl
        )
    }
}

wire_enum! {
    /// What a watch notification reports. Values 1–4 are ZooKeeper's; 5–7
    /// (ZooKeeper's watch-removed kinds, which a client library synthesizes
    /// locally after a successful remove_watches) are reserved.
    pub enum WatchEventKind {
        /// The node was created.
        NodeCreated = 1,
        /// The node was deleted.
        NodeDeleted = 2,
        /// The node's data was set.
        NodeDataChanged = 3,
        /// A child of the node was created or deleted.
        NodeChildrenChanged = 4,
        /// The server cannot guarantee that no event was missed for the
        /// watches at this path (after a reconnect whose history it no longer
        /// has, or when the session's event queue overflowed): re-read.
        ContinuityLost = 8,
    }
}

wire_enum! {
    /// The kind of watch add_watch arms (ZooKeeper's numbering).
    pub enum AddWatchMode {
        /// Every event on the path itself, until removed.
        Persistent = 0,
        /// Created, deleted and data-changed events on the path and every
        /// node below it, until removed.
        PersistentRecursive = 1,
    }
}

wire_enum! {
    /// Which watches remove_watches removes (ZooKeeper's numbering).
    pub enum WatcherKind {
        /// One-shot watches armed by get_children.
        Children = 1,
        /// One-shot watches armed by get_data and exists.
        Data = 2,
        /// Every watch at the path, of any kind.
        Any = 3,
        /// The persistent watch added with [`AddWatchMode::Persistent`].
        Persistent = 4,
        /// The persistent watch added with [`AddWatchMode::PersistentRecursive`].
        PersistentRecursive = 5,
    }
}

/// Declares [`ErrorCode`] from one table of name, wire value and meaning.
macro_rules! error_codes {
    ( $( $name:ident = $code:literal, $meaning:literal; )+ ) => {
        /// Why a request failed (the `err` field of a reply, an op's entry in
        /// a multi reply, or a refused handshake). ZooKeeper's numbering
        /// where it has the code; ours from -900.
        ///
        /// A code this version does not know decodes to [`ErrorCode::Unknown`]
        /// instead of failing, so a newer server can add codes. `Unknown`
        /// never holds a value that has a named variant.
        #[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
        pub enum ErrorCode {
            $( #[doc = $meaning] $name, )+
            /// A code this version does not know: a failure of unknown cause.
            Unknown(i32),
        }

        impl ErrorCode {
            /// Every named code, in table order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$name,)+];

            /// The wire value.
            pub const fn code(self) -> i32 {
                match self {
                    $( ErrorCode::$name => $code, )+
                    ErrorCode::Unknown(code) => code,
                }
            }

            /// The code for a wire value; unknown values are kept as
            /// [`ErrorCode::Unknown`].
            pub const fn from_code(code: i32) -> ErrorCode {
                match code {
                    $( $code => ErrorCode::$name, )+
                    other => ErrorCode::Unknown(other),
                }
            }

            /// What the code means, in one sentence fragment.
            pub const fn meaning(self) -> &'static str {
                match self {
                    $( ErrorCode::$name => $meaning, )+
                    ErrorCode::Unknown(_) => "a code this version does not know",
                }
            }
        }
    };
}

error_codes! {
    Ok = 0, "success";
    SystemError = -1, "internal server error; a write's outcome is unknown";
    RuntimeInconsistency = -2, "in a multi reply: not applied because an earlier op failed";
    DataInconsistency = -3, "the server found its data inconsistent; the request was not applied";
    ConnectionLoss = -4, "client side only, never sent: the connection was lost before the reply; a write's outcome is unknown";
    MarshallingError = -5, "not sent: a malformed frame closes the connection instead";
    Unimplemented = -6, "the server does not implement this operation or option";
    OperationTimeout = -7, "client side only, never sent: the client stopped waiting for the reply";
    BadArguments = -8, "an argument is invalid (path, mode, TTL, protocol version, frame limit)";
    NewConfigNoQuorum = -13, "reserved for dynamic reconfiguration";
    ReconfigInProgress = -14, "reserved for dynamic reconfiguration";
    ApiError = -100, "ZooKeeper's base of API errors; not sent";
    NoNode = -101, "the node (for create: its parent) does not exist";
    NoAuth = -102, "the caller's identities lack the permission the node's ACL requires";
    BadVersion = -103, "the expected version is not the node's current version";
    NoChildrenForEphemerals = -108, "ephemeral nodes cannot have children";
    NodeExists = -110, "the node already exists";
    NotEmpty = -111, "the node has children";
    SessionExpired = -112, "the session expired or was closed; start a new session";
    InvalidCallback = -113, "ZooKeeper client side; not sent";
    InvalidAcl = -114, "the ACL is empty, names an unknown scheme or a malformed id, or uses `auth` without an identity";
    AuthFailed = -115, "handshake: the session password is wrong; AddAuth: an unknown scheme or malformed credentials";
    SessionMoved = -118, "the session is attached to another connection now";
    NotReadOnly = -119, "reserved: there is no read-only mode";
    EphemeralOnLocalSession = -120, "reserved: there are no local sessions";
    NoWatcher = -121, "remove_watches: no matching watch is registered";
    RequestTimeout = -122, "the server did not complete the request in time; a write's outcome is unknown";
    QuotaExceeded = -125, "a quota is exhausted (the server's data quota); nothing was applied";
    Throttled = -127, "the server is overloaded and shed the request; retry with backoff";
    ServerBehind = -900, "handshake: the server has not applied the client's last seen zxid yet";
    FrameTooLarge = -901, "the reply would exceed the negotiated frame limit; nothing was applied";
    TooManyRequests = -902, "the session has too many outstanding requests; this one was not processed";
    TooManyWatches = -903, "the session's watch limit is reached; nothing was read or armed";
    NotLeaderNoQuorum = -904, "no quorum: writes, syncs and handshakes cannot be served now";
}

impl ErrorCode {
    /// Whether this is [`ErrorCode::Ok`].
    pub const fn is_ok(self) -> bool {
        matches!(self, ErrorCode::Ok)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorCode::Unknown(code) => write!(f, "unknown error code {code}"),
            known => write!(f, "{known:?} ({}): {}", known.code(), known.meaning()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Sizer;
    use bytes::{Bytes, BytesMut};

    #[test]
    fn error_codes_round_trip_and_are_distinct() {
        let mut seen = std::collections::HashSet::new();
        for &code in ErrorCode::ALL {
            assert!(seen.insert(code.code()), "{code:?} reuses a value");
            assert_eq!(ErrorCode::from_code(code.code()), code);
            assert!(!matches!(code, ErrorCode::Unknown(_)));
        }
        assert_eq!(ErrorCode::from_code(-101), ErrorCode::NoNode);
        assert_eq!(ErrorCode::from_code(-9999), ErrorCode::Unknown(-9999));
        assert_eq!(ErrorCode::Unknown(7).code(), 7);
        assert!(ErrorCode::Ok.is_ok() && !ErrorCode::NoNode.is_ok());
    }

    #[test]
    fn error_codes_the_tree_answers_are_zookeepers() {
        let expected = [
            (ErrorCode::Ok, 0),
            (ErrorCode::RuntimeInconsistency, -2),
            (ErrorCode::BadArguments, -8),
            (ErrorCode::NoNode, -101),
            (ErrorCode::BadVersion, -103),
            (ErrorCode::NoChildrenForEphemerals, -108),
            (ErrorCode::NodeExists, -110),
            (ErrorCode::NotEmpty, -111),
            (ErrorCode::SessionExpired, -112),
            (ErrorCode::SessionMoved, -118),
            (ErrorCode::QuotaExceeded, -125),
            (ErrorCode::Throttled, -127),
        ];
        for (code, number) in expected {
            assert_eq!(code.code(), number, "{code:?}");
        }
    }

    #[test]
    fn error_codes_display_name_value_and_meaning() {
        assert_eq!(
            ErrorCode::NodeExists.to_string(),
            "NodeExists (-110): the node already exists"
        );
        assert_eq!(
            ErrorCode::Unknown(-77).to_string(),
            "unknown error code -77"
        );
    }

    #[test]
    fn u8_enums_round_trip_and_reject_other_values() {
        fn check<T: Copy + PartialEq + fmt::Debug>(
            all: &[T],
            to: fn(T) -> u8,
            from: fn(u8) -> Option<T>,
        ) {
            for v in 0..=u8::MAX {
                match from(v) {
                    Some(t) => assert_eq!(to(t), v),
                    None => assert!(all.iter().all(|&t| to(t) != v)),
                }
            }
            for &t in all {
                assert_eq!(from(to(t)), Some(t));
            }
        }
        check(CreateMode::ALL, CreateMode::to_u8, CreateMode::from_u8);
        check(
            WatchEventKind::ALL,
            WatchEventKind::to_u8,
            WatchEventKind::from_u8,
        );
        check(
            AddWatchMode::ALL,
            AddWatchMode::to_u8,
            AddWatchMode::from_u8,
        );
        check(WatcherKind::ALL, WatcherKind::to_u8, WatcherKind::from_u8);
        assert_eq!(CreateMode::ALL.len(), 7);
    }

    #[test]
    fn create_mode_predicates() {
        use CreateMode::*;
        let ephemeral: Vec<_> = CreateMode::ALL
            .iter()
            .filter(|m| m.is_ephemeral())
            .collect();
        assert_eq!(ephemeral, [&Ephemeral, &EphemeralSequential]);
        let ttl: Vec<_> = CreateMode::ALL.iter().filter(|m| m.has_ttl()).collect();
        assert_eq!(ttl, [&PersistentWithTtl, &PersistentSequentialWithTtl]);
        assert!(PersistentSequential.is_sequential() && !Container.is_sequential());
    }

    #[test]
    fn xid_rejects_reserved_values_and_wraps() {
        assert_eq!(Xid::new(XID_PING), None);
        assert_eq!(Xid::new(XID_NOTIFICATION), None);
        assert_eq!(Xid::new(0).map(Xid::get), Some(0));
        assert_eq!(Xid::FIRST.next().get(), 2);
        assert_eq!(Xid::new(i32::MAX).map(Xid::next), Xid::new(0));
    }

    #[test]
    fn stat_is_68_bytes_in_field_order() {
        let stat = Stat {
            czxid: 1,
            mzxid: 2,
            ctime: 3,
            mtime: 4,
            version: 5,
            cversion: 6,
            aversion: 7,
            ephemeral_owner: 8,
            data_length: 9,
            num_children: 10,
            pzxid: 11,
        };
        let mut sizer = Sizer(0);
        stat.write(&mut sizer);
        assert_eq!(sizer.0, Stat::ENCODED_BYTES);

        let mut buf = BytesMut::new();
        stat.write(&mut crate::wire::Writer(&mut buf));
        let mut expected = Vec::new();
        for (value, width) in [
            (1u64, 8),
            (2, 8),
            (3, 8),
            (4, 8),
            (5, 4),
            (6, 4),
            (7, 4),
            (8, 8),
            (9, 4),
            (10, 4),
            (11, 8),
        ] {
            expected.extend_from_slice(&value.to_be_bytes()[8 - width..]);
        }
        assert_eq!(&buf[..], &expected[..]);

        let mut r = Reader::new(Bytes::from(expected), "test");
        assert_eq!(Stat::read(&mut r), Ok(stat));
        assert_eq!(r.finish(), Ok(()));
    }
}
