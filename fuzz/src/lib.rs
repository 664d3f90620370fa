//! Fuzz target bodies (issue #15): every decoder of the client protocol
//! (`zab-proto`), the peer codec and snapshot stream (`zab-core`), and the
//! server's log command codec, tree transactions, tree and replica
//! snapshots, on-disk log, snapshot, epoch and standing files, whole data
//! directory recovery, and the peer handshake (`zab-server`).
//!
//! Each body takes arbitrary bytes and must not panic. Where the code claims
//! a canonical encoding (zab-proto, zab-core's codec, tree transactions,
//! tree snapshots, log records, snapshot files, version-3 commands), whatever
//! decodes must re-encode to the same bytes; elsewhere a decoded value must
//! survive an encode/decode round trip. Some targets check more invariants,
//! named in their docs.
//!
//! `fuzz_targets/*.rs` hand libFuzzer's input to these functions;
//! `tests/replay.rs` feeds them every committed corpus file on the stable
//! toolchain (the CI smoke).

pub mod dir;
pub mod memfs;
#[cfg(feature = "seeds")]
pub mod seeds;

mod core_targets;
pub mod handshake;
mod proto_targets;
mod server_targets;
mod storage_targets;

pub use core_targets::{core_message, core_stream};
pub use handshake::server_peer_handshake;
pub use proto_targets::{proto_connect, proto_frame_stream, proto_request, proto_server_frame};
pub use server_targets::{
    server_command, server_replica_apply, server_replica_restore, server_tree_snapshot, server_txn,
};
pub use storage_targets::{
    server_log_record, server_meta_files, server_snapshot_file, server_store_open,
    server_txn_log_open,
};

/// A target body: any bytes in, a panic on a finding.
pub type Target = fn(&[u8]);

/// Every target, by the name of its `fuzz_targets/` file and corpus folder.
pub const TARGETS: &[(&str, Target)] = &[
    ("proto_frame_stream", proto_frame_stream),
    ("proto_request", proto_request),
    ("proto_server_frame", proto_server_frame),
    ("proto_connect", proto_connect),
    ("core_message", core_message),
    ("core_stream", core_stream),
    ("server_command", server_command),
    ("server_replica_apply", server_replica_apply),
    ("server_txn", server_txn),
    ("server_tree_snapshot", server_tree_snapshot),
    ("server_replica_restore", server_replica_restore),
    ("server_log_record", server_log_record),
    ("server_txn_log_open", server_txn_log_open),
    ("server_store_open", server_store_open),
    ("server_snapshot_file", server_snapshot_file),
    ("server_meta_files", server_meta_files),
    ("server_peer_handshake", server_peer_handshake),
];

/// Takes parameters off the front of a fuzz input; past its end every read
/// is zero (or empty), so every input is usable.
#[derive(Debug)]
pub(crate) struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Input { data }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub(crate) fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    pub(crate) fn u16(&mut self) -> u16 {
        let hi = self.u8();
        let lo = self.u8();
        u16::from_be_bytes([hi, lo])
    }

    pub(crate) fn u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        for x in &mut b {
            *x = self.u8();
        }
        u64::from_be_bytes(b)
    }

    /// Up to `n` bytes.
    pub(crate) fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (a, b) = self.data.split_at(n.min(self.data.len()));
        self.data = b;
        a
    }

    pub(crate) fn rest(self) -> &'a [u8] {
        self.data
    }
}

/// Splits `data` into records of a u16 length and that many bytes (the
/// last may be short).
pub(crate) fn records(data: &[u8]) -> Vec<&[u8]> {
    let mut input = Input::new(data);
    let mut out = Vec::new();
    while !input.is_empty() {
        let len = usize::from(input.u16());
        out.push(input.bytes(len));
    }
    out
}

/// Joins records as [`records`] splits them (for seeds).
pub fn join_records<T: AsRef<[u8]>>(records: &[T]) -> Vec<u8> {
    let mut out = Vec::new();
    for r in records {
        let r = r.as_ref();
        let r = &r[..r.len().min(usize::from(u16::MAX))];
        out.extend_from_slice(&(r.len() as u16).to_be_bytes());
        out.extend_from_slice(r);
    }
    out
}
