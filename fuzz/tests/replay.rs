//! The CI fuzz smoke on the stable toolchain: every committed corpus file
//! (`corpus/<target>/*`) through the same checks the fuzz targets run.
//! A corpus folder without a target, or a target without a corpus, fails.

use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

/// The input being replayed, for the panic report.
static CURRENT: Mutex<String> = Mutex::new(String::new());

#[test]
fn every_committed_corpus_input_passes_its_target() {
    // Report the input, then abort: a panic in a task of the handshake
    // target's runtime would otherwise be caught by tokio (the fuzzer's
    // hook aborts the same way). Written to the real stderr, since the
    // test harness's capture is lost on abort.
    std::panic::set_hook(Box::new(|info| {
        let current = CURRENT.lock().map(|c| c.clone()).unwrap_or_default();
        let _ = writeln!(
            std::io::stderr(),
            "panic replaying {current}: {info}\n{}",
            std::backtrace::Backtrace::force_capture()
        );
        std::process::abort();
    }));
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let mut dirs: Vec<String> = std::fs::read_dir(&root)
        .expect("fuzz/corpus exists")
        .map(|e| {
            e.expect("corpus entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    dirs.sort();
    let mut names: Vec<&str> = zab_fuzz::TARGETS.iter().map(|(n, _)| *n).collect();
    names.sort();
    assert_eq!(dirs, names, "corpus folders and targets differ");
    let mut total = 0;
    for (name, body) in zab_fuzz::TARGETS {
        let started = Instant::now();
        let mut files: Vec<_> = std::fs::read_dir(root.join(name))
            .expect("corpus folder")
            .map(|e| e.expect("corpus entry").path())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "{name}: empty corpus");
        for file in &files {
            let data = std::fs::read(file).expect("corpus file");
            if let Ok(mut c) = CURRENT.lock() {
                *c = file.display().to_string();
            }
            body(&data);
        }
        total += files.len();
        println!(
            "{name}: {} inputs in {:.2?}",
            files.len(),
            started.elapsed()
        );
    }
    println!("replayed {total} inputs");
}
