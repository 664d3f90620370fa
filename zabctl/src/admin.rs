//! Commands answered by the servers' admin ports (HTTP), without a
//! session: `cluster status`, `backup`, `version`.

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::header::HeaderMap;
use hyper::Uri;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};

use crate::commands::Failure;
use crate::output::Printer;

/// How long one admin port gets to answer a small request.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(2);

/// Why an admin request got no whole answer.
#[derive(Debug)]
enum Unanswered {
    /// No connection, or no response head.
    Unreachable,
    /// The response began and was cut short.
    Cut,
}

/// `GET path` on an admin port (HTTP/1.1 on hyper): the status code, the
/// headers and the whole body.
async fn get(addr: &str, path: &str) -> Result<(u16, HeaderMap, Bytes), Unanswered> {
    let uri: Uri = format!("http://{addr}{path}")
        .parse()
        .map_err(|_| Unanswered::Unreachable)?;
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let response = client.get(uri).await.map_err(|_| Unanswered::Unreachable)?;
    let code = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await;
    let body = body.map_err(|_| Unanswered::Cut)?.to_bytes();
    Ok((code, headers, body))
}

/// Each admin port's `/status` document, or None where none came.
async fn statuses(admins: &[String]) -> Vec<(String, Option<Value>)> {
    let mut out = Vec::new();
    for addr in admins {
        let answer = tokio::time::timeout(ANSWER_TIMEOUT, get(addr, "/status")).await;
        let status = match answer {
            Ok(Ok((200, _, body))) => serde_json::from_slice(&body).ok(),
            _ => None,
        };
        out.push((addr.clone(), status));
    }
    out
}

/// `zabctl cluster status`: every server's role and position. Fails (exit
/// 3) if any admin port did not answer, after printing the others.
pub async fn cluster_status(admins: &[String], p: &mut Printer<'_>) -> Result<(), Failure> {
    let mut rows = Vec::new();
    let mut missing = Vec::new();
    for (addr, status) in statuses(admins).await {
        match status {
            Some(Value::Object(mut map)) => {
                map.insert("admin".into(), json!(addr));
                rows.push(Value::Object(map));
            }
            _ => {
                rows.push(json!({"admin": addr, "error": "unreachable"}));
                missing.push(addr);
            }
        }
    }
    let columns = [
        "admin",
        "id",
        "role",
        "serving",
        "leader",
        "epoch",
        "applied_zxid",
        "znodes",
        "sessions",
        "connections",
        "error",
    ];
    p.rows(&columns, &rows)?;
    match missing.is_empty() {
        true => Ok(()),
        false => Err(Failure::Client(zab_client::Error::NoServer(format!(
            "no answer from {}",
            missing.join(", ")
        )))),
    }
}

/// `zabctl cluster conf|cons|wchs|dump`: each admin port's answer to
/// `path`, with the port's address added; as indented JSON under the
/// address in text, one JSON object per server with `-o json`. Fails (exit
/// 3) if any did not answer, after printing the others.
pub async fn inspect(admins: &[String], path: &str, p: &mut Printer<'_>) -> Result<(), Failure> {
    let mut missing = Vec::new();
    for addr in admins {
        let answer = tokio::time::timeout(ANSWER_TIMEOUT, get(addr, path)).await;
        let doc = match answer {
            Ok(Ok((200, _, body))) => serde_json::from_slice::<Value>(&body).ok(),
            _ => None,
        };
        let Some(Value::Object(mut doc)) = doc else {
            missing.push(addr.clone());
            continue;
        };
        let pretty = serde_json::to_string_pretty(&doc).unwrap_or_default();
        doc.insert("admin".into(), json!(addr));
        p.said(&format!("{addr}\n{pretty}"), &Value::Object(doc))?;
    }
    match missing.is_empty() {
        true => Ok(()),
        false => Err(Failure::Client(zab_client::Error::NoServer(format!(
            "no answer from {}",
            missing.join(", ")
        )))),
    }
}

/// `zabctl version`: this tool's version and each reachable server's.
pub async fn version(admins: &[String], p: &mut Printer<'_>) -> Result<(), Failure> {
    let servers: Vec<Value> = statuses(admins)
        .await
        .into_iter()
        .map(|(addr, status)| {
            let version = status
                .as_ref()
                .and_then(|s| s.get("version").cloned())
                .unwrap_or(Value::Null);
            json!({"admin": addr, "version": version})
        })
        .collect();
    let mut doc = serde_json::Map::new();
    doc.insert("zabctl".into(), json!(env!("CARGO_PKG_VERSION")));
    for s in &servers {
        if let (Some(Value::String(addr)), Some(v)) = (s.get("admin"), s.get("version")) {
            doc.insert(addr.clone(), v.clone());
        }
    }
    match p.format {
        crate::cli::Format::Json => {
            p.value(&json!({"zabctl": env!("CARGO_PKG_VERSION"), "servers": servers}))?
        }
        _ => p.value(&Value::Object(doc))?,
    }
    Ok(())
}

/// `zabctl backup FILE`: an online backup from the first admin port,
/// written to FILE whole or not at all.
pub async fn backup(admins: &[String], file: &Path, p: &mut Printer<'_>) -> Result<(), Failure> {
    let admin = admins
        .first()
        .ok_or_else(|| Failure::Usage("no admin port given".into()))?;
    let (code, headers, body) = match get(admin, "/snapshot").await {
        Ok(answer) => answer,
        Err(Unanswered::Unreachable) => {
            return Err(Failure::Client(zab_client::Error::NoServer(format!(
                "no answer from the admin port {admin}"
            ))))
        }
        // A transfer cut short (fewer bytes than its Content-Length) must
        // not pass for a backup.
        Err(Unanswered::Cut) => return Err(Failure::Client(zab_client::Error::ConnectionLoss)),
    };
    if code != 200 {
        return Err(Failure::Refused(format!(
            "{admin} refused the backup: {}",
            String::from_utf8_lossy(&body).trim()
        )));
    }
    let zxid = headers
        .get("x-zab-zxid")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("unknown")
        .to_string();
    let mut partial = file.as_os_str().to_owned();
    partial.push(".partial");
    let written = std::fs::write(&partial, &body).and_then(|()| std::fs::rename(&partial, file));
    written.map_err(|e| Failure::Usage(format!("cannot write {}: {e}", file.display())))?;
    let shown = file.display().to_string();
    let text = format!(
        "backup at zxid {zxid} ({} bytes) written to {shown}",
        body.len()
    );
    p.said(
        &text,
        &json!({"file": shown, "zxid": zxid, "bytes": body.len()}),
    )?;
    Ok(())
}
