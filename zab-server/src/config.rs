//! Server configuration, in layers: a TOML file (`--config FILE`), then
//! environment variables `ZAB_SERVER_<FIELD>` (`ZAB_SERVER_ID=2`), then the
//! flags `--id` and `--data-dir` ([`Config::load`], on `figment`). So one
//! file can serve every server of an ensemble, each told its id by its
//! environment. A bad configuration is refused with a message that names
//! the field and where it came from.

use std::collections::BTreeSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// One member of the ensemble. Its addresses are `host:port`, where the
/// host is a name or an address (IPv6 in brackets): the addresses other
/// servers and clients use to reach it. Names are resolved when dialled.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Member {
    pub id: u64,
    /// Address for quorum traffic.
    pub peer: String,
    /// Address clients connect to.
    pub client: String,
    /// Observers replicate and serve reads but never vote.
    #[serde(default)]
    pub observer: bool,
    /// Admin HTTP port (/health, /status, /metrics); none if absent.
    #[serde(default)]
    pub admin: Option<String>,
    /// Where ZooKeeper's clients connect (ZooKeeper's own client protocol,
    /// 3.5 to 3.9); off if absent.
    #[serde(default)]
    pub zookeeper: Option<String>,
}

/// Where the environment's settings come from: `ZAB_SERVER_<FIELD>`.
pub const ENV_PREFIX: &str = "ZAB_SERVER_";

/// Settings given as flags, the last layer.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Overrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
}

