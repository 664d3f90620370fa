//! The commands that run on a session, shared by one-shot use and the
//! shell.

use std::io::Read as _;
use std::path::Path;

use serde_json::json;
use zab_client::{
    Client, Consistency, CreateMode, Error, ErrorCode, MultiResult, WatchStream, WatcherKind,
};

use crate::cli::{Command, DataSource, WatchKind};
use crate::output::{stat_json, Printer};

/// Why a command failed, and so the exit code.
#[derive(Debug)]
pub enum Failure {
    /// Bad arguments or local input: exit 2.
    Usage(String),
    /// From the ensemble: exit 1 if the server refused, 3 otherwise.
    Client(Error),
    /// An admin port refused (e.g. backups are off): exit 1.
    Refused(String),
    /// Printing failed (e.g. a closed pipe): exit 3.
    Output(std::io::Error),
    /// Already reported (the shell's failed commands): exit with this.
    Exit(u8),
}

impl Failure {
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::Usage(_) => 2,
            Failure::Client(Error::Server(_) | Error::MultiFailed { .. }) | Failure::Refused(_) => {
                1
            }
            Failure::Client(_) | Failure::Output(_) => 3,
            Failure::Exit(code) => *code,
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Usage(why) | Failure::Refused(why) => write!(f, "{why}"),
            Failure::Client(e) => write!(f, "{e}"),
            Failure::Output(e) => write!(f, "cannot write the output: {e}"),
            Failure::Exit(code) => write!(f, "exit {code}"),
        }
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        Failure::Client(e)
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Failure {
        Failure::Output(e)
    }
}

type Done = Result<(), Failure>;

/// The create mode the flags name; incompatible flags are an error.
pub fn create_mode(
    ephemeral: bool,
    sequential: bool,
    container: bool,
    ttl_ms: u64,
) -> Result<CreateMode, String> {
    Ok(match (ephemeral, sequential, container, ttl_ms > 0) {
        (false, false, false, false) => CreateMode::Persistent,
        (false, true, false, false) => CreateMode::PersistentSequential,
        (true, false, false, false) => CreateMode::Ephemeral,
        (true, true, false, false) => CreateMode::EphemeralSequential,
        (false, false, true, false) => CreateMode::Container,
        (false, false, false, true) => CreateMode::PersistentWithTtl,
        (false, true, false, true) => CreateMode::PersistentSequentialWithTtl,
        _ => {
            return Err(
                "incompatible create flags: -c and -t go alone, -e does not go with -t".into(),
            )
        }
    })
}

fn consistency(local: bool) -> Consistency {
    if local {
        Consistency::Local
    } else {
        Consistency::Linearizable
    }
}

/// The data a command writes: its argument, or the file's bytes read
/// before connecting.
fn data_of(source: &DataSource) -> Result<Vec<u8>, Failure> {
    match (&source.data, &source.loaded, &source.file) {
        (_, Some(bytes), _) => Ok(bytes.clone()),
        (_, None, Some(file)) => read_input(file),
        (Some(text), None, None) => Ok(text.as_bytes().to_vec()),
        (None, None, None) => Ok(Vec::new()),
    }
}

/// Reads the files `command` names now, before any session exists: reading
/// a slow pipe with the session open would stall its pings. In the shell,
/// standard input is the shell's own and cannot be data.
pub fn preload(command: &mut Command, in_shell: bool) -> Result<(), Failure> {
    let (file, loaded) = match command {
        Command::Create(c) => (&c.source.file, &mut c.source.loaded),
        Command::Set(s) => (&s.source.file, &mut s.source.loaded),
        Command::Multi(m) => (&Some(m.file.clone()), &mut m.loaded),
        _ => return Ok(()),
    };
    let Some(file) = file else {
        return Ok(());
    };
    if in_shell && file == Path::new("-") {
        return Err(Failure::Usage(
            "in the shell, standard input is the shell's: give a file".into(),
        ));
    }
    *loaded = Some(read_input(file)?);
    Ok(())
}

/// A file's bytes, or standard input's for `-`.
pub fn read_input(file: &Path) -> Result<Vec<u8>, Failure> {
    let mut bytes = Vec::new();
    let read = if file == Path::new("-") {
        std::io::stdin().read_to_end(&mut bytes).map(|_| ())
    } else {
        std::fs::read(file).map(|b| bytes = b)
    };
    read.map_err(|e| Failure::Usage(format!("cannot read {}: {e}", file.display())))?;
    Ok(bytes)
}

