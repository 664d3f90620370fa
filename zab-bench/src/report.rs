//! Results: one JSON object per run on stdout, and a human table.

use std::fmt::Write as _;

#[derive(Clone, Debug)]
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
    pub first_error: Option<String>,
}

impl RunResult {
    pub fn json(&self) -> String {
        let mut s = format!(
            "{{\"system\":\"{}\",\"workload\":\"{}\",\"sessions\":{},\"duration_s\":{:.1},\"ops\":{},\"ops_per_sec\":{:.1},\"p50_us\":{},\"p99_us\":{},\"p999_us\":{},\"max_us\":{},\"errors\":{}",
            self.system,
            self.workload,
            self.sessions,
            self.duration_s,
            self.ops,
            self.ops_per_sec,
            self.p50_us,
            self.p99_us,
            self.p999_us,
            self.max_us,
            self.errors
        );
        if let Some(e) = &self.first_error {
            let _ = write!(s, ",\"first_error\":\"{}\"", escape(e));
        }
        s.push('}');
        s
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

/// Escapes a string for a JSON string literal.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
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
        };
        assert_eq!(
            r.json(),
            "{\"system\":\"zab\",\"workload\":\"write\",\"sessions\":1,\"duration_s\":1.0,\"ops\":10,\"ops_per_sec\":10.0,\"p50_us\":1,\"p99_us\":2,\"p999_us\":3,\"max_us\":4,\"errors\":1,\"first_error\":\"said \\\"no\\\"\\u000a\"}"
        );
    }
}
