//! The admin port:
//! - `GET /livez`: 200 while the process runs (a liveness probe);
//! - `GET /readyz` and `GET /health`: 200 when serving, 503 otherwise;
//! - `GET /status`: JSON (role, leader, epoch, zxids, counts);
//! - `GET /metrics`: Prometheus text;
//! - `GET /snapshot`: an online backup (`crate::backup`), taken without
//!   stopping the server; its zxid in the `X-Zab-Zxid` header;
//! - `GET /digest`: JSON with the applied zxid, the node count and the
//!   tree's digest, to compare servers, backups and restores.
//!
//! `/snapshot` and `/digest` answer only with `admin_backups = true` (403
//! otherwise): a backup holds every node whatever its ACL.
//!
//! A deliberately tiny HTTP/1.0 responder: one request per connection,
//! bounded request size and time, no keep-alive; over TLS when
//! `[admin_tls]` is configured. One backup or digest runs at a time (each
//! encodes or hashes the whole tree on a blocking thread); another asked
//! meanwhile gets 503. The port serves every node regardless of ACLs: keep
//! it private, or behind `[admin_tls]` with required client certificates.

use std::fmt::Write as _;

use std::time::Duration;

use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch, Semaphore};
use tokio_rustls::TlsAcceptor;
use zab_core::{Phase, Role};

use crate::server::Status;

const REQUEST_BYTES_MAX: usize = 8 * 1024;
/// How long a request (and a TLS handshake) may take to arrive.
const REQUEST_TIME_MAX: Duration = Duration::from_secs(2);

/// What the admin port reads from the rest of the server.
#[derive(Clone, Debug)]
pub struct Sources {
    pub status: watch::Receiver<Status>,
    pub id: u64,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Asks the driver for a frozen copy of the applied state.
    pub freezes: mpsc::Sender<crate::backup::FreezeRequest>,
    /// Whether `/snapshot` and `/digest` answer (`admin_backups`).
    pub backups: bool,
}

pub async fn serve((listener, tls): (TcpListener, Option<TlsAcceptor>), sources: Sources) {
    let heavy = Arc::new(Semaphore::new(1));
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let sources = sources.clone();
        let tls = tls.clone();
        let heavy = heavy.clone();
        tokio::spawn(async move {
            match tls {
                None => answer(stream, &sources, &heavy).await,
                Some(acceptor) => {
                    if let Ok(Ok(stream)) =
                        tokio::time::timeout(REQUEST_TIME_MAX, acceptor.accept(stream)).await
                    {
                        answer(stream, &sources, &heavy).await;
                    }
                }
            }
        });
    }
}

/// How long sending a backup may take before the connection is dropped
/// (a reader that stops reading must not hold the copy for ever).
const BACKUP_SEND_TIME_MAX: Duration = Duration::from_secs(600);

/// An answer to `/snapshot` or `/digest`: status, content type, extra
/// header lines, and the body in parts (a backup's file header, then its
/// state, so the state is never copied).
type HeavyAnswer = (&'static str, &'static str, String, Vec<Vec<u8>>);

/// A backup or a digest of the applied state, or why not.
async fn frozen_answer(path: &str, sources: &Sources) -> HeavyAnswer {
    let text = |code, why: &str| {
        (
            code,
            "text/plain",
            String::new(),
            vec![format!("{why}\n").into_bytes()],
        )
    };
    if !sources.backups {
        return text(
            "403 Forbidden",
            "backups and digests are off on this server: set admin_backups = true",
        );
    }
    let stopping = || text("503 Service Unavailable", "the server is stopping");
    let (tx, rx) = oneshot::channel();
    if sources.freezes.send(tx).await.is_err() {
        return stopping();
    }
    let Ok((zxid, state)) = rx.await else {
        return stopping();
    };
    let backup = path == "/snapshot";
    let work = tokio::task::spawn_blocking(move || {
        if backup {
            let content = state.encode();
            drop(state);
            vec![
                crate::storage::snapshot_file::header(0, zxid, &content),
                content,
            ]
        } else {
            vec![format!(
                "{{\"zxid\":\"{zxid}\",\"znodes\":{},\"digest\":\"{}\"}}\n",
                state.node_count(),
                state.digest()
            )
            .into_bytes()]
        }
    });
    match work.await {
        Ok(parts) if backup => (
            "200 OK",
            "application/octet-stream",
            format!("X-Zab-Zxid: {zxid}\r\n"),
            parts,
        ),
        Ok(parts) => ("200 OK", "application/json", String::new(), parts),
        Err(_) => text("500 Internal Server Error", "the backup failed"),
    }
}