/// Runs a session command; `Err(Usage)` for a command that needs no
/// session (the caller runs those).
pub async fn run(client: &Client, command: &Command, p: &mut Printer<'_>) -> Done {
    match command {
        Command::Create(c) => {
            let ttl = c.ttl.unwrap_or(0);
            let mode =
                create_mode(c.ephemeral, c.sequential, c.container, ttl).map_err(Failure::Usage)?;
            let data = data_of(&c.source)?;
            if c.parents {
                create_parents(client, &c.path).await?;
            }
            let created = match &c.acl {
                Some(acl) if ttl == 0 => {
                    client
                        .create_with_acl(&c.path, &data, mode, acl.0.clone())
                        .await?
                }
                Some(_) => return Err(Failure::Usage("--acl does not go with --ttl".into())),
                None => client.create_ttl(&c.path, &data, mode, ttl).await?,
            };
            p.created(&created)?;
        }
        Command::Get(g) => {
            let level = consistency(g.local);
            if g.watch {
                let (data, stat, events) = client.get_and_watch(&g.path, level).await?;
                p.node(&g.path, &data, &stat, g.stat)?;
                next_event(events, p).await?;
            } else {
                let (data, stat) = client.get(&g.path, level).await?;
                p.node(&g.path, &data, &stat, g.stat)?;
            }
        }
        Command::Set(s) => {
            let data = data_of(&s.source)?;
            let stat = client.set(&s.path, &data, s.version).await?;
            p.written(&s.path, &stat)?;
        }
        Command::Delete(d) => {
            client.delete(&d.path, d.version).await?;
            p.deleted(&d.path, 1)?;
        }
        Command::Deleteall(d) => {
            let count = delete_all(client, &d.path).await?;
            p.deleted(&d.path, count)?;
        }
        Command::Ls(l) => {
            let level = consistency(l.local);
            if l.recursive {
                let paths = subtree(client, &l.path, level).await?;
                p.list(&l.path, "paths", &paths)?;
            } else if l.watch {
                let (names, stat, events) = client.children_and_watch(&l.path, level).await?;
                let mut names = names;
                names.sort();
                p.list(&l.path, "children", &names)?;
                if l.stat {
                    p.stat(&l.path, &stat)?;
                }
                next_event(events, p).await?;
            } else if l.stat {
                // One consistent listing with its stat (a page holds both).
                let (names, stat, more) = client.children_page(&l.path, "", 0, level).await?;
                let mut names = names;
                if more {
                    names = client.all_children(&l.path, Consistency::Local).await?;
                }
                p.list(&l.path, "children", &names)?;
                p.stat(&l.path, &stat)?;
            } else {
                let names = client.all_children(&l.path, level).await?;
                p.list(&l.path, "children", &names)?;
            }
        }
        Command::Stat(s) => {
            let level = consistency(s.local);
            let (stat, events) = if s.watch {
                let (stat, events) = client.exists_and_watch(&s.path, level).await?;
                (stat, Some(events))
            } else {
                (client.exists(&s.path, level, false).await?, None)
            };
            match (stat, events) {
                (Some(stat), events) => {
                    p.stat(&s.path, &stat)?;
                    if let Some(events) = events {
                        next_event(events, p).await?;
                    }
                }
                // Watching a node that does not exist yet is fine: its
                // creation is the event.
                (None, Some(events)) => next_event(events, p).await?,
                (None, None) => return Err(Error::Server(ErrorCode::NoNode).into()),
            }
        }
        Command::Sync(s) => {
            let zxid = client.sync(&s.path).await?;
            p.synced(&s.path, zxid)?;
        }
        Command::Watch(w) => {
            let recursive = !w.no_recursive;
            let events = client.add_watch(&w.path, recursive).await?;
            let streamed = stream_events(events, w.count, p).await;
            // Not left armed for the rest of a shell's session.
            let kind = match recursive {
                true => WatcherKind::PersistentRecursive,
                false => WatcherKind::Persistent,
            };
            let _ = client.remove_watches(&w.path, kind).await;
            streamed?;
        }
        Command::Removewatches(r) => {
            let kind = match r.kind {
                WatchKind::Any => WatcherKind::Any,
                WatchKind::Data => WatcherKind::Data,
                WatchKind::Children => WatcherKind::Children,
                WatchKind::Persistent => WatcherKind::Persistent,
                WatchKind::Recursive => WatcherKind::PersistentRecursive,
            };
            client.remove_watches(&r.path, kind).await?;
            let text = format!("removed the watches on {}", r.path);
            p.said(&text, &json!({"path": r.path, "removed": true}))?;
        }
        Command::Ephemerals(e) => {
            let paths = client
                .ephemerals(&e.prefix, Consistency::Linearizable)
                .await?;
            p.list(&e.prefix, "paths", &paths)?;
        }
        Command::Count(c) => {
            let count = client
                .descendant_count(&c.path, Consistency::Linearizable)
                .await?;
            p.count(&c.path, count)?;
        }
        Command::Getacl(g) => {
            client.sync(&g.path).await?;
            let (acl, stat) = client.get_acl(&g.path).await?;
            p.acl(&g.path, &acl, &stat)?;
        }
        Command::Setacl(s) => {
            let stat = client.set_acl(&s.path, s.acl.0.clone(), s.version).await?;
            p.written(&s.path, &stat)?;
        }
        Command::Multi(m) => {
            let text = match &m.loaded {
                Some(bytes) => bytes.clone(),
                None => read_input(&m.file)?,
            };
            let text = String::from_utf8(text)
                .map_err(|_| Failure::Usage(format!("{} is not UTF-8", m.file.display())))?;
            let ops = crate::multi::parse(&text).map_err(Failure::Usage)?;
            let results: Vec<(String, serde_json::Value)> = client
                .multi(ops)
                .await?
                .into_iter()
                .map(|r| match r {
                    MultiResult::Create(c) => ("create".into(), json!(c.path)),
                    MultiResult::SetData(st) => ("set".into(), stat_json(&st)),
                    MultiResult::Delete => ("delete".into(), json!("ok")),
                    MultiResult::Check => ("check".into(), json!("ok")),
                })
                .collect();
            p.multi(&results)?;
        }
        _ => return Err(Failure::Usage("not a session command".into())),
    }
    Ok(())
}

