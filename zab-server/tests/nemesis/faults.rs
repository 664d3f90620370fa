//! The nemesis: one fault at a time, each healed before the next.

use std::time::{Duration, Instant};

use zab_tests::proxy::{Direction, Proxy, Rule};

use super::common::Ensemble;
use zab_tests::sim::rng::Rng;

/// Faults, one at a time, until `deadline`. `clients` are, per server, the
/// proxies on its client paths (workers connect through them), for client
/// partitions (traffic dropped, connections left open) and client pauses
/// (traffic held, then delivered, as for a SIGSTOPped process).
pub async fn nemesis(
    e: &mut Ensemble,
    clients: &[Vec<Proxy>],
    seed: u64,
    deadline: Instant,
) -> Vec<String> {
    let mut rng = Rng::new(seed ^ 0xdead_beef);
    let n = e.size();
    let mut done = Vec::new();
    while Instant::now() + Duration::from_secs(3) < deadline {
        tokio::time::sleep(Duration::from_millis(300 + rng.below(1200))).await;
        let victim = rng.below(n as u64) as usize;
        let hold = Duration::from_millis(300 + rng.below(2200));
        let leader = e.leader();
        let fault = rng.below(13);
        match fault {
            0 => {
                e.kill(victim);
                tokio::time::sleep(hold).await;
                e.spawn(victim);
            }
            1 => {
                e.signal(victim, "STOP");
                tokio::time::sleep(hold).await;
                e.signal(victim, "CONT");
            }
            2 => {
                if let Some(l) = leader {
                    e.kill(l);
                    tokio::time::sleep(hold).await;
                    e.spawn(l);
                }
            }
            3 => e.isolate(victim),
            4 => e.isolate(leader.unwrap_or(victim)),
            5 => {
                // A minority (at least one server) against the rest.
                let mut ids: Vec<usize> = (0..n).collect();
                for i in (1..n).rev() {
                    ids.swap(i, rng.below(i as u64 + 1) as usize);
                }
                let minority = 1 + rng.below((n as u64 - 1) / 2) as usize;
                let (a, b) = ids.split_at(minority);
                e.partition(&[a.to_vec(), b.to_vec()]);
            }
            6 => {
                // The leader can hear but not speak.
                let l = leader.unwrap_or(victim);
                for j in (0..n).filter(|&j| j != l) {
                    e.cut(l, j);
                }
            }
            7 => {
                // The leader can speak but not hear.
                let l = leader.unwrap_or(victim);
                for j in (0..n).filter(|&j| j != l) {
                    e.cut(j, l);
                }
            }
            8 => {
                for i in 0..n {
                    for j in (0..n).filter(|&j| j != i) {
                        if rng.below(2) == 0 {
                            e.delay(i, j, Duration::from_millis(5 + rng.below(150)));
                        }
                    }
                }
            }
            10 => {
                // The leader paused long enough for the others to elect a
                // successor, and woken while its clients still wait on it.
                if let Some(l) = leader {
                    e.signal(l, "STOP");
                    tokio::time::sleep(Duration::from_millis(800 + rng.below(500))).await;
                    e.signal(l, "CONT");
                }
            }
            11 | 12 => {
                // The clients of one server cut off (bytes dropped, sockets
                // open) or paused (bytes held for the hold, then delivered).
                let rule = if fault == 11 {
                    Rule::DROP
                } else {
                    Rule {
                        drop: false,
                        delay: hold,
                    }
                };
                for proxy in &clients[victim] {
                    proxy.set(Direction::ToTarget, rule);
                    proxy.set(Direction::FromTarget, rule);
                }
                tokio::time::sleep(hold).await;
                clients[victim].iter().for_each(Proxy::heal);
            }
            _ => {
                // A minority killed at once.
                let count = (n - 1) / 2;
                let victims: Vec<usize> = (0..count).map(|k| (victim + k) % n).collect();
                for &v in &victims {
                    e.kill(v);
                }
                tokio::time::sleep(hold).await;
                for &v in &victims {
                    e.spawn(v);
                }
            }
        }
        if (3..=8).contains(&fault) {
            tokio::time::sleep(hold).await;
            e.heal();
        }
        done.push(
            [
                "kill",
                "pause",
                "kill-leader",
                "isolate",
                "isolate-leader",
                "partition",
                "leader-mute",
                "leader-deaf",
                "delay",
                "kill-minority",
                "pause-leader",
                "client-partition",
                "client-pause",
            ][fault as usize]
                .to_string(),
        );
    }
    e.heal();
    done
}
