//! Server CPU time over a run, read from `/proc/PID/stat`: what each system
//! spends per operation, which throughput alone hides (a server that burns
//! both cores for the same rate is not the better one).
//!
//! `utime` and `stime` there count every thread of the process, the ones
//! that have exited included, in clock ticks of `USER_HZ`, which Linux fixes
//! at 100 for every architecture's user-space ABI: 10 ms resolution, so a
//! run of a few seconds on busy servers is measured to well under 1%.

use std::path::Path;
use std::time::Instant;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Ticks per second in `/proc/PID/stat` (Linux's `USER_HZ`).
const TICKS_PER_SEC: f64 = 100.0;

/// CPU seconds (user + system) `pid` has used so far, or `None` if it is
/// gone or the file is not what Linux writes.
pub fn seconds(pid: u32) -> Option<f64> {
    let stat =
        std::fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("stat")).ok()?;
    parse_stat(&stat)
}

/// The CPU seconds of every process in `pids` together; `None` if any is
/// unreadable (a total that silently missed a server would flatter it).
pub fn total(pids: &[u32]) -> Option<f64> {
    pids.iter().map(|&pid| seconds(pid)).sum()
}

/// The servers' CPU seconds over a run's measured part: read when it
/// begins, and again when it ends (timed runs: the sessions' closing is
/// not counted) or when the run is over, if sooner (a load, which ends
/// when its keys exist, closing included).
pub struct Window {
    finished: Option<oneshot::Sender<()>>,
    task: JoinHandle<Option<f64>>,
}

impl Window {
    /// Starts watching `pids` over `from..until`; `None` without pids.
    pub fn start(pids: &[u32], from: Instant, until: Instant) -> Option<Window> {
        if pids.is_empty() {
            return None;
        }
        let pids = pids.to_vec();
        let (finished, early) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            tokio::time::sleep_until(from.into()).await;
            let before = total(&pids)?;
            tokio::select! {
                () = tokio::time::sleep_until(until.into()) => {}
                _ = early => {}
            }
            Some(total(&pids)? - before)
        });
        Some(Window {
            finished: Some(finished),
            task,
        })
    }

    /// The CPU seconds used in the window (`None` if a server could not be
    /// read at either end).
    pub async fn finish(mut self) -> Option<f64> {
        if let Some(finished) = self.finished.take() {
            let _ = finished.send(());
        }
        self.task.await.ok().flatten()
    }
}

/// `utime + stime` from the text of `/proc/PID/stat`, in seconds. The
/// command name (field 2) is in parentheses and may hold spaces or
/// parentheses itself, so fields are counted from the last `)`.
fn parse_stat(stat: &str) -> Option<f64> {
    let after = &stat[stat.rfind(')')? + 1..];
    // After the name: state is field 3, so utime (14) and stime (15) are
    // the 12th and 13th.
    let mut fields = after.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / TICKS_PER_SEC)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_counted_from_the_last_parenthesis() {
        let line = "4242 (java (x) y) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 75 0 0 20 0 40 0";
        assert_eq!(parse_stat(line), Some(3.25));
        assert_eq!(parse_stat("4242 (short) S 1"), None);
        assert_eq!(parse_stat("no parenthesis"), None);
    }

    #[test]
    fn this_process_has_used_some_cpu_and_a_missing_one_is_none() {
        let mine = seconds(std::process::id()).expect("this process's own stat");
        let spin = std::time::Instant::now();
        while spin.elapsed() < std::time::Duration::from_millis(50) {
            std::hint::black_box(spin.elapsed());
        }
        let later = seconds(std::process::id()).expect("read again");
        assert!(later >= mine, "{later} < {mine}");
        // PIDs wrap well below this (pid_max is at most 2^22).
        assert_eq!(total(&[std::process::id(), u32::MAX]), None);
    }
}