/// Prints the one event a one-shot watch delivers (or nothing if the
/// session ends first).
async fn next_event(mut events: WatchStream, p: &mut Printer<'_>) -> Done {
    tokio::select! {
        e = events.next() => match e {
            Some(e) => Ok(p.event(&e)?),
            None => Err(Error::SessionExpired.into()),
        },
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}

/// Prints events until `count` of them, the session's end, or Ctrl-C.
async fn stream_events(mut events: WatchStream, count: Option<u64>, p: &mut Printer<'_>) -> Done {
    let mut seen = 0u64;
    while count.is_none_or(|n| seen < n) {
        tokio::select! {
            e = events.next() => match e {
                Some(e) => {
                    p.event(&e)?;
                    seen += 1;
                }
                None => return Err(Error::SessionExpired.into()),
            },
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    Ok(())
}

/// Creates every missing ancestor of `path` (persistent, empty).
async fn create_parents(client: &Client, path: &str) -> Result<(), Error> {
    let mut at = 0;
    while let Some(i) = path[at + 1..].find('/') {
        at += 1 + i;
        let parent = &path[..at];
        // Looked at first: creating an existing parent needs CREATE on its
        // own parent, which the caller may lack.
        if client
            .exists(parent, Consistency::Linearizable, false)
            .await?
            .is_some()
        {
            continue;
        }
        match client.create(parent, b"", CreateMode::Persistent).await {
            Ok(_) | Err(Error::Server(ErrorCode::NodeExists)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// `path` and every node below it, parents before children, in order.
async fn subtree(client: &Client, path: &str, level: Consistency) -> Result<Vec<String>, Error> {
    if level == Consistency::Linearizable {
        client.sync(path).await?;
    }
    let mut out = Vec::new();
    let mut stack = vec![path.to_string()];
    while let Some(p) = stack.pop() {
        let kids = match client.all_children(&p, Consistency::Local).await {
            Ok(kids) => kids,
            // Deleted since its parent was listed.
            Err(Error::Server(ErrorCode::NoNode)) if p != path => continue,
            Err(e) => return Err(e),
        };
        for k in kids.into_iter().rev() {
            stack.push(child(&p, &k));
        }
        out.push(p);
    }
    Ok(out)
}

fn child(parent: &str, name: &str) -> String {
    if parent == "/" {
        format!("/{name}")
    } else {
        format!("{parent}/{name}")
    }
}

/// Deletes `path` and its subtree, children first; nodes created or
/// deleted meanwhile by others are taken in their stride (a bounded number
/// of passes). Returns how many nodes this call deleted.
async fn delete_all(client: &Client, path: &str) -> Result<u64, Error> {
    if path == "/" {
        return Err(Error::Server(ErrorCode::BadArguments));
    }
    let mut deleted = 0;
    for _pass in 0..10 {
        let nodes = match subtree(client, path, Consistency::Linearizable).await {
            Ok(nodes) => nodes,
            Err(Error::Server(ErrorCode::NoNode)) if deleted > 0 => return Ok(deleted),
            Err(e) => return Err(e),
        };
        let mut again = false;
        for node in nodes.iter().rev() {
            match client.delete(node, -1).await {
                Ok(()) => deleted += 1,
                Err(Error::Server(ErrorCode::NoNode)) => {}
                // A child was added meanwhile: another pass.
                Err(Error::Server(ErrorCode::NotEmpty)) => again = true,
                Err(e) => return Err(e),
            }
        }
        if !again {
            return Ok(deleted);
        }
    }
    Err(Error::Server(ErrorCode::NotEmpty))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_flag_combination_is_one_mode_or_an_error() {
        let mut modes = std::collections::BTreeSet::new();
        for bits in 0..16u8 {
            let (e, s, c, t) = (bits & 1 != 0, bits & 2 != 0, bits & 4 != 0, bits & 8 != 0);
            if let Ok(mode) = create_mode(e, s, c, if t { 5 } else { 0 }) {
                modes.insert(format!("{mode:?}"));
                assert!(!(c && (e || s || t)), "{bits:#b} gave {mode:?}");
                assert!(!(e && t), "{bits:#b} gave {mode:?}");
            }
        }
        assert_eq!(modes.len(), 7, "{modes:?}");
    }

    #[test]
    fn children_paths_join_at_the_root_and_below() {
        assert_eq!(child("/", "a"), "/a");
        assert_eq!(child("/a", "b"), "/a/b");
    }
}