/// Answers `/snapshot` or `/digest`, one at a time: the permit is held until
/// the answer is sent, so no more than one copy of the state is ever held
/// for the admin port.
async fn heavy_answer<S: AsyncWrite + Unpin>(
    stream: &mut S,
    path: &str,
    sources: &Sources,
    heavy: &Semaphore,
) {
    let Ok(_permit) = heavy.try_acquire() else {
        let body = "a backup or digest is already running; try again when it is done\n";
        let head = format!(
            "HTTP/1.0 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = stream.write_all(head.as_bytes()).await;
        let _ = stream.shutdown().await;
        return;
    };
    let (code, kind, extra, parts) = frozen_answer(path, sources).await;
    let len: usize = parts.iter().map(Vec::len).sum();
    let head = format!(
        "HTTP/1.0 {code}\r\nContent-Type: {kind}\r\nContent-Length: {len}\r\n{extra}Connection: close\r\n\r\n"
    );
    let send = async {
        stream.write_all(head.as_bytes()).await?;
        for part in &parts {
            stream.write_all(part).await?;
        }
        stream.shutdown().await
    };
    let _ = tokio::time::timeout(BACKUP_SEND_TIME_MAX, send).await;
}

/// Reads one request from `stream` and answers it.
async fn answer<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    sources: &Sources,
    heavy: &Semaphore,
) {
    let status = &sources.status.borrow().clone();
    let (id, metrics) = (sources.id, &sources.metrics);
    let mut buf = vec![0u8; REQUEST_BYTES_MAX];
    let mut len = 0;
    while len < buf.len() {
        match tokio::time::timeout(REQUEST_TIME_MAX, stream.read(&mut buf[len..])).await {
            Ok(Ok(0)) | Err(_) | Ok(Err(_)) => break,
            Ok(Ok(n)) => len += n,
        }
        if buf[..len].windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    let request = String::from_utf8_lossy(&buf[..len]);
    let path = request.split_whitespace().nth(1).unwrap_or("/");
    if path == "/snapshot" || path == "/digest" {
        return heavy_answer(&mut stream, path, sources, heavy).await;
    }
    let (code, kind, mut body) = respond(path, status, id);
    if path == "/metrics" {
        metrics.fsync.render(
            "zab_fsync_seconds",
            "Group-commit batch: apply and fdatasync.",
            &mut body,
        );
        metrics.commit.render(
            "zab_commit_seconds",
            "Client write: arrival to reply.",
            &mut body,
        );
    }
    let head = format!(
        "HTTP/1.0 {code}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(body.as_bytes()).await;
    let _ = stream.shutdown().await;
}

fn serving(role: &Role) -> bool {
    matches!(
        role,
        Role::Leading {
            phase: Phase::Broadcast,
            ..
        } | Role::Following {
            phase: Phase::Broadcast,
            ..
        } | Role::Observing {
            phase: Phase::Broadcast,
            ..
        }
    )
}

fn role_parts(role: &Role, id: u64) -> (&'static str, Option<u64>, u32) {
    match role {
        Role::Looking => ("looking", None, 0),
        Role::Leading { epoch, .. } => ("leading", Some(id), epoch.0),
        Role::Following { leader, term, .. } => ("following", Some(leader.0), term.0),
        Role::Observing { leader, term, .. } => ("observing", Some(leader.0), term.0),
    }
}

pub fn respond(path: &str, s: &Status, id: u64) -> (&'static str, &'static str, String) {
    let (role, leader, epoch) = role_parts(&s.role, id);
    match path {
        "/livez" => ("200 OK", "text/plain", "alive\n".into()),
        "/health" | "/readyz" => {
            if serving(&s.role) {
                ("200 OK", "text/plain", "ok\n".into())
            } else {
                ("503 Service Unavailable", "text/plain", format!("{role}\n"))
            }
        }
        "/status" => {
            let leader = leader.map_or("null".to_string(), |l| l.to_string());
            let body = format!(
                "{{\"id\":{id},\"version\":\"{}\",\"role\":\"{role}\",\"serving\":{},\"leader\":{leader},\"epoch\":{epoch},\"applied_zxid\":\"{}\",\"last_logged_zxid\":\"{}\",\"znodes\":{},\"sessions\":{},\"connections\":{}}}\n",
                env!("CARGO_PKG_VERSION"),
                serving(&s.role),
                s.applied,
                s.last_logged,
                s.znodes,
                s.sessions,
                s.connections
            );
            ("200 OK", "application/json", body)
        }
        "/metrics" => {
            let mut m = String::new();
            let roles = ["looking", "following", "leading", "observing"];
            let _ = writeln!(m, "# TYPE zab_role gauge");
            for r in roles {
                let _ = writeln!(m, "zab_role{{role=\"{r}\"}} {}", u8::from(r == role));
            }
            let gauges = [
                ("zab_epoch", u64::from(epoch)),
                ("zab_applied_zxid", s.applied.0),
                ("zab_last_logged_zxid", s.last_logged.0),
                ("zab_znodes", s.znodes as u64),
                ("zab_watches", s.watches as u64),
                ("zab_watch_resume_changes", s.watch_resume_changes as u64),
                ("zab_watch_resume_floor_zxid", s.watch_resume_floor.0),
                ("zab_log_window_bytes", s.window_bytes as u64),
                ("zab_sessions", s.sessions as u64),
                ("zab_client_connections", s.connections as u64),
            ];
            for (name, v) in gauges {
                let _ = writeln!(m, "# TYPE {name} gauge\n{name} {v}");
            }
            let counters = [
                ("zab_elections_total", s.stats.elections),
                ("zab_established_total", s.stats.established),
                ("zab_proposals_total", s.stats.proposals),
                ("zab_syncs_answered_total", s.stats.syncs_answered),
                ("zab_epoch_bumps_total", s.stats.epoch_bumps),
                ("zab_messages_dropped_total", s.stats.dropped),
                ("zab_protocol_errors_total", s.stats.protocol_errors),
            ];
            for (name, v) in counters {
                let _ = writeln!(m, "# TYPE {name} counter\n{name} {v}");
            }
            ("200 OK", "text/plain; version=0.0.4", m)
        }
        _ => (
            "404 Not Found",
            "text/plain",
            "try /livez, /readyz, /health, /status, /metrics, /digest or /snapshot\n".into(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zab_core::{Epoch, PeerId, Zxid};

    fn status(role: Role) -> Status {
        Status {
            role,
            applied: Zxid(0x1_0000_0005),
            last_logged: Zxid(0x1_0000_0007),
            znodes: 4,
            watches: 5,
            watch_resume_changes: 7,
            watch_resume_floor: Zxid(0x1_0000_0001),
            window_bytes: 6,
            sessions: 2,
            connections: 3,
            stats: zab_core::Stats::default(),
        }
    }

    #[test]
    fn health_follows_the_role_and_status_names_the_leader() {
        assert_eq!(
            respond("/health", &status(Role::Looking), 1).0,
            "503 Service Unavailable"
        );
        let following = Role::Following {
            leader: PeerId(3),
            term: Epoch(1),
            phase: Phase::Broadcast,
        };
        assert_eq!(respond("/health", &status(following), 1).0, "200 OK");
        assert_eq!(respond("/readyz", &status(following), 1).0, "200 OK");
        assert_eq!(
            respond("/readyz", &status(Role::Looking), 1).0,
            "503 Service Unavailable"
        );
        assert_eq!(respond("/livez", &status(Role::Looking), 1).0, "200 OK");
        let body = respond("/status", &status(following), 1).2;
        assert!(
            body.contains("\"leader\":3") && body.contains("\"applied_zxid\":\"0x100000005\""),
            "{body}"
        );
        let metrics = respond("/metrics", &status(following), 1).2;
        assert!(metrics.contains("zab_role{role=\"following\"} 1\n"));
        assert!(metrics.contains("zab_sessions 2\n"));
        assert_eq!(respond("/nope", &status(following), 1).0, "404 Not Found");
    }
}
