//! Writes the starting corpora: `cargo run --features seeds --example
//! gen-seeds -- <corpus dir>` (default `fuzz/corpus`). Existing files are
//! kept; seeds are written as `<corpus dir>/<target>/seed-NNN`.

fn main() {
    let root = std::env::args()
        .nth(1)
        .unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/corpus").to_string());
    for (target, seeds) in zab_fuzz::seeds::all() {
        let dir = std::path::Path::new(&root).join(target);
        std::fs::create_dir_all(&dir).expect("corpus folder");
        for (i, seed) in seeds.iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{i:03}")), seed).expect("write seed");
        }
        println!("{target}: {} seeds", seeds.len());
    }
}
