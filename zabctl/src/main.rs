//! `zabctl`: see the library's documentation, or `zabctl --help`.

use std::process::ExitCode;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let mut out = std::io::stdout().lock();
    let mut err = std::io::stderr().lock();
    let input = zabctl::shell::Input::stdin();
    ExitCode::from(zabctl::run(std::env::args_os(), input, &mut out, &mut err).await)
}