/// Serialized for the admin port's `/conf`, with `super_digest` redacted.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// This server's id (must be one of `servers`).
    pub id: u64,
    /// Guards against wiring two ensembles together by mistake.
    #[serde(default = "default_cluster_id")]
    pub cluster_id: u64,
    pub data_dir: PathBuf,
    #[serde(default = "default_tick_ms")]
    pub tick_ms: u64,
    #[serde(default = "default_init_limit")]
    pub init_limit: u32,
    #[serde(default = "default_sync_limit")]
    pub sync_limit: u32,
    /// Log records between snapshots, at least (unless
    /// `snapshot_every_bytes` comes first).
    #[serde(default = "default_snapshot_every")]
    pub snapshot_every_txns: u64,
    /// A snapshot is also taken once this many bytes of transactions were
    /// applied since the last one, whatever their count or the tree's
    /// size: bounds the log a restart replays.
    #[serde(default = "default_snapshot_every_bytes")]
    pub snapshot_every_bytes: usize,
    /// A snapshot also waits until the log since the last one is this
    /// percentage of the snapshot's estimated size (a large tree is not
    /// rewritten many times over for the log it replaces); 0 turns it off.
    #[serde(default = "default_snapshot_log_percent")]
    pub snapshot_log_percent: u64,
    /// A snapshot is written at most this many MiB per second (0, the
    /// default: as fast as the disk takes it, in synced 1 MiB steps), so
    /// its writes do not crowd out the log's syncs that every write waits
    /// on, on a disk where the small steps alone do not.
    #[serde(default = "default_snapshot_write_mib_per_sec")]
    pub snapshot_write_mib_per_sec: u64,
    /// Recent transactions kept in memory for DIFFs to lagging followers
    /// (one further behind gets a snapshot), by count and by payload bytes.
    #[serde(default = "default_diff_window_txns")]
    pub diff_window_txns: usize,
    #[serde(default = "default_diff_window_bytes")]
    pub diff_window_bytes: usize,
    /// Largest frame a client may send (bytes).
    #[serde(default = "default_frame_max")]
    pub client_frame_bytes_max: u32,
    /// Watches one session may hold; arming past it is `TooManyWatches`.
    #[serde(default = "default_watches_per_session")]
    pub max_watches_per_session: usize,
    /// Watches this server's sessions may hold in all.
    #[serde(default = "default_watches_per_server")]
    pub max_watches_per_server: usize,
    /// Recent changes kept so that a watcher that reconnects is sent every
    /// event it missed (resumable watches); a gap older than this gets
    /// `ContinuityLost`. 0 turns resuming off.
    #[serde(default = "default_watch_resume_changes")]
    pub watch_resume_changes: usize,
    /// Bytes of paths and data the tree may hold before this server refuses
    /// writes that would add more (`QuotaExceeded`); deletes and shrinking
    /// writes are always taken.
    #[serde(default = "default_data_quota")]
    pub max_data_bytes: u64,
    /// The shortest session timeout granted; shorter requests get this.
    #[serde(default = "default_min_session_timeout_ms")]
    pub min_session_timeout_ms: u32,
    /// The longest session timeout granted; longer requests get this.
    #[serde(default = "default_max_session_timeout_ms")]
    pub max_session_timeout_ms: u32,
    /// A connection that has not completed its handshake within this is
    /// closed.
    #[serde(default = "default_handshake_timeout_ms")]
    pub handshake_timeout_ms: u32,
    /// A file holding the ensemble's shared peer secret (at least 16 bytes;
    /// surrounding whitespace is ignored). Every server of an ensemble must
    /// have the same one: with it, a server proves its id to every peer and
    /// only authenticated peers reach the protocol. A relative path is taken
    /// relative to the configuration file.
    #[serde(default)]
    pub peer_secret_file: Option<PathBuf>,
    /// Runs an ensemble without peer authentication: anyone who can reach a
    /// peer port can then act as any server. For a trusted, isolated network
    /// only; an ensemble of more than one server needs either this or
    /// `peer_secret_file`.
    #[serde(default)]
    pub insecure_no_peer_auth: bool,
    /// The super user, as the digest id `user:base64(sha1(user:password))`
    /// (ZooKeeper's `superDigest`; `zabctl digest user:password` prints
    /// one): a connection that proves it with AddAuth `digest` passes every
    /// ACL check. None by default.
    #[serde(default, serialize_with = "redacted")]
    pub super_digest: Option<String>,
    /// A super user by TLS client certificate: its subject as the `x509`
    /// scheme names it (e.g. `CN=admin, O=example`). None by default.
    #[serde(default)]
    pub super_x509: Option<String>,
    /// TLS on the client port (every connection); none by default.
    #[serde(default)]
    pub client_tls: Option<crate::tls::PortTls>,
    /// TLS on the admin port (with `client_ca_file` and
    /// `require_client_cert`, only holders of a certificate from that CA
    /// may ask); none by default.
    #[serde(default)]
    pub admin_tls: Option<crate::tls::PortTls>,
    /// Whether the admin port serves `/snapshot` (an online backup: every
    /// node whatever its ACL, and the sessions' passwords) and `/digest`.
    /// Off by default: turn it on where the admin port is private or
    /// behind `[admin_tls]` with required client certificates.
    #[serde(default)]
    pub admin_backups: bool,
    /// Where this server listens for peers, when that is not the address
    /// it is known by (`0.0.0.0:2888` behind NAT or in a container); by
    /// default its member entry's `peer` address.
    #[serde(default)]
    pub listen_peer: Option<SocketAddr>,
    /// Where this server listens for clients; by default its `client`.
    #[serde(default)]
    pub listen_client: Option<SocketAddr>,
    /// Where this server serves the admin port; by default its `admin`.
    #[serde(default)]
    pub listen_admin: Option<SocketAddr>,
    /// Where to listen for ZooKeeper's clients, if not this server's
    /// `zookeeper` address.
    #[serde(default)]
    pub listen_zookeeper: Option<SocketAddr>,
    /// The four-letter words the ZooKeeper port answers (ZooKeeper's
    /// `4lw.commands.whitelist`): any of ruok, isro, srvr, stat, mntr and
    /// conf. `conf` is off by default: it shows the configuration.
    #[serde(default = "default_four_letter_words")]
    pub zookeeper_four_letter_words: Vec<String>,
    /// A peer link that carries nothing for this long is dropped and
    /// dialled again. Every server heartbeats its links at least every
    /// 100 ms whatever its own settings ([`Config::liveness`]), so only a
    /// dead link (or a server stalled this long) falls silent this long.
    /// By default the larger of 2000 ms and `init_limit` ticks, so that an
    /// operator who raises `init_limit` for large snapshot transfers does
    /// not have links dropped during them.
    #[serde(default)]
    pub peer_silence_timeout_ms: Option<u32>,
    pub servers: Vec<Member>,
}

