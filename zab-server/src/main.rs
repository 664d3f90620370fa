//! The `zab-server` binary. The server (storage, transports, znode tree) is
//! built in later issues; today the binary only reports that it is not ready,
//! so nobody mistakes the skeleton for a service.

fn main() {
    eprintln!(
        "zab-server {}: the server is not implemented yet (zab-core {} is); see README.md",
        env!("CARGO_PKG_VERSION"),
        "0.1"
    );
    std::process::exit(2);
}
