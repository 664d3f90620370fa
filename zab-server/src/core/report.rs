//! What the admin port's inspection endpoints show: this server's client
//! connections (ZooKeeper's `cons`), a summary of its watches (`wchs`) and
//! the sessions with their ephemeral nodes (`dump`). Built by the core
//! between two inputs, so each is one consistent picture; every list is
//! bounded, since the driver builds it and a server may hold a million of
//! anything.

use serde::Serialize;

use super::frontend::{Frontend, Phase};
use crate::tree::DataTree;

/// Entries any one list in a report holds at most.
pub const REPORT_ENTRIES_MAX: usize = 100_000;

/// Which report the admin port asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReportKind {
    /// Client connections, at most `limit`.
    Connections {
        limit: usize,
    },
    Watches {
        limit: usize,
    },
    /// Sessions and their ephemeral nodes, at most `limit` of each.
    Sessions {
        limit: usize,
    },
}

#[derive(Clone, Debug, Serialize)]
#[serde(untagged)]
pub enum Report {
    Connections(Connections),
    Watches(WatchSummary),
    Sessions(Sessions),
}

#[derive(Clone, Debug, Serialize)]
pub struct Connections {
    pub total: usize,
    /// Fewer were listed than there are.
    pub truncated: bool,
    pub connections: Vec<Connection>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Connection {
    pub conn: u64,
    pub ip: Option<String>,
    /// Hex, as in logs (`0x…`); none before the handshake completes.
    pub session: Option<String>,
    /// `handshaking`, `open` or `moved`.
    pub state: &'static str,
    pub timeout_ms: Option<u32>,
    /// Replies and requests queued on it, in order.
    pub queued: usize,
    /// Since the client was last heard on it.
    pub idle_ms: u64,
    pub watches: usize,
    /// What it proved (`digest:user`, `x509:CN=…`).
    pub identities: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct WatchSummary {
    /// Watches armed, all sessions and kinds.
    pub total: usize,
    /// Sessions holding at least one.
    pub sessions: usize,
    /// Distinct watched paths by kind.
    pub paths: WatchPaths,
    /// The sessions holding the most watches, most first.
    pub top_sessions: Vec<SessionWatches>,
}

#[derive(Clone, Copy, Debug, Serialize)]
pub struct WatchPaths {
    pub data: usize,
    pub exists: usize,
    pub child: usize,
    pub persistent: usize,
    pub recursive: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct SessionWatches {
    pub session: String,
    pub watches: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct Sessions {
    pub total: usize,
    pub truncated: bool,
    pub sessions: Vec<SessionEntry>,
}

#[derive(Clone, Debug, Serialize)]
pub struct SessionEntry {
    pub session: String,
    pub timeout_ms: u32,
    /// Attached to a connection on this server.
    pub connected_here: bool,
    pub ephemeral_count: usize,
    /// Its ephemeral nodes, sorted; fewer than `ephemeral_count` once the
    /// report has listed its limit of paths in all.
    pub ephemerals: Vec<String>,
}

fn hex(session: u64) -> String {
    format!("{session:#x}")
}

pub(super) fn build(kind: ReportKind, frontend: &Frontend, tree: &DataTree, now_us: u64) -> Report {
    match kind {
        ReportKind::Connections { limit } => {
            Report::Connections(connections(frontend, limit.min(REPORT_ENTRIES_MAX), now_us))
        }
        ReportKind::Watches { limit } => {
            Report::Watches(watches(frontend, limit.min(REPORT_ENTRIES_MAX)))
        }
        ReportKind::Sessions { limit } => {
            Report::Sessions(sessions(frontend, tree, limit.min(REPORT_ENTRIES_MAX)))
        }
    }
}

fn connections(frontend: &Frontend, limit: usize, now_us: u64) -> Connections {
    let listed = frontend.conns.iter().take(limit).map(|(&conn, c)| {
        let (state, timeout_ms) = match c.phase {
            Phase::Handshaking => ("handshaking", None),
            Phase::Open { timeout_ms } => ("open", Some(timeout_ms)),
            Phase::Moved => ("moved", None),
        };
        Connection {
            conn,
            ip: c.caller.ip.map(|ip| ip.to_string()),
            session: c.session.map(hex),
            state,
            timeout_ms,
            queued: c.queue.len(),
            idle_ms: now_us.saturating_sub(c.heard_us) / 1000,
            watches: c.session.map_or(0, |s| frontend.watches.count(s)),
            identities: c
                .caller
                .ids
                .iter()
                .map(|i| format!("{}:{}", i.scheme, i.id))
                .collect(),
        }
    });
    let connections: Vec<Connection> = listed.collect();
    Connections {
        total: frontend.conns.len(),
        truncated: connections.len() < frontend.conns.len(),
        connections,
    }
}

fn watches(frontend: &Frontend, limit: usize) -> WatchSummary {
    let w = &frontend.watches;
    let ([data, exists, child, persistent, recursive], top) = w.census(limit);
    WatchSummary {
        total: w.total(),
        sessions: w.watchers(),
        paths: WatchPaths {
            data,
            exists,
            child,
            persistent,
            recursive,
        },
        top_sessions: top
            .into_iter()
            .map(|(session, watches)| SessionWatches {
                session: hex(session),
                watches,
            })
            .collect(),
    }
}

fn sessions(frontend: &Frontend, tree: &DataTree, limit: usize) -> Sessions {
    // The `limit` lowest session ids in linear time, then only those
    // sorted; ephemeral paths listed within one budget for the report.
    let mut ids: Vec<u64> = tree.sessions.keys().copied().collect();
    let total = ids.len();
    if limit < ids.len() {
        ids.select_nth_unstable(limit);
        ids.truncate(limit);
    }
    ids.sort_unstable();
    let mut budget = limit;
    let sessions: Vec<SessionEntry> = ids
        .into_iter()
        .map(|session| {
            let owned = tree.ephemerals.get(&session);
            let listed: Vec<String> = owned.into_iter().flatten().take(budget).cloned().collect();
            budget -= listed.len();
            SessionEntry {
                session: hex(session),
                timeout_ms: tree.sessions.get(&session).copied().unwrap_or_default(),
                connected_here: frontend.by_session.contains_key(&session),
                ephemeral_count: owned.map_or(0, |paths| paths.len()),
                ephemerals: listed,
            }
        })
        .collect();
    Sessions {
        total,
        truncated: sessions.len() < total,
        sessions,
    }
}

/// A small report for the admin port's unit tests.
#[cfg(test)]
pub fn report_example() -> WatchSummary {
    WatchSummary {
        total: 7,
        sessions: 2,
        paths: WatchPaths {
            data: 3,
            exists: 1,
            child: 1,
            persistent: 0,
            recursive: 1,
        },
        top_sessions: vec![SessionWatches {
            session: hex(5),
            watches: 6,
        }],
    }
}