/// The shortest peer silence timeout allowed: four heartbeats.
const PEER_SILENCE_MS_MIN: u32 = 400;
/// The longest gap between a server's heartbeats, whatever its tick: the
/// receiver's silence timeout is its own setting, so the sender must not
/// depend on it.
const HEARTBEAT_MS_MAX: u64 = 100;

/// Whether `addr` is `host:port`: a port number, and a host that is a
/// name, an IPv4 address or a bracketed IPv6 address.
fn check_host_port(what: &str, addr: &str) -> Result<(), ConfigError> {
    let bad = |why: &str| {
        Err(ConfigError(format!(
            "{what} {addr:?} is not host:port ({why})"
        )))
    };
    let Some((host, port)) = addr.rsplit_once(':') else {
        return bad("no port");
    };
    if port.parse::<u16>().map_or(true, |p| p == 0) {
        return bad("the port is not a number from 1 to 65535");
    }
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return match inner.parse::<std::net::Ipv6Addr>() {
            Ok(_) => Ok(()),
            Err(_) => bad("not an IPv6 address in the brackets"),
        };
    }
    let name_ok = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if name_ok {
        Ok(())
    } else {
        bad("the host is neither a name nor an address")
    }
}

fn default_cluster_id() -> u64 {
    1
}
fn default_tick_ms() -> u64 {
    100
}
fn default_init_limit() -> u32 {
    20
}
fn default_sync_limit() -> u32 {
    5
}
/// The largest client frame a server may allow: a write is forwarded and
/// proposed inside one peer frame, with its command header around it.
pub const CLIENT_FRAME_BYTES_CEILING: u32 = zab_core::codec::FRAME_BYTES_MAX as u32 - 64 * 1024;

fn default_data_quota() -> u64 {
    crate::core::DATA_BYTES_QUOTA_DEFAULT
}

fn default_watches_per_session() -> usize {
    crate::watches::WatchLimits::default().per_session
}

fn default_watches_per_server() -> usize {
    crate::watches::WatchLimits::default().per_server
}

fn default_watch_resume_changes() -> usize {
    crate::watches::WatchLimits::default().resume_changes
}

fn default_snapshot_every_bytes() -> usize {
    crate::core::SNAPSHOT_EVERY_BYTES_DEFAULT
}

fn default_snapshot_write_mib_per_sec() -> u64 {
    crate::snapshotter::SNAPSHOT_WRITE_MIB_PER_SEC_DEFAULT
}

fn default_snapshot_log_percent() -> u64 {
    crate::core::SNAPSHOT_LOG_PERCENT_DEFAULT
}

fn default_diff_window_txns() -> usize {
    crate::core::DIFF_WINDOW_TXNS_DEFAULT
}

fn default_diff_window_bytes() -> usize {
    crate::core::DIFF_WINDOW_BYTES_DEFAULT
}

fn default_snapshot_every() -> u64 {
    100_000
}
fn default_frame_max() -> u32 {
    1024 * 1024
}
fn default_min_session_timeout_ms() -> u32 {
    crate::core::SessionLimits::default().min_timeout_ms
}
fn default_max_session_timeout_ms() -> u32 {
    crate::core::SessionLimits::default().max_timeout_ms
}
fn default_handshake_timeout_ms() -> u32 {
    crate::core::SessionLimits::default().handshake_timeout_ms
}

fn default_four_letter_words() -> Vec<String> {
    ["ruok", "isro", "srvr", "stat", "mntr"]
        .map(String::from)
        .to_vec()
}

