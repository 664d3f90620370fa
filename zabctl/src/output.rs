//! How results are printed: `text` for people, `json` (serde_json; data
//! base64, as etcdctl does) for scripts, `table` for columns.

use std::io::{self, Write};

use base64::Engine as _;
use comfy_table::{presets::UTF8_BORDERS_ONLY, Table};
use serde_json::{json, Value};
use zab_client::{Acl, Stat, WatchEvent};

use crate::cli::Format;

/// Where results go, in one format.
pub struct Printer<'a> {
    pub format: Format,
    pub out: &'a mut dyn Write,
}

impl std::fmt::Debug for Printer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Printer")
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
}

pub fn base64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// A zxid or session id for JSON: a hex string, as they are printed
/// everywhere else. As a number it would exceed 2^53, which JavaScript and
/// older jq round.
pub fn hex(v: u64) -> Value {
    Value::String(format!("{v:#x}"))
}

pub fn stat_json(s: &Stat) -> Value {
    json!({
        "czxid": hex(s.czxid),
        "mzxid": hex(s.mzxid),
        "pzxid": hex(s.pzxid),
        "ctime": s.ctime,
        "mtime": s.mtime,
        "version": s.version,
        "cversion": s.cversion,
        "aversion": s.aversion,
        "ephemeralOwner": hex(s.ephemeral_owner),
        "dataLength": s.data_length,
        "numChildren": s.num_children,
    })
}

/// The stat as (name, value) rows, zxids and the owner in hex as zkCli.sh
/// prints them.
fn stat_rows(s: &Stat) -> Vec<(&'static str, String)> {
    vec![
        ("czxid", format!("{:#x}", s.czxid)),
        ("mzxid", format!("{:#x}", s.mzxid)),
        ("pzxid", format!("{:#x}", s.pzxid)),
        ("ctime", s.ctime.to_string()),
        ("mtime", s.mtime.to_string()),
        ("version", s.version.to_string()),
        ("cversion", s.cversion.to_string()),
        ("aversion", s.aversion.to_string()),
        ("ephemeralOwner", format!("{:#x}", s.ephemeral_owner)),
        ("dataLength", s.data_length.to_string()),
        ("numChildren", s.num_children.to_string()),
    ]
}

fn table(header: &[&str], rows: impl IntoIterator<Item = Vec<String>>) -> Table {
    let mut t = Table::new();
    t.load_style(UTF8_BORDERS_ONLY).set_header(header.to_vec());
    for row in rows {
        t.add_row(row);
    }
    t
}

/// Data as a table cell: the text if it is UTF-8 without control
/// characters, else `base64:` and its base64.
fn data_cell(data: &[u8]) -> String {
    match std::str::from_utf8(data) {
        Ok(text) if !text.chars().any(char::is_control) => text.to_string(),
        _ => format!("base64:{}", base64(data)),
    }
}

