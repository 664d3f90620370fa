//! A client rooted below the tree's root (ZooKeeper's chroot suffix,
//! `host:port/app`): every path the application gives is under the root,
//! and every path the client returns is relative to it. Rewritten in one
//! place each way: requests on their way to the session, replies and events
//! on their way back.

use zab_proto::{MultiOp, MultiResult, ReadOp, Request, Response, WatchEvent};

/// The root a client lives under: an absolute path other than `/`, without
/// a trailing `/`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Chroot(String);

impl Chroot {
    /// `root` as a chroot; None for `/` (no chroot). A root that is not a
    /// plain absolute path is refused.
    pub(crate) fn new(root: &str) -> Result<Option<Chroot>, String> {
        if root == "/" {
            return Ok(None);
        }
        let valid = root.starts_with('/')
            && !root.ends_with('/')
            && root[1..]
                .split('/')
                .all(|s| !s.is_empty() && s != "." && s != "..");
        match valid {
            true => Ok(Some(Chroot(root.to_string()))),
            false => Err(format!(
                "chroot {root:?} is not an absolute path like /app (no trailing /)"
            )),
        }
    }

    /// The server's path for the application's `path`. A path that is not
    /// absolute is left as it is: the server refuses it (`BadArguments`)
    /// rather than it naming a sibling of the root (`x` is not `/appx`).
    pub(crate) fn full(&self, path: &str) -> String {
        match path {
            "/" => self.0.clone(),
            p if p.starts_with('/') => format!("{}{p}", self.0),
            p => p.to_string(),
        }
    }

    /// The application's path for the server's `path` (unchanged if it is
    /// not under the root, which no reply or event of a rooted client is).
    pub(crate) fn strip(&self, path: &str) -> String {
        match path.strip_prefix(self.0.as_str()) {
            Some("") => "/".to_string(),
            Some(rest) if rest.starts_with('/') => rest.to_string(),
            _ => path.to_string(),
        }
    }

    /// `request` with its paths under the root.
    pub(crate) fn request(&self, request: Request) -> Request {
        let full = |p: String| self.full(&p);
        match request {
            Request::Create(mut c) => {
                c.path = full(c.path);
                Request::Create(c)
            }
            Request::Delete(mut d) => {
                d.path = full(d.path);
                Request::Delete(d)
            }
            Request::SetData(mut d) => {
                d.path = full(d.path);
                Request::SetData(d)
            }
            Request::Check(mut c) => {
                c.path = full(c.path);
                Request::Check(c)
            }
            Request::Exists { path, watch } => Request::Exists {
                path: full(path),
                watch,
            },
            Request::GetData { path, watch } => Request::GetData {
                path: full(path),
                watch,
            },
            Request::GetChildren { path, watch } => Request::GetChildren {
                path: full(path),
                watch,
            },
            Request::GetChildrenPage {
                path,
                after,
                max,
                watch,
            } => Request::GetChildrenPage {
                path: full(path),
                after,
                max,
                watch,
            },
            Request::Multi(ops) => Request::Multi(
                ops.into_iter()
                    .map(|op| match op {
                        MultiOp::Create(mut c) => {
                            c.path = full(c.path);
                            MultiOp::Create(c)
                        }
                        MultiOp::Delete(mut d) => {
                            d.path = full(d.path);
                            MultiOp::Delete(d)
                        }
                        MultiOp::SetData(mut d) => {
                            d.path = full(d.path);
                            MultiOp::SetData(d)
                        }
                        MultiOp::Check(mut c) => {
                            c.path = full(c.path);
                            MultiOp::Check(c)
                        }
                    })
                    .collect(),
            ),
            Request::MultiRead(ops) => Request::MultiRead(
                ops.into_iter()
                    .map(|op| match op {
                        ReadOp::GetData { path } => ReadOp::GetData { path: full(path) },
                        ReadOp::GetChildren { path } => ReadOp::GetChildren { path: full(path) },
                    })
                    .collect(),
            ),
            Request::Sync { path } => Request::Sync { path: full(path) },
            Request::AddWatch { path, mode } => Request::AddWatch {
                path: full(path),
                mode,
            },
            Request::RemoveWatches { path, kind } => Request::RemoveWatches {
                path: full(path),
                kind,
            },
            Request::CheckWatches { path, kind } => Request::CheckWatches {
                path: full(path),
                kind,
            },
            Request::GetAcl { path } => Request::GetAcl { path: full(path) },
            Request::SetAcl { path, acl, version } => Request::SetAcl {
                path: full(path),
                acl,
                version,
            },
            // A prefix "/" means the whole chroot, not its siblings that
            // share its name's start (`/app` must not match `/apple`).
            Request::GetEphemerals { prefix } => Request::GetEphemerals {
                prefix: match prefix.as_str() {
                    "/" => format!("{}/", self.0),
                    p => self.full(p),
                },
            },
            Request::GetAllChildrenNumber { path } => {
                Request::GetAllChildrenNumber { path: full(path) }
            }
            // Session-level requests name no node of the application's.
            other @ (Request::SetWatches(_) | Request::CloseSession | Request::AddAuth { .. }) => {
                other
            }
        }
    }

    /// `response` with the paths it names relative to the root.
    pub(crate) fn response(&self, response: Response) -> Response {
        match response {
            Response::Create(mut c) => {
                c.path = self.strip(&c.path);
                Response::Create(c)
            }
            Response::Multi(results) => Response::Multi(
                results
                    .into_iter()
                    .map(|r| match r {
                        MultiResult::Create(mut c) => {
                            c.path = self.strip(&c.path);
                            MultiResult::Create(c)
                        }
                        other => other,
                    })
                    .collect(),
            ),
            Response::GetEphemerals { paths } => Response::GetEphemerals {
                paths: paths.iter().map(|p| self.strip(p)).collect(),
            },
            other => other,
        }
    }

    /// `event` with its path relative to the root.
    pub(crate) fn event(&self, mut event: WatchEvent) -> WatchEvent {
        event.path = self.strip(&event.path);
        event
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zab_proto::{CreateReply, Stat, WatchEventKind};

    fn app() -> Chroot {
        Chroot::new("/app").expect("valid").expect("a chroot")
    }

    #[test]
    fn roots_are_plain_absolute_paths() {
        assert_eq!(Chroot::new("/"), Ok(None));
        assert!(Chroot::new("/a/b").expect("valid").is_some());
        for bad in ["app", "/app/", "//app", "/a/../b", "/a/./b", ""] {
            assert!(Chroot::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn paths_go_under_the_root_and_come_back_relative() {
        let c = app();
        assert_eq!(c.full("/"), "/app");
        assert_eq!(c.full("/x/y"), "/app/x/y");
        assert_eq!(c.strip("/app"), "/");
        assert_eq!(c.strip("/app/x"), "/x");
        assert_eq!(c.strip("/apple"), "/apple", "not under the root");
        assert_eq!(c.full("x"), "x", "relative: left for the server to refuse");
        assert_eq!(c.full(""), "");
        let req = c.request(Request::GetEphemerals { prefix: "/".into() });
        assert_eq!(
            req,
            Request::GetEphemerals {
                prefix: "/app/".into()
            }
        );
        let created = c.response(Response::Create(CreateReply {
            path: "/app/q-0000000001".into(),
            stat: Stat::default(),
        }));
        assert!(matches!(created, Response::Create(c) if c.path == "/q-0000000001"));
        let event = c.event(WatchEvent {
            kind: WatchEventKind::NodeCreated,
            path: "/app/n".into(),
            zxid: 1,
        });
        assert_eq!(event.path, "/n");
    }
}