/// A secret shown only as whether it is set.
fn redacted<S: serde::Serializer>(secret: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    match secret {
        Some(_) => s.serialize_str("<redacted>"),
        None => s.serialize_none(),
    }
}

/// Why a configuration was refused.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid configuration: {}", self.0)
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let cfg: Config = toml::from_str(text).map_err(|e| ConfigError(e.to_string()))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// The configuration from its layers: the file at `path`, then the
    /// process's `ZAB_SERVER_*` variables, then `flags`. Relative paths in
    /// the file are taken relative to its directory. Validated once, after
    /// every layer, so a flag can complete what the file alone leaves
    /// invalid (one shared file, each server's id from its flag or
    /// environment).
    pub fn load(path: &Path, flags: &Overrides) -> Result<Config, ConfigError> {
        use figment::providers::{Env, Format, Serialized, Toml};
        if let Err(e) = std::fs::metadata(path) {
            return Err(ConfigError(format!("cannot read {}: {e}", path.display())));
        }
        let mut cfg: Config = figment::Figment::new()
            .merge(Toml::file_exact(path))
            // Not settings: the config file's own path, the log format (a
            // flag of the command line), and a test hook.
            .merge(Env::prefixed(ENV_PREFIX).ignore(&["config", "defect", "log_format"]))
            .merge(Serialized::globals(flags))
            .extract()
            .map_err(|e| ConfigError(e.to_string()))?;
        cfg.resolve_paths(path.parent().unwrap_or(Path::new(".")));
        cfg.validate()?;
        Ok(cfg)
    }

    /// How peer links tell a quiet peer from a gone one.
    pub fn liveness(&self) -> crate::peer::Liveness {
        let silence = Duration::from_millis(self.peer_silence_ms());
        crate::peer::Liveness {
            heartbeat: Duration::from_millis(self.tick_ms.min(HEARTBEAT_MS_MAX)).min(silence / 4),
            silence,
            connect: silence.min(Duration::from_secs(1)),
        }
    }

    /// The peer silence timeout in force (see `peer_silence_timeout_ms`).
    pub fn peer_silence_ms(&self) -> u64 {
        match self.peer_silence_timeout_ms {
            Some(ms) => u64::from(ms),
            None => (u64::from(self.init_limit) * self.tick_ms).max(2_000),
        }
    }

    /// Where this server listens for peers, clients and admin requests:
    /// the `listen_*` address, or else the address it is known by.
    pub fn listen_addresses(&self) -> (String, String, Option<String>) {
        let me = self.me();
        let or = |listen: Option<SocketAddr>, known: &str| {
            listen.map_or_else(|| known.to_owned(), |a| a.to_string())
        };
        let admin = match (self.listen_admin, &me.admin) {
            (Some(a), _) => Some(a.to_string()),
            (None, known) => known.clone(),
        };
        (
            or(self.listen_peer, &me.peer),
            or(self.listen_client, &me.client),
            admin,
        )
    }

    /// Where to listen for ZooKeeper's clients, if anywhere.
    pub fn zookeeper_listen_address(&self) -> Option<String> {
        match (self.listen_zookeeper, &self.me().zookeeper) {
            (Some(a), _) => Some(a.to_string()),
            (None, known) => known.clone(),
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError(m));
        if self.servers.is_empty() {
            return bad("`servers` lists no members".into());
        }
        let known = crate::listener::four_letter::WORDS;
        if let Some(w) = self
            .zookeeper_four_letter_words
            .iter()
            .find(|w| !known.contains(&w.as_str()))
        {
            return bad(format!(
                "zookeeper_four_letter_words: {w:?} is not one of {}",
                known.join(", ")
            ));
        }
        let mut ids = BTreeSet::new();
        let mut addrs = BTreeSet::new();
        for m in &self.servers {
            if m.id == 0 {
                return bad("server ids start at 1".into());
            }
            if !ids.insert(m.id) {
                return bad(format!("server id {} appears twice", m.id));
            }
            let named = [("peer", Some(&m.peer)), ("client", Some(&m.client))];
            let admin = [("admin", m.admin.as_ref())];
            for (what, a) in named.into_iter().chain(admin) {
                let Some(a) = a else { continue };
                check_host_port(&format!("server {}'s {what} address", m.id), a)?;
                if !addrs.insert(a.to_ascii_lowercase()) {
                    return bad(format!("address {a} is used twice"));
                }
            }
        }
        if !ids.contains(&self.id) {
            return bad(format!("id {} is not one of the `servers`", self.id));
        }
        if self.servers.iter().all(|m| m.observer) {
            return bad("every server is an observer; at least one must vote".into());
        }
        if !(10..=60_000).contains(&self.tick_ms) {
            return bad(format!("tick_ms {} is outside 10..=60000", self.tick_ms));
        }
        if self.sync_limit == 0 || self.init_limit < self.sync_limit {
            return bad("need 0 < sync_limit <= init_limit".into());
        }
        if self.client_frame_bytes_max < 4096 {
            return bad("client_frame_bytes_max must be at least 4096".into());
        }
        if self.client_frame_bytes_max > CLIENT_FRAME_BYTES_CEILING {
            return bad(format!(
                "client_frame_bytes_max {} is above {CLIENT_FRAME_BYTES_CEILING}: a write \
                 that large could not be replicated (a peer frame carries at most {} bytes)",
                self.client_frame_bytes_max,
                zab_core::codec::FRAME_BYTES_MAX
            ));
        }
        let ticks2 = self.tick_ms.saturating_mul(2);
        if u64::from(self.min_session_timeout_ms) < ticks2 {
            return bad(format!(
                "min_session_timeout_ms {} is below 2 × tick_ms ({ticks2}): sessions \
                 could expire between two of the leader's checks",
                self.min_session_timeout_ms
            ));
        }
        if self.max_session_timeout_ms < self.min_session_timeout_ms {
            return bad(format!(
                "max_session_timeout_ms {} is below min_session_timeout_ms {}",
                self.max_session_timeout_ms, self.min_session_timeout_ms
            ));
        }
        if self.servers.len() > 1 && self.peer_secret_file.is_none() && !self.insecure_no_peer_auth
        {
            return bad(
                "an ensemble needs `peer_secret_file` (a shared secret that authenticates \
                 servers to each other; without one anyone who can reach a peer port can act \
                 as any server), or `insecure_no_peer_auth = true` on a trusted network"
                    .into(),
            );
        }
        if self.peer_secret_file.is_some() && self.insecure_no_peer_auth {
            return bad(
                "`peer_secret_file` and `insecure_no_peer_auth` contradict each other".into(),
            );
        }
        if let Some(ms) = self
            .peer_silence_timeout_ms
            .filter(|ms| *ms < PEER_SILENCE_MS_MIN)
        {
            return bad(format!(
                "peer_silence_timeout_ms {ms} is below {PEER_SILENCE_MS_MIN}: links would \
                 drop on ordinary network jitter"
            ));
        }
        if self.listen_admin.is_some() && self.me().admin.is_none() {
            return bad(format!(
                "listen_admin is set but server {} has no `admin` address",
                self.id
            ));
        }
        if u64::from(self.handshake_timeout_ms) < ticks2 {
            return bad(format!(
                "handshake_timeout_ms {} is below 2 × tick_ms ({ticks2})",
                self.handshake_timeout_ms
            ));
        }
        if let Some(digest) = &self.super_digest {
            let probe = [zab_proto::Acl::new(zab_proto::Perms::ALL, "digest", digest)];
            if crate::acl::resolve(&probe, &crate::acl::Caller::anonymous()).is_err() {
                return bad(
                    "super_digest must be a digest id `user:base64(sha1(user:password))` \
                     (28 base64 characters after the colon); `zabctl digest user:password` \
                     prints one"
                        .into(),
                );
            }
        }
        Ok(())
    }

    /// The identities that pass every ACL check.
    pub fn superusers(&self) -> Vec<crate::acl::Identity> {
        let digest = self.super_digest.iter().map(|id| ("digest", id));
        let x509 = self.super_x509.iter().map(|id| ("x509", id));
        digest
            .chain(x509)
            .map(|(scheme, id)| crate::acl::Identity {
                scheme: scheme.into(),
                id: id.clone(),
            })
            .collect()
    }

    /// Reads the peer secret, if one is configured.
    pub fn peer_secret(&self) -> Result<Option<crate::peer::PeerSecret>, ConfigError> {
        let Some(path) = &self.peer_secret_file else {
            return Ok(None);
        };
        let bytes = std::fs::read(path).map_err(|e| {
            ConfigError(format!(
                "cannot read peer_secret_file {}: {e}",
                path.display()
            ))
        })?;
        let trimmed = bytes.trim_ascii();
        crate::peer::PeerSecret::new(trimmed)
            .map(Some)
            .ok_or_else(|| {
                ConfigError(format!(
                    "peer_secret_file {} holds {} bytes; a peer secret needs at least {}",
                    path.display(),
                    trimmed.len(),
                    crate::peer::SECRET_BYTES_MIN
                ))
            })
    }

    /// Resolves relative file paths against `dir` (the configuration
    /// file's directory).
    pub fn resolve_paths(&mut self, dir: &std::path::Path) {
        if let Some(p) = &self.peer_secret_file {
            if p.is_relative() {
                self.peer_secret_file = Some(dir.join(p));
            }
        }
        for tls in [&mut self.client_tls, &mut self.admin_tls]
            .into_iter()
            .flatten()
        {
            tls.resolve_paths(dir);
        }
    }

    /// The session bounds the server core enforces.
    pub fn session_limits(&self) -> crate::core::SessionLimits {
        crate::core::SessionLimits {
            min_timeout_ms: self.min_session_timeout_ms,
            max_timeout_ms: self.max_session_timeout_ms,
            handshake_timeout_ms: self.handshake_timeout_ms,
            frame_bytes_max: self.client_frame_bytes_max,
            watches: crate::watches::WatchLimits {
                per_session: self.max_watches_per_session,
                per_server: self.max_watches_per_server,
                resume_changes: self.watch_resume_changes,
            },
            data_bytes_max: self.max_data_bytes,
        }
    }

    pub fn me(&self) -> &Member {
        self.servers
            .iter()
            .find(|m| m.id == self.id)
            .expect("validated: id is a member")
    }

    pub fn member(&self, id: u64) -> Option<&Member> {
        self.servers.iter().find(|m| m.id == id)
    }

    pub fn membership(&self) -> zab_core::Membership {
        zab_core::Membership::new(
            self.servers
                .iter()
                .filter(|m| !m.observer)
                .map(|m| zab_core::PeerId(m.id)),
            self.servers
                .iter()
                .filter(|m| m.observer)
                .map(|m| zab_core::PeerId(m.id)),
        )
    }

    /// The core's configuration derived from this one.
    pub fn core(&self) -> zab_core::Config {
        let mut c = zab_core::Config::new(zab_core::PeerId(self.id), self.membership());
        c.init_limit_ticks = self.init_limit;
        c.sync_limit_ticks = self.sync_limit;
        #[cfg(feature = "defects")]
        if let Ok(name) = std::env::var("ZAB_DEFECT") {
            tracing::warn!(defect = %name, "running with a deliberately broken protocol rule");
            match name.as_str() {
                "sync_without_quorum" => c.defects.sync_without_quorum = true,
                "commit_without_quorum" => c.defects.commit_without_quorum = true,
                "ack_newleader_before_durable" => c.defects.ack_newleader_before_durable = true,
                "vote_with_applied_zxid" => c.defects.vote_with_applied_zxid = true,
                "skip_trunc" => c.defects.skip_trunc = true,
                "wiped_server_votes" => c.defects.wiped_server_votes = true,
                other => tracing::warn!(defect = other, "unknown defect ignored"),
            }
        }
        c
    }
}

#[cfg(test)]
mod tests;