impl Printer<'_> {
    fn json(&mut self, value: &Value) -> io::Result<()> {
        serde_json::to_writer(&mut *self.out, value)?;
        writeln!(self.out)
    }

    fn table(&mut self, t: &Table) -> io::Result<()> {
        writeln!(self.out, "{t}")
    }

    pub fn stat(&mut self, path: &str, s: &Stat) -> io::Result<()> {
        match self.format {
            Format::Json => self.json(&json!({"path": path, "stat": stat_json(s)})),
            Format::Text => {
                for (name, value) in stat_rows(s) {
                    writeln!(self.out, "{name} = {value}")?;
                }
                Ok(())
            }
            Format::Table => {
                let rows = stat_rows(s).into_iter();
                let t = table(&["FIELD", "VALUE"], rows.map(|(n, v)| vec![n.into(), v]));
                self.table(&t)
            }
        }
    }

    /// A node's data (bytes as they are in text) and, with `with_stat`,
    /// its stat.
    pub fn node(&mut self, path: &str, data: &[u8], s: &Stat, with_stat: bool) -> io::Result<()> {
        match self.format {
            Format::Json => self.json(&json!({
                "path": path,
                "data": base64(data),
                "stat": stat_json(s),
            })),
            Format::Text => {
                self.out.write_all(data)?;
                writeln!(self.out)?;
                if with_stat {
                    self.stat(path, s)?;
                }
                Ok(())
            }
            Format::Table => {
                let row = vec![
                    path.to_string(),
                    s.version.to_string(),
                    s.data_length.to_string(),
                    data_cell(data),
                ];
                let t = table(&["PATH", "VERSION", "BYTES", "DATA"], [row]);
                self.table(&t)?;
                if with_stat {
                    self.stat(path, s)?;
                }
                Ok(())
            }
        }
    }

    pub fn created(&mut self, path: &str) -> io::Result<()> {
        match self.format {
            Format::Json => self.json(&json!({ "created": path })),
            Format::Text | Format::Table => writeln!(self.out, "{path}"),
        }
    }

    pub fn written(&mut self, path: &str, s: &Stat) -> io::Result<()> {
        match self.format {
            Format::Json => self.json(&json!({"path": path, "stat": stat_json(s)})),
            Format::Text | Format::Table => writeln!(
                self.out,
                "{path}: version = {}, aversion = {}",
                s.version, s.aversion
            ),
        }
    }

    pub fn deleted(&mut self, path: &str, count: u64) -> io::Result<()> {
        match self.format {
            Format::Json => self.json(&json!({"path": path, "deleted": count})),
            Format::Text | Format::Table => match count {
                0 => writeln!(self.out, "{path}: deleted by someone else meanwhile"),
                1 => writeln!(self.out, "deleted {path}"),
                n => writeln!(self.out, "deleted {path} and {} below it", n - 1),
            },
        }
    }

    /// Names (children) or full paths, one per line; `key` names the JSON
    /// field and the table's column.
    pub fn list(&mut self, path: &str, key: &str, items: &[String]) -> io::Result<()> {
        match self.format {
            Format::Json => self.json(&json!({"path": path, key: items})),
            Format::Text => {
                for item in items {
                    writeln!(self.out, "{item}")?;
                }
                Ok(())
            }
            Format::Table => {
                let header = key.to_uppercase();
                let t = table(&[header.as_str()], items.iter().map(|i| vec![i.clone()]));
                self.table(&t)
            }
        }
    }

    pub fn synced(&mut self, path: &str, zxid: u64) -> io::Result<()> {
        match self.format {
            Format::Json => self.json(&json!({"path": path, "zxid": hex(zxid)})),
            Format::Text | Format::Table => writeln!(self.out, "synced at {zxid:#x}"),
        }
    }

    pub fn count(&mut self, path: &str, count: u64) -> io::Result<()> {
        match self.format {
            Format::Json => self.json(&json!({"path": path, "count": count})),
            Format::Text | Format::Table => writeln!(self.out, "{count}"),
        }
    }

    /// One watch event, flushed at once (streams are read line by line).
    pub fn event(&mut self, e: &WatchEvent) -> io::Result<()> {
        match self.format {
            Format::Json => self.json(&json!({
                "type": format!("{:?}", e.kind),
                "path": e.path,
                "zxid": hex(e.zxid),
            }))?,
            Format::Text | Format::Table => {
                writeln!(self.out, "{:?} {} at {:#x}", e.kind, e.path, e.zxid)?
            }
        }
        self.out.flush()
    }

    pub fn acl(&mut self, path: &str, acl: &[Acl], s: &Stat) -> io::Result<()> {
        match self.format {
            Format::Json => {
                let entries: Vec<Value> = acl
                    .iter()
                    .map(|a| json!({"scheme": a.scheme, "id": a.id, "perms": a.perms.letters()}))
                    .collect();
                self.json(&json!({"path": path, "acl": entries, "aversion": s.aversion}))
            }
            Format::Text => {
                for a in acl {
                    writeln!(self.out, "{a}")?;
                }
                Ok(())
            }
            Format::Table => {
                let rows = acl
                    .iter()
                    .map(|a| vec![a.scheme.clone(), a.id.clone(), a.perms.letters()]);
                let t = table(&["SCHEME", "ID", "PERMS"], rows);
                self.table(&t)
            }
        }
    }

    /// A multi's results: (op, path or detail) each.
    pub fn multi(&mut self, results: &[(String, Value)]) -> io::Result<()> {
        match self.format {
            Format::Json => {
                let list: Vec<Value> = results
                    .iter()
                    .map(|(op, detail)| json!({"op": op, "result": detail}))
                    .collect();
                self.json(&json!({ "results": list }))
            }
            Format::Text => {
                for (op, detail) in results {
                    writeln!(self.out, "{op} {}", plain(detail))?;
                }
                Ok(())
            }
            Format::Table => {
                let rows = results
                    .iter()
                    .map(|(op, detail)| vec![op.clone(), plain(detail)]);
                let t = table(&["OP", "RESULT"], rows);
                self.table(&t)
            }
        }
    }

    /// A sentence for people, or `value` for scripts (a two-column table
    /// by key in table form).
    pub fn said(&mut self, text: &str, value: &Value) -> io::Result<()> {
        match self.format {
            Format::Text => writeln!(self.out, "{text}"),
            _ => self.value(value),
        }
    }

    /// Any JSON value: as it is, as a two-column table by key, or as text
    /// (`key = value` lines for an object).
    pub fn value(&mut self, value: &Value) -> io::Result<()> {
        match self.format {
            Format::Json => self.json(value),
            Format::Text => match value {
                Value::Object(map) => {
                    for (k, v) in map {
                        writeln!(self.out, "{k} = {}", plain(v))?;
                    }
                    Ok(())
                }
                other => writeln!(self.out, "{}", plain(other)),
            },
            Format::Table => {
                let rows: Vec<Vec<String>> = match value {
                    Value::Object(map) => {
                        map.iter().map(|(k, v)| vec![k.clone(), plain(v)]).collect()
                    }
                    other => vec![vec![String::new(), plain(other)]],
                };
                let t = table(&["FIELD", "VALUE"], rows);
                self.table(&t)
            }
        }
    }

    /// Rows of JSON objects as a table with these columns, or one JSON
    /// array, or `key: value` lines per row.
    pub fn rows(&mut self, columns: &[&str], rows: &[Value]) -> io::Result<()> {
        match self.format {
            Format::Json => self.json(&Value::Array(rows.to_vec())),
            Format::Text => {
                for row in rows {
                    let fields: Vec<String> = columns
                        .iter()
                        .filter_map(|c| row.get(*c).map(|v| format!("{c}={}", plain(v))))
                        .collect();
                    writeln!(self.out, "{}", fields.join(" "))?;
                }
                Ok(())
            }
            Format::Table => {
                let header: Vec<String> = columns.iter().map(|c| c.to_uppercase()).collect();
                let header: Vec<&str> = header.iter().map(String::as_str).collect();
                let cells = rows.iter().map(|row| {
                    columns
                        .iter()
                        .map(|c| row.get(*c).map(plain).unwrap_or_default())
                        .collect()
                });
                let t = table(&header, cells);
                self.table(&t)
            }
        }
    }
}

