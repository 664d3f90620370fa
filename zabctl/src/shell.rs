//! `zabctl shell`: one session, many commands. Lines are read on a thread
//! of their own so the session keeps pinging while the prompt waits; on a
//! terminal with line editing and a history file, otherwise plain lines
//! (scripts: `zabctl shell < commands`).

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

use clap::Parser;
use tokio::sync::mpsc;
use zab_client::Client;

use crate::cli::{Command, Global};
use crate::output::Printer;

/// One shell line: a command without `zabctl` and without global options
/// (the session and the output format are the shell's).
#[derive(Debug, Parser)]
#[command(no_binary_name = true, name = "", disable_version_flag = true)]
struct Line {
    #[command(subcommand)]
    command: Command,
}

/// Where lines come from.
pub enum Input {
    /// The terminal, with line editing and history in this file.
    Terminal(Option<PathBuf>),
    /// Plain lines, no prompt.
    Lines(Box<dyn BufRead + Send>),
}

impl std::fmt::Debug for Input {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Input::Terminal(history) => f.debug_tuple("Terminal").field(history).finish(),
            Input::Lines(_) => f.write_str("Lines"),
        }
    }
}

impl Input {
    /// The terminal if standard input is one, else its lines.
    pub fn stdin() -> Input {
        if std::io::stdin().is_terminal() {
            let history = std::env::var_os("ZAB_HISTORY")
                .map(PathBuf::from)
                .or_else(|| {
                    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".zabctl_history"))
                });
            Input::Terminal(history)
        } else {
            Input::Lines(Box::new(std::io::BufReader::new(std::io::stdin())))
        }
    }
}

/// Starts the reader thread: each `()` sent on the returned sender asks
/// for one more line, answered on the receiver (None at the end).
fn reader(input: Input) -> (std::sync::mpsc::Sender<()>, mpsc::Receiver<Option<String>>) {
    let (want_tx, want_rx) = std::sync::mpsc::channel::<()>();
    let (line_tx, line_rx) = mpsc::channel(1);
    std::thread::spawn(move || match input {
        Input::Lines(mut lines) => {
            while want_rx.recv().is_ok() {
                let mut line = String::new();
                let got = match lines.read_line(&mut line) {
                    Ok(0) | Err(_) => None,
                    Ok(_) => Some(line),
                };
                let end = got.is_none();
                if line_tx.blocking_send(got).is_err() || end {
                    return;
                }
            }
        }
        Input::Terminal(history) => {
            use rustyline::error::ReadlineError;
            let Ok(mut editor) = rustyline::DefaultEditor::new() else {
                let _ = line_tx.blocking_send(None);
                return;
            };
            if let Some(h) = &history {
                let _ = editor.load_history(h);
            }
            while want_rx.recv().is_ok() {
                let got = loop {
                    match editor.readline("zab> ") {
                        Ok(line) => {
                            let _ = editor.add_history_entry(line.as_str());
                            break Some(line);
                        }
                        // Ctrl-C: a fresh prompt, as shells do.
                        Err(ReadlineError::Interrupted) => continue,
                        Err(_) => break None,
                    }
                };
                if let Some(h) = &history {
                    let _ = editor.save_history(h);
                }
                let end = got.is_none();
                if line_tx.blocking_send(got).is_err() || end {
                    return;
                }
            }
        }
    });
    (want_tx, line_rx)
}

const HELP: &str = "\
Commands are zabctl's, without `zabctl` and global options, e.g.
  create -e /app/worker- host-a     ls -s /app     get -w /app/config
`help COMMAND` or `COMMAND --help` for one command; `quit` (or Ctrl-D) ends
the session (its ephemeral nodes go with it).";

/// Runs lines from `input` on `client` until the input ends or `quit`.
/// Returns the exit code of the last command that failed, or 0.
pub async fn run(
    client: &Client,
    global: &Global,
    input: Input,
    p: &mut Printer<'_>,
    err: &mut dyn Write,
) -> u8 {
    let (want, mut lines) = reader(input);
    let mut status = 0;
    loop {
        if want.send(()).is_err() {
            break;
        }
        let Some(Some(line)) = lines.recv().await else {
            break;
        };
        let Some(words) = shlex::split(line.trim()) else {
            let _ = writeln!(err, "zabctl: unbalanced quotes");
            status = 2;
            continue;
        };
        match words.first().map(String::as_str) {
            None => continue,
            Some("quit" | "exit") => break,
            Some("help") if words.len() == 1 => {
                let _ = writeln!(p.out, "{HELP}");
                continue;
            }
            _ => {}
        }
        let words = match words.first().map(String::as_str) {
            // `help ls` is `ls --help`.
            Some("help") => vec![words[1].clone(), "--help".into()],
            _ => words,
        };
        let mut command = match Line::try_parse_from(&words) {
            Ok(line) => line.command,
            Err(e) => {
                let text = e.render().to_string();
                if e.use_stderr() {
                    let _ = write!(err, "{text}");
                    status = 2;
                } else {
                    let _ = write!(p.out, "{text}");
                }
                continue;
            }
        };
        if matches!(command, Command::Shell) {
            let _ = writeln!(err, "zabctl: already in the shell");
            continue;
        }
        if let Err(failure) = crate::commands::preload(&mut command, true) {
            let _ = writeln!(err, "zabctl: {failure}");
            status = failure.exit_code();
            continue;
        }
        match crate::execute(Some(client), global, &command, p).await {
            Ok(()) => {}
            Err(failure) => {
                let _ = writeln!(err, "zabctl: {failure}");
                status = failure.exit_code();
                if matches!(
                    failure,
                    crate::commands::Failure::Client(zab_client::Error::SessionExpired)
                ) {
                    let _ = writeln!(err, "zabctl: the session is gone; leaving the shell");
                    break;
                }
            }
        }
        let _ = p.out.flush();
    }
    status
}
