//! Results: one JSON object per run on stdout, and a human table.

use std::fmt::Write as _;

/// One run's figures; its JSON line keeps the fields in this order
/// (scripts/bench.sh finds a run by its leading `system`, `workload` and
/// `sessions`).
#[derive(Clone, Debug, serde::Serialize)]
pub struct RunResult {
    pub system: &'static str,
    pub workload: &'static str,
    pub sessions: usize,
    pub duration_s: f64,
    pub ops: u64,
    pub ops_per_sec: f64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
    pub errors: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
    /// With `--server-pids`: the servers' CPU time (all of them, user and
    /// system) over the measured part, per operation, in milliseconds;
    /// numerically, CPU-seconds per 1,000 operations.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_cpu_ms_per_op: Option<f64>,
    /// With `--snapshot-log`: the latencies split by snapshots.
    #[serde(flatten)]
    pub windows: Option<crate::windows::Split>,
}

impl RunResult {
    pub fn json(&self) -> String {
        // Serializing plain fields cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// A human table of several runs.
pub fn table(runs: &[RunResult]) -> String {
    let mut out = format!(
        "{:<6} {:<18} {:>8} {:>10} {:>10} {:>9} {:>9} {:>9} {:>7}\n",
        "system", "workload", "sessions", "ops", "ops/s", "p50 us", "p99 us", "p99.9 us", "errors"
    );
    for r in runs {
        let _ = writeln!(
            out,
            "{:<6} {:<18} {:>8} {:>10} {:>10.0} {:>9} {:>9} {:>9} {:>7}",
            r.system,
            r.workload,
            r.sessions,
            r.ops,
            r.ops_per_sec,
            r.p50_us,
            r.p99_us,
            r.p999_us,
            r.errors
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_escapes_errors() {
        let r = RunResult {
            system: "zab",
            workload: "write",
            sessions: 1,
            duration_s: 1.0,
            ops: 10,
            ops_per_sec: 10.0,
            p50_us: 1,
            p99_us: 2,
            p999_us: 3,
            max_us: 4,
            errors: 1,
            first_error: Some("said \"no\"\n".into()),
            server_cpu_ms_per_op: Some(0.25),
            windows: None,
        };
        let line = r.json();
        assert!(
            line.starts_with("{\"system\":\"zab\",\"workload\":\"write\",\"sessions\":1,"),
            "{line}"
        );
        let back: serde_json::Value = serde_json::from_str(&line).expect("JSON");
        assert_eq!(back["first_error"], "said \"no\"\n");
        assert!(back.get("quiet_p99_us").is_none(), "{line}");
        assert_eq!(back["p999_us"], 3);
    }
}