/// A JSON value without quotes around strings.
fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat() -> Stat {
        Stat {
            czxid: 0x1_0000_0002,
            mzxid: 0x1_0000_0003,
            ctime: 1,
            mtime: 2,
            version: 1,
            cversion: 0,
            aversion: 0,
            ephemeral_owner: 0,
            data_length: 3,
            num_children: 0,
            pzxid: 0x1_0000_0002,
        }
    }

    fn render(format: Format, f: impl FnOnce(&mut Printer<'_>) -> io::Result<()>) -> Vec<u8> {
        let mut out = Vec::new();
        f(&mut Printer {
            format,
            out: &mut out,
        })
        .expect("writes to memory");
        out
    }

    #[test]
    fn binary_data_is_base64_in_json_and_bytes_in_text() {
        let data = [0u8, 0xff, b'"', b'\n'];
        let json = render(Format::Json, |p| p.node("/b", &data, &stat(), false));
        let v: Value = serde_json::from_slice(&json).expect("valid JSON");
        let back = base64::engine::general_purpose::STANDARD
            .decode(v["data"].as_str().expect("a string"))
            .expect("base64");
        assert_eq!(back, data);
        assert_eq!(v["stat"]["mzxid"], "0x100000003");
        let text = render(Format::Text, |p| p.node("/b", &data, &stat(), false));
        assert_eq!(text, [&data[..], b"\n"].concat());
    }

    #[test]
    fn control_characters_and_quotes_make_valid_json() {
        let names = vec!["a\u{1}b".to_string(), "q\"uote".to_string()];
        let json = render(Format::Json, |p| p.list("/", "children", &names));
        let v: Value = serde_json::from_slice(&json).expect("valid JSON");
        assert_eq!(v["children"][0], "a\u{1}b");
        assert_eq!(v["children"][1], "q\"uote");
    }

    #[test]
    fn tables_show_binary_data_as_base64() {
        let out = render(Format::Table, |p| p.node("/b", &[0, 1], &stat(), false));
        let text = String::from_utf8(out).expect("utf-8");
        assert!(text.contains("base64:AAE="), "{text}");
        assert!(text.contains("PATH") && text.contains("/b"), "{text}");
    }
}
