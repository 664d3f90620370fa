//! What one simulation run is (its configuration, drawn from the seed, and
//! the defects switched on) and what it reports.

use std::collections::BTreeMap;

use zab_client::machine::Defects as ClientDefects;
use zab_server::core::Defects;
use zab_tests::sim::rng::Rng;

use super::super::histories::Checked;

#[derive(Clone, Debug)]
pub struct SimConfig {
    pub seed: u64,
    pub servers: usize,
    pub clients: usize,
    /// Faults run this long, then everything heals for `calm_ms`.
    pub chaos_ms: u64,
    pub calm_ms: u64,
    /// Clients `0..real_clients` run zab-client's session machine; the
    /// rest are wire models.
    pub real_clients: usize,
    pub defects: Defects,
    pub client_defects: ClientDefects,
    /// Disk faults on (half the seeds): bit flips, lost or cut segments,
    /// damaged snapshots and metadata, wiped directories, full disks.
    pub disk_faults: bool,
    /// Storage's test-only defect: damage in what was reported durable is
    /// cut as if it were a torn tail.
    pub cut_corruption_as_torn_tail: bool,
    /// zab-core's test-only defect: a server that lost its disk votes.
    pub wiped_server_votes: bool,
}

/// Deliberately broken rules, for the simulator's self-test: the server
/// core's and the client machine's.
#[derive(Clone, Copy, Debug, Default)]
pub struct Broken {
    pub server: Defects,
    pub client: ClientDefects,
    pub cut_corruption_as_torn_tail: bool,
    pub wiped_server_votes: bool,
}

impl Broken {
    const CLIENT_NAMES: &[&str] = &["new_session_zxid_at_zero"];
    /// Storage's and zab-core's disk-fault defects.
    const DISK_NAMES: &[&str] = &["cut_corruption_as_torn_tail", "wiped_server_votes"];

    pub fn names() -> Vec<&'static str> {
        Defects::NAMES
            .iter()
            .chain(Broken::CLIENT_NAMES)
            .chain(Broken::DISK_NAMES)
            .copied()
            .collect()
    }

    pub fn named(name: &str) -> Option<Broken> {
        if let Some(server) = Defects::named(name) {
            return Some(Broken {
                server,
                ..Broken::default()
            });
        }
        let client = match name {
            "new_session_zxid_at_zero" => ClientDefects {
                new_session_zxid_at_zero: true,
            },
            "cut_corruption_as_torn_tail" => {
                return Some(Broken {
                    cut_corruption_as_torn_tail: true,
                    ..Broken::default()
                })
            }
            "wiped_server_votes" => {
                return Some(Broken {
                    wiped_server_votes: true,
                    ..Broken::default()
                })
            }
            _ => return None,
        };
        Some(Broken {
            client,
            ..Broken::default()
        })
    }
}

impl SimConfig {
    /// Everything from the seed: 3 or 5 servers, 6 real clients and 4 wire
    /// models, 120 s of faults and 25 s of calm, disk faults or not.
    pub fn from_seed(seed: u64, broken: Broken) -> SimConfig {
        let mut rng = Rng::new(seed ^ 0x5e55_10e5);
        SimConfig {
            seed,
            servers: if rng.chance(0.5) { 3 } else { 5 },
            clients: 10,
            real_clients: 6,
            chaos_ms: 120_000,
            calm_ms: 25_000,
            defects: broken.server,
            client_defects: broken.client,
            disk_faults: rng.chance(0.5),
            cut_corruption_as_torn_tail: broken.cut_corruption_as_torn_tail,
            wiped_server_votes: broken.wiped_server_votes,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub seed: u64,
    pub servers: usize,
    /// Whether this run had disk faults on.
    pub disk_faults: bool,
    pub sim_ms: u64,
    pub events: u64,
    pub sessions: u64,
    pub expiries: u64,
    pub acked_writes: u64,
    pub checked: Checked,
    pub faults: BTreeMap<&'static str, u64>,
    pub violation: Option<String>,
}
