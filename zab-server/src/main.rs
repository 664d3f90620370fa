//! The `zab-server` binary. The server (storage, transports, znode tree) is
//! built in later issues; today the binary only says so and exits non-zero, so
//! nobody mistakes the skeleton for a service.

fn main() {
    eprintln!(
        "zab-server {}: not implemented yet; the protocol core (zab-core) is. See README.md.",
        env!("CARGO_PKG_VERSION")
    );
    std::process::exit(2);
}
