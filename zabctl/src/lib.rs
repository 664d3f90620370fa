//! # zabctl
//!
//! The command-line client for the zab coordination service, as a library
//! (so tests and other tools can run it in-process) and a binary.
//!
//! ```text
//! zabctl [-s HOST:PORT,...] [-o text|json|table] [--auth digest:USER:PW]
//!        [--tls-ca FILE [--tls-cert FILE --tls-key FILE]] COMMAND
//! ```
//!
//! `zabctl --help` lists the commands, `zabctl COMMAND --help` explains
//! one; neither needs a server. Every global option can also come from a
//! `ZAB_*` environment variable (named in the help). Exit codes: 0 ok, 1
//! the server refused, 2 usage, 3 connection trouble.
//!
//! ## Layout
//!
//! - `cli`: the command line's definitions (clap).
//! - `commands`: what each session command does.
//! - `multi`: the `multi` file format.
//! - `admin`: commands answered by the admin ports.
//! - `shell`: the interactive shell.
//! - `output`: text, JSON and table output.

use std::ffi::OsString;
use std::io::Write;
use std::time::Duration;

use clap::{CommandFactory, Parser};
use zab_client::Client;

mod admin;
pub mod cli;
mod commands;
mod multi;
mod output;
pub mod shell;

use cli::{Cli, Command, Global};
use commands::Failure;
use output::Printer;

/// Runs zabctl with `args` (the first is the program name), writing
/// results to `out` and diagnostics to `err`; the shell reads `input`.
/// Returns the exit code.
pub async fn run<I, T>(args: I, input: shell::Input, out: &mut dyn Write, err: &mut dyn Write) -> u8
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let mut cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version are not errors.
            let text = e.render().to_string();
            let _ = match e.use_stderr() {
                true => write!(err, "{text}"),
                false => write!(out, "{text}"),
            };
            return u8::try_from(e.exit_code()).unwrap_or(2);
        }
    };
    let mut p = Printer {
        format: cli.global.format(),
        out,
    };
    if let Err(failure) = commands::preload(&mut cli.command, false) {
        let _ = writeln!(err, "zabctl: {failure}");
        return failure.exit_code();
    }
    let result = match &cli.command {
        Command::Shell => shell_session(&cli.global, input, &mut p, err).await,
        command => match needs_session(command) {
            false => execute(None, &cli.global, command, &mut p).await,
            true => one_shot(&cli.global, command, &mut p).await,
        },
    };
    let _ = p.out.flush();
    match result {
        Ok(()) => 0,
        Err(Failure::Exit(code)) => code,
        Err(failure) => {
            let _ = writeln!(err, "zabctl: {failure}");
            failure.exit_code()
        }
    }
}

fn needs_session(command: &Command) -> bool {
    !matches!(
        command,
        Command::Digest(_)
            | Command::Cluster(_)
            | Command::Backup(_)
            | Command::Version
            | Command::Completion(_)
            | Command::Man
    )
}

/// Runs `command`; session commands need `client`.
async fn execute(
    client: Option<&Client>,
    global: &Global,
    command: &Command,
    p: &mut Printer<'_>,
) -> Result<(), Failure> {
    match command {
        Command::Digest(d) => match d.credentials.split_once(':') {
            Some((user, password)) if !user.is_empty() => {
                let id = zab_client::digest_id(user, password);
                p.said(&id, &serde_json::json!({ "id": id }))?;
                Ok(())
            }
            _ => Err(Failure::Usage("digest wants USER:PASSWORD".into())),
        },
        Command::Cluster(cli::Cluster::Status) => admin::cluster_status(&global.admin, p).await,
        Command::Cluster(cli::Cluster::Conf) => admin::inspect(&global.admin, "/conf", p).await,
        Command::Cluster(cli::Cluster::Cons(i)) => {
            admin::inspect(&global.admin, &format!("/cons?limit={}", i.limit), p).await
        }
        Command::Cluster(cli::Cluster::Wchs(i)) => {
            admin::inspect(&global.admin, &format!("/wchs?limit={}", i.limit), p).await
        }
        Command::Cluster(cli::Cluster::Dump(i)) => {
            admin::inspect(&global.admin, &format!("/dump?limit={}", i.limit), p).await
        }
        Command::Backup(b) => admin::backup(&global.admin, &b.file, p).await,
        Command::Version => admin::version(&global.admin, p).await,
        Command::Completion(c) => {
            let mut cmd = Cli::command();
            clap_complete::generate(c.shell, &mut cmd, "zabctl", p.out);
            Ok(())
        }
        Command::Man => {
            clap_mangen::Man::new(Cli::command()).render(p.out)?;
            Ok(())
        }
        Command::Shell => Err(Failure::Usage("already in the shell".into())),
        command => match client {
            Some(client) => commands::run(client, command, p).await,
            None => Err(Failure::Usage("not connected".into())),
        },
    }
}

/// Opens the session the global options describe and proves its
/// identities.
async fn connect(global: &Global) -> Result<Client, Failure> {
    let mut builder = Client::builder(&global.servers)
        .session_timeout_ms(global.session_timeout_ms)
        .connect_timeout(Duration::from_millis(global.connect_timeout_ms));
    if global.request_timeout_ms > 0 {
        builder = builder.request_timeout(Duration::from_millis(global.request_timeout_ms));
    }
    if let Some(root) = &global.chroot {
        builder = builder.chroot(root);
    }
    if let Some(ca) = &global.tls_ca {
        let identity = global.tls_cert.as_deref().zip(global.tls_key.as_deref());
        let tls = zab_client::Tls::from_files(ca, identity).map_err(Failure::Usage)?;
        builder = builder.tls(tls);
    } else if global.tls_cert.is_some() {
        return Err(Failure::Usage("--tls-cert needs --tls-ca".into()));
    }
    let client = match builder.connect().await {
        Ok(client) => client,
        Err(zab_client::Error::BadConfig(why)) => return Err(Failure::Usage(why)),
        Err(e) => return Err(e.into()),
    };
    for (scheme, credentials) in &global.auth {
        if let Err(e) = client.add_auth(scheme, credentials.as_bytes()).await {
            let _ = client.close().await;
            return Err(e.into());
        }
    }
    Ok(client)
}

async fn one_shot(global: &Global, command: &Command, p: &mut Printer<'_>) -> Result<(), Failure> {
    let client = connect(global).await?;
    let result = execute(Some(&client), global, command, p).await;
    let _ = client.close().await;
    result
}

async fn shell_session(
    global: &Global,
    input: shell::Input,
    p: &mut Printer<'_>,
    err: &mut dyn Write,
) -> Result<(), Failure> {
    let client = connect(global).await?;
    let status = shell::run(&client, global, input, p, err).await;
    let _ = client.close().await;
    match status {
        0 => Ok(()),
        // Each failure was reported as it happened; the exit code is the
        // last one's.
        code => Err(Failure::Exit(code)),
    }
}
