//! `zab-server inspect DIR`: an offline, read-only dump of a data directory
//! that verifies every checksum (what zkTxnLogToolkit and zkSnapShotToolkit do
//! for ZooKeeper). It never modifies anything, unlike recovery, which cuts torn
//! tails and removes superseded files.

use std::io::Write;
use std::path::Path;

use crate::storage::epoch_file::{self, ACCEPTED, CURRENT};
use crate::storage::fs::Fs;
use crate::storage::{snapshot_file, txn_log, RealFs};

/// Prints the report to `out`; returns whether everything verified.
pub fn inspect(dir: &Path, records: bool, out: &mut dyn Write) -> std::io::Result<bool> {
    let fs = RealFs;
    let mut ok = true;
    writeln!(out, "data directory {}", dir.display())?;
    for name in [ACCEPTED, CURRENT] {
        match epoch_file::read(&fs, dir, name) {
            Ok(Some(e)) => writeln!(out, "  {name:<14} {} ({e})", e.0)?,
            Ok(None) => writeln!(out, "  {name:<14} missing")?,
            Err(e) => {
                ok = false;
                writeln!(out, "  {name:<14} DAMAGED: {e}")?;
            }
        }
    }
    let mut names = match fs.list(dir) {
        Ok(n) => n,
        Err(e) => {
            writeln!(out, "cannot list {}: {e}", dir.display())?;
            return Ok(false);
        }
    };
    names.sort();
    for name in &names {
        if let Some((generation, zxid)) = snapshot_file::parse_name(name) {
            let meta = snapshot_file::SnapshotMeta {
                generation,
                zxid,
                path: dir.join(name),
            };
            match snapshot_file::read(&fs, &meta) {
                Ok(s) => writeln!(
                    out,
                    "  snapshot {name}: generation {generation}, zxid {zxid}, {} content bytes, checksum ok",
                    s.content.len()
                )?,
                Err(e) => {
                    ok = false;
                    writeln!(out, "  snapshot {name}: DAMAGED: {e}")?;
                }
            }
        }
    }
    for name in &names {
        if txn_log::parse_segment_name(name).is_none() {
            continue;
        }
        let path = dir.join(name);
        let data = match fs.read(&path) {
            Ok(d) => d,
            Err(e) => {
                ok = false;
                writeln!(out, "  segment {name}: unreadable: {e}")?;
                continue;
            }
        };
        let (txns, stop) = txn_log::inspect_segment(&data);
        let span = match (txns.first(), txns.last()) {
            (Some(a), Some(b)) => format!("{} ..= {}", a.zxid, b.zxid),
            _ => "empty".to_string(),
        };
        writeln!(out, "  segment {name}: {} records, {span}", txns.len())?;
        if records {
            for t in &txns {
                let head: String = t
                    .payload
                    .iter()
                    .take(24)
                    .map(|b| format!("{b:02x}"))
                    .collect();
                writeln!(out, "    {} len {:>6} {head}", t.zxid, t.payload.len())?;
            }
        }
        if let Some((offset, reason)) = stop {
            ok = false;
            writeln!(
                out,
                "    DAMAGED at byte offset {offset}: {reason} (a torn tail of the newest segment is cut at startup; anywhere else the server refuses to start)"
            )?;
        }
    }
    writeln!(
        out,
        "{}",
        if ok {
            "all checksums verified"
        } else {
            "DAMAGE FOUND"
        }
    )?;
    Ok(ok)
}
