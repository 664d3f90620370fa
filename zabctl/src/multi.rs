//! The `multi` file: one operation per line, words split as a POSIX shell
//! splits them, so data may hold spaces and quotes.

use base64::Engine as _;
use bytes::Bytes;
use zab_client::{CheckRequest, CreateMode, CreateRequest, DeleteRequest, MultiOp, SetDataRequest};

pub const FORMAT: &str = "\
File format, one operation per line (blank lines and # comments skipped;
words quoted as in a shell, e.g. 'two words' or \"say \\\"hi\\\"\"):
  create [-e] [-s] [-c] [-t TTL_MS] [-b] PATH [DATA]
  set [-b] PATH DATA [VERSION]
  delete PATH [VERSION]
  check PATH VERSION
-b: DATA is base64 (for binary data). VERSION defaults to -1 (any).
All operations apply at one zxid, or none does.";

/// The operations in `text`, or the first bad line's number and why.
pub fn parse(text: &str) -> Result<Vec<MultiOp>, String> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| {
            let l = l.trim();
            !l.is_empty() && !l.starts_with('#')
        })
        .map(|(i, line)| parse_line(line).map_err(|why| format!("line {}: {why}", i + 1)))
        .collect()
}

fn parse_line(line: &str) -> Result<MultiOp, String> {
    let words = shlex::split(line).ok_or("unbalanced quotes")?;
    let (op, rest) = words.split_first().ok_or("empty")?;
    let mut flags = Flags::default();
    let mut positional = Vec::new();
    let mut it = rest.iter();
    while let Some(w) = it.next() {
        match w.as_str() {
            "-e" => flags.ephemeral = true,
            "-s" => flags.sequential = true,
            "-c" => flags.container = true,
            "-b" => flags.base64 = true,
            "-t" => {
                let ttl = it.next().ok_or("-t needs milliseconds")?;
                flags.ttl = ttl.parse().map_err(|_| format!("bad TTL {ttl:?}"))?;
            }
            _ => positional.push(w.as_str()),
        }
    }
    let data = |text: Option<&&str>| -> Result<Bytes, String> {
        let text = text.copied().unwrap_or("");
        if flags.base64 {
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .map(Bytes::from)
                .map_err(|e| format!("bad base64: {e}"))
        } else {
            Ok(Bytes::copy_from_slice(text.as_bytes()))
        }
    };
    let version = |v: Option<&&str>| -> Result<i32, String> {
        v.map_or(Ok(-1), |v| {
            v.parse().map_err(|_| format!("bad version {v:?}"))
        })
    };
    let only_data_flags = |op: &str| {
        if flags.ephemeral || flags.sequential || flags.container || flags.ttl != 0 {
            Err(format!("{op} takes no create flags"))
        } else {
            Ok(())
        }
    };
    let path = |p: Option<&&str>| -> Result<String, String> {
        match p {
            Some(p) if p.starts_with('/') => Ok(p.to_string()),
            Some(p) => Err(format!("{p:?} is not a path")),
            None => Err("a path is missing".into()),
        }
    };
    match (op.as_str(), positional.len()) {
        ("create", 1 | 2) => Ok(MultiOp::Create(CreateRequest {
            path: path(positional.first())?,
            data: data(positional.get(1))?,
            mode: flags.mode()?,
            ttl_ms: flags.ttl,
            acl: None,
        })),
        ("set", 2 | 3) => {
            only_data_flags("set")?;
            Ok(MultiOp::SetData(SetDataRequest {
                path: path(positional.first())?,
                data: data(positional.get(1))?,
                version: version(positional.get(2))?,
            }))
        }
        ("delete", 1 | 2) if !flags.any() => Ok(MultiOp::Delete(DeleteRequest {
            path: path(positional.first())?,
            version: version(positional.get(1))?,
        })),
        ("check", 2) if !flags.any() => Ok(MultiOp::Check(CheckRequest {
            path: path(positional.first())?,
            version: version(positional.get(1))?,
        })),
        ("create" | "set" | "delete" | "check", _) => Err(format!(
            "wrong arguments for {op} (see `zabctl multi --help`)"
        )),
        _ => Err(format!("unknown operation {op:?}")),
    }
}

#[derive(Default)]
struct Flags {
    ephemeral: bool,
    sequential: bool,
    container: bool,
    base64: bool,
    ttl: u64,
}

impl Flags {
    fn any(&self) -> bool {
        self.ephemeral || self.sequential || self.container || self.base64 || self.ttl != 0
    }

    fn mode(&self) -> Result<CreateMode, String> {
        crate::commands::create_mode(self.ephemeral, self.sequential, self.container, self.ttl)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_data_keeps_its_spaces_and_quotes() {
        let ops = parse(
            "# a comment\n\ncreate /a 'two words'\nset /a \"say \\\"hi\\\"\" 3\n\
             create -e -s /q/item-\ndelete /old\ncheck /a 4\nset -b /bin AP8=",
        )
        .expect("parses");
        let MultiOp::Create(c) = &ops[0] else {
            panic!("a create")
        };
        assert_eq!(&c.data[..], b"two words");
        let MultiOp::SetData(s) = &ops[1] else {
            panic!("a set")
        };
        assert_eq!((&s.data[..], s.version), (&b"say \"hi\""[..], 3));
        let MultiOp::Create(q) = &ops[2] else {
            panic!("a create")
        };
        assert_eq!(q.mode, CreateMode::EphemeralSequential);
        assert!(matches!(&ops[3], MultiOp::Delete(d) if d.version == -1));
        assert!(matches!(&ops[4], MultiOp::Check(c) if c.version == 4));
        let MultiOp::SetData(b) = &ops[5] else {
            panic!("a set")
        };
        assert_eq!(&b.data[..], &[0u8, 0xff]);
    }

    #[test]
    fn bad_lines_are_named() {
        for (text, why) in [
            ("create /a\nfrob /b", "line 2: unknown operation"),
            ("set /a", "line 1: wrong arguments for set"),
            ("create -c -s /a", "line 1: "),
            ("check /a x", "line 1: bad version"),
            ("create 'open", "line 1: unbalanced quotes"),
            ("delete a", "line 1: \"a\" is not a path"),
            ("set -e /a x", "line 1: set takes no create flags"),
        ] {
            let err = parse(text).expect_err(text);
            assert!(err.starts_with(why), "{text:?}: {err}");
        }
    }
}
