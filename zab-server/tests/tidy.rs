//! Tidy checks on the source tree itself:
//! - the sans-IO cores (zab-core, and the server core in
//!   `zab-server/src/core/`) read no clock, draw no randomness, spawn no
//!   thread or task and touch no socket or file: everything they need is
//!   handed in, so the simulators can drive them;
//! - a file-length ratchet: no source file grows past 800 lines, and the few
//!   that are already longer may only shrink.

use std::path::{Path, PathBuf};

/// What a sans-IO core must never name (outside comments).
const BANNED: &[&str] = &[
    "Instant::",
    "SystemTime",
    "std::thread",
    "thread::spawn",
    "tokio",
    "std::net",
    "TcpStream",
    "std::fs",
    "File::",
    "getrandom",
    "RandomState",
    "rand::",
    "std::env",
    "println!",
    "eprintln!",
];

const LINES_MAX: usize = 800;

/// Files already longer than [`LINES_MAX`], with the length they may not
/// exceed. Lower a number when a file shrinks; remove a line when it fits.
const GRANDFATHERED: &[(&str, usize)] = &[
    ("tests/src/linearizability.rs", 811),
    ("zab-server/src/storage/sim_fs.rs", 877),
    ("zab-server/tests/crash.rs", 1780),
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace")
        .to_path_buf()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if path.is_dir() {
            if name != "target" && !name.to_string_lossy().starts_with('.') {
                rust_files(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The line without its `//` comment (good enough for these tokens: none
/// of them appears inside a string literal in the cores).
fn code(line: &str) -> &str {
    line.find("//").map_or(line, |i| &line[..i])
}

#[test]
fn sans_io_cores_touch_no_clock_randomness_thread_socket_or_file() {
    let root = root();
    let mut files = Vec::new();
    rust_files(&root.join("zab-core/src"), &mut files);
    rust_files(&root.join("zab-server/src/core"), &mut files);
    assert!(files.len() > 10, "found only {files:?}");
    let mut found = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("readable");
        // Test modules may print; the cores may not.
        let body = text.split("#[cfg(test)]").next().unwrap_or("");
        for (n, line) in body.lines().enumerate() {
            for banned in BANNED {
                if code(line).contains(banned) {
                    let rel = file.strip_prefix(&root).unwrap_or(file).display();
                    found.push(format!("{rel}:{}: {banned}", n + 1));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "IO in a sans-IO core:\n{}",
        found.join("\n")
    );
}

#[test]
fn no_source_file_grows_past_its_limit() {
    let root = root();
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    let mut over = Vec::new();
    for file in &files {
        let rel = file
            .strip_prefix(&root)
            .unwrap_or(file)
            .to_string_lossy()
            .to_string();
        let lines = std::fs::read_to_string(file)
            .expect("readable")
            .lines()
            .count();
        let limit = GRANDFATHERED
            .iter()
            .find(|(f, _)| *f == rel)
            .map_or(LINES_MAX, |(_, n)| *n);
        if lines > limit {
            over.push(format!("{rel}: {lines} lines (limit {limit})"));
        }
        if limit > LINES_MAX && lines <= LINES_MAX {
            over.push(format!(
                "{rel}: fits in {LINES_MAX} now; drop it from GRANDFATHERED"
            ));
        }
    }
    assert!(over.is_empty(), "split these files:\n{}", over.join("\n"));
}
