//! Latency split by whether a snapshot was being written at the time: a
//! run keeps one histogram per second of wall-clock time, and at its end
//! reads the intervals snapshots took from a file that the caller
//! (scripts/bench.sh, polling the servers' `zab_snapshot_seconds`) wrote
//! meanwhile, one `END_UNIX_MS DURATION_MS` line per snapshot. Seconds that
//! overlap any interval pool into the "snapshot" histogram, the rest into
//! the "quiet" one: the p99 across a snapshot against the p99 without.

use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;

use crate::store::StoreError;

/// Longest latency recorded (microseconds), as the run's own histograms.
const LATENCY_US_MAX: u64 = 60_000_000;

/// Per-second latency histograms of one run.
pub struct Seconds {
    origin: Instant,
    origin_unix_ms: u64,
    /// Index: whole seconds from `origin`. Two significant figures keep a
    /// second's histogram small (a 10-minute run holds 600 of them).
    hists: Mutex<Vec<Histogram<u32>>>,
}

/// The run's latencies, split.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Split {
    /// Seconds during which some server was writing a snapshot.
    pub snapshot_secs: usize,
    pub snapshot_ops: u64,
    pub snapshot_p99_us: u64,
    pub snapshot_p999_us: u64,
    /// Seconds with no snapshot being written.
    pub quiet_secs: usize,
    pub quiet_ops: u64,
    pub quiet_p99_us: u64,
    pub quiet_p999_us: u64,
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn histogram() -> Histogram<u32> {
    Histogram::new_with_max(LATENCY_US_MAX, 2)
        .expect("2 significant figures up to 60 s is a valid histogram")
}

impl Seconds {
    pub fn new() -> Seconds {
        Seconds {
            origin: Instant::now(),
            origin_unix_ms: unix_ms(SystemTime::now()),
            hists: Mutex::new(Vec::new()),
        }
    }

    /// One operation that ended at `done` after `us` microseconds.
    pub fn record(&self, done: Instant, us: u64) {
        let second = done.saturating_duration_since(self.origin).as_secs() as usize;
        let mut hists = self.hists.lock().expect("per-second histograms");
        while hists.len() <= second {
            hists.push(histogram());
        }
        hists[second].saturating_record(us.clamp(1, LATENCY_US_MAX));
    }

    /// Pools the seconds that overlap any of `busy` (`[from, to]` unix ms)
    /// and the others; seconds without operations count in neither.
    pub fn split(&self, busy: &[(u64, u64)]) -> Split {
        let hists = self.hists.lock().expect("per-second histograms");
        let (mut snap, mut quiet) = (histogram(), histogram());
        let (mut snap_secs, mut quiet_secs) = (0, 0);
        for (second, h) in hists.iter().enumerate() {
            if h.is_empty() {
                continue;
            }
            let from = self.origin_unix_ms + 1000 * second as u64;
            let to = from + 999;
            let overlaps = busy.iter().any(|&(b0, b1)| b0 <= to && from <= b1);
            let (pool, secs) = if overlaps {
                (&mut snap, &mut snap_secs)
            } else {
                (&mut quiet, &mut quiet_secs)
            };
            // Same bounds and precision: adding cannot fail.
            let _ = pool.add(h);
            *secs += 1;
        }
        let q = |h: &Histogram<u32>, q: f64| {
            if h.is_empty() {
                0
            } else {
                h.value_at_quantile(q)
            }
        };
        Split {
            snapshot_secs: snap_secs,
            snapshot_ops: snap.len(),
            snapshot_p99_us: q(&snap, 0.99),
            snapshot_p999_us: q(&snap, 0.999),
            quiet_secs,
            quiet_ops: quiet.len(),
            quiet_p99_us: q(&quiet, 0.99),
            quiet_p999_us: q(&quiet, 0.999),
        }
    }
}

impl Seconds {
    /// One line per second with operations, `START_UNIX_MS OPS P99_US`,
    /// into `path`: the series behind [`Seconds::split`], to line up with
    /// the snapshot log by hand (which server, leader or follower).
    pub fn write_series(&self, path: &Path) -> Result<(), StoreError> {
        use std::fmt::Write as _;
        let hists = self.hists.lock().expect("per-second histograms");
        let mut text = String::new();
        for (second, h) in hists.iter().enumerate().filter(|(_, h)| !h.is_empty()) {
            let from = self.origin_unix_ms + 1000 * second as u64;
            let _ = writeln!(text, "{from} {} {}", h.len(), h.value_at_quantile(0.99));
        }
        std::fs::write(path, text).map_err(|e| StoreError(format!("{}: {e}", path.display())))
    }
}

/// The snapshot intervals in `path` (`END_UNIX_MS DURATION_MS` per line,
/// then words this ignores: the server and its role),
/// as `[from, to]` unix ms; a missing file means none were seen.
pub fn read_busy(path: &Path) -> Result<Vec<(u64, u64)>, StoreError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(StoreError(format!("{}: {e}", path.display()))),
    };
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let mut words = line.split_whitespace().map(str::parse::<u64>);
            match (words.next(), words.next()) {
                (Some(Ok(end)), Some(Ok(dur))) => Ok((end.saturating_sub(dur), end)),
                _ => Err(StoreError(format!(
                    "{}: {line:?} is not `END_UNIX_MS DURATION_MS`",
                    path.display()
                ))),
            }
        })
        .collect()
}

/// How long a run waits after its last operation before reading the
/// intervals: the poller writes what it saw up to a second late.
pub const SETTLE: Duration = Duration::from_millis(2500);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_overlapping_a_snapshot_pool_apart_from_the_others() {
        let s = Seconds::new();
        for sec in 0..10u64 {
            let at = s.origin + Duration::from_millis(1000 * sec + 500);
            // Second 3 is slow; the others fast.
            let us = if sec == 3 { 50_000 } else { 1_000 };
            for _ in 0..100 {
                s.record(at, us);
            }
        }
        let snap_from = s.origin_unix_ms + 3_200;
        let split = s.split(&[(snap_from, snap_from + 300)]);
        assert_eq!((split.snapshot_secs, split.quiet_secs), (1, 9));
        assert_eq!((split.snapshot_ops, split.quiet_ops), (100, 900));
        assert!(split.snapshot_p99_us >= 49_000, "{split:?}");
        assert!(split.quiet_p99_us <= 1_100, "{split:?}");
        let none = s.split(&[]);
        assert_eq!((none.snapshot_secs, none.quiet_secs), (0, 10));
    }

    #[test]
    fn the_interval_file_is_end_and_duration_per_line() {
        let dir = std::env::temp_dir().join(format!("zab-bench-windows-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("busy");
        std::fs::write(&path, "5000 1200\n\n9000 0\n").expect("write");
        assert_eq!(
            read_busy(&path).expect("valid"),
            vec![(3800, 5000), (9000, 9000)]
        );
        std::fs::write(&path, "5000\n").expect("write");
        assert!(read_busy(&path).is_err());
        assert!(read_busy(&dir.join("absent")).expect("none").is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
